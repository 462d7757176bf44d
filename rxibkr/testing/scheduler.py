"""Small helpers around reactivex schedulers: reading a scheduler's clock, running work due now."""

from __future__ import annotations

from typing import Any

from reactivex import abc
from reactivex.scheduler.virtualtimescheduler import VirtualTimeScheduler


def scheduler_seconds(scheduler: abc.SchedulerBase) -> float:
    """The scheduler's clock in seconds: virtual seconds for a ``TestScheduler``, epoch seconds otherwise."""
    if isinstance(scheduler, VirtualTimeScheduler):
        clock: Any = scheduler.clock
        return float(clock) if isinstance(clock, int | float) else float(scheduler.to_seconds(clock))
    return float(scheduler.now.timestamp())


def run_due(scheduler: VirtualTimeScheduler) -> None:
    """Run every action due at the current virtual time without moving the clock.

    ``TestScheduler.advance_by(0)`` does nothing, so work scheduled "now" (a connection opening, the
    greeting) would otherwise wait for the next advance. Actions scheduled now by those actions run too.
    """
    while True:
        with scheduler._lock:
            if scheduler._is_enabled or not scheduler._queue:
                return
            item = scheduler._queue.peek()
            if item.duetime > scheduler.now:
                return
            scheduler._queue.dequeue()
        if not item.is_cancelled():
            item.invoke()


__all__ = ["run_due", "scheduler_seconds"]
