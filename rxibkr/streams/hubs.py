"""Typed, parsed, merged streams per topic, on top of an :class:`~rxibkr.client.core.IbkrWsClient`.

Every stream here is a cold, reference-counted Observable: the first observer makes the client
subscribe (``client.subscribe(..., wait=False)``: the subscription is kept across reconnects and
re-sent by the client), later observers share that server subscription, and disposing the last
observer unsubscribes. Each server subscription has one *hub* that turns its frames into typed
values once, keeps what a late observer needs (the merged state), and fans the values out:

* one shared observer per :class:`IbkrWsKey` on ``client.observe(key)`` routes messages to the hubs
  by a dictionary lookup (conid, account, ...), never one filter per observer;
* a late observer first receives the hub's current state (market data: one update with every
  field known so far; orders: every order's merged state; trades: every execution...), then the
  live values.

The client's hot path is untouched: field unwrapping, parsing and merging happen here, and only for
the topics somebody observes. Use the streams through the client (``client.market_data(265598)``)
or through :func:`streams_of` (``streams_of(client).market_data(265598)``).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.scheduler.virtualtimescheduler import VirtualTimeScheduler

from rxibkr.client.subjects import HotSubject
from rxibkr.client.subscriptions import Subscription, SubscriptionState, SubscriptionStatus
from rxibkr.protocol import IbkrWsKey, Message, MessageKind
from rxibkr.protocol import requests as rq
from rxibkr.streams.models import (
    AuthStatus,
    Bar,
    Bulletin,
    Execution,
    History,
    Ladder,
    LedgerRow,
    MarketDataUpdate,
    Notification,
    OrderUpdate,
    PnlRow,
    Quote,
    SummaryItem,
    _args_items,
    _conid_of,
    _int,
    new_quote,
    new_update,
)
from rxibkr.streams.operators import ExecutionLog, OrderBook

if TYPE_CHECKING:
    from rxibkr.client.core import IbkrWsClient

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_FIELDS: tuple[str, ...] = (
    "31",  # last price
    "55",  # symbol
    "84",  # bid
    "85",  # ask size
    "86",  # ask
    "88",  # bid size
    "7059",  # last size
    "82",  # change
    "83",  # change %
    "87",  # volume
    "7295",  # open
    "70",  # high
    "71",  # low
    "7741",  # prior close
    "6509",  # market data availability
)
"""The fields ``market_data()`` asks for when none are given: a quote (last, bid/ask and sizes,
volume, day range, change, prior close, symbol, availability)."""

_DEFAULT_DATA: dict[str, Any] = {"fields": list(DEFAULT_FIELDS)}

MAX_HISTORIES = 5
"""The gateway serves at most five concurrent ``smh`` subscriptions (protocol §3.2, §6)."""

_DATA = MessageKind.DATA


class HistoryLimitError(RuntimeError):
    """A sixth concurrent market-history subscription was asked for (the gateway allows five)."""


# =================================================================================================
# argument checks
# =================================================================================================


def _conid(conid: object) -> int:
    return int(rq.plain_conid("conid", conid))


def _field_ids(fields: str | int | Iterable[str | int] | None) -> tuple[str, ...]:
    if fields is None:
        return DEFAULT_FIELDS  # shared by every default subscription
    return tuple(dict.fromkeys(rq.field_ids(fields)))


def _strings(name: str, values: str | Iterable[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(rq.strings(name, values))


# =================================================================================================
# hubs: one per server subscription
# =================================================================================================


_NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})


def _ignore(_value: Any) -> None:
    return None


def _nothing() -> None:
    return None


def _stopped(_value: Any) -> None:
    """An entry's ``call`` once it is disposed or completed (its own function: ``_ignore`` may be
    the observer's on_next)."""
    return None


class _Entry(abc.DisposableBase, Generic[T]):
    """One observer of a hub, with its own filter and options (``quotes``: a market-data observer
    that receives merged :class:`Quote` values, ``market_data(c).pipe(snapshots())`` fused).

    It is also what subscribing returns: ``dispose()`` detaches it (once). ``call`` is the
    observer's own ``on_next`` (no reactivex wrapper in between), replaced by a no-op once the
    observer is disposed or completed, so nothing reaches it afterwards."""

    __slots__ = ("accept", "call", "done", "hub", "options", "quotes")

    def __init__(
        self,
        on_next: Callable[[Any], None],
        on_completed: Callable[[], None],
        accept: Callable[[T], bool] | None,
        options: Mapping[str, Any],
        quotes: bool = False,
    ) -> None:
        self.call: Callable[[Any], None] = on_next
        self.done = on_completed
        self.accept = accept
        self.options = options
        self.quotes = quotes
        self.hub: _Hub[T] | None = None  # set while attached (the streams' lock held)

    def dispose(self) -> None:
        self.call = _stopped
        hub = self.hub
        if hub is not None:
            hub.streams._detach(hub, self)

    def complete(self) -> None:
        """The stream completed: tell the observer (once), then detach it."""
        if self.call is _stopped:
            return
        self.call = _stopped
        try:
            self.done()
        finally:
            self.dispose()


