"""Helpers of the client's regression and torture tests over real sockets.

Everything here uses the public API of the client and of :class:`rxibkr.sim.GatewaySimulator`
(``received_frames``, ``active_subscriptions``, fault switches); nothing patches the library.
Every wait is bounded: a call that hangs fails the test with a dump of every thread's stack
instead of hanging the suite.
"""

from __future__ import annotations

import faulthandler
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import orjson
import pytest
from waiting import wait_until

from rxibkr.sim import GatewaySimulator

T = TypeVar("T")

#: Thread names of the client: readers (one per connection) and the REST worker. The control thread
#: is an ``EventLoopScheduler`` thread, found by comparing ``threading.enumerate()`` before and after.
CLIENT_THREAD_PREFIXES = ("rxibkr-reader-", "rxibkr-rest")


def dump_threads(why: str) -> None:
    """Every thread's stack on stderr (pytest shows it with the failure)."""
    sys.stderr.write(f"\n=== {why}: stacks of all threads ===\n")
    sys.stderr.flush()
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)


class Call:
    """A blocking call run on a daemon thread, so that the test can bound the wait for it."""

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        self.name = name
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self._done = threading.Event()

        def run() -> None:
            try:
                self.result = fn()
            except BaseException as exc:
                self.error = exc
            finally:
                self.finished = time.monotonic()
                self._done.set()

        self.thread = threading.Thread(target=run, name=f"test-call-{name}", daemon=True)
        self.thread.start()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def elapsed(self) -> float:
        return (self.finished if self.finished is not None else time.monotonic()) - self.started

    def join(self, timeout: float, *, fail: bool = True) -> bool:
        """Wait up to ``timeout`` s; on timeout dump the stacks and fail the test (or return False)."""
        if self._done.wait(timeout):
            return True
        if fail:
            dump_threads(f"{self.name} still blocked after {timeout:g} s")
            pytest.fail(f"{self.name} did not return within {timeout:g} s (stacks dumped to stderr)")
        return False

    def value(self, timeout: float) -> Any:
        """The call's result within ``timeout`` s (its exception re-raised), else fail the test."""
        self.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result


def bounded(fn: Callable[[], T], timeout: float, name: str) -> T:
    """``fn()`` on a daemon thread; its result, or the test fails after ``timeout`` s with stacks."""
    result: T = Call(fn, name).value(timeout)
    return result


def quietly_bounded(fn: Callable[[], Any], timeout: float) -> None:
    """Teardown: run ``fn`` but never wait more than ``timeout`` s (a hung client must not hang
    the suite; the test that left it hung has already failed)."""
    Call(fn, "teardown").join(timeout, fail=False)


def new_threads(before: Iterable[threading.Thread]) -> list[threading.Thread]:
    """Live threads that were not in ``before`` (the tests' own helper threads excluded)."""
    known = set(before)
    return [
        t for t in threading.enumerate() if t not in known and t.is_alive() and not t.name.startswith("test-")
    ]


def assert_no_thread_left(before: Iterable[threading.Thread], timeout: float = 3.0) -> None:
    snapshot = list(before)
    if not wait_until(lambda: not new_threads(snapshot), timeout):
        left = new_threads(snapshot)
        dump_threads("threads left behind")
        raise AssertionError(f"threads left after shutdown(): {[t.name for t in left]}")


# -- what the gateway was asked -------------------------------------------------------------------
def smd_commands(sim: GatewaySimulator) -> list[tuple[int, int, list[str]]]:
    """``(connection id, conid, fields)`` of every ``smd`` the simulator acted upon, in order."""
    out: list[tuple[int, int, list[str]]] = []
    for cid, text in sim.received_frames(dropped=False):
        if not text.startswith("smd+"):
            continue
        head, _, args = text[4:].partition("+")
        try:
            conid = int(head.split("@", 1)[0])
        except ValueError:
            continue
        fields: list[str] = []
        if args:
            try:
                obj = orjson.loads(args)
            except orjson.JSONDecodeError:
                obj = {}
            raw = obj.get("fields", []) if isinstance(obj, dict) else []
            fields = [str(f) for f in raw] if isinstance(raw, list) else []
        out.append((cid, conid, fields))
    return out


def smd_counts(sim: GatewaySimulator) -> Counter[tuple[int, int]]:
    """How many ``smd`` the simulator got per (connection id, conid)."""
    return Counter((cid, conid) for cid, conid, _ in smd_commands(sim))


def gateway_md_fields(sim: GatewaySimulator, conid: int) -> set[str]:
    """The fields the gateway serves ``conid`` with on its newest connection holding it: the union
    of every ``smd`` of that conid on that connection (the gateway widens a re-sent ``smd``)."""
    held = sim.active_subscriptions()
    cids = [cid for cid, topics in held.items() if str(conid) in topics.get("smd", [])]
    if not cids:
        return set()
    newest = max(cids)
    return {f for cid, c, fields in smd_commands(sim) if cid == newest and c == conid for f in fields}


def gateway_channels(sim: GatewaySimulator) -> dict[int, set[str]]:
    """Per open connection, the client-side channel names of what the gateway holds (``md+265598``,
    ``or``, ``pl``, ``sd+DU1234567``...), from :meth:`GatewaySimulator.active_subscriptions`."""
    names = {"smd": "md", "smh": "mh", "sor": "or", "str": "tr", "spl": "pl", "ssd": "sd", "sld": "ld"}
    out: dict[int, set[str]] = {}
    for cid, topics in sim.active_subscriptions().items():
        channels: set[str] = set()
        for topic, targets in topics.items():
            prefix = names.get(topic)
            if prefix is None:
                continue
            for target in targets:
                channels.add(f"{prefix}+{target}" if target else prefix)
        out[cid] = channels
    return out


class OverlapProbe:
    """Counts how many calls of one observer run at the same time; ``max_active`` must stay 1."""

    def __init__(self, name: str = "observer") -> None:
        self.name = name
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.calls = 0

    def enter(self) -> None:
        with self._lock:
            self.active += 1
            self.calls += 1
            if self.active > self.max_active:
                self.max_active = self.active

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def wrap(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        def on_next(value: Any) -> None:
            self.enter()
            try:
                fn(value)
            finally:
                self.leave()

        return on_next
