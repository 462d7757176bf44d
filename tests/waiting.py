"""The one bounded wait of the test suite: poll a condition until it holds or a deadline passes.

Tests synchronise on conditions, never on fixed sleeps: ``assert wait_until(lambda: x.done, 5)``.
Importable from every test module (``from waiting import wait_until``): tests/ is on ``sys.path``
through its rootdir conftest.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it is truthy (True) or ``timeout`` seconds passed (False, after one
    last look). ``interval`` is the pause between looks, never a synchronisation by itself."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """:func:`wait_until` that fails the test (AssertionError naming ``what``) when the bound passes."""
    assert wait_until(condition, timeout, interval=0.01), f"{what}: not met within {timeout:g} s"
