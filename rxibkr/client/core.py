"""``IbkrWsClient``: the reactive client core, IBind's API included.

Shape (see DESIGN.md): the connection is a hot stream of raw frames (``frames``), decoded and
partitioned by key into one hot subject per :class:`IbkrWsKey` (``observe(key)``). ``subscribe``
returns a :class:`Subscription` Disposable that sends the ``u...`` payload when disposed. Ping and
heartbeat watchdogs are timer operators on the control scheduler that call ``hard_reset``.

Threads: the reader thread of the current connection delivers data frames straight to the per-key
subjects (the hot path). Everything that mutates client state runs on the control scheduler (an
``EventLoopScheduler`` per client unless one is passed in); other threads only post work to it.
With a virtual-time scheduler (``TestScheduler``) that work runs inline, so tests are deterministic.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

import orjson
import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.scheduler import EventLoopScheduler
from reactivex.scheduler.virtualtimescheduler import VirtualTimeScheduler

from rxibkr.client import config as cfg
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.client.queues import QueueAccessor, QueueController
from rxibkr.client.subjects import HotSubject, StateSubject
from rxibkr.client.subscriptions import Subscription, SubscriptionState, SubscriptionStatus, split_channel
from rxibkr.client.watchdogs import silence
from rxibkr.io.rest import IbkrSession, SessionError, make_ssl_context, session_id_from_tickle
from rxibkr.io.transport import (
    Connection,
    ConnectionClosedError,
    ConnectOptions,
    Transport,
    WebSocketTransport,
    is_tls_verification_error,
)
from rxibkr.protocol import (
    IbkrSubscriptionProcessor,
    IbkrWsKey,
    Message,
    MessageKind,
    SubscriptionProcessor,
    decode,
)
from rxibkr.protocol import requests as rq
from rxibkr.protocol.fields import unwrap

if TYPE_CHECKING:  # annotations only: these modules import the client
    from rxibkr.record import Recorder
    from rxibkr.streams.models import (
        AuthStatus,
        Bar,
        Bulletin,
        Execution,
        Ladder,
        LedgerRow,
        MarketDataUpdate,
        Notification,
        OrderUpdate,
        PnlRow,
        SummaryItem,
    )

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")


class _Undefined:
    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Any = _Undefined()

_CONTROL_KEYS = frozenset(
    {IbkrWsKey.AUTHENTICATION_STATUS, IbkrWsKey.ACCOUNT_UPDATES, IbkrWsKey.MARKET_HISTORY}
)
_DATA = MessageKind.DATA
_SYSTEM = IbkrWsKey.SYSTEM
_MARKET_DATA = IbkrWsKey.MARKET_DATA


def _queue_item(message: Message) -> Any:
    """The item IBind puts on a queue for this message."""
    data = message.data or {}
    key = message.key
    if key is IbkrWsKey.MARKET_DATA:
        conid = data.get("conid")
        return None if conid is None else {conid: unwrap(data)}
    if key in (
        IbkrWsKey.ORDERS,
        IbkrWsKey.TRADES,
        IbkrWsKey.PNL,
        IbkrWsKey.NOTIFICATIONS,
        IbkrWsKey.BULLETINS,
    ):
        return data.get("args", data)
    if message.kind is MessageKind.MALFORMED:
        return {"error": message.error, "raw": message.raw}
    return data


class WireEvent(NamedTuple):
    """What crossed the wire: ``direction`` is "in", "out", "open" or "close"; ``data`` the frame."""

    direction: str
    data: bytes | str | None
    connection: int
    code: int | None = None  # the close code, for "close" events


_ACCOUNT_ID = re.compile(r"\b(DUO|D?[UFI])(\d{2,})(\d{3})\b")  # U1234567, DU1234567, DUO123456, F..., DF...


def mask_account_ids(text: str, accounts: Iterable[str | None] = ()) -> str:
    """``text`` with account ids masked for logs: ``DU1234567`` -> ``DU***567``.

    Masks IBKR's account forms (``U``, ``DU``, ``DUO``, ``F``, ``DF``, ``I`` followed by digits) and each
    of ``accounts`` (the configured account id, whatever its shape).
    """
    for account in accounts:
        if account and account in text:
            text = text.replace(account, account[:2] + "***" + account[-3:] if len(account) > 5 else "***")
    return _ACCOUNT_ID.sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)


def _public_url(url: str) -> str:
    """``url`` for logs and messages: the values of its query parameters (an OAuth ``oauth_token``, a
    ``bearer_token``) replaced by ``***``."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    return (
        base
        + "?"
        + "&".join(k + ("=***" if eq else "") for k, eq, _ in (p.partition("=") for p in query.split("&")))
    )


def _is_heartbeat(message: Message) -> bool:
    data = message.data
    return data is not None and "hb" in data


