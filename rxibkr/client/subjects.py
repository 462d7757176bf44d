"""Lean hot subjects for the dispatch path.

reactivex's ``Subject`` takes a lock and copies its observer list on every ``on_next``, and one
observer that raises stops delivery to the observers after it. These subjects keep an immutable
tuple of observers (copy on subscribe/dispose, not on emit) and isolate observers from each other:
an exception raised by one is handed to ``on_observer_error`` and delivery continues.

``subscribe(on_next)`` with plain callbacks skips reactivex's ``AutoDetachObserver`` (one Python
call per value less): ``on_next`` itself sits in the tuple the emitting loop walks. A hot subject
never errors, so there is nothing for that wrapper to stop; disposing removes the callback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import Disposable

T = TypeVar("T")

ErrorSink = Callable[[BaseException, Any], None]


def _ignore(_exc: BaseException, _value: Any) -> None:
    return None


class _Callbacks:
    """A bare observer: the callbacks themselves, no per-value wrapper."""

    __slots__ = ("on_completed", "on_next")

    def __init__(self, on_next: Callable[[Any], None], on_completed: Callable[[], None] | None) -> None:
        self.on_next = on_next
        self.on_completed = on_completed or _nothing

    def on_error(self, error: Exception) -> None:
        return None


def _nothing() -> None:
    return None


class HotSubject(Observable[T], Generic[T]):
    """A multicast source that never errors; completes only when :meth:`complete` is called."""

    __slots__ = ("_calls", "_completed", "_lock", "_observers", "_on_change", "_on_observer_error")

    def __init__(
        self, on_observer_error: ErrorSink | None = None, on_change: Callable[[], None] | None = None
    ) -> None:
        """``on_change``: called after an observer is added or removed (outside the lock)."""
        super().__init__()
        self._observers: tuple[abc.ObserverBase[T], ...] = ()
        self._calls: tuple[Callable[[T], None], ...] = ()  # each observer's on_next, in order
        self._lock = threading.Lock()
        self._completed = False
        self._on_observer_error = on_observer_error or _ignore
        self._on_change = on_change or _nothing

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        with self._lock:
            if self._completed:
                observer.on_completed()
                return Disposable()
            self._observers = (*self._observers, observer)
            self._calls = (*self._calls, observer.on_next)
        self._on_change()

        def remove() -> None:
            with self._lock:
                observers = list(self._observers)
                if observer not in observers:
                    return
                index = observers.index(observer)
                del observers[index]
                calls = list(self._calls)
                del calls[index]
                self._observers = tuple(observers)
                self._calls = tuple(calls)
            self._on_change()

        return Disposable(remove)

    def subscribe(  # type: ignore[override]
        self,
        on_next: Any = None,
        on_error: Callable[[Exception], None] | None = None,
        on_completed: Callable[[], None] | None = None,
        *,
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        """As ``Observable.subscribe``; plain callbacks are attached directly (see the module doc)."""
        if callable(on_next) and not hasattr(on_next, "on_next"):
            return self._subscribe_core(cast(abc.ObserverBase[T], _Callbacks(on_next, on_completed)))
        return super().subscribe(on_next, on_error, on_completed, scheduler=scheduler)

    def attach(
        self, on_next: Callable[[T], None], on_completed: Callable[[], None] | None = None
    ) -> abc.DisposableBase:
        """Subscribe plain callbacks without reactivex's per-value AutoDetachObserver hop (for the
        package's own routing observers, which never error)."""
        return self._subscribe_core(cast(abc.ObserverBase[T], _Callbacks(on_next, on_completed)))

    def on_next(self, value: T) -> None:
        for call in self._calls:
            try:
                call(value)
            except Exception as exc:  # an observer's bug must not stop the stream
                self._on_observer_error(exc, value)

    def complete(self) -> None:
        with self._lock:
            if self._completed:
                return
            self._completed = True
            observers, self._observers = self._observers, ()
            self._calls = ()
        self._on_change()
        for observer in observers:
            try:
                observer.on_completed()
            except Exception as exc:
                self._on_observer_error(exc, None)


class StateSubject(HotSubject[T], Generic[T]):
    """A :class:`HotSubject` with a current value, replayed to each new observer (BehaviorSubject)."""

    __slots__ = ("_value",)

    def __init__(self, value: T, on_observer_error: ErrorSink | None = None) -> None:
        super().__init__(on_observer_error)
        self._value = value

    @property
    def value(self) -> T:
        return self._value

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        with self._lock:
            completed = self._completed
            value = self._value
        if not completed:
            try:
                observer.on_next(value)
            except Exception as exc:
                self._on_observer_error(exc, value)
        return super()._subscribe_core(observer, scheduler)

    def on_next(self, value: T) -> None:
        with self._lock:
            self._value = value
        super().on_next(value)
