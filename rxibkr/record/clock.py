"""Reading a scheduler's clock (record's own copy: production code never imports the testing kit)."""

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


__all__ = ["scheduler_seconds"]
