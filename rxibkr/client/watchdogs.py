"""Liveness watchdogs as Rx timer operators.

``silence(events, interval, scheduler)`` emits once when ``interval`` seconds pass without an event:
every event restarts the timer (``switch_map`` onto ``timer``). Time comes from the scheduler, so a
``TestScheduler`` runs them in virtual time; the arrival of each event is what counts, never a
timestamp inside it.
"""

from __future__ import annotations

from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops


def silence(events: Observable[Any], interval: float, scheduler: abc.SchedulerBase) -> Observable[int]:
    """One value after ``interval`` seconds without ``events`` (counted from subscription)."""
    if interval <= 0:
        raise ValueError(f"interval: expected a positive number of seconds, got {interval!r}")
    return events.pipe(
        ops.start_with(None),
        ops.switch_map(lambda _: reactivex.timer(interval, scheduler=scheduler)),
        ops.take(1),
    )
