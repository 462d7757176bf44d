"""Every python block of docs/testing.md runs: plain blocks are exec'd, blocks defining pytest tests run
through pytester (with the rxibkr plugin's fixtures)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

try:  # see test_plugin.py: the simulator's stack must be imported before pytester snapshots sys.modules
    import trustme  # noqa: F401

    import rxibkr.sim  # noqa: F401

    HAVE_SIM = True
except ImportError:
    HAVE_SIM = False

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


def test_the_doc_has_examples_of_all_three_ways() -> None:
    text = "\n".join(BLOCKS)
    assert "virtual_client" in text and "ReplayTransport" in text and "ibkr_client" in text


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_runs(index: int, pytester: pytest.Pytester) -> None:
    code = BLOCKS[index]
    before = set(threading.enumerate())
    if re.search(r"^def test_", code, re.M):
        if "ibkr_sim" in code and not HAVE_SIM:
            pytest.skip("needs rxibkr's sim extra")
        pytester.makepyfile(**{f"test_doc_block_{index}": code})
        result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
        passed = len(re.findall(r"^def test_", code, re.M))
        result.assert_outcomes(passed=passed)
    else:
        exec(compile(code, f"{DOC.name}[block {index}]", "exec"), {"__name__": f"doc_block_{index}"})
    waiter = threading.Event()
    for _ in range(50):
        if not set(threading.enumerate()) - before:
            break
        waiter.wait(0.05)
    assert set(threading.enumerate()) - before == set()
