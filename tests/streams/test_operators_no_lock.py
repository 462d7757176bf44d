"""``ohlc`` and ``latest`` call their observer with no lock of theirs held (the library's rule): an
observer may wait for another thread that feeds the same operator, and that thread is not blocked.
Their calls stay serialized: what the other thread causes is delivered after the observer returns."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reactivex.disposable import Disposable
from reactivex.scheduler import HistoricalScheduler
from reactivex.subject import Subject

from rxibkr import operators as rxo


def feeder(source: Subject[Any], value: Any) -> threading.Event:
    """Push ``value`` into ``source`` from another thread; the event is set once the push returned."""
    done = threading.Event()

    def push() -> None:
        source.on_next(value)
        done.set()

    threading.Thread(target=push, name="test-feeder", daemon=True).start()
    return done


def test_ohlc_observer_runs_with_no_lock_held() -> None:
    scheduler = HistoricalScheduler()
    source: Subject[float] = Subject()
    bars: list[Any] = []
    fed: list[bool] = []
    active = [0]

    def on_bar(bar: Any) -> None:
        active[0] += 1
        assert active[0] == 1, "two calls of one observer at once"
        bars.append(bar)
        if len(bars) == 1:
            # another thread ticks into the same operator while this observer runs
            fed.append(feeder(source, 7.0).wait(5))  # with the operator's lock held: a deadlock
        active[0] -= 1

    source.pipe(rxo.ohlc(60, scheduler)).subscribe(on_bar)
    source.on_next(1.0)
    source.on_next(3.0)
    scheduler.advance_by(60.5)  # the first bar's timer fires: the bar goes out
    assert fed == [True]
    assert [(b.open, b.high, b.close, b.count) for b in bars] == [(1.0, 3.0, 3.0, 2)]
    scheduler.advance_by(60)
    assert [(b.open, b.close, b.count) for b in bars[1:]] == [(7.0, 7.0, 1)]  # the fed tick's bar


def test_latest_observer_runs_with_no_lock_held() -> None:
    scheduler = HistoricalScheduler()
    source: Subject[int] = Subject()
    got: list[int] = []
    fed: list[bool] = []

    def on_value(value: int) -> None:
        got.append(value)
        if value == 1:
            fed.append(feeder(source, 2).wait(5))

    op = rxo.latest(1.0, scheduler)
    source.pipe(op).subscribe(on_value)
    source.on_next(1)  # the first value goes out at once, on this thread
    assert fed == [True]
    assert got == [1]  # the fed value waits for the end of the interval
    scheduler.advance_by(1.0)
    assert got == [1, 2]


class StoppedClock:
    """A scheduler whose clock moves only when the test moves it and whose timers never fire: bars
    close only by a tick of the next interval."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 2, tzinfo=UTC)

    def schedule_relative(self, duetime: Any, action: Any, state: Any = None) -> Disposable:
        return Disposable()


def test_an_emission_caused_from_inside_the_observer_comes_after_it_returns() -> None:
    scheduler = StoppedClock()
    source: Subject[float] = Subject()
    calls: list[tuple[str, float]] = []
    depth = [0]

    def on_bar(bar: Any) -> None:
        depth[0] += 1
        calls.append(("enter", bar.open))
        if bar.open == 1.0:
            scheduler.now += timedelta(seconds=60)
            source.on_next(3.0)  # a tick of the next interval: closes bar 2.0, from inside this call
        calls.append(("leave", bar.open))
        assert depth[0] == 1, "the observer was called again from inside itself"
        depth[0] -= 1

    source.pipe(rxo.ohlc(60, scheduler)).subscribe(on_bar)
    source.on_next(1.0)
    scheduler.now += timedelta(seconds=60)
    source.on_next(2.0)  # closes bar 1.0
    assert calls == [("enter", 1.0), ("leave", 1.0), ("enter", 2.0), ("leave", 2.0)]


def test_an_observer_that_raises_does_not_stop_later_bars() -> None:
    scheduler = StoppedClock()
    source: Subject[float] = Subject()
    bars: list[float] = []

    def on_bar(bar: Any) -> None:
        bars.append(bar.open)
        if len(bars) == 1:
            raise RuntimeError("observer bug")

    source.pipe(rxo.ohlc(60, scheduler)).subscribe(on_bar)
    source.on_next(1.0)
    scheduler.now += timedelta(seconds=60)
    with pytest.raises(RuntimeError, match="observer bug"):
        source.on_next(2.0)  # closes bar 1.0, whose observer raises to the caller
    scheduler.now += timedelta(seconds=60)
    source.on_next(3.0)  # closes bar 2.0: delivered, the outbox was not left busy
    assert bars == [1.0, 2.0]
