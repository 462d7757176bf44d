"""ReactiveX operators for trading strategies on rxibkr's typed streams.

Merging and parsing (``snapshots``, ``quotes``, ``order_state``, ``dedupe_executions``,
``market_data_updates``), time (``ohlc``, ``latest``: both take a ``scheduler``, so they run in
virtual time under ``reactivex.testing.TestScheduler``) and change detection (``changes``).
Every operator keeps per-subscription state: two subscriptions never share it.

Example::

    from rxibkr import operators as rxo

    client.market_data(265598).pipe(
        rxo.snapshots(),          # partial updates -> full Quote per conid
        rxo.ohlc(60.0),           # 1-minute bars of the last price
    ).subscribe(print)
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar, cast

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.scheduler import TimeoutScheduler

from rxibkr.protocol import FIELDS, IbkrWsKey, Message, MessageKind
from rxibkr.streams.models import (
    Bar,
    Execution,
    MarketDataUpdate,
    OrderUpdate,
    Quote,
    _args_items,
    _int,
    _price_of,
    field_value,
    new_quote,
)

T = TypeVar("T")

_MISSING: Any = object()


# =================================================================================================
# market data
# =================================================================================================


def market_data_updates() -> Callable[[Observable[Message]], Observable[MarketDataUpdate]]:
    """``smd`` messages (e.g. ``client.observe(IbkrWsKey.MARKET_DATA)`` or a replay) ->
    :class:`~rxibkr.streams.models.MarketDataUpdate`. Other messages are skipped. No duplicate removal:
    ``client.market_data()`` does that."""

    def operator(source: Observable[Message]) -> Observable[MarketDataUpdate]:
        def subscribe(
            observer: abc.ObserverBase[MarketDataUpdate], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(message: Message) -> None:
                if message.key is IbkrWsKey.MARKET_DATA:  # the decoder gives this key to data frames only
                    update = MarketDataUpdate.from_message(message)
                    if update is not None:
                        observer.on_next(update)

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return reactivex.create(subscribe)

    return operator


class QuoteBook:
    """Merged market-data state per conid: :meth:`apply` turns an update into the full Quote.
    Not thread-safe: one per subscription."""

    __slots__ = ("_quotes",)

    def __init__(self) -> None:
        self._quotes: dict[int, Quote] = {}

    def apply(self, update: MarketDataUpdate) -> Quote:
        conid = update.conid
        previous = self._quotes.get(conid)
        merged = dict(update.data) if previous is None else {**previous.data, **update.data}
        quote = new_quote(conid, update.updated, merged, update)
        self._quotes[conid] = quote
        return quote

    def get(self, conid: int) -> Quote | None:
        return self._quotes.get(conid)


def snapshots() -> Callable[[Observable[MarketDataUpdate]], Observable[Quote]]:
    """Merge partial market-data updates into a full :class:`~rxibkr.streams.models.Quote` per conid.

    IBKR sends only the fields that changed; each update is merged into the contract's state and
    the merged quote is emitted, one per update. The ``C``/``H`` flags follow the last price.
    """

    def operator(source: Observable[MarketDataUpdate]) -> Observable[Quote]:
        fused = getattr(source, "_rxibkr_quotes", None)
        if fused is not None:  # client.market_data(c): its hub merges once and emits the quotes
            return cast(Observable[Quote], fused())

        def subscribe(
            observer: abc.ObserverBase[Quote], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            states: dict[int, Quote] = {}
            get = states.get
            emit = observer.on_next

            def on_next(update: MarketDataUpdate) -> None:  # QuoteBook.apply, inlined: the hot path
                conid = update.conid
                previous = get(conid)
                merged = dict(update.data) if previous is None else {**previous.data, **update.data}
                quote = new_quote(conid, update.updated, merged, update)
                states[conid] = quote
                emit(quote)

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return reactivex.create(subscribe)

    return operator


def _top_of_book(quote: Quote) -> tuple[Any, ...]:
    d = quote.data  # raw values: the last price's C/H prefix is part of "31"
    return (d.get("84"), d.get("86"), d.get("31"), d.get("88"), d.get("85"), d.get("7059"))


def quotes() -> Callable[[Observable[Any]], Observable[Quote]]:
    """Typed quotes: like :func:`snapshots`, but a quote is emitted only when its top of book
    changed (``bid``, ``ask``, ``last``, their sizes, the close/halted flags), not for updates of
    other fields only (volume, change, availability...). Items: MarketDataUpdates (merged here) or
    Quotes (e.g. after ``snapshots()``)."""

    def operator(source: Observable[Any]) -> Observable[Quote]:
        def subscribe(
            observer: abc.ObserverBase[Quote], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            book = QuoteBook()
            last: dict[int, tuple[Any, ...]] = {}

            def on_next(item: Any) -> None:
                if isinstance(item, MarketDataUpdate):
                    quote = book.apply(item)
                elif isinstance(item, Quote):
                    quote = item
                else:
                    kind = type(item).__name__
                    observer.on_error(TypeError(f"expected a MarketDataUpdate or a Quote, got {kind}"))
                    return
                top = _top_of_book(quote)
                if last.get(quote.conid) != top:
                    last[quote.conid] = top
                    observer.on_next(quote)

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return reactivex.create(subscribe)

    return operator


# -- field access for changes() -----------------------------------------------------------------------

_ALIASES: dict[str, str] = {
    "bid": "bid_price",
    "ask": "ask_price",
    "last": "last_price",
    "availability": "market_data_availability",
}
_QUOTE_PROPERTIES = frozenset(name for name in dir(Quote) if isinstance(getattr(Quote, name, None), property))


def _field_getter(field: str) -> Callable[[Any], Any]:
    """A getter returning ``_MISSING`` when the item does not carry the field."""
    if not isinstance(field, str) or not field:
        raise TypeError(f"field: expected a field name, id or Quote attribute, got {field!r}")
    name = _ALIASES.get(field, FIELDS.get(field, field))

    def get(item: Any) -> Any:
        if isinstance(item, Quote):
            if field in _QUOTE_PROPERTIES:
                return getattr(item, field)
            return field_value(item.data, name, _MISSING)  # that field only, not the whole quote
        if isinstance(item, MarketDataUpdate):
            return field_value(item.data, name, _MISSING)
        if isinstance(item, Mapping):
            return item.get(field, item.get(name, _MISSING))
        return getattr(item, field, _MISSING)

    return get


def _key_of(item: Any) -> Hashable:
    return getattr(item, "conid", None)


def changes(field: str) -> Callable[[Observable[T]], Observable[T]]:
    """Emit an item only when ``field`` changed for its contract (the first value counts as a
    change). ``field``: a Quote attribute (``"bid"``, ``"mid"``, ``"is_halted"``), a field name
    (``"bid_price"``) or id (``"84"``); items are Quotes, MarketDataUpdates (an update that does not
    carry the field is skipped), mappings or any object with that attribute. Items are kept apart
    by their ``conid`` attribute."""
    get = _field_getter(field)

    def operator(source: Observable[T]) -> Observable[T]:
        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            previous: dict[Hashable, Any] = {}

            def on_next(item: T) -> None:
                value = get(item)
                if value is _MISSING:
                    return
                key = _key_of(item)
                if key not in previous or previous[key] != value:
                    previous[key] = value
                    observer.on_next(item)

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return reactivex.create(subscribe)

    return operator


# =================================================================================================
# time: ohlc, latest
# =================================================================================================


def _default_price(item: Any) -> float | None:
    if isinstance(item, Quote):
        return item.last
    if isinstance(item, MarketDataUpdate):
        return _price_of(item.data, "31")
    if isinstance(item, int | float) and not isinstance(item, bool):
        return float(item)
    return None


class _Building:
    __slots__ = ("bucket", "close", "count", "high", "low", "open", "timer", "volume")

    def __init__(self, bucket: int, price: float, size: float | None) -> None:
        self.bucket = bucket
        self.open = self.high = self.low = self.close = price
        self.volume = size
        self.count = 1
        self.timer: abc.DisposableBase = Disposable()  # the bar's timer, set right after

    def add(self, price: float, size: float | None) -> None:
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        if size is not None:
            self.volume = size if self.volume is None else self.volume + size
        self.count += 1


def _now_seconds(scheduler: abc.SchedulerBase) -> float:
    return scheduler.now.timestamp()


class _Outbox(Generic[T]):
    """An observer's calls, serialized with no lock held while the observer runs.

    ``next``, ``completed`` and ``error`` queue a call; the operator makes them while it holds its own
    lock, so the queue keeps the order the operator decided in. ``drain()``, called once that lock is
    released, makes the queued calls in order, on one thread at a time: a thread that finds another
    one draining (or itself, re-entered from the observer) leaves its calls to it.
    """

    __slots__ = ("_busy", "_lock", "_observer", "_queue")

    def __init__(self, observer: abc.ObserverBase[T], lock: threading.RLock) -> None:
        self._observer = observer
        self._lock = lock
        self._queue: deque[tuple[int, Any]] = deque()
        self._busy = False

    def next(self, value: T) -> None:
        self._queue.append((0, value))

    def completed(self) -> None:
        self._queue.append((1, None))

    def error(self, error: Exception) -> None:
        self._queue.append((2, error))

    def drain(self) -> None:
        lock, queue, observer = self._lock, self._queue, self._observer
        with lock:
            if self._busy or not queue:
                return
            self._busy = True
        try:
            while True:
                with lock:
                    if not queue:
                        self._busy = False
                        return
                    kind, value = queue.popleft()
                if kind == 0:
                    observer.on_next(value)
                elif kind == 1:
                    observer.on_completed()
                else:
                    observer.on_error(value)
        except BaseException:
            with lock:
                self._busy = False  # what is still queued goes out with the next drain
            raise


def ohlc(
    interval: float,
    scheduler: abc.SchedulerBase | None = None,
    *,
    price: Callable[[Any], float | None] | None = None,
    size: Callable[[Any], float | None] | None = None,
) -> Callable[[Observable[Any]], Observable[Bar]]:
    """Time bars from ticks: open/high/low/close of ``price`` per ``interval`` seconds, per conid.

    Bars are aligned to multiples of ``interval`` on the scheduler's clock (epoch seconds) and
    emitted when their interval ends (a timer on ``scheduler``, default the subscription's scheduler
    or ``TimeoutScheduler``) or as soon as a tick of the next interval arrives, whichever is first;
    an interval without ticks gives no bar. On completion the bar in progress is emitted.

    ``price``: default the last price of a Quote or MarketDataUpdate (ticks without one are
    skipped), or the item itself when it is a number. ``size``: optional, summed into ``volume``
    (None: ``volume`` stays None). Bars carry ``count`` (ticks), ``interval`` and ``conid``.
    """
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        raise ValueError(f"interval: expected a positive number of seconds, got {interval!r}")
    price_of = price or _default_price
    width = float(interval)

    def operator(source: Observable[Any]) -> Observable[Bar]:
        def subscribe(
            observer: abc.ObserverBase[Bar], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = scheduler or subscribe_scheduler or TimeoutScheduler.singleton()
            lock = threading.RLock()
            out: _Outbox[Bar] = _Outbox(observer, lock)  # the observer is called with no lock held
            building: dict[Hashable, _Building] = {}
            disposed = [False]

            def bar_of(key: Hashable, b: _Building) -> Bar:
                return Bar(
                    time=round(b.bucket * width * 1000),
                    open=b.open,
                    high=b.high,
                    low=b.low,
                    close=b.close,
                    volume=b.volume,
                    count=b.count,
                    conid=key if isinstance(key, int) else None,
                    interval=width,
                )

            def close(key: Hashable, b: _Building) -> None:
                with lock:
                    # not when a tick of the next interval closed the bar already (its timer was
                    # disposed, too late to stop a timer thread that had taken it)
                    if building.get(key) is b:
                        del building[key]
                        out.next(bar_of(key, b))
                out.drain()

            def on_next(item: Any) -> None:
                p = price_of(item)
                if p is None or not math.isfinite(p):
                    return
                s = size(item) if size is not None else None
                key = _key_of(item)
                now = _now_seconds(sched)
                bucket = math.floor(now / width)
                with lock:
                    if disposed[0]:  # since this tick came in (by another thread, or the price function)
                        return
                    b = building.get(key)
                    if b is not None and b.bucket != bucket:
                        del building[key]
                        b.timer.dispose()
                        out.next(bar_of(key, b))
                        b = None
                    if b is None:
                        new = building[key] = _Building(bucket, p, s)
                        due = max(0.0, (bucket + 1) * width - now)
                        new.timer = sched.schedule_relative(due, lambda *_: close(key, new))
                    else:
                        b.add(p, s)
                out.drain()

            def flush() -> None:
                with lock:
                    for key, b in sorted(building.items(), key=lambda kv: kv[1].bucket):
                        out.next(bar_of(key, b))
                    out.completed()
                out.drain()

            def on_error(error: Exception) -> None:
                with lock:
                    out.error(error)
                out.drain()

            def dispose() -> None:
                # also right after on_completed/on_error: reactivex disposes a subscription that
                # ended (and drops what a late timer would emit after the end)
                with lock:
                    disposed[0] = True
                    for b in building.values():
                        b.timer.dispose()

            inner = source.subscribe(on_next, on_error, flush, scheduler=subscribe_scheduler)
            return CompositeDisposable(inner, Disposable(dispose))

        return reactivex.create(subscribe)

    return operator


class Latest(Generic[T]):
    """The operator returned by :func:`latest`; ``conflated`` counts the values it replaced."""

    def __init__(self, interval: float, scheduler: abc.SchedulerBase | None) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise ValueError(f"interval: expected a positive number of seconds, got {interval!r}")
        self.interval = float(interval)
        self.scheduler = scheduler
        self._count_lock = threading.Lock()
        self._conflated = 0

    @property
    def conflated(self) -> int:
        """How many values were replaced by a newer one before they could be emitted (all
        subscriptions of this operator together)."""
        return self._conflated

    def _note_conflated(self) -> None:
        with self._count_lock:
            self._conflated += 1

    def __call__(self, source: Observable[T]) -> Observable[T]:
        interval = self.interval

        def subscribe(
            observer: abc.ObserverBase[T], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = self.scheduler or subscribe_scheduler or TimeoutScheduler.singleton()
            lock = threading.RLock()
            out: _Outbox[T] = _Outbox(observer, lock)  # the observer is called with no lock held
            timer = SerialDisposable()
            state: dict[str, Any] = {"pending": _MISSING, "open": False}

            def tick(*_: Any) -> None:
                with lock:
                    value = state["pending"]
                    if value is _MISSING:
                        state["open"] = False
                    else:
                        state["pending"] = _MISSING
                        timer.disposable = sched.schedule_relative(interval, tick)
                        out.next(value)
                out.drain()

            def on_next(value: T) -> None:
                with lock:
                    if not state["open"]:
                        state["open"] = True
                        timer.disposable = sched.schedule_relative(interval, tick)
                        out.next(value)
                    else:
                        if state["pending"] is not _MISSING:
                            self._note_conflated()
                        state["pending"] = value
                out.drain()

            def on_completed() -> None:
                with lock:
                    value = state["pending"]
                    if value is not _MISSING:
                        out.next(value)
                    out.completed()
                out.drain()

            def on_error(error: Exception) -> None:
                with lock:
                    out.error(error)
                out.drain()

            # after on_completed/on_error reactivex disposes the subscription, and with it the timer;
            # it also drops whatever a late tick would emit after the end
            inner = source.subscribe(on_next, on_error, on_completed, scheduler=subscribe_scheduler)
            return CompositeDisposable(inner, timer)

        return reactivex.create(subscribe)


def latest(interval: float, scheduler: abc.SchedulerBase | None = None) -> Latest[Any]:
    """Conflation for displays: emit at most one value per ``interval`` seconds, the latest.

    The first value goes out at once; values arriving within the interval after an emission replace
    each other and the latest one goes out when the interval ends (then the next interval starts).
    On completion the pending value is emitted. Nothing is lost silently: the returned operator's
    ``conflated`` attribute counts the values that were replaced::

        op = latest(0.5)
        quotes.pipe(op).subscribe(redraw)
        ...
        print(op.conflated)
    """
    return Latest(interval, scheduler)


# =================================================================================================
# orders and executions
# =================================================================================================


class OrderBook:
    """The merged state of orders by order id (``sor`` deltas carry acct + orderId + the changed
    keys only). Not thread-safe: one per subscription."""

    def __init__(self) -> None:
        self._orders: dict[int, OrderUpdate] = {}

    def apply(self, delta: Mapping[str, Any], source: str = "ws") -> OrderUpdate | None:
        """Merge one order object or delta; the new :class:`~rxibkr.streams.models.OrderUpdate`, or None
        when it names no order or changes nothing (an identical re-send)."""
        order_id = _int(delta.get("orderId"))
        if order_id is None:
            return None
        previous = self._orders.get(order_id)
        if previous is None:
            merged = dict(delta)
            changed = frozenset(delta)
        else:
            old = previous.fields
            changed = frozenset(k for k, v in delta.items() if old.get(k, _MISSING) != v)
            if not changed:
                return None
            merged = {**old, **delta}
        update = OrderUpdate(order_id, merged, changed, delta, source)
        self._orders[order_id] = update
        return update

    def get(self, order_id: int) -> OrderUpdate | None:
        return self._orders.get(order_id)

    def current(self) -> list[OrderUpdate]:
        """Every order's current state (in the order first seen)."""
        return list(self._orders.values())


