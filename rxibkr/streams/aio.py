"""asyncio bridges: iterate an Observable with ``async for``, or observe it on an event loop.

The client's values arrive on its reader thread. Two ways to consume them from asyncio:

* :func:`aiter` — ``async for quote in aiter(client.market_data(265598).pipe(snapshots())):``.
  Values are queued (thread-safe) and handed to the loop; the queue is unbounded by default, or
  bounded with an explicit ``overflow`` policy — nothing is ever dropped silently: ``"error"``
  ends the iteration with :class:`QueueOverflowError` (after the values already queued),
  ``"drop_oldest"`` / ``"drop_newest"`` count what they dropped in ``.dropped``.
* :func:`on_loop` — ``ops.observe_on(AsyncIOThreadSafeScheduler(loop))``: the observer's callbacks
  run on the loop thread, so they may touch loop-bound objects (futures, queues, widgets)::

      loop = asyncio.get_running_loop()
      client.market_data(265598).pipe(on_loop(loop)).subscribe(lambda u: queue.put_nowait(u))
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Literal, TypeVar

from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler

T = TypeVar("T")

Overflow = Literal["error", "drop_oldest", "drop_newest"]

_COMPLETED: Any = object()


class QueueOverflowError(RuntimeError):
    """A bounded :func:`aiter` queue was full and its overflow policy is ``"error"``."""


class ObservableIterator(AsyncIterator[T], Generic[T]):
    """The async iterator returned by :func:`aiter`. Subscribes on the first ``__anext__`` (on the
    loop that iterates) and disposes the subscription when the iteration ends or ``aclose()`` is
    called. ``dropped`` counts values dropped by a ``drop_*`` overflow policy."""

    def __init__(self, source: Observable[T], maxsize: int, overflow: Overflow) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"maxsize: expected an int >= 0 (0 = unbounded), got {maxsize!r}")
        if overflow not in ("error", "drop_oldest", "drop_newest"):
            raise ValueError(f"overflow: expected 'error', 'drop_oldest' or 'drop_newest', got {overflow!r}")
        self._source = source
        self._maxsize = maxsize
        self._overflow = overflow
        self._items: collections.deque[T] = collections.deque()
        self._lock = threading.Lock()
        self._end: Any = None  # _COMPLETED or an exception once the source ended
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: abc.DisposableBase | None = None
        self._closed = False
        self.dropped = 0

    def __aiter__(self) -> ObservableIterator[T]:
        return self

    @property
    def queued(self) -> int:
        """How many values wait to be iterated."""
        return len(self._items)

    # -- producer side (any thread) ----------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        loop = self._loop
        if waiter is None or loop is None:
            return
        self._waiter = None

        def resolve() -> None:
            if not waiter.done():
                waiter.set_result(None)

        try:
            loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _on_next(self, value: T) -> None:
        with self._lock:
            if self._end is not None:
                return
            if self._maxsize and len(self._items) >= self._maxsize:
                if self._overflow == "drop_newest":
                    self.dropped += 1
                    return
                if self._overflow == "drop_oldest":
                    self._items.popleft()
                    self.dropped += 1
                else:
                    self._end = QueueOverflowError(
                        f"aiter: the queue is full ({self._maxsize} values waiting); the consumer is too "
                        "slow for overflow='error' (use a larger maxsize, 0 for unbounded, or a drop policy)"
                    )
                    self._wake()
                    return
            self._items.append(value)
            self._wake()

    def _on_error(self, error: Exception) -> None:
        with self._lock:
            if self._end is None:
                self._end = error
            self._wake()

    def _on_completed(self) -> None:
        with self._lock:
            if self._end is None:
                self._end = _COMPLETED
            self._wake()

    # -- consumer side (the loop) -------------------------------------------------------------------
    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._subscription = self._source.subscribe(self._on_next, self._on_error, self._on_completed)
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                end = self._end
                if end is None:
                    waiter: asyncio.Future[None] = self._loop.create_future()
                    self._waiter = waiter
            if end is not None:
                self._finish()
                if end is _COMPLETED:
                    raise StopAsyncIteration
                raise end
            try:
                await waiter
            except asyncio.CancelledError:
                with self._lock:
                    if self._waiter is waiter:
                        self._waiter = None
                raise

    def _finish(self) -> None:
        self._closed = True
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()

    async def aclose(self) -> None:
        """Stop iterating and dispose the subscription (queued values are discarded)."""
        with self._lock:
            if self._end is None:
                self._end = _COMPLETED
            self._items.clear()
        self._finish()


def aiter(source: Observable[T], *, maxsize: int = 0, overflow: Overflow = "error") -> ObservableIterator[T]:
    """Iterate ``source`` with ``async for`` on the running event loop.

    ``maxsize``: 0 (default) for an unbounded queue, else the bound; ``overflow`` says what happens
    when a bounded queue is full: ``"error"`` (default) ends the iteration with
    :class:`QueueOverflowError` once the values queued before are consumed; ``"drop_oldest"`` /
    ``"drop_newest"`` drop a value and count it in the iterator's ``dropped``. An ``on_error`` of
    the source is raised by the iteration; completion ends it. Leaving the ``async for`` early
    (``break``) should be followed by ``await it.aclose()`` (or use ``contextlib.aclosing``) to
    dispose the subscription at once.
    """
    return ObservableIterator(source, maxsize, overflow)


def on_loop(
    loop: asyncio.AbstractEventLoop | None = None,
) -> Callable[[Observable[T]], Observable[T]]:
    """``ops.observe_on`` an :class:`AsyncIOThreadSafeScheduler` of ``loop`` (default: the running
    loop): downstream callbacks run on the loop thread, whatever thread produced the values."""
    target = loop if loop is not None else asyncio.get_running_loop()
    return ops.observe_on(AsyncIOThreadSafeScheduler(target))


__all__ = ["ObservableIterator", "QueueOverflowError", "aiter", "on_loop"]
