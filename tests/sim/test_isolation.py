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


def sim_imports(path: Path) -> set[str]:
    """Every rxibkr.sim module a file imports anywhere (top level, functions, TYPE_CHECKING blocks)."""
    modules = {p.stem for p in SIM_DIR.glob("*.py")}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else f"rxibkr.sim.{node.module}"
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("rxibkr.sim.") and name.split(".")[2] in modules:
                found.add(name.split(".")[2])
    return found - {path.stem}


def test_sim_modules_import_each_other_without_a_cycle() -> None:
    graph = {p.stem: sim_imports(p) for p in SIM_DIR.glob("*.py") if p.stem != "__init__"}
    assert "gateway" not in graph["connection"] and "gateway" not in graph["topics"]
    assert "topics" not in graph["connection"]
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, " -> ".join((*path, node))
        if node in done:
            return
        for child in sorted(graph.get(node, ())):
            visit(child, (*path, node))
        done.add(node)

    for module in sorted(graph):
        visit(module, ())
