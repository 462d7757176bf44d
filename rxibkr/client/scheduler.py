"""The control loop's scheduler: reactivex's ``EventLoopScheduler`` whose thread ends when disposed
from one of its own actions.

reactivex 4.0's loop checks for disposal only at the top of a cycle; disposed from inside an action,
it then waits on its condition forever when no timer is queued (or until the next timer is due):
``shutdown()`` called by an observer on the control thread left the thread behind. Here the waits
check for disposal first, and cancelled timers are dropped at once (they never keep the thread
alive, nor their closures in memory).
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from typing import Any

from reactivex.scheduler import EventLoopScheduler
from reactivex.scheduler.scheduleditem import ScheduledItem


class ControlScheduler(EventLoopScheduler):
    """One client's control loop (a daemon thread named ``rxibkr-control``, started lazily)."""

    def __init__(self) -> None:
        super().__init__(thread_factory=_daemon, exit_if_empty=False)

    def run(self) -> None:
        ready: deque[ScheduledItem] = deque()
        while True:
            with self._condition:
                if self._is_disposed:
                    return
                time = self.now
                while self._queue:
                    due = self._queue.peek().duetime
                    while self._ready_list and due > self._ready_list[0].duetime:
                        ready.append(self._ready_list.popleft())
                    if due > time:
                        break
                    ready.append(self._queue.dequeue())
                while self._ready_list:
                    ready.append(self._ready_list.popleft())
            while ready:
                item = ready.popleft()
                if not item.is_cancelled():
                    item.invoke()
            with self._condition:
                if self._is_disposed:
                    return
                if self._ready_list:
                    continue
                items = self._queue.items
                if any(entry[0].is_cancelled() for entry in items):
                    # a cancelled timer must neither keep the loop waiting nor hold its closure
                    # until its due time (a renewal timer is due in minutes)
                    items[:] = [entry for entry in items if not entry[0].is_cancelled()]
                    heapq.heapify(items)
                if self._queue:
                    seconds = (self._queue.peek().duetime - self.now).total_seconds()
                    if seconds > 0:
                        self._condition.wait(seconds)
                else:
                    self._condition.wait()

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread (None before the first action)."""
        thread = self._thread
        return thread if isinstance(thread, threading.Thread) else None


def _daemon(target: Any) -> threading.Thread:
    return threading.Thread(target=target, name="rxibkr-control", daemon=True)
