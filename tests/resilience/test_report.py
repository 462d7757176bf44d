"""docs/resilience.md keeps its promises: the command at its top regenerates the table, and the table
has one passing row per scenario, with nothing lost."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from .scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "resilience.md"
TOOL = ROOT / "tools" / "resilience_report.py"


def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("resilience_report", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows() -> dict[str, list[str]]:
    text = DOC.read_text(encoding="utf-8")
    report = tool()
    start, end = text.index(report.BEGIN), text.index(report.END)
    rows = {}
    for line in text[start:end].splitlines():
        match = report.ROW.match(line)
        if match:
            rows[match.group(2)] = [cell.strip() for cell in line.strip().strip("|").split("|")]
    return rows


def test_the_document_says_how_to_regenerate_it_at_the_top() -> None:
    head = "\n".join(DOC.read_text(encoding="utf-8").splitlines()[:12])
    assert "python tools/resilience_report.py" in head


def test_the_table_has_one_passing_row_per_scenario_in_order_with_nothing_lost() -> None:
    rows = table_rows()
    assert list(rows) == [sid for sid, _fn, _slow in SCENARIOS]
    for sid, cells in rows.items():
        assert cells[-1] == "pass", f"{sid}: {cells[-1]}"
        assert cells[6] in ("0", "—"), f"{sid}: lost {cells[6]}"
        if cells[3] != "—":
            assert float(cells[3]) <= float(cells[4]), f"{sid}: recovery over its bound"


def test_rewrite_replaces_only_the_table_and_keeps_rows_not_run() -> None:
    report = tool()
    document = (
        f"# title\n\nprose\n\n{report.BEGIN}\n| 2 | `b` | old b |\n| 9 | `z` | gone |\n{report.END}\ntail\n"
    )
    out = report.rewrite(document, {"a": "| 1 | `a` | new a |"}, ["a", "b", "c"], "footer")
    assert out.startswith("# title\n\nprose\n\n" + report.BEGIN)
    assert out.endswith(report.END + "\ntail\n")
    body = out[out.index(report.BEGIN) : out.index(report.END)]
    assert "| 1 | `a` | new a |" in body and "| 2 | `b` | old b |" in body
    assert re.search(r"\| 3 \| `c` \| \(not run yet\)", body) and "`z`" not in body and "footer" in body


def test_the_command_runs_a_scenario_and_reports_it() -> None:
    out = subprocess.run(
        [sys.executable, str(TOOL), "--check", "--only", "competing"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"^competing\s+ok", out.stdout, re.M), out.stdout
    assert "| `competing` |" in out.stdout
