"""The simulator is an independent implementation: it imports nothing of rxibkr outside rxibkr.sim."""

from __future__ import annotations

import ast
from pathlib import Path

import rxibkr.sim

SIM_DIR = Path(rxibkr.sim.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names if node.module == "rxibkr")
    return names


def test_sim_imports_only_itself_from_rxibkr() -> None:
    files = sorted(SIM_DIR.glob("*.py"))
    assert len(files) > 5
    offenders = {
        f"{path.name}: {name}"
        for path in files
        for name in imported_modules(path)
        if (name == "rxibkr" or name.startswith("rxibkr.")) and not name.startswith("rxibkr.sim")
    }
    assert not offenders, offenders