def _deltas(item: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(item, Message):
        return _args_items(item.args) if item.kind is MessageKind.DATA else ()
    if isinstance(item, OrderUpdate):
        return (item.delta,)
    if isinstance(item, Execution):
        return (item.fields,)
    if isinstance(item, Mapping):
        return (item,)
    raise TypeError(
        f"expected a Message, a mapping, an OrderUpdate or an Execution, got {type(item).__name__}"
    )


def order_state(
    initial: Iterable[Mapping[str, Any]] = (),
) -> Callable[[Observable[Any]], Observable[OrderUpdate]]:
    """Merge order deltas into full order states, keyed by order id.

    Items: ``sor`` messages (every element of ``args``), order objects/deltas (mappings) or
    OrderUpdates (their delta). ``initial``: order objects to start from (e.g. the REST
    ``live_orders()["orders"]``), emitted first with ``source="rest"``. A delta that changes nothing
    is not emitted."""
    rows = [dict(row) for row in initial]

    def operator(source: Observable[Any]) -> Observable[OrderUpdate]:
        def subscribe(
            observer: abc.ObserverBase[OrderUpdate], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            book = OrderBook()
            for row in rows:
                update = book.apply(row, source="rest")
                if update is not None:
                    observer.on_next(update)

            def on_next(item: Any) -> None:
                try:
                    deltas = _deltas(item)
                except TypeError as exc:
                    observer.on_error(exc)
                    return
                for delta in deltas:
                    update = book.apply(delta)
                    if update is not None:
                        observer.on_next(update)

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return reactivex.create(subscribe)

    return operator


class ExecutionLog:
    """Executions by ``execution_id``: new ones, and re-sent ones only when their content changed
    (typically: the commission arrived). Not thread-safe: one per subscription."""

    def __init__(self) -> None:
        self._executions: dict[str, Execution] = {}

    def apply(self, obj: Mapping[str, Any]) -> Execution | None:
        execution_id = obj.get("execution_id")
        if execution_id is None:
            return None
        key = str(execution_id)
        previous = self._executions.get(key)
        if previous is None:
            execution = Execution(key, dict(obj), 0)
        else:
            merged = {**previous.fields, **obj}
            if merged == previous.fields:
                return None
            execution = Execution(key, merged, previous.revision + 1)
        self._executions[key] = execution
        return execution

    def apply_message(self, message: Message) -> list[Execution]:
        out: list[Execution] = []
        for obj in _deltas(message):
            execution = self.apply(obj)
            if execution is not None:
                out.append(execution)
        return out

    def current(self) -> list[Execution]:
        return list(self._executions.values())


def dedupe_executions() -> Callable[[Observable[Any]], Observable[Execution]]:
    """Executions deduplicated by ``execution_id``: each is emitted when first seen and again
    (``revision`` + 1) only when the gateway re-sends it with different content, typically once the
    commission is known. Items: ``str`` messages, execution mappings or Executions."""

    def operator(source: Observable[Any]) -> Observable[Execution]:
        def subscribe(
            observer: abc.ObserverBase[Execution], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            log = ExecutionLog()

            def on_next(item: Any) -> None:
                try:
                    objects = _deltas(item)
                except TypeError as exc:
                    observer.on_error(exc)
                    return
                for obj in objects:
                    execution = log.apply(obj)
                    if execution is not None:
                        observer.on_next(execution)

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return reactivex.create(subscribe)

    return operator


__all__ = [
    "ExecutionLog",
    "Latest",
    "OrderBook",
    "QuoteBook",
    "changes",
    "dedupe_executions",
    "latest",
    "market_data_updates",
    "ohlc",
    "order_state",
    "quotes",
    "snapshots",
]
