"""The repository keeps its promises: README's commands are the ones CI runs; the mutation tool's
targets exist and its mutants are valid single changes."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
TEST_COMMAND = 'python -m pip install -e ".[dev]" && python -m pytest'


def test_readme_starts_with_the_test_command_and_ci_runs_exactly_it() -> None:
    head = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:40]
    assert TEST_COMMAND in head
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert TEST_COMMAND in ci


def test_package_ships_py_typed() -> None:
    assert (ROOT / "rxibkr" / "py.typed").is_file()


def _mutation_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_mutation_tool_targets_exist_and_every_mutant_is_one_valid_change() -> None:
    tool = _mutation_tool()
    for name, target in tool.TARGETS.items():
        for path in (*target.files, *target.tests):
            assert (ROOT / path).exists() or any(ROOT.glob(path)), f"{name}: {path}"
        for file in target.files:
            tree = ast.parse((ROOT / file).read_text(encoding="utf-8"))
            names = {
                f"{c.name}.{f.name}" if isinstance(c, ast.ClassDef) else c.name
                for c in tree.body
                for f in (c.body if isinstance(c, ast.ClassDef) else [c])
                if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            assert set(target.functions) <= names, f"{name}: {set(target.functions) - names}"
            mutants = tool.mutants_of(file, target.functions)
            assert mutants, f"{name}: no mutants in {file}"
            original = ast.unparse(tree)
            for mutant in mutants[:: max(1, len(mutants) // 6)]:  # a spread of them
                source = tool.apply(mutant, (ROOT / file).read_text(encoding="utf-8"))
                compile(source, file, "exec")
                assert source != original, mutant.label()
    assert "python tools/mutation.py" in (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