class _HubStream(Observable[T], Generic[T]):
    """A hub's stream: each subscription attaches one :class:`_Entry` to the hub and returns it as
    its Disposable. ``subscribe`` with plain callbacks (or an observer) skips reactivex's
    ``AutoDetachObserver``, its two Disposables and their locks (the hub serialises the calls and
    stops them after dispose/completion itself): about 1 KiB less per subscription."""

    def __init__(self, streams: TypedStreams, spec: tuple[Any, ...]) -> None:
        super().__init__()
        self._streams = streams
        self._spec = spec

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return self._streams._open(self._spec, observer.on_next, observer.on_completed)

    def subscribe(  # type: ignore[override]
        self,
        on_next: Any = None,
        on_error: Callable[[Exception], None] | None = None,
        on_completed: Callable[[], None] | None = None,
        *,
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        """As ``Observable.subscribe``: an error while subscribing (a limit, an observer raising
        during the replay) goes to ``on_error`` when given, else is raised."""
        if isinstance(on_next, abc.ObserverBase) or callable(getattr(on_next, "on_next", None)):
            observer = on_next
            on_next, on_error, on_completed = observer.on_next, observer.on_error, observer.on_completed
        try:
            return self._streams._open(self._spec, on_next or _ignore, on_completed or _nothing)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(exc)
            return Disposable()


class _Hub(Generic[T]):
    """One server subscription: its wanted data, its observers, its typed state.

    ``lock`` guards the typed state and the outbox, never user code: a frame is turned into values
    under it and the values are queued with the observers present at that moment; whoever finds
    nobody delivering then delivers the queue, outside the lock (the serialised-observer pattern).
    So an observer's calls never overlap and keep their order, a late observer receives the state
    replay before anything newer, and an observer may call back into the client (subscribe, dispose,
    shutdown) from on_next without any lock of ours held.

    ``lock`` is shared by every hub of one client (``TypedStreams.hub_lock``): it is only ever held
    for a few dictionary and list operations, never around another lock or user code, and the
    frames of all hubs come from one reader thread anyway; one lock instead of one per hub (1,000
    conids: 1,000 fewer objects, and one fewer that each frame touches).
    """

    KEY: IbkrWsKey

    __slots__ = (
        "__weakref__",
        "channel",
        "closed",
        "data",
        "delivering",
        "entries",
        "lock",
        "outbox",
        "route",
        "sent",
        "streams",
        "sub",
        "users",
    )  # fmt: skip

    def __init__(self, streams: TypedStreams, channel: str, route: Any) -> None:
        self.streams = streams
        self.channel = channel
        self.route = route
        self.lock = streams.hub_lock
        self.entries: tuple[_Entry[T], ...] = ()
        self.users = 0  # attached entries (the streams' lock); the last one to leave closes the hub
        self.data: dict[str, Any] | None = None  # what the server subscription should carry
        self.sent: dict[str, Any] | None = None  # what was last given to client.subscribe
        self.sub: Subscription | None = None
        self.closed = False
        # a list, not a deque: almost always empty, and an empty deque weighs 600 bytes more
        self.outbox: list[tuple[tuple[_Entry[T], ...], Sequence[Any]]] = []
        self.delivering = False

    # -- wanted data (accumulates while the hub lives; see merge) ------------------------------------
    def merge(self, data: dict[str, Any] | None, want: Any) -> dict[str, Any] | None:
        """The subscription data once ``want`` is added to ``data`` (None: the first observer)."""
        return want if data is None else data

    def check(self, want: Any) -> None:
        """Raise when ``want`` cannot share this hub."""

    # -- typed state (lock held) -----------------------------------------------------------------------
    def process(self, message: Message) -> Sequence[T]:
        """The typed values of one frame (state updated)."""
        return ()

    def replay(self, entry: _Entry[T]) -> Iterable[T]:
        """What a late observer receives first."""
        return ()

    def added(self, entry: _Entry[T]) -> None:
        """``entry`` joined ``entries`` (lock held, before its replay is taken)."""

    def removed(self, entry: _Entry[T]) -> None:
        """``entry`` left ``entries`` (lock held)."""

    def on_attach(self, entry: _Entry[T], first: bool) -> None:
        """An observer was attached (``first``: the hub's first; the subscribe is sent next)."""

    def on_subscription(self, sub: Subscription) -> None:
        """The client gave the hub this Subscription (the first time, or a new one)."""

    # -- delivery ------------------------------------------------------------------------------------
    def on_message(self, message: Message) -> None:
        with self.lock:
            values = self.process(message)
            if not values:
                return
            self.outbox.append((self.entries, values))
            if self.delivering:
                return
            self.delivering = True
        self.deliver()

    def enqueue(self, entries: tuple[_Entry[T], ...], values: Sequence[Any]) -> bool:
        """Queue ``values`` for ``entries`` (lock held); True when the caller must ``deliver()``."""
        self.outbox.append((entries, values))
        if self.delivering:
            return False
        self.delivering = True
        return True

    def deliver(self) -> None:
        """Deliver the outbox until it is empty (no lock held while observers run). An observer's
        exception does not stop the others; the first one is raised again afterwards, so the client
        reports it on ``client.errors``."""
        error: Exception | None = None
        outbox = self.outbox
        while True:
            with self.lock:
                if not outbox:
                    self.delivering = False
                    break
                entries, values = outbox.pop(0)
            for value in values:
                for entry in entries:
                    if entry.accept is not None and not entry.accept(value):
                        continue
                    try:
                        self.send(entry, value)
                    except Exception as exc:
                        if error is None:
                            error = exc
                        else:
                            _LOGGER.error("an observer of %s raised %r", self.channel, exc)
        if error is not None:
            raise error

    def send(self, entry: _Entry[T], value: Any) -> None:
        entry.call(value)

    def complete(self) -> None:
        with self.lock:
            entries = self.entries
        for entry in entries:
            entry.complete()  # detaches it


class TypedStreams:
    """The typed streams of one client (see the module docstring). Get it with :func:`streams_of`."""

    def __init__(self, client: IbkrWsClient) -> None:
        self._client_ref = weakref.ref(client)
        self._lock = threading.RLock()
        self.hub_lock = threading.Lock()  # every hub's lock (see _Hub)
        self._hubs: dict[str, _Hub[Any]] = {}
        self._routes: dict[IbkrWsKey, dict[Any, _Hub[Any]]] = {}
        self._taps: dict[IbkrWsKey, abc.DisposableBase] = {}
        self._given_up: weakref.WeakSet[SubscriptionState] = weakref.WeakSet()
        self._sync_locks: dict[str, list[Any]] = {}  # channel -> [its RLock, syncs running or waiting]
        self.duplicates_dropped = 0
        """How many duplicated ``smd`` frames were dropped (the gateway sends each first update twice)."""

    def client_alive(self) -> bool:
        return self._client_ref() is not None

    @property
    def client(self) -> IbkrWsClient:
        client = self._client_ref()
        if client is None:
            raise RuntimeError("the client of these streams is gone")
        return client

    # =============================================================================================
    # public streams
    # =============================================================================================
    def market_data(
        self, conid: int | str, fields: str | int | Iterable[str | int] | None = None
    ) -> Observable[MarketDataUpdate]:
        """Parsed market-data updates of one contract (only the changed fields, see
        :class:`~rxibkr.streams.models.MarketDataUpdate`; merge them with ``operators.snapshots()``).

        ``fields``: ids (``31``, ``"31"``) or names (``"last_price"``); None for
        :data:`DEFAULT_FIELDS`. One ``smd`` subscription per conid is shared by every observer;
        an observer asking for more fields widens it (``smd`` is re-sent with the union), and the
        union stays until the last observer leaves. Every observer receives every subscribed field.
        The gateway's duplicated first update is emitted once. A late observer first receives one
        update with every field known so far.
        """
        cid = _conid(conid)
        ids = _field_ids(fields)
        channel = f"md+{cid}"
        stream = self._stream(channel, IbkrWsKey.MARKET_DATA, cid, _MarketDataHub, ids)

        def quotes() -> Observable[Quote]:
            """This stream piped through ``operators.snapshots()``, fused: the hub merges once."""
            return self._stream(channel, IbkrWsKey.MARKET_DATA, cid, _MarketDataHub, ids, quotes=True)

        stream._rxibkr_quotes = quotes  # type: ignore[attr-defined]  # see operators.snapshots
        return stream

    def market_history(
        self,
        conid: int | str,
        period: str = "1d",
        bar: str = "5min",
        exchange: str | None = None,
        outside_rth: bool = False,
        source: str = "trades",
    ) -> Observable[Bar]:
        """The bars of an ``smh`` subscription, oldest first; a bar the gateway sends again is
        emitted again only if it changed. The gateway's server id is handled by the client
        (``umh+<serverId>`` on dispose). Observers of the same conid share one subscription and must
        ask for the same parameters (ValueError otherwise); a sixth concurrent history raises
        :class:`HistoryLimitError` (to the observer: ``on_error``, or raised by ``subscribe``).
        """
        return self._history(conid, period, bar, exchange, outside_rth, source, "bars")

    def market_history_replies(
        self,
        conid: int | str,
        period: str = "1d",
        bar: str = "5min",
        exchange: str | None = None,
        outside_rth: bool = False,
        source: str = "trades",
    ) -> Observable[History]:
        """Like :meth:`market_history`, but one :class:`~rxibkr.streams.models.History` per ``smh`` reply
        (with the series' metadata: server id, symbol, price factor, bar length)."""
        return self._history(conid, period, bar, exchange, outside_rth, source, "replies")

    def _history(
        self,
        conid: int | str,
        period: str,
        bar: str,
        exchange: str | None,
        outside_rth: bool,
        source: str,
        variant: str,
    ) -> Observable[Any]:
        cid = _conid(conid)
        data = rq.market_history_args(  # validates every argument
            period=period, bar=bar, exchange=exchange, outside_rth=outside_rth, source=source
        )
        return self._stream(
            f"mh+{cid}", IbkrWsKey.MARKET_HISTORY, str(cid), _HistoryHub, data, variant=variant
        )

    def orders(
        self, filters: str | Iterable[str] | None = None, *, refresh_on_reconnect: bool = True
    ) -> Observable[OrderUpdate]:
        """Live orders as :class:`~rxibkr.streams.models.OrderUpdate` (the full merged state of the order).

        Starts with the current orders from REST (``client.rest.live_orders()``, when the client has
        a REST session), then the ``sor`` deltas merged into them. ``filters``: order statuses
        (``"Submitted"``, ``"Filled"``...) to keep, applied here to the merged status (the server
        subscription is always unfiltered, so observers with different filters can share it). After
        a reconnect the REST snapshot is fetched again and orders that changed meanwhile are emitted
        (``refresh_on_reconnect``); a late observer first receives every known order.
        """
        statuses = _strings("filters", filters)
        accept: Callable[[OrderUpdate], bool] | None = None
        if statuses is not None:
            wanted = frozenset(statuses)

            def accept(update: OrderUpdate) -> bool:
                return update.status in wanted

        return self._stream(
            "or", IbkrWsKey.ORDERS, None, _OrdersHub, {}, accept=accept, refresh=refresh_on_reconnect
        )

    def trades(self, days: int | None = None, realtime_only: bool = False) -> Observable[Execution]:
        """Executions (``str``), deduplicated by ``execution_id``; an execution the gateway sends
        again with different content (the commission arrived) is emitted again with ``revision``
        + 1. ``days`` (1..7): how many days of history the gateway sends; ``realtime_only``: no
        history. Observers share one subscription carrying the widest request (the most days,
        history if anyone wants it); a late observer first receives the executions known so far,
        unless it asked for ``realtime_only``."""
        rq.trades(days, realtime_only)  # validates
        want = {"days": days, "realtime": realtime_only}
        return self._stream("tr", IbkrWsKey.TRADES, None, _TradesHub, want, realtime_only=realtime_only)

    def pnl(self) -> Observable[PnlRow]:
        """P&L rows (``spl``), one per ``"<account>.Core"`` key, each merged with its previous values."""
        return self._stream("pl", IbkrWsKey.PNL, None, _PnlHub, {})

    def account_summary(
        self,
        account: str | None = None,
        keys: str | Iterable[str] | None = None,
        fields: str | Iterable[str] | None = None,
    ) -> Observable[SummaryItem]:
        """Account summary items (``ssd``) of ``account`` (default: the client's ``account_id``).

        ``keys`` (``"NetLiquidation-S"``...) and ``fields`` (``"monetaryValue"``...) narrow what
        the gateway sends; observers of one account share a subscription carrying the union (None
        = everything), and each observer receives only the keys it asked for.
        """
        acct = self._account(account)
        key_list = _strings("keys", keys)
        field_list = _strings("fields", fields)
        rq.account_summary(acct, key_list, field_list)  # validates
        accept: Callable[[SummaryItem], bool] | None = None
        if key_list is not None:
            wanted = frozenset(key_list)

            def accept(item: SummaryItem) -> bool:
                return item.key in wanted

        return self._stream(
            f"sd+{acct}",
            IbkrWsKey.ACCOUNT_SUMMARY,
            acct,
            _SummaryHub,
            {"keys": key_list, "fields": field_list},
            accept=accept,
        )

    def ledger(self, account: str | None = None) -> Observable[LedgerRow]:
        """Ledger rows (``sld``) of ``account`` (default: the client's ``account_id``), one per
        currency key, merged: "blank" rows (no change) keep the last values, flagged ``blank``."""
        acct = self._account(account)
        rq.ledger(acct)  # validates
        return self._stream(f"ld+{acct}", IbkrWsKey.ACCOUNT_LEDGER, acct, _LedgerHub, {})

    def price_ladder(
        self, conid: int | str, exchange: str | None = None, account: str | None = None
    ) -> Observable[Ladder]:
        """BookTrader price ladders (``sbd``) of one contract, one :class:`~rxibkr.streams.models.Ladder`
        per frame. ``account`` defaults to the client's ``account_id`` (ValueError when neither is
        known). The gateway allows one ladder per account (``ubd`` names only the account)."""
        cid = _conid(conid)
        acct = self._account(account)
        rq.price_ladder(acct, cid, exchange)  # validates
        channel = f"bd+{acct}+{cid}" + (f"+{exchange}" if exchange else "")
        return self._stream(channel, IbkrWsKey.PRICE_LADDER, f"{acct}+{cid}", _LadderHub, None)

    def notifications(self) -> Observable[Notification]:
        """Unsolicited ``ntf`` notices and prompts, one per item (``args`` arrays and objects alike)."""
        return self._unsolicited(IbkrWsKey.NOTIFICATIONS, Notification.from_message)

    def bulletins(self) -> Observable[Bulletin]:
        """Unsolicited ``blt`` bulletins, one per item (``args`` arrays and objects alike)."""
        return self._unsolicited(IbkrWsKey.BULLETINS, Bulletin.from_message)

    def auth_status(self) -> Observable[AuthStatus]:
        """Every ``sts`` frame, parsed (the client itself reacts to them; this is for display)."""

        def parse(message: Message) -> list[AuthStatus]:
            status = AuthStatus.from_message(message)
            return [] if status is None else [status]

        return self._unsolicited(IbkrWsKey.AUTHENTICATION_STATUS, parse)

    # =============================================================================================
    # machinery
    # =============================================================================================
    def _account(self, account: str | None) -> str:
        acct = account if account is not None else self.client.account_id
        if not acct:
            raise ValueError("account: none given and the client has no account_id")
        if not isinstance(acct, str):
            raise TypeError(f"account: expected a str, got {type(acct).__name__}")
        return acct

    def _unsolicited(self, key: IbkrWsKey, parse: Callable[[Message], Sequence[T]]) -> Observable[T]:
        source = self.client.observe(key)

        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(message: Message) -> None:
                if message.kind is _DATA:
                    for value in parse(message):
                        observer.on_next(value)

            return source.subscribe(on_next, observer.on_error, observer.on_completed)

        return reactivex.create(subscribe)

    def _stream(
        self,
        channel: str,
        key: IbkrWsKey,
        route: Any,
        hub_class: type[_Hub[Any]],
        want: Any,
        *,
        accept: Callable[[Any], bool] | None = None,
        quotes: bool = False,
        **options: Any,
    ) -> Observable[Any]:
        spec = (channel, key, route, hub_class, want, accept, options or _NO_OPTIONS, quotes)
        return _HubStream(self, spec)

    def _open(
        self, spec: tuple[Any, ...], on_next: Callable[[Any], None], on_completed: Callable[[], None]
    ) -> _Entry[Any]:
        """Attach one observer (a subscription of a :class:`_HubStream`); the entry is its Disposable."""
        channel, key, route, hub_class, want, accept, options, quotes = spec
        entry: _Entry[Any] = _Entry(on_next, on_completed, accept, options, quotes)
        hub = self._attach(channel, key, route, hub_class, want, entry)
        try:
            self._sync(hub)
        except BaseException:
            entry.dispose()
            raise
        return entry

    def _attach(
        self,
        channel: str,
        key: IbkrWsKey,
        route: Any,
        hub_class: type[_Hub[Any]],
        want: Any,
        entry: _Entry[Any],
    ) -> _Hub[Any]:
        client = self.client
        with self._lock:
            hub = self._hubs.get(channel)
            if hub is not None and type(hub) is not hub_class:
                raise ValueError(f"channel {channel!r} is already used by another kind of stream")
            first = hub is None
            if hub is None:
                if key is IbkrWsKey.MARKET_HISTORY:
                    self._check_history_limit(channel)
                elif key is IbkrWsKey.PRICE_LADDER:
                    self._check_one_ladder_per_account(channel)
                hub = hub_class(self, channel, route)
            hub.check(want)
            if first:
                self._hubs[channel] = hub
                self._routes.setdefault(key, {})[route] = hub
                self._tap(key, client)
            entry.hub = hub
            hub.users += 1
            hub.data = hub.merge(hub.data, want)
        try:
            with hub.lock:
                hub.entries = (*hub.entries, entry)
                hub.added(entry)
                replay = list(hub.replay(entry)) if not first else []
                must_deliver = hub.enqueue((entry,), replay) if replay else False
            if must_deliver:
                hub.deliver()
            hub.on_attach(entry, first)
        except BaseException:  # the observer raised while replaying: it is not attached
            entry.dispose()
            raise
        return hub

    def _detach(self, hub: _Hub[Any], entry: _Entry[Any]) -> None:
        with hub.lock:
            if entry in hub.entries:
                hub.entries = tuple(e for e in hub.entries if e is not entry)
                hub.removed(entry)
        with self._lock:
            if entry.hub is not hub:  # detached already
                return
            entry.hub = None
            hub.users -= 1
            if hub.users:
                return
            hub.closed = True
            if self._hubs.get(hub.channel) is hub:
                del self._hubs[hub.channel]
            key = hub.KEY
            routes = self._routes.get(key)
            if routes is not None and routes.get(hub.route) is hub:
                del routes[hub.route]
        self._sync(hub)

    def _sync(self, hub: _Hub[Any]) -> None:
        """Bring the client's subscription in line with the hub. Serialised per channel, so that a
        dispose and a new subscribe of the same channel reach the client in the order they happen.
        The channel's lock lives while a sync of it runs or waits (not one per channel for ever)."""
        channel = hub.channel
        with self._lock:
            held = self._sync_locks.get(channel)
            if held is None:
                held = self._sync_locks[channel] = [threading.RLock(), 0]
            held[1] += 1
        try:
            with held[0]:
                self._sync_locked(hub)
        finally:
            with self._lock:
                held[1] -= 1
                if not held[1] and self._sync_locks.get(channel) is held:
                    del self._sync_locks[channel]

    def _sync_locked(self, hub: _Hub[Any]) -> None:
        client = self.client
        while True:
            with self._lock:
                closed = hub.closed
                data = hub.data
                sub = hub.sub
                if closed:
                    if sub is None:
                        return
                    hub.sub = None
                elif sub is not None and data == hub.sent:
                    return
            if sub is not None and closed:
                if len(sub.server.requests) <= 1:
                    self._given_up.add(sub.server)
                sub.dispose()
                return
            new_sub = client.subscribe(hub.channel, data, wait=False)
            with self._lock:
                old, hub.sub = hub.sub, new_sub
                hub.sent = data
            if old is not None:
                old.dispose()  # new_sub holds the server subscription now: this only detaches
            hub.on_subscription(new_sub)

    def _check_history_limit(self, channel: str) -> None:
        ours = {c for c, h in self._hubs.items() if isinstance(h, _HistoryHub)}
        others = {
            c
            for c, sub in self.client.subscriptions.items()
            if c.startswith("mh+")
            and sub not in self._given_up
            and sub.status is not SubscriptionStatus.UNSUBSCRIBED
        }
        active = ours | others
        if channel not in active and len(active) >= MAX_HISTORIES:
            raise HistoryLimitError(
                f"market_history: the gateway serves at most {MAX_HISTORIES} concurrent histories and "
                f"{len(active)} are subscribed ({', '.join(sorted(active))}); dispose one first"
            )

    def _check_one_ladder_per_account(self, channel: str) -> None:
        account = channel.split("+")[1]
        prefix = f"bd+{account}+"
        for other in self._hubs:
            if other.startswith(prefix) and other != channel:
                raise ValueError(
                    f"price_ladder: {other!r} is subscribed; the gateway keeps one ladder per account "
                    f"(ubd+{account} ends them all), so dispose it before asking for {channel!r}"
                )

    def _tap(self, key: IbkrWsKey, client: IbkrWsClient) -> None:
        """The one observer of ``client.observe(key)`` that routes messages to the hubs (lock held)."""
        if key in self._taps:
            return
        routes = self._routes.setdefault(key, {})
        get = routes.get
        if key is IbkrWsKey.MARKET_DATA:

            def on_next(message: Message) -> None:
                data = message.data
                if data is None:
                    return
                hub = get(data.get("conid"))
                if hub is None:  # no conid in the frame: the topic names it
                    if message.kind is not _DATA:
                        return
                    hub = get(_conid_of(message))
                    if hub is None:
                        return
                hub.on_message(message)

        else:
            router = _ROUTERS[key]

            def on_next(message: Message) -> None:
                if message.kind is not _DATA:
                    return
                hub = get(router(message))
                if hub is not None:
                    hub.on_message(message)

        def on_completed() -> None:
            for hub in list(routes.values()):
                hub.complete()

        source = client.observe(key)
        if isinstance(source, HotSubject):  # the client's own subject: skip reactivex's wrapper hop
            self._taps[key] = source.attach(on_next, on_completed)
        else:
            self._taps[key] = source.subscribe(on_next, on_completed=on_completed)


# =================================================================================================
# routing keys
# =================================================================================================


def _route_target(message: Message) -> str | None:
    return message.target


def _route_history(message: Message) -> str | None:
    target = message.target
    return target.split("@", 1)[0] if target else None


def _route_ladder(message: Message) -> str | None:
    target = message.target
    if not target:
        return None
    parts = target.split("+")
    return "+".join(parts[:2])


def _route_single(message: Message) -> None:
    return None


_ROUTERS: dict[IbkrWsKey, Callable[[Message], Any]] = {
    IbkrWsKey.MARKET_HISTORY: _route_history,
    IbkrWsKey.PRICE_LADDER: _route_ladder,
    IbkrWsKey.ORDERS: _route_single,
    IbkrWsKey.TRADES: _route_single,
    IbkrWsKey.PNL: _route_single,
    IbkrWsKey.ACCOUNT_SUMMARY: _route_target,
    IbkrWsKey.ACCOUNT_LEDGER: _route_target,
}


# =================================================================================================
# the hubs
# =================================================================================================


class _MarketDataHub(_Hub[MarketDataUpdate]):
    """``smd`` of one conid: field union, duplicate first update, merged fields for late observers.

    The merged state is kept once, here: observers of ``market_data(c).pipe(snapshots())`` (entries
    with ``quotes``) receive a :class:`Quote` built on it (the fused ``snapshots()``; the same values
    as the operator would build), the others the :class:`MarketDataUpdate`. While quotes are handed
    out the state is replaced on each update, never changed in place (a quote keeps its dict).
    """

    KEY = IbkrWsKey.MARKET_DATA

    __slots__ = ("last", "quoting", "shared", "state", "updated")

    def __init__(self, streams: TypedStreams, channel: str, route: Any) -> None:
        super().__init__(streams, channel, route)
        self.state: dict[str, Any] = {}
        self.shared = False  # self.state is held by a quote: copy before changing it
        self.quoting = 0  # how many entries want quotes
        self.last: Message | None = None  # the latest frame (for the duplicate check and the replay)
        self.updated: int | None = None  # its _updated

    def merge(self, data: dict[str, Any] | None, want: Any) -> dict[str, Any] | None:
        if data is None:
            # the default fields' request is shared by every hub asking for them (never changed
            # in place: a wider request is a new dict)
            return _DEFAULT_DATA if want is DEFAULT_FIELDS else {"fields": list(want)}
        fields: list[str] = data["fields"]
        extra = [f for f in want if f not in fields]
        return {"fields": fields + extra} if extra else data

    def added(self, entry: _Entry[MarketDataUpdate]) -> None:
        if entry.quotes:
            self.quoting += 1

    def removed(self, entry: _Entry[MarketDataUpdate]) -> None:
        if entry.quotes:
            self.quoting -= 1

    def on_message(self, message: Message) -> None:
        data: dict[str, Any] = message.data  # type: ignore[assignment]  # the tap checked
        updated = data.get("_updated")
        if type(updated) is not int:
            updated = _int(updated)
        with self.lock:
            # a duplicate repeats _updated too: compare that first, the whole frame only then
            if updated == self.updated and (last := self.last) is not None and data == last.data:
                self.streams.duplicates_dropped += 1
                return
            conid = self.route
            update = new_update(conid, updated, data, message)
            self.last = message
            self.updated = updated
            if self.quoting:
                state = self.state = {**self.state, **data}  # merged once, for every quote observer
                self.shared = True
                quote: Quote | None = new_quote(conid, updated, state, update)
            else:
                if self.shared:
                    self.state = dict(self.state)
                    self.shared = False
                self.state.update(data)
                quote = None
            entries = self.entries
            if not self.delivering and len(entries) == 1 and entries[0].accept is None:
                # the common case, one observer and nobody delivering: deliver it directly
                self.delivering = True
                single = entries[0]
            else:
                self.outbox.append((entries, ((update, quote),)))
                if self.delivering:
                    return
                self.delivering = True
                single = None
        if single is None:
            self.deliver()
            return
        try:
            single.call(quote if single.quotes else update)
        finally:
            # stop delivering without the lock in the common case: clear the flag, then look at the
            # outbox. Whoever queued meanwhile (under the lock) either saw the flag still set (so
            # the outbox is not empty here, and release() delivers it) or saw it cleared and
            # delivers itself. One store and one load, each atomic under the GIL, in this order.
            self.delivering = False
            if self.outbox:
                self.release()

    def release(self) -> None:
        """After a direct delivery that found the outbox not empty: deliver it, unless someone
        else is delivering it already."""
        if self.outbox:
            with self.lock:
                if self.delivering or not self.outbox:
                    return
                self.delivering = True
            self.deliver()

    def send(self, entry: _Entry[MarketDataUpdate], value: Any) -> None:
        update, quote = value
        if entry.quotes:
            if quote is None:  # an update queued before this observer's replay: it is in the replay
                return
            entry.call(quote)
        else:
            entry.call(update)

    def replay(self, entry: _Entry[MarketDataUpdate]) -> Iterable[Any]:
        last = self.last
        if last is None:
            return ()
        update = MarketDataUpdate(self.route, self.updated, dict(self.state), last)
        quote = None
        if entry.quotes:
            self.shared = True
            quote = new_quote(self.route, self.updated, self.state, update)
        return ((update, quote),)


class _HistoryHub(_Hub[Any]):
    """``smh`` of one conid: bars by time, emitted when new or changed; the last reply kept.

    Observers with ``variant="replies"`` receive one History per reply instead of the bars."""

    KEY = IbkrWsKey.MARKET_HISTORY

    def __init__(self, streams: TypedStreams, channel: str, route: Any) -> None:
        super().__init__(streams, channel, route)
        self.bars: dict[int, Bar] = {}
        self.reply: History | None = None

    def check(self, want: Any) -> None:
        if self.data is not None and want != self.data:
            raise ValueError(
                f"market_history: {self.channel!r} is already subscribed with {self.data}; the client "
                f"keeps one history per conid, so every observer must ask for the same parameters "
                f"(asked for {want})"
            )

    def on_message(self, message: Message) -> None:
        with self.lock:
            history = History.from_message(message)
            self.reply = history
            new_bars: list[Bar] = []
            for bar in history.bars:
                if self.bars.get(bar.time) != bar:
                    self.bars[bar.time] = bar
                    new_bars.append(bar)
            if not self.enqueue(self.entries, [(history, new_bars)]):
                return
        self.deliver()

    def send(self, entry: _Entry[Any], value: Any) -> None:
        history, new_bars = value
        for item in (history,) if entry.options.get("variant") == "replies" else new_bars:
            entry.call(item)

    def replay(self, entry: _Entry[Any]) -> Iterable[Any]:
        reply = self.reply
        if reply is None:
            return ()
        return [(reply, [self.bars[t] for t in sorted(self.bars)])]


class _OrdersHub(_Hub[OrderUpdate]):
    """``sor`` merged into the REST snapshot.

    The REST snapshot is fetched each time the client has (re)sent ``sor`` (the subscription turns
    ACTIVE: after subscribing, and again after every reconnect), so an order placed before ``sor``
    reached the gateway is in the snapshot, and one placed after comes as ``sor`` frames; frames
    arriving while the snapshot is fetched are applied after it (the latest state wins). After the
    first snapshot only orders that changed are emitted."""

    KEY = IbkrWsKey.ORDERS

    def __init__(self, streams: TypedStreams, channel: str, route: Any) -> None:
        super().__init__(streams, channel, route)
        self.book = OrderBook()
        self.buffer: list[Mapping[str, Any]] | None = None
        self.refresh_on_reconnect = False
        self.fetches = 0
        self.generation = 0

    def on_attach(self, entry: _Entry[OrderUpdate], first: bool) -> None:
        if entry.options.get("refresh", True):
            self.refresh_on_reconnect = True

    def on_subscription(self, sub: Subscription) -> None:
        def on_status(status: SubscriptionStatus) -> None:
            if status is SubscriptionStatus.ACTIVE and not self.closed and self.streams.client_alive():
                if self.fetches == 0 or self.refresh_on_reconnect:
                    self.fetch()

        sub.on_status(on_status)
        if sub.status is SubscriptionStatus.ACTIVE and self.fetches == 0:
            self.fetch()

    def fetch(self) -> None:
        """Get the live orders from REST; ``sor`` deltas arriving meanwhile wait in a buffer."""
        client = self.streams.client
        live_orders = getattr(client.rest, "live_orders", None)
        if not callable(live_orders):
            return
        with self.lock:
            self.fetches += 1
            self.buffer = []
            self.generation += 1
            generation = self.generation

        def done(result: Any) -> None:
            data = getattr(result, "data", result)
            rows = data.get("orders") if isinstance(data, Mapping) else data
            with self.lock:
                if generation != self.generation:
                    return
                buffered, self.buffer = self.buffer or [], None
                updates: list[OrderUpdate] = []
                for row in rows if isinstance(rows, list) else ():
                    if isinstance(row, Mapping):
                        update = self.book.apply(row, source="rest")
                        if update is not None:
                            updates.append(update)
                for delta in buffered:
                    update = self.book.apply(delta)
                    if update is not None:
                        updates.append(update)
                if not updates or not self.enqueue(self.entries, updates):
                    return
            self.deliver()

        def failed(exc: BaseException) -> None:
            _LOGGER.warning("orders: the REST snapshot failed (%s); going on with sor updates only", exc)
            done({"orders": []})

        _run_blocking(client, live_orders, done, failed)

    def process(self, message: Message) -> list[OrderUpdate]:
        updates: list[OrderUpdate] = []
        for delta in _args_items(message.args):
            if self.buffer is not None:
                self.buffer.append(delta)
                continue
            update = self.book.apply(delta)
            if update is not None:
                updates.append(update)
        return updates

    def replay(self, entry: _Entry[OrderUpdate]) -> Iterable[OrderUpdate]:
        return self.book.current()


class _TradesHub(_Hub[Execution]):
    """``str``: executions deduplicated by id; the widest request of the observers."""

    KEY = IbkrWsKey.TRADES

    def __init__(self, streams: TypedStreams, channel: str, route: Any) -> None:
        super().__init__(streams, channel, route)
        self.log = ExecutionLog()

    def merge(self, data: dict[str, Any] | None, want: Any) -> dict[str, Any] | None:
        days = want["days"]
        realtime = want["realtime"]
        if data is not None:
            old_days = data.get("days")
            if old_days is not None and (days is None or days < old_days):
                days = old_days
            realtime = realtime and bool(data.get("realtimeUpdatesOnly"))
        merged: dict[str, Any] = {}
        if realtime:
            merged["realtimeUpdatesOnly"] = True
        if days is not None:
            merged["days"] = days
        return merged

    def process(self, message: Message) -> list[Execution]:
        return self.log.apply_message(message)

    def replay(self, entry: _Entry[Execution]) -> Iterable[Execution]:
        if entry.options.get("realtime_only"):
            return ()
        return self.log.current()


class _KeyedHub(_Hub[T]):
    """A hub whose state is one row per key, each new row merged with the previous one of its key,
    every known row replayed to a late observer: ``spl`` (P&L), ``ssd`` (summary), ``sld`` (ledger).
    A subclass says where a frame's rows are (:meth:`items`) and how a row is made (:meth:`make`)."""

    def __init__(self, streams: TypedStreams, channel: str, route: Any) -> None:
        super().__init__(streams, channel, route)
        self.rows: dict[str, T] = {}

    def items(self, message: Message) -> Iterable[tuple[Any, Any]]:
        """(key, raw row) pairs of one frame; a pair with a key that is not a str is skipped."""
        return ()

    def make(self, key: str, obj: Mapping[str, Any], previous: T | None) -> T | None:
        """The typed row (None: skip it)."""
        return None

    def process(self, message: Message) -> list[T]:
        out: list[T] = []
        rows = self.rows
        for key, obj in self.items(message):
            if not isinstance(key, str) or not isinstance(obj, Mapping):
                continue
            row = self.make(key, obj, rows.get(key))
            if row is not None:
                rows[key] = row
                out.append(row)
        return out

    def replay(self, entry: _Entry[T]) -> Iterable[T]:
        return list(self.rows.values())


class _PnlHub(_KeyedHub[PnlRow]):
    KEY = IbkrWsKey.PNL

    def items(self, message: Message) -> Iterable[tuple[Any, Any]]:
        args = message.args
        return args.items() if isinstance(args, Mapping) else ()

    def make(self, key: str, obj: Mapping[str, Any], previous: PnlRow | None) -> PnlRow:
        return PnlRow(key, {**previous.fields, **obj} if previous is not None else dict(obj))


def _union(old: Sequence[str] | None, new: Sequence[str] | None) -> list[str] | None:
    """None (= everything) wins."""
    if old is None or new is None:
        return None
    return list(dict.fromkeys([*old, *new]))


def _result_items(message: Message) -> Iterable[tuple[Any, Any]]:
    return ((obj.get("key"), obj) for obj in _args_items((message.data or {}).get("result")))


class _SummaryHub(_KeyedHub[SummaryItem]):
    KEY = IbkrWsKey.ACCOUNT_SUMMARY

    def merge(self, data: dict[str, Any] | None, want: Any) -> dict[str, Any] | None:
        keys, fields = want["keys"], want["fields"]
        if data is not None:
            keys = _union(data.get("keys"), keys)
            fields = _union(data.get("fields"), fields)
        merged: dict[str, Any] = {}
        if keys is not None:
            merged["keys"] = list(keys)
        if fields is not None:
            merged["fields"] = list(fields)
        return merged

    items = staticmethod(_result_items)  # type: ignore[assignment]

    def make(self, key: str, obj: Mapping[str, Any], previous: SummaryItem | None) -> SummaryItem | None:
        return SummaryItem.from_mapping(str(self.route), obj)  # the latest item replaces the previous


class _LedgerHub(_KeyedHub[LedgerRow]):
    KEY = IbkrWsKey.ACCOUNT_LEDGER

    items = staticmethod(_result_items)  # type: ignore[assignment]

    def make(self, key: str, obj: Mapping[str, Any], previous: LedgerRow | None) -> LedgerRow:
        blank = all(k in ("key", "timestamp") for k in obj)
        merged = {**previous.fields, **obj} if previous is not None else dict(obj)
        return LedgerRow(str(self.route), key, merged, blank)


class _LadderHub(_Hub[Ladder]):
    KEY = IbkrWsKey.PRICE_LADDER

    def __init__(self, streams: TypedStreams, channel: str, route: Any) -> None:
        super().__init__(streams, channel, route)
        self.latest: Ladder | None = None

    def process(self, message: Message) -> list[Ladder]:
        ladder = Ladder.from_message(message)
        self.latest = ladder
        return [ladder]

    def replay(self, entry: _Entry[Ladder]) -> Iterable[Ladder]:
        return () if self.latest is None else (self.latest,)


# =================================================================================================
# helpers
# =================================================================================================


def _run_blocking(
    client: IbkrWsClient,
    fn: Callable[[], Any],
    on_result: Callable[[Any], None],
    on_error: Callable[[BaseException], None],
) -> None:
    """A blocking REST call: inline in virtual time (deterministic tests), else on a short-lived
    daemon thread, so that neither the caller, the reader thread nor the control thread waits."""
    if isinstance(client.scheduler, VirtualTimeScheduler):
        try:
            result = fn()
        except Exception as exc:
            on_error(exc)
        else:
            on_result(result)
        return

    def run() -> None:
        try:
            try:
                result = fn()
            except Exception as exc:
                on_error(exc)
            else:
                on_result(result)
        except Exception:  # an observer raised while receiving the result: nobody else to tell
            _LOGGER.exception("typed streams: an observer raised while receiving a REST result")

    threading.Thread(target=run, name="typed-streams-rest", daemon=True).start()


_STREAMS: weakref.WeakKeyDictionary[IbkrWsClient, TypedStreams] = weakref.WeakKeyDictionary()
_STREAMS_LOCK = threading.Lock()


def streams_of(client: IbkrWsClient) -> TypedStreams:
    """The :class:`TypedStreams` of ``client`` (created on first use, one per client)."""
    with _STREAMS_LOCK:
        streams = _STREAMS.get(client)
        if streams is None:
            streams = _STREAMS[client] = TypedStreams(client)
        return streams


__all__ = ["DEFAULT_FIELDS", "MAX_HISTORIES", "HistoryLimitError", "TypedStreams", "streams_of"]
