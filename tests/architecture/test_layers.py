"""The package's layers (DESIGN.md): one direction of dependency, no import cycle between modules
(lazy imports inside functions count: hiding a cycle behind one is still a cycle), pure layers that
import no I/O, and production code that never imports the testing kit."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "rxibkr"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every rxibkr module ``path`` imports, at any depth, except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("rxibkr"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parents, base] if base else parents)
            if base.startswith("rxibkr"):
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycle_between_modules() -> None:
    edges = graph()
    # a package's __init__ re-exporting its submodules is not a dependency of those submodules
    for name in edges:
        edges[name] = {m for m in edges[name] if not (edges.get(m) is not None and name.startswith(m + "."))}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for child in sorted(edges[node]):
            if state.get(child) == 1:
                cycles.append(" -> ".join([*path[path.index(child) :], child]))
            elif child not in state:
                visit(child, [*path, child])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_pure_layers_import_no_io_and_nothing_above_them() -> None:
    forbidden = ("rxibkr.io", "rxibkr.client", "rxibkr.streams", "rxibkr.record", "rxibkr.sim", "rxibkr.cli")
    for layer in ("protocol", "session"):
        for path in (PACKAGE / layer).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            bad = {n for n in names if n.startswith(forbidden)}
            io = ("socket", "threading", "reactivex", "ssl", "time")
            bad |= {n for n in names if n.split(".")[0] in io}
            assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {sorted(bad)}"


def test_production_code_never_imports_the_testing_kit() -> None:
    for name, deps in graph().items():
        if name.startswith("rxibkr.testing"):
            continue
        assert not {d for d in deps if d.startswith("rxibkr.testing")}, f"{name} imports the testing kit"


def test_the_io_layer_knows_nothing_above_it() -> None:
    above = ("rxibkr.client", "rxibkr.streams", "rxibkr.record", "rxibkr.remote", "rxibkr.cli")
    above += ("rxibkr.session",)
    for name, deps in graph().items():
        if name.startswith("rxibkr.io"):
            assert not {d for d in deps if d.startswith(above)}, f"{name} imports {sorted(deps)}"
