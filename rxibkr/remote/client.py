"""``RemoteClient``: the stream API of :class:`~rxibkr.client.core.IbkrWsClient`, fed by ``serve`` over Redis.

The same Observables, models and operators: ``observe(key)`` gives the decoded messages of one key
(the frames exactly as the gateway sent them, decoded here), ``subscribe(channel, data)`` returns a
Disposable handle whose last disposal releases the channel, and the typed streams
(``market_data()``, ``orders()``, ``trades()``, ``pnl()``...) are :class:`~rxibkr.streams.TypedStreams`
running unchanged on top of those two. So strategy code takes either client.

How it works: the client's subscriptions are a *lease* in Redis (a hash channel -> data that expires
after ``lease_ttl`` unless renewed; renewed every third of it on the control scheduler); serve unions
the leases of every consumer and holds the gateway subscriptions. One reader thread blocks on
``XREAD`` of the streams this client needs: the events stream (state, errors, subscription
statuses), the unsolicited keys, the key streams of its subscriptions, and one stream per subscribed
conid, which it starts from that conid's snapshot (so a late joiner gets every field known so far
at once, then the deltas). The reader remembers the last entry id of every stream: after a Redis
outage it goes on from there, so nothing is lost or repeated, and a hole in the entry numbers (the
stream was trimmed meanwhile) is reported on ``errors`` as a :class:`MessageGap`.

Differences from the local client: ``observe(MARKET_DATA)`` carries the conids *this* client
subscribed (not every conid serve has); non-market-data subscriptions start with what their stream
retains (``MAXLEN``) since serve subscribed them, which the typed streams merge (orders, trades,
P&L...); there is no REST session (``rest`` is None), so ``orders()`` has no REST snapshot beyond
that; queues, ``wire``, ``frames`` and the session methods are not offered.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from reactivex import Observable, abc
from reactivex.scheduler import EventLoopScheduler

from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.client.subjects import HotSubject, StateSubject
from rxibkr.client.subscriptions import (
    Subscription,
    SubscriptionState,
    SubscriptionStatus,
    channel_stream,
    split_channel,
)
from rxibkr.protocol import IbkrSubscriptionProcessor, IbkrWsKey, Message, MessageKind, decode
from rxibkr.remote._layout import (
    DEFAULT_LEASE_TTL,
    DEFAULT_PREFIX,
    FRAME,
    Layout,
    RawLink,
    connect,
    dumps,
    loads,
    public_url,
)

if TYPE_CHECKING:
    from rxibkr.streams.hubs import TypedStreams
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
        SummaryItem,
    )

_LOGGER = logging.getLogger(__name__)

_BLOCK_MS = 5000
_COUNT = 1000
_DATA = MessageKind.DATA
_UNSOLICITED = tuple(k for k in IbkrWsKey if not k.solicited)
_STATES = {s.value: s for s in ConnectionState}
_KINDS = {k.value: k for k in ErrorKind}
_STATUSES = {s.value: s for s in SubscriptionStatus}


@dataclass(frozen=True, slots=True)
class MessageGap:
    """Payload of the ``errors`` event reporting that entries of a stream were never delivered."""

    stream: str
    count: int
    """How many entries are missing (at least; across a serve restart only the new run's are known)."""


RemoteSubscriptionState = SubscriptionState
"""One channel of a :class:`RemoteClient`, shared by its handles: the local client's class."""

RemoteSubscription = Subscription
"""A handle on one channel of a :class:`RemoteClient` (the local client's class): handles on one
channel share it; disposing the last one releases the channel from this client's lease, and serve
unsubscribes at the gateway when no consumer holds it any more. Truthy iff the gateway confirmed it."""

_PROCESSOR = IbkrSubscriptionProcessor()


def _set_status(state: SubscriptionState, status: SubscriptionStatus) -> None:
    try:
        state.set_status(status)
    except Exception:  # a user's status listener: it must not stop the reader
        _LOGGER.exception("a subscription status listener raised")


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


_XREAD_HEAD = b"".join(
    _bulk(a) for a in (b"XREAD", b"COUNT", b"%d" % _COUNT, b"BLOCK", b"%d" % _BLOCK_MS, b"STREAMS")
)


class _Positions:
    """The last entry id read of every stream the reader follows, with the XREAD command kept
    packed per stream (re-packing a few hundred arguments per round trip costs more than the rest)."""

    __slots__ = ("id_bulks", "ids", "name_bulks")

    def __init__(self) -> None:
        self.ids: dict[str, bytes] = {}
        self.id_bulks: dict[str, bytes] = {}
        self.name_bulks: dict[str, bytes] = {}

    def __setitem__(self, name: str, entry_id: bytes) -> None:
        if name not in self.ids:
            self.name_bulks[name] = _bulk(name.encode())
        self.ids[name] = entry_id
        self.id_bulks[name] = b"$%d\r\n%b\r\n" % (len(entry_id), entry_id)

    def __getitem__(self, name: str) -> bytes:
        return self.ids[name]

    def __contains__(self, name: object) -> bool:
        return name in self.ids

    def pop(self, name: str, default: bytes | None = None) -> bytes | None:
        self.name_bulks.pop(name, None)
        self.id_bulks.pop(name, None)
        return self.ids.pop(name, default)

    def xread(self) -> bytes:
        n = len(self.ids)
        return b"".join(
            (b"*%d\r\n" % (6 + 2 * n), _XREAD_HEAD, *self.name_bulks.values(), *self.id_bulks.values())
        )


class RemoteClient:
    """A consumer of a running ``rxibkr serve`` (see the module docstring).

    ``redis_url``: ``redis://HOST:PORT/DB`` of serve's Redis; ``prefix``: serve's key prefix;
    ``lease_ttl``: seconds after which serve releases this client's subscriptions if it stops renewing
    (it renews every third of that; use serve's value or less); ``account_id``: default account of the
    account streams (default: the gateway client's, as serve publishes it); ``start``: connect now
    (waits up to ``timeout`` seconds for Redis, then goes on connecting in the background).
    """

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        account_id: str | None = None,
        subscription_timeout: float = 10.0,
        timeout: float = 5.0,
        name: str | None = None,
        start: bool = True,
    ) -> None:
        if not isinstance(lease_ttl, int | float) or not lease_ttl > 0:
            raise ValueError(f"lease_ttl: expected a positive number of seconds, got {lease_ttl!r}")
        self.layout = Layout(prefix)
        self.redis_url = redis_url
        self.lease_ttl = float(lease_ttl)
        self.id = (f"{name}-" if name else "") + uuid.uuid4().hex[:16]
        """This consumer's id (its lease is ``<prefix>:lease:<id>``)."""
        self._account_override = account_id
        self._account: str | None = None
        self._subscription_timeout = subscription_timeout
        self._timeout = timeout
        self._control_redis = connect(redis_url, client_name=f"rxibkr-remote-{self.id}-control")
        self._reader_redis = connect(
            redis_url, socket_timeout=_BLOCK_MS / 1000 + 5, client_name=f"rxibkr-remote-{self.id}-reader"
        )
        self._link = RawLink(self._reader_redis)
        self._subjects: dict[IbkrWsKey, HotSubject[Message]] = {
            key: HotSubject(self._on_observer_error) for key in IbkrWsKey
        }
        self._errors: HotSubject[ErrorEvent] = HotSubject()
        self._state: StateSubject[ConnectionState] = StateSubject(
            ConnectionState.STOPPED, self._on_observer_error
        )
        self._scheduler = EventLoopScheduler(thread_factory=self._control_thread)
        self._control_ident: int | None = None
        self._lock = threading.Lock()
        self._subs: dict[str, RemoteSubscriptionState] = {}
        self._ops: list[tuple[str, str]] = []
        self._running = False
        self._closed = False
        self._renewal: abc.DisposableBase | None = None
        self._connected = threading.Event()
        # connection knowledge (control thread writes; read anywhere)
        self._redis_up = False
        self._reader_up = False
        self._serve_alive = False
        self._serve_state = ConnectionState.STOPPED
        # reader thread only
        self._reader: threading.Thread | None = None
        self._reader_failures = 0
        self._positions = _Positions()
        self._last: dict[str, tuple[bytes, int] | None] = {}
        self._refs: dict[str, int] = {}
        self._initialised = False
        self.gaps = 0
        """How many stream entries were reported lost on ``errors``."""
        self.received = 0
        """How many messages this client delivered."""
        self.reads = 0
        """How many XREAD round trips the reader made (``received / reads``: messages per read)."""
        if start:
            self.start()

    # =============================================================================================
    # streams
    # =============================================================================================
    @property
    def state(self) -> StateSubject[ConnectionState]:
        """RECONNECTING while Redis or serve is away (serve killed), STOPPED when serve stopped or
        never ran, else the gateway connection's state as serve reports it. Replays the current one."""
        return self._state

    @property
    def errors(self) -> Observable[ErrorEvent]:
        """Serve's errors (the gateway client's), Redis problems, lost entries (:class:`MessageGap`)."""
        return self._errors

    def observe(self, key: IbkrWsKey) -> Observable[Message]:
        """Decoded messages of one key (market data: of the conids this client subscribed)."""
        if not isinstance(key, IbkrWsKey):
            raise TypeError(f"key: expected an IbkrWsKey, got {key!r}")
        return self._subjects[key]

    def channel(self, channel: str, data: dict[str, Any] | None = None) -> Observable[Message]:
        """The data messages of one channel, cold and reference-counted (as ``IbkrWsClient.channel``)."""
        key, _ = split_channel(channel)
        return channel_stream(self._subjects[key], lambda: self.subscribe(channel, data, wait=False), channel)

    # =============================================================================================
    # the surface the typed streams use
    # =============================================================================================
    @property
    def rest(self) -> None:
        """No REST session here (the typed streams then skip their REST snapshots)."""
        return None

    @property
    def account_id(self) -> str | None:
        return self._account_override if self._account_override is not None else self._account

    @property
    def scheduler(self) -> abc.SchedulerBase:
        """The control scheduler (lease renewal, state changes)."""
        return self._scheduler

    @property
    def subscriptions(self) -> dict[str, RemoteSubscriptionState]:
        with self._lock:
            return dict(self._subs)

    def has_subscription(self, channel: str) -> bool:
        return channel in self._subs

    def is_subscription_active(self, channel: str) -> bool:
        sub = self._subs.get(channel)
        return sub is not None and sub.active

    @property
    def running(self) -> bool:
        return self._running

    @property
    def ready(self) -> bool:
        return self._state.value is ConnectionState.AUTHENTICATED

    def subscribe(
        self,
        channel: str,
        data: dict[str, Any] | None = None,
        needs_confirmation: bool | None = None,
        subscription_processor: Any = None,
        *,
        wait: bool | None = None,
    ) -> RemoteSubscription:
        """Ask serve for ``channel`` (``'md+265598'``) with ``data``; returns a handle (see
        :class:`RemoteSubscription`). ``wait=None`` waits for serve's confirmation (at most
        ``subscription_timeout``) except on this client's own threads. ``needs_confirmation`` and
        ``subscription_processor`` are accepted for compatibility: serve's client applies its own."""
        if data is not None and not isinstance(data, dict):
            raise TypeError(f"data: expected a dict or None, got {type(data).__name__}")
        split_channel(channel)  # validates
        data = dict(data) if data is not None else None
        try:
            dumps(data)
        except TypeError as exc:
            raise TypeError(f"data: expected JSON-serialisable values: {exc}") from None
        if self._closed:
            raise RuntimeError("this client was shut down; create a new one")
        with self._lock:
            state = self._subs.get(channel)
            new = state is None
            if state is None:
                state = self._subs[channel] = SubscriptionState(channel, data, True, _PROCESSOR)
                self._ops.append(("add", channel))
            before = state.data
            handle = Subscription(self, state)
            state.add_request(handle, data)  # market data: the union of this client's requests
            changed = new or state.data != before
        if changed:
            self._scheduler.schedule(lambda *_: self._write_lease())
        if self._should_wait(wait) and state.status is SubscriptionStatus.PENDING:
            handle.wait(self._subscription_timeout)
        return handle

    def unsubscribe(self, channel: str, *_: Any, **__: Any) -> bool:
        """Release every handle on ``channel``; True if there were any."""
        with self._lock:
            state = self._subs.get(channel)
            handles = list(state.handles) if state is not None else []
        for handle in handles:
            handle.dispose()
        return bool(handles)

    def _release(self, handle: Subscription) -> None:
        with self._lock:
            if not handle.mark_released():
                return
            state = handle.server
            last = state.remove_request(handle) and self._subs.get(state.channel) is state
            if last:
                del self._subs[state.channel]
                self._ops.append(("remove", state.channel))
            listeners = handle.take_listeners()
        for listener, remover in listeners:
            remover.dispose()
            try:
                listener(SubscriptionStatus.UNSUBSCRIBED)
            except Exception:
                _LOGGER.exception("a subscription status listener raised")
        if last and not self._closed:
            self._scheduler.schedule(lambda *_: self._write_lease())

    # =============================================================================================
    # typed streams (the same as IbkrWsClient's, through TypedStreams)
    # =============================================================================================
    @property
    def streams(self) -> TypedStreams:
        """This client's :class:`~rxibkr.streams.TypedStreams`."""
        from rxibkr.streams import streams_of

        return streams_of(cast(Any, self))

    def market_data(
        self, conid: int | str, fields: str | int | Iterable[str | int] | None = None
    ) -> Observable[MarketDataUpdate]:
        """See ``IbkrWsClient.market_data``; a late joiner first gets every field known so far."""
        return self.streams.market_data(conid, fields)

    def market_history(
        self,
        conid: int | str,
        period: str = "1d",
        bar: str = "5min",
        exchange: str | None = None,
        outside_rth: bool = False,
        source: str = "trades",
    ) -> Observable[Bar]:
        return self.streams.market_history(conid, period, bar, exchange, outside_rth, source)

    def market_history_replies(
        self,
        conid: int | str,
        period: str = "1d",
        bar: str = "5min",
        exchange: str | None = None,
        outside_rth: bool = False,
        source: str = "trades",
    ) -> Observable[History]:
        return self.streams.market_history_replies(conid, period, bar, exchange, outside_rth, source)

    def orders(self, filters: str | Iterable[str] | None = None) -> Observable[OrderUpdate]:
        return self.streams.orders(filters)

    def trades(self, days: int | None = None, realtime_only: bool = False) -> Observable[Execution]:
        return self.streams.trades(days, realtime_only)

    def pnl(self) -> Observable[PnlRow]:
        return self.streams.pnl()

    def account_summary(
        self,
        account: str | None = None,
        keys: str | Iterable[str] | None = None,
        fields: str | Iterable[str] | None = None,
    ) -> Observable[SummaryItem]:
        return self.streams.account_summary(account, keys, fields)

    def ledger(self, account: str | None = None) -> Observable[LedgerRow]:
        return self.streams.ledger(account)

    def price_ladder(
        self, conid: int | str, exchange: str | None = None, account: str | None = None
    ) -> Observable[Ladder]:
        return self.streams.price_ladder(conid, exchange, account)

    def notifications(self) -> Observable[Notification]:
        return self.streams.notifications()

    def bulletins(self) -> Observable[Bulletin]:
        return self.streams.bulletins()

    def auth_status(self) -> Observable[AuthStatus]:
        return self.streams.auth_status()

    # =============================================================================================
    # lifecycle
    # =============================================================================================
    def start(self) -> bool:
        """Connect to Redis (waits up to ``timeout`` s); True once connected and serve is running."""
        if self._closed:
            raise RuntimeError("this client was shut down; create a new one")
        if not self._running:
            self._running = True
            self._renewal = self._scheduler.schedule_periodic(
                self.lease_ttl / 3, lambda _: self._write_lease()
            )
            self._start_reader()
        self._connected.wait(self._timeout)
        return self._redis_up and self._serve_alive

    def shutdown(self) -> None:
        """Release every subscription (the lease is deleted: serve releases at once), stop the reader,
        complete the streams."""
        if self._closed:
            return
        self._closed = True
        if self._renewal is not None:
            self._renewal.dispose()
        done = threading.Event()

        def goodbye(*_: Any) -> None:
            try:
                pipe = self._control_redis.pipeline(transaction=True)
                pipe.delete(self.layout.lease(self.id))
                pipe.srem(self.layout.consumers, self.id)
                pipe.xadd(self.layout.requests, {"c": self.id}, maxlen=10_000, approximate=True)
                pipe.xadd(self.layout.wake(self.id), {"w": "1"}, maxlen=10)
                pipe.execute()
            except Exception as exc:
                _LOGGER.info("remote client: could not delete its lease (%s); it expires by itself", exc)
            finally:
                if self._state.value is not ConnectionState.STOPPED:
                    self._state.on_next(ConnectionState.STOPPED)
                done.set()

        if self._running:
            self._scheduler.schedule(goodbye)
            done.wait(self._timeout)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(self._timeout)
            if not self._reader.is_alive():
                self._link.close()
        with self._lock:
            states = list(self._subs.values())
            self._subs.clear()
        for state in states:
            for handle in list(state.handles):
                handle.mark_released()
            _set_status(state, SubscriptionStatus.UNSUBSCRIBED)
        if self._state.value is not ConnectionState.STOPPED:  # never started, or the goodbye timed out
            self._state.on_next(ConnectionState.STOPPED)
        self._scheduler.dispose()
        for subject in self._subjects.values():
            subject.complete()
        self._state.complete()
        self._errors.complete()
        for connection in (self._control_redis, self._reader_redis):
            try:
                connection.close()
            except Exception:
                pass

    close = shutdown

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"RemoteClient({public_url(self.redis_url)!r}, state={self._state.value.value})"

    # =============================================================================================
    # control scheduler: lease, state
    # =============================================================================================
    def _control_thread(self, target: Callable[[], Any]) -> threading.Thread:
        def run() -> None:
            self._control_ident = threading.get_ident()
            target()

        return threading.Thread(target=run, name="rxibkr-remote-control", daemon=True)

    def _should_wait(self, wait: bool | None) -> bool:
        if wait is not None:
            return wait
        ident = threading.get_ident()
        reader = self._reader
        return ident != self._control_ident and (reader is None or ident != reader.ident)

    def _write_lease(self) -> None:
        """Write the whole lease again (MULTI: serve never sees it half written), announce it, and
        learn whether serve is alive. Runs on the control scheduler."""
        if self._closed:
            return
        with self._lock:
            lease = {channel: dumps(state.data) for channel, state in self._subs.items()}
            wake = bool(self._ops)
        layout = self.layout
        try:
            pipe = self._control_redis.pipeline(transaction=True)
            pipe.delete(layout.lease(self.id))
            if lease:
                pipe.hset(layout.lease(self.id), mapping=lease)
                pipe.pexpire(layout.lease(self.id), int(self.lease_ttl * 1000))
            pipe.sadd(layout.consumers, self.id)
            pipe.xadd(layout.requests, {"c": self.id}, maxlen=10_000, approximate=True)
            if wake:
                pipe.xadd(layout.wake(self.id), {"w": "1"}, maxlen=10, approximate=False)
            pipe.pexpire(layout.wake(self.id), int(self.lease_ttl * 3000))
            pipe.exists(layout.alive)
            pipe.get(layout.state)
            pipe.get(layout.account)  # serve announces it once its gateway knows it (maybe after us)
            results = pipe.execute()
        except Exception as exc:
            if self._redis_up:
                self._report(
                    ErrorKind.CONNECTION_LOST, f"remote: Redis at {public_url(self.redis_url)}: {exc}"
                )
            self._redis_up = False
            self._update_state()
            return
        alive, state, account = results[-3], results[-2], results[-1]
        if account:
            self._account = account.decode()
        self._serve_alive = bool(alive)
        if state is not None:
            self._serve_state = _STATES.get(state.decode(), ConnectionState.STOPPED)
        if self._reader_up:
            self._redis_up = True
        self._update_state()
        if self._redis_up:
            self._connected.set()

    def _learn_account(self) -> None:
        """The account serve announced, if it has one by now (control scheduler; serve sets it once
        its gateway is authenticated, which may come after this consumer started)."""
        try:
            account = self._control_redis.get(self.layout.account)
        except Exception:  # Redis away: the next lease renewal reads it again
            return
        if account:
            self._account = account.decode()

    def _update_state(self) -> None:
        if self._closed:
            return
        if not self._redis_up:
            state = ConnectionState.RECONNECTING
        elif not self._serve_alive:
            stopped = self._serve_state is ConnectionState.STOPPED
            state = ConnectionState.STOPPED if stopped else ConnectionState.RECONNECTING
        else:
            state = self._serve_state
        if state is not self._state.value:
            self._state.on_next(state)

    def _on_control(self, fn: Callable[[], None]) -> None:
        if not self._closed:
            try:
                self._scheduler.schedule(lambda *_: fn())
            except Exception:  # the scheduler was disposed meanwhile
                pass

    def _report(self, kind: ErrorKind, message: str, payload: Any = None) -> None:
        self._emit_error(ErrorEvent(kind, message, payload=payload))

    def _emit_error(self, event: ErrorEvent) -> None:
        """On the control scheduler, so that calls to an ``errors`` observer never overlap."""
        if self._control_ident == threading.get_ident():
            self._errors.on_next(event)
        else:
            self._on_control(lambda: self._errors.on_next(event))

    def _on_observer_error(self, exc: BaseException, value: Any) -> None:
        _LOGGER.warning("an observer raised %r", exc)
        self._emit_error(
            ErrorEvent(ErrorKind.OBSERVER_ERROR, f"an observer raised {exc!r}", exception=exc, payload=value)
        )

    # =============================================================================================
    # reader thread
    # =============================================================================================
    def _start_reader(self) -> None:
        if self._closed:
            return
        self._reader = threading.Thread(target=self._read_loop, name="rxibkr-remote-reader", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        redis = self._reader_redis
        try:
            if not self._initialised:
                self._initialise(redis)
            else:
                redis.ping()
            self._reader_failures = 0
            self._reader_up = True
            self._on_control(self._write_lease)  # Redis may have lost the lease: write it again
            link = self._link
            positions = self._positions
            while not self._closed:
                self._apply_ops(redis)
                reply = link.execute(positions.xread(), 1)[0]
                self.reads += 1
                if isinstance(reply, Exception):
                    raise reply
                if reply:  # RESP3: a map of stream -> entries; RESP2: a list of [stream, entries]
                    for stream, entries in reply.items() if isinstance(reply, dict) else reply:
                        self._deliver(stream.decode(), entries)
        except Exception as exc:
            if self._closed:
                return
            self._reader_failures += 1
            self._reader_up = False
            if self._redis_up:
                self._redis_up = False
                self._report(
                    ErrorKind.CONNECTION_LOST, f"remote: lost Redis at {public_url(self.redis_url)}: {exc}"
                )
                self._on_control(self._update_state)
            delay = min(0.05 * 2 ** min(self._reader_failures, 6), 2.0)
            try:
                self._scheduler.schedule_relative(timedelta(seconds=delay), lambda *_: self._start_reader())
            except Exception:
                pass

    def _initialise(self, redis: Any) -> None:
        layout = self.layout
        names = [layout.events, layout.wake(self.id), *(layout.key_stream(k) for k in _UNSOLICITED)]
        pipe = redis.pipeline(transaction=True)
        for name in names:
            pipe.xrevrange(name, count=1)
        pipe.get(layout.state)
        pipe.exists(layout.alive)
        pipe.get(layout.account)
        results = pipe.execute()
        for name, last in zip(names, results, strict=False):
            self._positions[name] = last[0][0] if last else b"0-0"
            self._last[name] = (
                (last[0][0].partition(b"-")[0], int(last[0][0].partition(b"-")[2])) if last else None
            )
        state, alive, account = results[len(names) :]
        if state is not None:
            self._serve_state = _STATES.get(state.decode(), ConnectionState.STOPPED)
        self._serve_alive = bool(alive)
        if account:
            self._account = account.decode()
        self._initialised = True

    def _stream_of(self, channel: str) -> tuple[str, str | None]:
        """The stream a channel's messages come on, and the conid when it is market data."""
        key, match = split_channel(channel)
        if key is IbkrWsKey.MARKET_DATA:
            conid = match.partition("+")[2].split("+", 1)[0]
            return self.layout.md(conid), conid
        return self.layout.key_stream(key), None

    def _apply_ops(self, redis: Any) -> None:
        """Follow or drop the streams of channels added or released since the last read. An op
        leaves the queue only once applied: if Redis fails meanwhile it is applied after reconnecting."""
        while True:
            with self._lock:
                if not self._ops:
                    return
                op, channel = self._ops[0]
            self._apply_op(redis, op, channel)
            with self._lock:
                self._ops.pop(0)

    def _apply_op(self, redis: Any, op: str, channel: str) -> None:
        stream, conid = self._stream_of(channel)
        if op == "remove":
            refs = self._refs.get(stream, 0) - 1
            if refs <= 0:
                self._refs.pop(stream, None)
                self._positions.pop(stream, None)
                self._last.pop(stream, None)
            else:
                self._refs[stream] = refs
            return
        refs = self._refs.get(stream, 0)
        # the reads first: if one fails nothing has changed yet
        status = redis.hget(self.layout.subs, channel)
        snapshot = redis.hgetall(self.layout.md_snapshot(conid)) if refs == 0 and conid is not None else {}
        self._refs[stream] = refs + 1
        if refs == 0:
            self._positions[stream] = b"0-0"
            self._last[stream] = None
            entry_id = snapshot.pop(b"_id", None)
            if snapshot and entry_id is not None:
                self._positions[stream] = entry_id
                ms, _, n = entry_id.partition(b"-")
                self._last[stream] = (ms, int(n))
                frame = {key.decode(): loads(value) for key, value in snapshot.items()}
                self.received += 1
                self._subjects[IbkrWsKey.MARKET_DATA].on_next(decode(dumps(frame)))
        state = self._subs.get(channel)
        if status is not None and state is not None:
            _set_status(state, _STATUSES.get(status.decode(), SubscriptionStatus.PENDING))

    def _deliver(self, stream: str, entries: list[list[Any]]) -> None:
        """Entries as Redis sends them: ``[id, [field, value, ...]]``."""
        if stream == self.layout.events:
            for entry_id, flat in entries:
                self._positions[stream] = entry_id
                self._on_event(dict(zip(flat[::2], flat[1::2], strict=False)))
            return
        if stream not in self._positions:  # released meanwhile
            return
        if stream == self.layout.wake(self.id):
            self._positions[stream] = entries[-1][0]
            return
        last = self._last.get(stream)
        subjects = self._subjects
        entry_id = b""
        for entry_id, fields in entries:
            ms, _, seq = entry_id.partition(b"-")
            n = int(seq)
            if last is not None:
                if ms == last[0]:
                    if n != last[1] + 1:
                        self._gap(stream, n - last[1] - 1)
                elif n != 1:
                    self._gap(stream, n - 1)
            last = (ms, n)
            if len(fields) != 2 or fields[0] != FRAME:
                continue
            message = decode(fields[1])
            self.received += 1
            subjects[message.key or IbkrWsKey.ERROR].on_next(message)
        self._last[stream] = last
        self._positions[stream] = entry_id

    def _gap(self, stream: str, count: int) -> None:
        if count <= 0:
            return
        self.gaps += count
        self._report(
            ErrorKind.CONNECTION_LOST,
            f"remote: {count} message(s) of {stream} were lost (trimmed by MAXLEN, or not published "
            "while Redis was away)",
            MessageGap(stream, count),
        )

    def _on_event(self, fields: dict[bytes, bytes]) -> None:
        kind = fields.get(b"t", b"").decode()
        value = fields.get(b"v", b"").decode()
        if kind in ("state", "stop"):
            state = _STATES.get(value, ConnectionState.STOPPED)
            alive = kind == "state"

            def apply() -> None:
                self._serve_state = state
                self._serve_alive = alive
                if self._account is None and alive:
                    self._learn_account()
                self._update_state()

            self._on_control(apply)
            if kind == "stop":
                for sub in self.subscriptions.values():
                    _set_status(sub, SubscriptionStatus.PENDING)
        elif kind == "sub":
            channel = fields.get(b"c", b"").decode()
            wanted = self._subs.get(channel)
            if wanted is not None:
                status = _STATUSES.get(value, SubscriptionStatus.PENDING)
                if status is SubscriptionStatus.UNSUBSCRIBED:  # still wanted here: the lease brings it back
                    status = SubscriptionStatus.PENDING
                _set_status(wanted, status)
        elif kind == "error":
            code = fields.get(b"k", b"").decode()
            self._report(_KINDS.get(code, ErrorKind.GATEWAY_ERROR), fields.get(b"m", b"").decode())


__all__ = ["MessageGap", "RemoteClient", "RemoteSubscription", "RemoteSubscriptionState"]
