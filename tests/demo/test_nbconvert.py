"""``jupyter nbconvert`` works from the notebook extra (it needs the nbconvert package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_jupyter_nbconvert_runs_from_the_installed_extra(tmp_path: Path) -> None:
    pytest.importorskip("nbconvert", reason="nbconvert is not installed (pip install -e '.[notebook]')")
    jupyter = Path(sys.executable).with_name("jupyter")
    command = [str(jupyter)] if jupyter.exists() else [sys.executable, "-m", "jupyter"]
    result = subprocess.run(
        [
            *command,
            "nbconvert",
            "--to",
            "python",
            "--output-dir",
            str(tmp_path),
            str(ROOT / "notebooks" / "02_live_plot.ipynb"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["02_live_plot.py"], (written, result.stderr)
    script = (tmp_path / "02_live_plot.py").read_text(encoding="utf-8")
    assert "live_plot(quotes" in script
