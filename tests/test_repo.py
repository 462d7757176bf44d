"""The repository keeps its promises: README's commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_COMMAND = 'python -m pip install -e ".[dev]" && python -m pytest'


def test_readme_starts_with_the_test_command_and_ci_runs_exactly_it() -> None:
    head = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:40]
    assert TEST_COMMAND in head
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert TEST_COMMAND in ci


def test_package_ships_py_typed() -> None:
    assert (ROOT / "rxibkr" / "py.typed").is_file()