class IbkrWsClient:
    """A ReactiveX WebSocket client for the IBKR Client Portal gateway, IBind-compatible.

    The seed's parameters keep the seed's meanings; those whose IBind default comes from
    ``var.IBIND_*`` are read from ``RXIBKR_*`` environment variables when the client is constructed:
    ``RXIBKR_ACCOUNT_ID``, ``RXIBKR_WS_URL``, ``RXIBKR_WS_LOG_RAW_MESSAGES``,
    ``RXIBKR_WS_PING_INTERVAL`` (10),
    ``RXIBKR_WS_MAX_PING_INTERVAL`` (20), ``RXIBKR_WS_TIMEOUT`` (5), ``RXIBKR_CACERT`` (False),
    ``RXIBKR_WS_SUBSCRIPTION_RETRIES`` (5), ``RXIBKR_WS_SUBSCRIPTION_TIMEOUT`` (2).

    Keyword-only extras: ``scheduler`` (the control scheduler; default one ``EventLoopScheduler`` per
    client), ``transport`` (replaces the websocket-client transport: fakes, replay), ``start``,
    ``tic_interval`` (60 s, ``tic`` on the socket), ``tickle_interval`` (60 s, REST tickle),
    ``md_renewal_interval`` (540 s: ``smd`` re-sent before the gateway's 10-minute expiry),
    ``reconnect_backoff`` ((first, max) seconds), ``max_reconnect_attempts`` (None: keep trying).
    """

    def __init__(
        self,
        ibkr_client: Any = None,
        account_id: str | cfg.Unset | None = cfg.ENV,
        url: str | cfg.Unset | None = cfg.ENV,
        host: str = "localhost",
        port: str | int = "5000",
        base_route: str = "/v1/api/ws",
        SubscriptionProcessorClass: type[SubscriptionProcessor] = IbkrSubscriptionProcessor,
        QueueControllerClass: type[QueueController[IbkrWsKey]] = QueueController[IbkrWsKey],
        log_raw_messages: bool | cfg.Unset = cfg.ENV,
        unsolicited_channels_to_be_queued: Iterable[IbkrWsKey] | None = None,
        ping_interval: float | cfg.Unset = cfg.ENV,
        max_ping_interval: float | cfg.Unset = cfg.ENV,
        timeout: float | cfg.Unset = cfg.ENV,
        restart_on_close: bool = True,
        restart_on_critical: bool = True,
        max_connection_attempts: int = 10,
        cacert: str | bool | cfg.Unset = cfg.ENV,
        subscription_retries: int | cfg.Unset = cfg.ENV,
        subscription_timeout: float | cfg.Unset = cfg.ENV,
        *,
        scheduler: abc.SchedulerBase | None = None,
        transport: Transport | None = None,
        start: bool = False,
        tic_interval: float | None = 60.0,
        tickle_interval: float | None = 60.0,
        md_renewal_interval: float | None = 540.0,
        reconnect_backoff: tuple[float, float] = (0.25, 30.0),
        max_reconnect_attempts: int | None = None,
        reconnect_jitter: bool = True,
    ) -> None:
        # -- configuration, environment read now ------------------------------------------------
        self._account_id = cfg.str_or_env(account_id, "RXIBKR_ACCOUNT_ID")
        env_url = cfg.str_or_env(url, "RXIBKR_WS_URL")
        if env_url is None:
            env_url = f"wss://{host}:{port}{base_route}"
        if not isinstance(env_url, str) or not env_url.startswith(("ws://", "wss://")):
            raise ValueError(f"url: expected a ws:// or wss:// URL, got {env_url!r}")
        self._url: str = env_url
        self._public_url = _public_url(env_url)  # tokens in the query never reach a log or a message
        self._log_raw = cfg.bool_or_env(log_raw_messages, "RXIBKR_WS_LOG_RAW_MESSAGES", False)
        self._ping_interval = cfg.float_or_env(ping_interval, "RXIBKR_WS_PING_INTERVAL", 10.0)
        self._max_ping_interval = cfg.float_or_env(max_ping_interval, "RXIBKR_WS_MAX_PING_INTERVAL", 20.0)
        self._timeout = cfg.float_or_env(timeout, "RXIBKR_WS_TIMEOUT", 5.0)
        self._subscription_retries = cfg.int_or_env(subscription_retries, "RXIBKR_WS_SUBSCRIPTION_RETRIES", 5)
        self._subscription_timeout = cfg.float_or_env(
            subscription_timeout, "RXIBKR_WS_SUBSCRIPTION_TIMEOUT", 2.0
        )
        cacert_value = cfg.cacert_or_env(cacert)
        for name, value in (
            ("ping_interval", self._ping_interval),
            ("max_ping_interval", self._max_ping_interval),
            ("timeout", self._timeout),
            ("subscription_timeout", self._subscription_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name}: expected a positive number of seconds, got {value!r}")
        if self._subscription_retries < 1:
            raise ValueError(f"subscription_retries: expected at least 1, got {self._subscription_retries!r}")
        if max_connection_attempts < 1:
            raise ValueError(f"max_connection_attempts: expected at least 1, got {max_connection_attempts!r}")
        for name, interval in (
            ("tic_interval", tic_interval),
            ("tickle_interval", tickle_interval),
            ("md_renewal_interval", md_renewal_interval),
        ):  # a negative period would make a timer fire in a tight loop on the control thread
            if interval is not None and not (isinstance(interval, int | float) and interval >= 0):
                raise ValueError(f"{name}: expected seconds > 0, or None (or 0) to disable, got {interval!r}")
        if not (
            isinstance(reconnect_backoff, tuple | list)
            and len(reconnect_backoff) == 2
            and all(isinstance(v, int | float) for v in reconnect_backoff)
            and 0 < reconnect_backoff[0] <= reconnect_backoff[1]
        ):
            raise ValueError(
                "reconnect_backoff: expected (first, max) seconds with 0 < first <= max, "
                f"got {reconnect_backoff!r}"
            )
        if max_reconnect_attempts is not None and max_reconnect_attempts < 1:
            raise ValueError(
                f"max_reconnect_attempts: expected at least 1, or None, got {max_reconnect_attempts!r}"
            )
        self._restart_on_close = restart_on_close
        self._restart_on_critical = restart_on_critical
        self._max_connection_attempts = max_connection_attempts
        self._max_reconnect_attempts = max_reconnect_attempts
        self._tic_interval = tic_interval
        self._tickle_interval = tickle_interval
        self._md_renewal_interval = md_renewal_interval
        self._backoff_first, self._backoff_max = reconnect_backoff
        self._jitter = reconnect_jitter
        self._random = random.Random()

        # TLS: a missing cacert path fails here, at construction
        self._ssl_context = make_ssl_context(cacert_value) if self._url.startswith("wss://") else None

        # REST session: given, or our own; none when a custom transport is given without one
        if ibkr_client is None and transport is None:
            scheme = "https" if self._url.startswith("wss://") else "http"
            netloc = self._url.split("://", 1)[1].split("/", 1)[0]
            ibkr_client = IbkrSession(
                f"{scheme}://{netloc}/v1/api", ssl_context=self._ssl_context, timeout=self._timeout
            )
        if ibkr_client is not None and not callable(getattr(ibkr_client, "tickle", None)):
            raise TypeError(
                "ibkr_client: expected an object with a tickle() method (IbkrSession or IBind's IbkrClient)"
            )
        self._rest = ibkr_client
        self._transport: Transport = transport if transport is not None else WebSocketTransport()
        self._processor = SubscriptionProcessorClass()

        # -- scheduler ------------------------------------------------------------------------------
        self._owns_scheduler = scheduler is None
        self._scheduler: abc.SchedulerBase = scheduler if scheduler is not None else self._new_scheduler()
        self._virtual = isinstance(self._scheduler, VirtualTimeScheduler)
        self._control_ident: int | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

        # -- streams --------------------------------------------------------------------------------
        self._errors: HotSubject[ErrorEvent] = HotSubject(self._on_errors_observer_error)
        self._frames: HotSubject[bytes | str] = HotSubject(self._on_observer_error)
        self._state: StateSubject[ConnectionState] = StateSubject(
            ConnectionState.STOPPED, self._on_observer_error
        )
        self._subjects: dict[IbkrWsKey, HotSubject[Message]] = {
            key: HotSubject(self._on_observer_error) for key in IbkrWsKey
        }
        self._market_data_subject = self._subjects[IbkrWsKey.MARKET_DATA]
        self._pongs: HotSubject[None] = HotSubject(self._on_observer_error)
        self._wire: HotSubject[WireEvent] = HotSubject(self._on_observer_error)

        # -- queues (seed) --------------------------------------------------------------------------
        self._queue_controller = QueueControllerClass()
        self._queue_controller.register_queues(list(IbkrWsKey))
        self._queueable = frozenset(k for k in IbkrWsKey if k.solicited) | frozenset(
            unsolicited_channels_to_be_queued or ()
        )
        self._queued_keys: frozenset[IbkrWsKey] = frozenset()
        self._default_accessors: dict[IbkrWsKey, QueueAccessor[IbkrWsKey]] = {}
        self._queue_lock = threading.Lock()

        # -- control state (control scheduler only) -------------------------------------------------
        self._running = False
        self._shut_down = False
        self._conn: Connection | None = None
        self._conn_opened = False
        self._attempts = 0
        self._starting = False
        self._ready = threading.Event()  # set when AUTHENTICATED or FAILED while start() waits
        self._start_confirmed = False  # the session was confirmed since start() was called
        self._subs: dict[str, SubscriptionState] = {}
        self._awaiting: dict[str, SubscriptionState] = {}  # read by the reader thread: membership only
        self._unsub_awaiting: dict[tuple[IbkrWsKey, str | None], SubscriptionState] = {}
        self._server_ids: dict[IbkrWsKey, dict[str, int]] = {}
        self._session_id: str | None = None
        self._last_pong = 0.0
        self._last_heartbeat = 0.0
        self._connection_timers = CompositeDisposable()
        self._session_timers = CompositeDisposable()
        self._reconnect_timer: abc.DisposableBase | None = None
        self._auth_poll_timer: abc.DisposableBase | None = None
        self._auth_poll_attempt = 0
        self._threads_to_join: list[Connection] = []

        if start:
            self.start()

    # =============================================================================================
    # public streams
    # =============================================================================================
    @property
    def frames(self) -> Observable[bytes | str]:
        """Every raw frame as received (bytes for binary frames, str for text). Hot; never errors."""
        return self._frames

    @property
    def state(self) -> StateSubject[ConnectionState]:
        """The connection state; replays the current one to each observer; ``.value`` reads it."""
        return self._state

    @property
    def errors(self) -> Observable[ErrorEvent]:
        """Malformed and error frames, failed subscriptions, connection problems, observer exceptions."""
        return self._errors

    @property
    def wire(self) -> Observable[WireEvent]:
        """Every frame in and out, plus connection open/close events, as they happen (for recording).

        "in" and "open"/"close" are emitted on the reader thread, "out" on the sending thread.
        Session ids are not redacted here: whoever persists these must (``rxibkr.record.recording`` does).
        """
        return self._wire

    @property
    def rest(self) -> Any:
        """The REST session (``IbkrSession``, IBind's ``IbkrClient``, ...) or None when there is none."""
        return self._rest

    @property
    def account_id(self) -> str | None:
        return self._account_id

    @property
    def session_id(self) -> str | None:
        """The gateway session id the socket rides on (from tickle); never log it."""
        return self._session_id

    def observe(self, key: IbkrWsKey) -> Observable[Message]:
        """Decoded messages of one key (the per-key hot subject). Goes on across reconnects."""
        if not isinstance(key, IbkrWsKey):
            raise TypeError(f"key: expected an IbkrWsKey, got {key!r}")
        return self._subjects[key]

    def channel(self, channel: str, data: dict[str, Any] | None = None) -> Observable[Message]:
        """The data messages of one channel, as a cold, reference-counted observable.

        The first observer sends the subscribe payload; observers in between share that server
        subscription; the last disposal sends the unsubscribe payload.
        """
        key, match = split_channel(channel)
        topic = "s" + match
        source = self._subjects[key]

        def matches(message: Message) -> bool:
            t = message.topic
            return message.kind is _DATA and t is not None and (t == topic or t.startswith(topic + "+"))

        def subscribe(
            observer: abc.ObserverBase[Message], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            inner = source.pipe(ops.filter(matches)).subscribe(observer, scheduler=scheduler)
            handle = self.subscribe(channel, data, wait=False)  # one handle per observer

            def release() -> None:
                inner.dispose()
                if not self._shut_down:
                    handle.dispose()  # the last handle on the channel sends the unsubscribe

            return Disposable(release)

        return reactivex.create(subscribe)

    # =============================================================================================
    # seed API: lifecycle
    # =============================================================================================
    @property
    def running(self) -> bool:
        return self._running

    @property
    def ready(self) -> bool:
        """True while the gateway session is confirmed (state AUTHENTICATED)."""
        return self._state.value is ConnectionState.AUTHENTICATED

    @property
    def url(self) -> str:
        return self._url

    @property
    def scheduler(self) -> abc.SchedulerBase:
        return self._scheduler

    def start(self) -> bool:
        """Connect and wait for the gateway session; True once confirmed.

        Bounded by ``timeout`` x ``max_connection_attempts``; when it gives up, the connection is
        closed and no thread of the client is left. With a virtual-time scheduler it does not wait:
        it returns whether the session is already confirmed.
        """
        if self._shut_down:
            raise RuntimeError("this client was shut down; create a new one")
        self._ready.clear()
        self._start_confirmed = False
        self._post(self._start)
        if self._virtual or self._on_control_thread():
            return self.ready
        bound = self._timeout * self._max_connection_attempts
        self._ready.wait(bound)
        if self._start_confirmed:  # confirmed, even if the connection has dropped again since
            return True
        _LOGGER.warning("start(): no confirmed session within %.1f s; giving up", bound)
        self._call(self._give_up)
        self._dispose_owned_scheduler()
        self._join_connections(self._timeout + 1.0)
        return False

    def shutdown(self) -> None:
        """Unsubscribe what is subscribed, close, complete the streams and join the client's threads."""
        if self._shut_down:
            return
        self._call(self._shutdown)
        self._shut_down = True
        for key_subject in self._subjects.values():
            key_subject.complete()
        self._frames.complete()
        self._pongs.complete()
        self._wire.complete()
        self._state.complete()
        self._errors.complete()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._dispose_owned_scheduler(replace=False)
        self._join_connections(2.0)
        if isinstance(self._rest, IbkrSession):
            self._rest.close()

    def disconnect(self) -> None:
        """Close the connection, without reconnecting. ``start()`` connects again."""
        self._call(self._disconnect)

    def hard_reset(self, restart: bool = False) -> None:
        """Force the connection closed, and reconnect when ``restart``. Safe from any thread."""
        self._post(self._hard_reset, restart, "hard_reset() called")

    def check_ping(self) -> bool:
        """True if the last pong is within ``max_ping_interval`` (or not connected); else hard reset."""
        if not self._conn_opened:
            return True
        if self._now() - self._last_pong <= self._max_ping_interval:
            return True
        self.hard_reset(restart=True)
        return False

    def check_health(self) -> bool:
        """Ping and heartbeat both within ``max_ping_interval``; otherwise a hard reset, and False.

        The watchdogs already do this continuously; calling it in a loop (as IBind users must) is not needed.
        """
        if not self._running:
            return False
        if not self._conn_opened:
            return True
        if not self.check_ping():
            return False
        if self.ready and self._now() - self._last_heartbeat > self._max_ping_interval:
            self.hard_reset(restart=True)
            return False
        return True

    # =============================================================================================
    # seed API: subscriptions
    # =============================================================================================
    def subscribe(
        self,
        channel: str,
        data: dict[str, Any] | None = None,
        needs_confirmation: bool | None = None,
        subscription_processor: SubscriptionProcessor | None = None,
        *,
        wait: bool | None = None,
    ) -> Subscription:
        """Subscribe to ``channel`` (e.g. ``'md+265598'``) and return the :class:`Subscription`.

        Truthy iff confirmed: with confirmation it waits up to ``subscription_retries`` x
        ``subscription_timeout``, re-sending each time. Subscriptions asked for before the session is
        confirmed are held and sent then. ``needs_confirmation=None`` takes the key's default.
        ``wait=None`` waits except on the client's own threads and in virtual time.
        """
        if data is not None and not isinstance(data, Mapping):
            raise TypeError(f"data: expected a dict or None, got {type(data).__name__}")
        key, _ = split_channel(channel)
        confirm = key.confirms_subscribing if needs_confirmation is None else bool(needs_confirmation)
        processor = subscription_processor if subscription_processor is not None else self._processor
        if self._shut_down:
            raise RuntimeError("this client was shut down; create a new one")
        data = dict(data) if data is not None else None
        # bad data (not JSON) fails here, at the call, before anything is stored and resent on reconnects
        processor.make_subscribe_payload(channel, data)
        sub: Subscription = self._call(self._subscribe, channel, data, confirm, processor)
        if self._should_wait(wait) and sub.status is SubscriptionStatus.PENDING and self._running:
            sub.wait(self._subscription_timeout * (self._subscription_retries + 1))
        return sub

    def unsubscribe(
        self,
        channel: str,
        data: dict[str, Any] | None = None,
        needs_confirmation: bool = False,
        subscription_processor: SubscriptionProcessor | None = None,
    ) -> bool:
        """Unsubscribe from ``channel``; with ``needs_confirmation`` wait for the gateway's confirmation."""
        _key, _ = split_channel(channel)
        processor = subscription_processor if subscription_processor is not None else self._processor
        done = threading.Event()
        result: list[bool] = []

        def finish(ok: bool) -> None:
            result.append(ok)
            done.set()

        self._call(self._unsubscribe, channel, data, needs_confirmation, processor, finish)
        if needs_confirmation and not done.is_set() and self._should_wait(None):
            done.wait(self._subscription_timeout * (self._subscription_retries + 1))
        return bool(result and result[0])

    def modify_subscription(
        self,
        channel: str,
        status: bool = UNDEFINED,
        data: dict[str, Any] | None = UNDEFINED,
        needs_confirmation: bool = UNDEFINED,
        subscription_processor: SubscriptionProcessor = UNDEFINED,
    ) -> None:
        """Change a stored subscription's properties (``UNDEFINED``: unchanged). KeyError if unknown."""

        def modify() -> None:
            sub = self._subs.get(channel)
            if sub is None:
                raise KeyError(f"no subscription for channel {channel!r}")
            if data is not UNDEFINED:
                sub.data = data
            if needs_confirmation is not UNDEFINED:
                sub.needs_confirmation = bool(needs_confirmation)
            if subscription_processor is not UNDEFINED:
                sub.processor = subscription_processor
            if status is not UNDEFINED:
                sub.set_status(SubscriptionStatus.ACTIVE if status else SubscriptionStatus.PENDING)

        self._call(modify)

    def recreate_subscriptions(self) -> None:
        """Send every stored subscription again (e.g. after a reset)."""
        self._post(self._recreate_subscriptions)

    def has_subscription(self, channel: str) -> bool:
        return channel in self._subs

    def is_subscription_active(self, channel: str) -> bool:
        sub = self._subs.get(channel)
        return sub is not None and sub.active

    @property
    def subscriptions(self) -> dict[str, SubscriptionState]:
        """A snapshot of the server subscriptions by channel (each shared by its handles)."""
        return dict(self._subs)

    def server_ids(self, key: IbkrWsKey) -> dict[str, int] | None:
        """Server ids by which the gateway knows this key's subscriptions (market history), or None."""
        ids = self._server_ids.get(key)
        return dict(ids) if ids else None

    # =============================================================================================
    # seed API: queues
    # =============================================================================================
    def new_queue_accessor(self, key: IbkrWsKey) -> QueueAccessor[IbkrWsKey]:
        """A queue receiving every message of ``key`` published from now on (IBind shapes)."""
        if not isinstance(key, IbkrWsKey):
            raise TypeError(f"key: expected an IbkrWsKey, got {key!r}")
        if key not in self._queueable:
            raise ValueError(
                f"key: {key} is unsolicited; list it in unsolicited_channels_to_be_queued to queue it"
            )
        with self._queue_lock:
            accessor = self._queue_controller.new_queue_accessor(key)
            self._queued_keys = self._queued_keys | {key}
        return accessor

    def get(self, key: IbkrWsKey, block: bool = False, timeout: float | None = None) -> Any | None:
        return self._default_accessor(key).get(block=block, timeout=timeout)

    def empty(self, key: IbkrWsKey) -> bool:
        return self._default_accessor(key).empty()

    def _default_accessor(self, key: IbkrWsKey) -> QueueAccessor[IbkrWsKey]:
        accessor = self._default_accessors.get(key)
        if accessor is None:
            accessor = self._default_accessors[key] = self.new_queue_accessor(key)
        return accessor

    # =============================================================================================
    # the hot path: reader thread
    # =============================================================================================
    def on_open(self, connection: Connection) -> None:
        if self._wire._observers:
            self._wire.on_next(WireEvent("open", None, connection.id))
        if self._running or connection is self._conn:
            self._post(self._on_open, connection)
        else:
            connection.close()

    def on_frame(self, connection: Connection, data: bytes | str) -> None:
        if connection is not self._conn:
            return  # a connection we already abandoned
        if self._wire._observers:
            self._wire.on_next(WireEvent("in", data, connection.id))
        frames = self._frames
        if frames._observers:
            frames.on_next(data)
        if self._log_raw:
            _LOGGER.debug("recv: %s", self._for_log(data))
        message = decode(data)
        key = message.key
        # market data, the bulk of the traffic: by identity, and no control checks
        if key is _MARKET_DATA:
            self._market_data_subject.on_next(message)
        else:
            self._subjects[key].on_next(message)  # type: ignore[index]
        queued = self._queued_keys
        if queued and key in queued:
            item = _queue_item(message)
            if item is not None:
                self._queue_controller.put_to_queue(key, item)
        if key is not _MARKET_DATA and (
            message.kind is not _DATA or key in _CONTROL_KEYS or (key is _SYSTEM and "hb" not in message.data)  # type: ignore[operator]
        ):
            self._post(self._on_control_message, message)
        elif self._awaiting and message.channel in self._awaiting:
            self._post(self._confirm_from_frame, message)

    def on_pong(self, connection: Connection) -> None:
        if connection is self._conn:
            self._last_pong = self._now()
            self._pongs.on_next(None)

    def on_close(
        self, connection: Connection, code: int | None, reason: str, error: BaseException | None
    ) -> None:
        if self._wire._observers:
            self._wire.on_next(WireEvent("close", None, connection.id, code))
        if self._running or connection is self._conn:  # after shutdown/give-up: nothing to handle
            self._post(self._on_closed, connection, code, reason, error)

    # =============================================================================================
    # control scheduler
    # =============================================================================================
    def _start(self) -> None:
        if self._running and self._state.value not in (ConnectionState.FAILED, ConnectionState.STOPPED):
            if self.ready:
                self._start_confirmed = True
                self._ready.set()
            return
        self._running = True
        self._starting = True
        self._attempts = 0
        self._connect(ConnectionState.CONNECTING)

    def _connect(self, state: ConnectionState) -> None:
        self._reconnect_timer = None
        if not self._running:
            return
        self._set_state(state)
        options = ConnectOptions(
            url=self._url,
            timeout=self._timeout,
            ssl_context=self._ssl_context,
            cookie_provider=self._cookie if self._rest is not None else None,
        )
        self._conn_opened = False
        connection = self._transport.open(options, self)
        self._conn = connection
        self._threads_to_join = [c for c in self._threads_to_join if not c.join(0)] + [connection]
        start = getattr(connection, "start", None)
        if callable(start):  # an unstarted connection: no callback can come before self._conn is set
            start()

    def _cookie(self) -> str | None:
        """Runs on the reader thread before the handshake: ``api={"session": "<id>"}`` from tickle."""
        session_id = session_id_from_tickle(self._rest.tickle())
        self._session_id = session_id
        return "api=" + orjson.dumps({"session": session_id}).decode()

    def _on_open(self, connection: Connection) -> None:
        if connection is not self._conn:
            connection.close()
            return
        self._conn_opened = True
        self._last_pong = self._last_heartbeat = self._now()
        self._set_state(ConnectionState.OPEN)
        scheduler = self._scheduler
        timers = self._connection_timers
        timers.add(self._periodic(self._ping_interval, lambda _: self._ping()))
        timers.add(
            silence(self._pongs, self._max_ping_interval, scheduler).subscribe(
                lambda _: self._watchdog_fired(connection, "no pong")
            )
        )
        # no greeting within timeout: treat like a failed attempt
        timers.add(scheduler.schedule_relative(self._timeout, lambda *_: self._session_timeout(connection)))

    def _session_timeout(self, connection: Connection) -> None:
        if connection is self._conn and self._state.value is ConnectionState.OPEN:
            self._report(ErrorKind.CONNECTION_ERROR, f"no session confirmation within {self._timeout:g} s")
            self._drop_connection(ConnectionState.RECONNECTING)
            self._schedule_reconnect(failed_attempt=True)

    def _ping(self) -> None:
        if self._conn is not None:
            self._conn.ping()

    def _watchdog_fired(self, connection: Connection, what: str) -> None:
        if connection is not self._conn or not self._running:
            return
        self._report(
            ErrorKind.WATCHDOG, f"{what} for {self._max_ping_interval:g} s: resetting the connection"
        )
        if self._restart_on_critical:
            self._hard_reset(True, what)
        else:
            self._hard_reset(False, what)

    def _on_closed(
        self, connection: Connection, code: int | None, reason: str, error: BaseException | None
    ) -> None:
        if connection is not self._conn:
            return  # an abandoned connection finishing
        was_open = self._conn_opened
        self._conn = None
        self._teardown_connection()
        if not self._running:
            self._set_state(ConnectionState.STOPPED)
            return
        if is_tls_verification_error(error):
            self._report(
                ErrorKind.TLS,
                f"TLS verification failed for {self._public_url}: {error}. Check cacert (the gateway's CA "
                "certificate) or pass cacert=False to disable verification.",
                error,
            )
            self._fail()
            return
        if was_open:
            detail = (
                f"code={code}"
                + (f" reason={reason!r}" if reason else "")
                + (f" error={error!r}" if error else "")
            )
            self._report(ErrorKind.CONNECTION_LOST, f"connection closed ({detail})", error)
            if not self._restart_on_close:
                self._running = False
                self._set_state(ConnectionState.STOPPED)
                return
            self._set_state(ConnectionState.RECONNECTING)
            self._schedule_reconnect(failed_attempt=False)
        else:
            self._report(
                ErrorKind.CONNECTION_ERROR, f"connect to {self._public_url} failed: {error!r}", error
            )
            self._set_state(ConnectionState.RECONNECTING)
            self._schedule_reconnect(failed_attempt=True)

    def _schedule_reconnect(self, failed_attempt: bool) -> None:
        if failed_attempt:
            self._attempts += 1
        limit = self._max_connection_attempts if self._starting else self._max_reconnect_attempts
        if limit is not None and self._attempts >= limit:
            self._report(ErrorKind.CONNECTION_ERROR, f"giving up after {self._attempts} connection attempts")
            self._fail()
            return
        delay = self._backoff(self._attempts)
        self._reconnect_timer = self._scheduler.schedule_relative(
            delay, lambda *_: self._connect(ConnectionState.RECONNECTING)
        )

    def _backoff(self, attempt: int) -> float:
        delay: float = min(self._backoff_max, self._backoff_first * (2 ** max(0, attempt - 1)))
        if self._jitter:
            delay *= 0.5 + 0.5 * self._random.random()
        return delay

    def _fail(self) -> None:
        self._running = False
        self._starting = False
        self._drop_connection(ConnectionState.FAILED)
        self._ready.set()

    def _give_up(self) -> None:
        if not self.ready:
            self._fail()

    def _disconnect(self) -> None:
        self._running = False
        self._starting = False
        self._drop_connection(ConnectionState.STOPPED)

    def _hard_reset(self, restart: bool, why: str) -> None:
        _LOGGER.info("hard reset (%s), restart=%s", why, restart)
        if not restart:
            self._disconnect()
            return
        if not self._running:
            return
        self._drop_connection(ConnectionState.RECONNECTING)
        self._connect(ConnectionState.RECONNECTING)

    def _drop_connection(self, state: ConnectionState) -> None:
        """Abandon the current connection (its late events are ignored) and stop every timer."""
        connection, self._conn = self._conn, None
        if connection is not None:
            connection.close(1000, "")
        if self._reconnect_timer is not None:
            self._reconnect_timer.dispose()
            self._reconnect_timer = None
        self._teardown_connection()
        self._set_state(state)

    def _teardown_connection(self) -> None:
        self._conn_opened = False
        self._connection_timers.dispose()
        self._connection_timers = CompositeDisposable()
        if self._auth_poll_timer is not None:
            self._auth_poll_timer.dispose()
            self._auth_poll_timer = None
        for sub in self._unsub_awaiting.values():
            sub.cancel_retry()
        self._unsub_awaiting.clear()
        self._server_ids.clear()
        self._end_session()

    def _end_session(self) -> None:
        """The session's timers stop and every subscription waits to be sent again (PENDING)."""
        self._session_timers.dispose()
        self._session_timers = CompositeDisposable()
        self._awaiting.clear()
        self._reset_subscriptions()

    def _reset_subscriptions(self) -> None:
        for sub in self._subs.values():
            sub.cancel_retry()
            sub.attempts = 0
            sub.set_status(SubscriptionStatus.PENDING)

    def _shutdown(self) -> None:
        if self.ready and self._conn is not None:
            for sub in list(self._subs.values()):
                if sub.status is SubscriptionStatus.ACTIVE:
                    self._send_unsubscribe(sub, None, sub.processor)
        for sub in list(self._subs.values()):
            sub.cancel_retry()
            sub.set_status(SubscriptionStatus.UNSUBSCRIBED)
        self._subs.clear()
        self._running = False
        self._starting = False
        self._drop_connection(ConnectionState.STOPPED)

    # -- session -------------------------------------------------------------------------------------
    def _on_control_message(self, message: Message) -> None:
        kind = message.kind
        data = message.data or {}
        if kind is MessageKind.MALFORMED:
            self._report(ErrorKind.MALFORMED_FRAME, f"malformed frame: {message.error}", payload=message)
        elif kind is MessageKind.UNKNOWN:
            self._report(ErrorKind.UNKNOWN_FRAME, f"unknown frame: {message.error}", payload=message)
        elif kind is MessageKind.ERROR:
            self._report(
                ErrorKind.GATEWAY_ERROR, f"gateway error: {self._redact(str(data))}", payload=message
            )
        elif kind is MessageKind.CONTROL:
            self._on_topicless(message)
        elif message.key is IbkrWsKey.AUTHENTICATION_STATUS:
            args = data.get("args")
            if isinstance(args, Mapping):
                if args.get("competing") is True:
                    self._report(
                        ErrorKind.COMPETING_SESSION,
                        "the gateway reports a competing session",
                        payload=message,
                    )
                authenticated = args.get("authenticated")
                if authenticated is True:
                    self._session_confirmed()
                elif authenticated is False:
                    self._auth_lost(args)
        elif message.key is IbkrWsKey.SYSTEM:
            if "success" in data:
                self._session_confirmed()
        elif message.key is IbkrWsKey.ACCOUNT_UPDATES:
            args = data.get("args")
            accounts = args.get("accounts") if isinstance(args, Mapping) else None
            if self._account_id and isinstance(accounts, list) and self._account_id not in accounts:
                _LOGGER.warning("the gateway's accounts do not include the configured account_id")
        elif message.key is IbkrWsKey.MARKET_HISTORY:
            server_id = data.get("serverId")
            conid = data.get("conid")
            target = message.target
            if server_id is not None:
                if conid is None and target:
                    conid = target.split("@", 1)[0]
                try:
                    self._server_ids.setdefault(IbkrWsKey.MARKET_HISTORY, {})[str(server_id)] = int(conid)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    pass
                channel = message.channel
                if channel is not None and not any(
                    sub.match_channel == channel for sub in self._subs.values()
                ):
                    # a reply to a history disposed before it came: free the gateway's slot now
                    self._send(rq.unsubscribe_market_history(str(server_id)))
                    self._server_ids.get(IbkrWsKey.MARKET_HISTORY, {}).pop(str(server_id), None)
                    return
            self._confirm_from_frame(message)

    def _on_topicless(self, message: Message) -> None:
        if message.key is IbkrWsKey.SYSTEM:  # the decoder recognised "waiting for session"
            if self._session_id and self._conn is not None:
                self._send(rq.session(self._session_id))
            return
        key = message.key
        target = message.target if key is IbkrWsKey.MARKET_HISTORY else None
        if key is IbkrWsKey.MARKET_HISTORY and target is not None:
            ids = self._server_ids.get(IbkrWsKey.MARKET_HISTORY, {})
            ids.pop(target, None)
        pending = self._unsub_awaiting.pop((key, target), None) if key is not None else None  # type: ignore[arg-type]
        if pending is None and key is not None:
            # confirmations of summary/ledger do not name the account: take the oldest waiting one
            for waiting_key in list(self._unsub_awaiting):
                if waiting_key[0] is key:
                    pending = self._unsub_awaiting.pop(waiting_key)
                    break
        if pending is not None:
            pending.cancel_retry()
            pending.set_status(SubscriptionStatus.UNSUBSCRIBED)

    def _session_confirmed(self) -> None:
        if self._conn is None:
            return
        if self._state.value is ConnectionState.AUTHENTICATED:
            return
        self._attempts = 0
        self._starting = False
        self._auth_poll_attempt = 0
        self._set_state(ConnectionState.AUTHENTICATED)
        self._start_confirmed = True
        self._ready.set()
        connection = self._conn
        scheduler = self._scheduler
        timers = self._session_timers
        heartbeats: Observable[Message] = self._subjects[IbkrWsKey.SYSTEM].pipe(ops.filter(_is_heartbeat))
        timers.add(heartbeats.subscribe(lambda _: self._note_heartbeat()))
        timers.add(
            silence(heartbeats, self._max_ping_interval, scheduler).subscribe(
                lambda _: self._watchdog_fired(connection, "no heartbeat")
            )
        )
        if self._tic_interval:
            timers.add(self._periodic(self._tic_interval, lambda _: self._send(rq.tic())))
        if self._md_renewal_interval:
            timers.add(self._periodic(self._md_renewal_interval, lambda _: self._renew_market_data()))
        if self._tickle_interval and self._rest is not None:
            timers.add(self._periodic(self._tickle_interval, lambda _: self._tickle()))
        for sub in list(self._subs.values()):
            self._send_subscribe(sub)

    def _note_heartbeat(self) -> None:
        self._last_heartbeat = self._now()

    def _auth_lost(self, args: Mapping[str, Any]) -> None:
        if self._state.value is ConnectionState.UNAUTHENTICATED:
            return
        self._report(
            ErrorKind.AUTHENTICATION,
            f"the gateway reports authenticated=false ({self._redact(str(dict(args)))})",
        )
        self._set_state(ConnectionState.UNAUTHENTICATED)
        self._end_session()
        self._auth_poll_attempt = 0
        self._schedule_auth_poll()

    def _schedule_auth_poll(self) -> None:
        self._auth_poll_attempt += 1
        delay = self._backoff(self._auth_poll_attempt)
        self._auth_poll_timer = self._scheduler.schedule_relative(delay, lambda *_: self._auth_poll())

    def _auth_poll(self) -> None:
        self._auth_poll_timer = None
        if self._state.value is not ConnectionState.UNAUTHENTICATED:
            return
        if self._rest is None or not callable(getattr(self._rest, "auth_status", None)):
            self._hard_reset(True, "authentication lost; no REST session to poll")
            return

        def poll() -> bool:
            status = self._rest.auth_status()
            status = getattr(status, "data", status)
            return bool(isinstance(status, Mapping) and status.get("authenticated"))

        def done(authenticated: bool) -> None:
            if self._state.value is not ConnectionState.UNAUTHENTICATED:
                return
            if authenticated:
                self._hard_reset(True, "authentication is back")
            else:
                self._schedule_auth_poll()

        def failed(exc: BaseException) -> None:
            self._report(ErrorKind.REST_ERROR, f"auth status poll failed: {exc}", exc)
            if self._state.value is ConnectionState.UNAUTHENTICATED:
                self._schedule_auth_poll()

        self._run_blocking(poll, done, failed)

    def _tickle(self) -> None:
        def failed(exc: BaseException) -> None:
            self._report(ErrorKind.REST_ERROR, f"tickle failed: {exc}", exc)

        self._run_blocking(self._rest.tickle, lambda _: None, failed)

    # -- subscriptions --------------------------------------------------------------------------------
    def _subscribe(
        self, channel: str, data: dict[str, Any] | None, confirm: bool, processor: SubscriptionProcessor
    ) -> Subscription:
        server = self._subs.get(channel)
        if server is None:
            server = SubscriptionState(channel, data, confirm, processor)
            self._subs[channel] = server
            send = True
        else:
            # the same request on a live channel only adds a handle; a different one is re-sent
            send = (
                data != server.data
                or processor is not server.processor
                or confirm != server.needs_confirmation
                or server.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)
            )
            if send:
                server.data = data
                server.needs_confirmation = confirm
                server.processor = processor
                server.cancel_retry()
                server.attempts = 0
                if server.status is not SubscriptionStatus.ACTIVE:
                    server.set_status(SubscriptionStatus.PENDING)
        handle = Subscription(self, server)
        server.handles.append(handle)
        if send and self.ready:
            self._send_subscribe(server)
        return handle

    def _send_subscribe(self, sub: SubscriptionState) -> None:
        if (
            sub.key is IbkrWsKey.ORDERS
            and self._rest is not None
            and callable(getattr(self._rest, "live_orders", None))
        ):
            # protocol §3.4: query live orders (force, then plain) before sor, or sor may stay mute
            def preflight() -> None:
                self._rest.live_orders(force=True)
                self._rest.live_orders()

            connection = self._conn

            def send() -> None:
                if self._conn is connection:  # else the new connection's own pre-flight sends it
                    self._send_subscribe_now(sub)

            def failed(exc: BaseException) -> None:
                self._report(ErrorKind.REST_ERROR, f"live orders pre-flight failed: {exc}", exc)
                send()

            self._run_blocking(preflight, lambda _: send(), failed)
            return
        self._send_subscribe_now(sub)

    def _send_subscribe_now(self, sub: SubscriptionState) -> None:
        if self._subs.get(sub.channel) is not sub or not self.ready:
            return
        try:
            payload = sub.processor.make_subscribe_payload(sub.channel, sub.data)
        except Exception as exc:  # data changed by modify_subscription, a failing custom processor
            sub.cancel_retry()
            self._awaiting.pop(sub.match_channel, None)
            sub.set_status(SubscriptionStatus.FAILED)
            self._report(
                ErrorKind.SUBSCRIPTION_FAILED,
                f"cannot build the subscribe payload of {sub.channel!r}: {exc}",
                exc,
                payload=sub,
            )
            return
        if not self._send(payload):
            return
        if not sub.needs_confirmation:
            sub.set_status(SubscriptionStatus.ACTIVE)
            return
        sub.attempts += 1
        self._awaiting[sub.match_channel] = sub
        sub.cancel_retry()
        sub.retry_timer = self._scheduler.schedule_relative(
            self._subscription_timeout, lambda *_: self._subscription_timed_out(sub)
        )

    def _subscription_timed_out(self, sub: SubscriptionState) -> None:
        sub.retry_timer = None
        if self._subs.get(sub.channel) is not sub or sub.status is not SubscriptionStatus.PENDING:
            return
        if sub.attempts < self._subscription_retries:
            _LOGGER.info(
                "no confirmation for %s; re-sending (%d/%d)",
                self._for_log(sub.channel),
                sub.attempts + 1,
                self._subscription_retries,
            )
            self._send_subscribe_now(sub)
            return
        self._report(
            ErrorKind.SUBSCRIPTION_FAILED,
            f"subscription {sub.channel!r} not confirmed after {sub.attempts} attempts "
            f"of {self._subscription_timeout:g} s",
            payload=sub,
        )
        # FAILED after the report (whoever waits on the status finds the event), but still listened
        # for: data that comes late on this session makes it ACTIVE
        sub.set_status(SubscriptionStatus.FAILED)

    def _confirm_from_frame(self, message: Message) -> None:
        channel = message.channel
        if channel is None:
            return
        sub = self._awaiting.pop(channel, None)
        if sub is None:
            return
        sub.cancel_retry()
        if self._subs.get(sub.channel) is sub:
            sub.set_status(SubscriptionStatus.ACTIVE)

    def _recreate_subscriptions(self) -> None:
        self._reset_subscriptions()
        if self.ready:
            for sub in list(self._subs.values()):
                self._send_subscribe(sub)

    def _renew_market_data(self) -> None:
        for sub in list(self._subs.values()):
            if sub.key is IbkrWsKey.MARKET_DATA and sub.status is SubscriptionStatus.ACTIVE:
                self._send(sub.processor.make_subscribe_payload(sub.channel, sub.data))

    def _dispose_subscription(self, handle: Subscription) -> None:
        self._post(self._release, handle)

    def _release(self, handle: Subscription) -> None:
        if handle.release():  # the last handle on its server subscription
            self._dispose_now(handle.server)

    def _dispose_now(self, sub: SubscriptionState) -> None:
        if self._subs.get(sub.channel) is not sub:
            return  # already disposed (or replaced): the unsubscribe went out once
        del self._subs[sub.channel]
        sub.cancel_retry()
        self._awaiting.pop(sub.match_channel, None)
        if self.ready:
            self._send_unsubscribe(sub, None, sub.processor)
        sub.set_status(SubscriptionStatus.UNSUBSCRIBED)

    def _unsubscribe(
        self,
        channel: str,
        data: dict[str, Any] | None,
        confirm: bool,
        processor: SubscriptionProcessor,
        finish: Callable[[bool], None],
    ) -> None:
        sub = self._subs.pop(channel, None)
        if sub is None:
            sub = SubscriptionState(channel, data, False, processor)
        else:
            sub.cancel_retry()
            self._awaiting.pop(sub.match_channel, None)
        if not self.ready:
            sub.set_status(SubscriptionStatus.UNSUBSCRIBED)
            finish(True)
            return
        sent = self._send_unsubscribe(sub, data, processor)
        if not confirm or not sent:
            sub.set_status(SubscriptionStatus.UNSUBSCRIBED)
            finish(sent)
            return
        sub.set_status(SubscriptionStatus.PENDING)
        target = None
        if sub.key is IbkrWsKey.MARKET_HISTORY:
            target = next(iter(self._history_server_ids(sub)), None)
        self._unsub_awaiting[(sub.key, target)] = sub

        def settled(status: SubscriptionStatus) -> None:
            if status is SubscriptionStatus.UNSUBSCRIBED:
                finish(True)

        sub.on_status(settled)

        def timed_out() -> None:
            if self._unsub_awaiting.get((sub.key, target)) is sub:
                del self._unsub_awaiting[(sub.key, target)]
                self._report(
                    ErrorKind.UNSUBSCRIPTION_FAILED, f"unsubscribe of {channel!r} not confirmed", payload=sub
                )
                sub.set_status(SubscriptionStatus.UNSUBSCRIBED)
                finish(False)

        sub.retry_timer = self._scheduler.schedule_relative(
            self._subscription_timeout * self._subscription_retries, lambda *_: timed_out()
        )

    def _send_unsubscribe(
        self, sub: SubscriptionState, data: dict[str, Any] | None, processor: SubscriptionProcessor
    ) -> bool:
        for payload in self._unsubscribe_payloads(sub, data, processor):
            if not self._send(payload):
                return False
        return True

    def _history_server_ids(self, sub: SubscriptionState) -> list[str]:
        """The gateway's server ids of a market history subscription (learnt from its ``smh`` replies)."""
        conid = sub.match_channel.partition("+")[2]
        ids = self._server_ids.get(IbkrWsKey.MARKET_HISTORY, {})
        return [sid for sid, c in ids.items() if str(c) == conid]

    def _unsubscribe_payloads(
        self, sub: SubscriptionState, data: dict[str, Any] | None, processor: SubscriptionProcessor
    ) -> list[str]:
        """The ``u...`` payloads; with IBKR's processor, the protocol's irregular forms (§2)."""
        if type(processor) is IbkrSubscriptionProcessor:
            key = sub.key
            target = sub.match_channel.partition("+")[2]
            if key is IbkrWsKey.MARKET_HISTORY:
                return [rq.unsubscribe_market_history(sid) for sid in self._history_server_ids(sub)]
            if key is IbkrWsKey.TRADES:
                return [rq.unsubscribe_trades()]
            if key is IbkrWsKey.PRICE_LADDER and target:
                return [rq.unsubscribe_price_ladder(target.split("+", 1)[0])]
        return [processor.make_unsubscribe_payload(sub.channel, data)]

    # =============================================================================================
    # helpers
    # =============================================================================================
    def _send(self, payload: str) -> bool:
        connection = self._conn
        if connection is None:
            return False
        if self._log_raw:
            _LOGGER.debug("send: %s", self._for_log(payload))
        try:
            connection.send(payload)
        except ConnectionClosedError as exc:
            _LOGGER.debug("send failed: %s", exc)
            return False
        if self._wire._observers:
            self._wire.on_next(WireEvent("out", payload, connection.id))
        return True

    def _redact(self, data: bytes | str) -> str:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if self._session_id:
            text = text.replace(self._session_id, "<session>")
        return text

    def _for_log(self, data: bytes | str) -> str:
        """Text for the log: session id redacted, account ids masked."""
        return mask_account_ids(self._redact(data), (self._account_id,))

    def _set_state(self, state: ConnectionState) -> None:
        if self._state.value is not state:
            _LOGGER.info("state: %s", state.value)
            self._state.on_next(state)

    def _report(
        self, kind: ErrorKind, message: str, exception: BaseException | None = None, payload: Any = None
    ) -> None:
        _LOGGER.warning("%s: %s", kind.value, self._for_log(message))
        self._errors.on_next(ErrorEvent(kind, message, exception, payload))

    def report_error(self, exception: BaseException, payload: Any = None) -> None:
        """Put an exception raised by user code on another thread (an operator, a callback) on
        ``client.errors`` as an OBSERVER_ERROR, as the client does for observers it calls itself."""
        self._on_observer_error(exception, payload)

    def _on_observer_error(self, exc: BaseException, value: Any) -> None:
        _LOGGER.error("an observer raised %r; the stream goes on", exc)
        self._errors.on_next(ErrorEvent(ErrorKind.OBSERVER_ERROR, f"an observer raised {exc!r}", exc, value))

    @staticmethod
    def _on_errors_observer_error(exc: BaseException, value: Any) -> None:
        _LOGGER.error(
            "an observer of client.errors raised %r while handling %s", exc, mask_account_ids(str(value))
        )

    def _now(self) -> float:
        return self._scheduler.now.timestamp()

    def _periodic(self, period: float, action: Callable[[Any], Any]) -> abc.DisposableBase:
        scheduler = cast(abc.PeriodicSchedulerBase, self._scheduler)
        return scheduler.schedule_periodic(period, action)

    def _new_scheduler(self) -> EventLoopScheduler:
        return EventLoopScheduler(exit_if_empty=False)

    def _dispose_owned_scheduler(self, replace: bool = True) -> None:
        """End the control thread (abandoning its timers); with ``replace`` a fresh one, started lazily."""
        if not self._owns_scheduler:
            return
        old = self._scheduler
        assert isinstance(old, EventLoopScheduler)
        if replace:
            self._scheduler = self._new_scheduler()
        thread = getattr(old, "_thread", None)
        old.dispose()
        if isinstance(thread, threading.Thread) and thread is not threading.current_thread():
            thread.join(2.0)

    def _join_connections(self, timeout: float) -> None:
        for connection in self._threads_to_join:
            connection.join(timeout)
        self._threads_to_join = [c for c in self._threads_to_join if not c.join(0)]

    def _on_control_thread(self) -> bool:
        return self._control_ident == threading.get_ident()

    def _should_wait(self, wait: bool | None) -> bool:
        if self._virtual or self._on_control_thread():
            return False
        if wait is None:
            return not threading.current_thread().name.startswith("rxibkr-reader-")
        return wait

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the control scheduler (inline in virtual time or when already there)."""
        if self._virtual or self._on_control_thread():
            self._run_control(fn, args)
            return
        try:
            self._scheduler.schedule(lambda _s, _st: self._run_control(fn, args))
        except Exception as exc:  # the scheduler is disposed: the client is shut down
            _LOGGER.debug("dropped control action %s: %r", getattr(fn, "__name__", fn), exc)

    def _run_control(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        self._control_ident = threading.get_ident() if not self._virtual else None
        try:
            return fn(*args)
        except Exception as exc:  # never kill the control thread
            _LOGGER.exception("control action %s failed", getattr(fn, "__name__", fn))
            self._errors.on_next(
                ErrorEvent(ErrorKind.OBSERVER_ERROR, f"internal error in {fn!r}: {exc!r}", exc)
            )
            return None

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the control scheduler and return its result (exceptions re-raised here)."""
        if self._virtual or self._on_control_thread():
            return fn(*args)
        done = threading.Event()
        box: list[Any] = []

        def run(_s: Any, _st: Any) -> None:
            self._control_ident = threading.get_ident()
            try:
                box.append((True, fn(*args)))
            except BaseException as exc:
                box.append((False, exc))
            finally:
                done.set()

        try:
            self._scheduler.schedule(run)
        except Exception:
            return fn(*args)  # no control thread any more (shut down): run here
        if not done.wait(max(10.0, self._timeout * 2)):
            raise TimeoutError(f"the control scheduler did not run {getattr(fn, '__name__', fn)} in time")
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def _run_blocking(
        self,
        fn: Callable[[], T],
        on_result: Callable[[T], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Run a blocking call (REST) off the control thread; its outcome comes back to the control thread."""
        if self._virtual:
            try:
                result = fn()
            except Exception as exc:
                on_error(exc)
            else:
                on_result(result)
            return
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="rxibkr-rest"
            )

        def done(future: concurrent.futures.Future[T]) -> None:
            exc = future.exception()
            if exc is not None:
                self._post(on_error, exc)
            else:
                self._post(on_result, future.result())

        try:
            self._executor.submit(fn).add_done_callback(done)
        except RuntimeError:  # executor shut down
            pass

    # ---- typed streams (rxibkr.streams.hubs): delegating methods go here --------------------------------
    # Typed, parsed, merged streams per topic: cold and reference-counted (the first observer
    # subscribes, the last disposal unsubscribes), kept across reconnects. See rxibkr.streams.hubs.
    def market_data(
        self, conid: int | str, fields: str | int | Iterable[str | int] | None = None
    ) -> Observable[MarketDataUpdate]:
        """Parsed market-data updates of one contract (changed fields only; merge them with
        ``rxibkr.streams.operators.snapshots()``). One ``smd`` per conid, widened to the union of the
        observers' ``fields`` (ids or names; None: a quote set). See ``TypedStreams.market_data``."""
        from rxibkr.streams import streams_of

        return streams_of(self).market_data(conid, fields)

    def market_history(
        self,
        conid: int | str,
        period: str = "1d",
        bar: str = "5min",
        exchange: str | None = None,
        outside_rth: bool = False,
        source: str = "trades",
    ) -> Observable[Bar]:
        """Historical bars (``smh``); at most five concurrent histories (a sixth raises
        ``HistoryLimitError``). See ``TypedStreams.market_history``."""
        from rxibkr.streams import streams_of

        return streams_of(self).market_history(conid, period, bar, exchange, outside_rth, source)

    def orders(self, filters: str | Iterable[str] | None = None) -> Observable[OrderUpdate]:
        """Live orders: the REST snapshot, then ``sor`` deltas merged into full order states;
        ``filters``: statuses to keep. See ``TypedStreams.orders``."""
        from rxibkr.streams import streams_of

        return streams_of(self).orders(filters)

    def trades(self, days: int | None = None, realtime_only: bool = False) -> Observable[Execution]:
        """Executions (``str``) deduplicated by ``execution_id``, re-emitted when the commission
        arrives. See ``TypedStreams.trades``."""
        from rxibkr.streams import streams_of

        return streams_of(self).trades(days, realtime_only)

    def pnl(self) -> Observable[PnlRow]:
        """P&L rows (``spl``), merged per ``<account>.Core`` key. See ``TypedStreams.pnl``."""
        from rxibkr.streams import streams_of

        return streams_of(self).pnl()

    def account_summary(
        self,
        account: str | None = None,
        keys: str | Iterable[str] | None = None,
        fields: str | Iterable[str] | None = None,
    ) -> Observable[SummaryItem]:
        """Account summary items (``ssd``) of ``account`` (default ``account_id``).
        See ``TypedStreams.account_summary``."""
        from rxibkr.streams import streams_of

        return streams_of(self).account_summary(account, keys, fields)

    def ledger(self, account: str | None = None) -> Observable[LedgerRow]:
        """Ledger rows (``sld``) per currency, blank rows merged. See ``TypedStreams.ledger``."""
        from rxibkr.streams import streams_of

        return streams_of(self).ledger(account)

    def price_ladder(
        self, conid: int | str, exchange: str | None = None, account: str | None = None
    ) -> Observable[Ladder]:
        """BookTrader ladders (``sbd``); ``account`` defaults to ``account_id`` (ValueError when
        neither is known). See ``TypedStreams.price_ladder``."""
        from rxibkr.streams import streams_of

        return streams_of(self).price_ladder(conid, exchange, account)

    def notifications(self) -> Observable[Notification]:
        """Unsolicited ``ntf`` notices and prompts, one per item."""
        from rxibkr.streams import streams_of

        return streams_of(self).notifications()

    def bulletins(self) -> Observable[Bulletin]:
        """Unsolicited ``blt`` bulletins, one per item."""
        from rxibkr.streams import streams_of

        return streams_of(self).bulletins()

    def auth_status(self) -> Observable[AuthStatus]:
        """Every ``sts`` frame, parsed."""
        from rxibkr.streams import streams_of

        return streams_of(self).auth_status()

    # ---- end typed streams ------------------------------------------------------------------------

    # ---- record / replay (rxibkr.record): delegating methods go here --------
    def record(self, path: str | os.PathLike[str]) -> Recorder:
        """Append every frame in and out, and connection open/close events, to the JSON Lines file ``path``.

        Returns an ``rxibkr.record.Recorder`` (a Disposable): dispose it to stop; the file is flushed and
        closed when ``dispose()`` returns. Session ids are redacted. Replay with
        ``IbkrWsClient(transport=rxibkr.record.ReplayTransport(path))``. See ``rxibkr.record``.
        """
        from rxibkr.record import (
            Recorder,  # here: rxibkr.record.recording imports the testing kit, which imports us
        )

        return Recorder(self, path)

    # ---- end record / replay ----------------------------------------------------------------------

    def __enter__(self) -> IbkrWsClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"IbkrWsClient({self._public_url!r}, state={self._state.value.value})"


__all__ = ["UNDEFINED", "IbkrWsClient", "SessionError", "WireEvent", "mask_account_ids"]
