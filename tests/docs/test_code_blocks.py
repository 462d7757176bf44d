"""Every ```python block of README.md and docs/*.md runs, each in a fresh interpreter.

Blocks must be self-contained (they start a simulator where they need a gateway). A block that cannot
run here (a real gateway, an interactive session) is fenced as ```python no-run, or written as text.
docs/testing.md is left to its own test (tests/testing/test_docs.py), which runs its blocks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWN_TESTS = {"docs/testing.md"}  # files whose blocks another test executes
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")


def code_blocks(path: Path) -> list[tuple[int, str, str]]:
    """(first line number, info string, code) of every fenced block of a markdown file."""
    blocks: list[tuple[int, str, str]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info, start = match["fence"], match["info"].strip(), i + 1
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append((start, info, "\n".join(body) + "\n"))
        i += 1
    return blocks


def documents() -> list[Path]:
    docs = sorted((ROOT / "docs").glob("*.md"))
    return [ROOT / "README.md", *(p for p in docs if p.relative_to(ROOT).as_posix() not in OWN_TESTS)]


def python_blocks() -> list[tuple[str, int, str]]:
    found = []
    for path in documents():
        for line, info, code in code_blocks(path):
            if info == "python":
                found.append((path.relative_to(ROOT).as_posix(), line, code))
    return found


BLOCKS = python_blocks()


def test_the_documents_have_python_blocks_and_mark_the_others() -> None:
    assert {name for name, _, _ in BLOCKS} >= {"README.md", "docs/api.md"}
    for path in documents():
        for line, info, _ in code_blocks(path):
            words = info.split()
            if words and words[0] in ("python", "py", "python3"):
                assert info in ("python", "python no-run"), f"{path.name}:{line}: fence info {info!r}"


@pytest.mark.parametrize(("name", "line", "code"), BLOCKS, ids=[f"{n}:{ln}" for n, ln, _ in BLOCKS])
def test_python_block_runs(name: str, line: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**_environment(), "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, (
        f"{name}:{line} failed\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def _environment() -> dict[str, str]:
    import os

    # the blocks must not depend on the developer's RXIBKR_* settings
    return {k: v for k, v in os.environ.items() if not k.startswith("RXIBKR_")}


def test_every_executed_block_asserts_what_it_shows() -> None:
    # running is not checking: a block whose output nobody looks at would pass whatever it printed
    silent = [f"{name}:{line}" for name, line, code in BLOCKS if not re.search(r"^\s*assert\b", code, re.M)]
    assert silent == [], f"blocks without an assert: {silent}"
