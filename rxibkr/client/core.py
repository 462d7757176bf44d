"""``IbkrWsClient``: the reactive client core, IBind's API included.

A facade over three parts (see DESIGN.md): the pure session machine (:mod:`rxibkr.session`: the
whole control logic, events in, actions out), the driver (:mod:`rxibkr.client.driver`: runs the
machine on one control loop and executes its actions) and one reader per connection (``_Reader``
below: decodes frames and delivers them straight to the per-key subjects, the hot path).

Threads: the reader thread of the current connection delivers data; the control loop (a
``ControlScheduler`` thread per client unless a scheduler is passed in) is the only place session
state changes; callers' threads only post events to it and never wait for it while holding a
library lock. With a virtual-time scheduler (``TestScheduler``) the control loop runs inline, so
tests are deterministic.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from reactivex import Observable, abc
from reactivex.scheduler.virtualtimescheduler import VirtualTimeScheduler

from rxibkr.auth import oauth_client_options
from rxibkr.client import config as cfg
from rxibkr.client.driver import Driver
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.client.queues import IbindQueues, QueueAccessor, QueueController, queued_keys
from rxibkr.client.scheduler import ControlScheduler
from rxibkr.client.subjects import HotSubject, StateSubject
from rxibkr.client.subscriptions import (
    Subscription,
    SubscriptionState,
    SubscriptionStatus,
    channel_stream,
    split_channel,
)
from rxibkr.io.failures import classify_connect_error
from rxibkr.io.rest import IbkrSession, SessionError, session_id_from_tickle
from rxibkr.io.tls import TlsPolicy, describe_tls_failure
from rxibkr.io.transport import Connection, Transport, WebSocketTransport, is_tls_verification_error
from rxibkr.protocol import (
    IbkrSubscriptionProcessor,
    IbkrWsKey,
    Message,
    MessageKind,
    SubscriptionProcessor,
    decode,
)
from rxibkr.session import events as ev
from rxibkr.session.machine import SessionMachine, Settings
from rxibkr.streams.hubs import streams_of

if TYPE_CHECKING:
    from rxibkr.record import Recorder  # rxibkr.record is a layer above the client
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


class WireEvent(NamedTuple):
    """What crossed the wire: ``direction`` is "in", "out", "open" or "close"; ``data`` the frame."""

    direction: str
    data: bytes | str | None
    connection: int
    code: int | None = None  # the close code, for "close" events
    initiator: str | None = None  # for "close" events: "client", "server", or None (unknown, a drop)


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


class IbkrWsClient:
    """A ReactiveX WebSocket client for the IBKR Client Portal gateway, IBind-compatible.

    The seed's parameters keep the seed's meanings; those whose IBind default comes from
    ``var.IBIND_*`` are read from ``RXIBKR_*`` environment variables when the client is constructed:
    ``RXIBKR_ACCOUNT_ID``, ``RXIBKR_WS_URL``, ``RXIBKR_WS_LOG_RAW_MESSAGES``,
    ``RXIBKR_WS_PING_INTERVAL`` (10),
    ``RXIBKR_WS_MAX_PING_INTERVAL`` (20), ``RXIBKR_WS_TIMEOUT`` (5), ``RXIBKR_CACERT`` (False),
    ``RXIBKR_WS_SUBSCRIPTION_RETRIES`` (5), ``RXIBKR_WS_SUBSCRIPTION_TIMEOUT`` (2).

    Keyword-only extras: ``scheduler`` (the control scheduler; default one ``ControlScheduler``
    thread per client), ``transport`` (replaces the websocket-client transport: fakes, replay),
    ``start``,
    ``tic_interval`` (60 s, ``tic`` on the socket), ``tickle_interval`` (60 s, REST tickle),
    ``md_renewal_interval`` (540 s: ``smd`` re-sent before the gateway's 10-minute expiry),
    ``reconnect_backoff`` ((first, max) seconds), ``max_reconnect_attempts`` (None: keep trying),
    ``oauth`` (connect to IBKR without a gateway: an ``rxibkr.auth`` OAuth 1.0a or 2.0 config, a
    mapping, or a signed session; it supplies ``url``, ``ibkr_client`` and ``cacert`` unless given).
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
        cacert: str | bool | cfg.Unset | None = cfg.ENV,
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
        oauth: Any = None,
    ) -> None:
        if oauth is not None:  # no gateway: IBKR's servers over OAuth 1.0a or 2.0 (rxibkr.auth)
            options = oauth_client_options(oauth, timeout=cfg.float_or_env(timeout, "RXIBKR_WS_TIMEOUT", 5.0))
            url = options["url"] if url is cfg.ENV or url is None else url
            ibkr_client = options["ibkr_client"] if ibkr_client is None else ibkr_client
            cacert = options["cacert"] if cacert is cfg.ENV else cacert
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
        cacert_value = cfg.tls_cacert_or_env(cacert)
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
        # TLS (docs/security.md): a CA path verifies against it; None (the default) pins a loopback
        # gateway's certificate on first use and verifies other hosts against the system's CAs
        self._tls = TlsPolicy.for_url(self._url, cacert_value) if self._url.startswith("wss://") else None
        self._ssl_context = self._tls.ssl_context() if self._tls is not None else None

        # REST session: given, or our own; none when a custom transport is given without one
        if ibkr_client is None and transport is None:
            scheme = "https" if self._url.startswith("wss://") else "http"
            netloc = self._url.split("://", 1)[1].split("/", 1)[0]
            ibkr_client = IbkrSession(f"{scheme}://{netloc}/v1/api", tls=self._tls, timeout=self._timeout)
        if ibkr_client is not None and not callable(getattr(ibkr_client, "tickle", None)):
            raise TypeError(
                "ibkr_client: expected an object with a tickle() method (IbkrSession or IBind's IbkrClient)"
            )
        self._rest = ibkr_client
        self._transport: Transport = transport if transport is not None else WebSocketTransport()
        self._processor = SubscriptionProcessorClass()

        # -- control loop -------------------------------------------------------------------------
        self._owns_scheduler = scheduler is None
        self._scheduler: abc.SchedulerBase = scheduler if scheduler is not None else ControlScheduler()
        self._virtual = isinstance(self._scheduler, VirtualTimeScheduler)
        settings = Settings(
            url=self._public_url,
            account_id=self._account_id,
            ping_interval=self._ping_interval,
            max_ping_interval=self._max_ping_interval,
            timeout=self._timeout,
            restart_on_close=restart_on_close,
            restart_on_critical=restart_on_critical,
            max_connection_attempts=max_connection_attempts,
            max_reconnect_attempts=max_reconnect_attempts,
            subscription_retries=self._subscription_retries,
            subscription_timeout=self._subscription_timeout,
            tic_interval=tic_interval,
            tickle_interval=tickle_interval,
            md_renewal_interval=md_renewal_interval,
            backoff_first=self._backoff_first,
            backoff_max=self._backoff_max,
            jitter=self._jitter,
            has_rest=self._rest is not None,
            has_rest_orders=self._rest is not None and callable(getattr(self._rest, "live_orders", None)),
        )
        self._machine = SessionMachine(settings, self._random.random)
        self._driver = Driver(self, self._machine)

        # -- streams --------------------------------------------------------------------------------
        self._errors: HotSubject[ErrorEvent] = HotSubject(self._on_errors_observer_error)
        self._frames: HotSubject[bytes | str] = HotSubject(self._on_observer_error, self._retap)
        self._state: StateSubject[ConnectionState] = StateSubject(
            ConnectionState.STOPPED, self._on_observer_error
        )
        self._subjects: dict[IbkrWsKey, HotSubject[Message]] = {
            key: HotSubject(self._on_observer_error) for key in IbkrWsKey
        }
        self._market_data_subject = self._subjects[IbkrWsKey.MARKET_DATA]
        self._pongs: HotSubject[None] = HotSubject(self._on_observer_error)
        self._wire: HotSubject[WireEvent] = HotSubject(self._on_observer_error, self._retap)
        self._retap()

        # -- queues (seed): all of IBind's queue logic (docs/ibind.md) ------------------------------
        self._queues = IbindQueues(
            QueueControllerClass, queued_keys(unsolicited_channels_to_be_queued), self._report_queue
        )
        self._queues_put = self._queues.put
        # the reader appends market data to this queue itself and wakes its consumer once per batch
        self._md_queue = self._queues.md_queue

        # -- shared with reader threads (plain reads and atomic dict operations) --------------------
        self._reader: _Reader | None = None  # the connection that delivers; others are abandoned
        self._awaiting: dict[str, bool] = {}  # channels whose first data confirms them
        self._session_id: str | None = None
        self._last_pong = 0.0
        self._last_heartbeat = 0.0
        self._last_error: ErrorEvent | None = None

        # -- the registry as callers see it (the machine keeps its own; both change in one order) ---
        self._registry_lock = threading.Lock()  # never held while user code runs
        self._channels: dict[str, SubscriptionState] = {}
        self._shut_down = False
        self._start_lock = threading.Lock()
        self._start_waiters: list[list[Any]] = []  # [event, result] per waiting start()

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
        Close events say who closed (``initiator``: "client" or "server") and the code. Session ids
        are not redacted here: whoever persists these must (``rxibkr.record`` does).
        """
        return self._wire

    @property
    def last_error(self) -> ErrorEvent | None:
        """The last problem the client reported on ``errors`` (None before any): after ``start()``
        returned False, why (a refused port, a TLS failure, an HTTP 404 on the upgrade, ...)."""
        return self._last_error

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
        key, _ = split_channel(channel)
        return channel_stream(self._subjects[key], lambda: self.subscribe(channel, data, wait=False), channel)

    # =============================================================================================
    # seed API: lifecycle
    # =============================================================================================
    @property
    def running(self) -> bool:
        return self._machine.running

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

        Bounded by ``timeout`` x ``max_connection_attempts``; a failure no retry can fix (a refused
        port, an unknown host, TLS, an HTTP 4xx on the upgrade) ends it at once, with the reason on
        ``errors`` and in ``last_error``; ``shutdown()`` or ``disconnect()`` from any thread releases
        it at once (False). When it gives up, the connection is closed and no
        thread of the client is left. On the client's own threads and with a virtual-time scheduler
        it does not wait: it returns whether the session is already confirmed.
        """
        if self._shut_down:
            raise RuntimeError("this client was shut down; create a new one")
        if self._virtual or self._driver.on_control_thread():
            self._driver.post(ev.Start())
            return self.ready
        waiter: list[Any] = [threading.Event(), False]
        with self._start_lock:
            self._start_waiters.append(waiter)
        self._driver.post(ev.Start())
        bound = self._timeout * self._max_connection_attempts
        waiter[0].wait(bound)
        with self._start_lock:
            if waiter in self._start_waiters:
                self._start_waiters.remove(waiter)
        if self._shut_down:  # shut down meanwhile (perhaps by an observer): return once it is done
            self._driver.finished.wait(max(10.0, self._timeout * 2))
        if waiter[1]:  # confirmed, even if the connection has dropped again since
            return True
        if not waiter[0].is_set():
            _LOGGER.warning("start(): no confirmed session within %.1f s; giving up", bound)
            self._driver.post(ev.GiveUp())
        self._sync()
        if not self._shut_down and not self._machine.running:
            self._retire_control_thread()
        return False

    def _on_start_done(self, ok: bool) -> None:
        with self._start_lock:
            waiters, self._start_waiters = self._start_waiters, []
        for waiter in waiters:
            waiter[1] = ok
            waiter[0].set()

    def shutdown(self) -> None:
        """Unsubscribe what is subscribed, close, complete the streams and end the client's threads.

        Safe from any thread, an observer on the control loop included (the client then finishes
        right after that observer returns)."""
        with self._registry_lock:
            if self._shut_down:
                return
            self._shut_down = True
        self._driver.post(ev.Stop(shutdown=True))
        if self._virtual or self._driver.on_control_thread():
            return
        if not self._driver.finished.wait(max(10.0, self._timeout * 2)):
            _LOGGER.warning("shutdown(): the control loop did not finish in time")
            self._finish()
        thread = self._driver.control_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)
        self._join_readers(2.0)

    def _finish(self) -> None:
        """The last step of a shutdown: complete the streams, end the control loop."""
        for key_subject in self._subjects.values():
            key_subject.complete()
        self._frames.complete()
        self._pongs.complete()
        self._wire.complete()
        self._state.complete()
        self._errors.complete()
        self._driver.shutdown_executor()
        if self._owns_scheduler and isinstance(self._scheduler, ControlScheduler):
            self._scheduler.dispose()  # the loop ends after the current action
        if isinstance(self._rest, IbkrSession):
            self._rest.close()

    def disconnect(self) -> None:
        """Close the connection, without reconnecting. ``start()`` connects again."""
        self._driver.post(ev.Stop(shutdown=False))
        self._sync()

    def hard_reset(self, restart: bool = False) -> None:
        """Force the connection closed, and reconnect when ``restart``. Safe from any thread."""
        _LOGGER.info("hard reset requested, restart=%s", restart)
        self._driver.post(ev.HardReset(restart, "hard_reset() called"))

    def check_ping(self) -> bool:
        """True if the last pong is within ``max_ping_interval`` (or not connected); else hard reset."""
        if not self._machine.conn_opened:
            return True
        if self._now() - self._last_pong <= self._max_ping_interval:
            return True
        self.hard_reset(restart=True)
        return False

    def check_health(self) -> bool:
        """Ping and heartbeat both within ``max_ping_interval``; otherwise a hard reset, and False.

        The watchdogs already do this continuously; calling it in a loop (as IBind users must) is not needed.
        """
        if not self._machine.running:
            return False
        if not self._machine.conn_opened:
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
        ``wait=None`` waits except on the client's own threads and in virtual time. Never blocks on
        the control loop: safe from any observer or callback.
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
        with self._registry_lock:
            if self._shut_down:
                raise RuntimeError("this client was shut down; create a new one")
            state = self._channels.get(channel)
            if state is None:
                state = self._channels[channel] = SubscriptionState(channel, data, confirm, processor)
            else:
                state.needs_confirmation = confirm
                state.processor = processor
            handle = Subscription(self, state)
            state.add_request(handle, data)
            self._driver.enqueue(ev.Subscribe(state, handle, channel, data, confirm, processor))
        self._driver.kick()
        if self._should_wait(wait) and handle.status is SubscriptionStatus.PENDING and self._machine.running:
            handle.wait(self._subscription_timeout * (self._subscription_retries + 1))
        return handle

    def _release(self, handle: Subscription) -> None:
        """A handle's ``dispose()``: the last handle on its channel ends the server subscription."""
        with self._registry_lock:
            if not handle.mark_released():
                return
            state = handle.server
            if state.remove_request(handle) and self._channels.get(state.channel) is state:
                del self._channels[state.channel]
            self._driver.enqueue(ev.Release(state, handle, state.channel))
        self._driver.kick()

    def unsubscribe(
        self,
        channel: str,
        data: dict[str, Any] | None = None,
        needs_confirmation: bool = False,
        subscription_processor: SubscriptionProcessor | None = None,
    ) -> bool:
        """Unsubscribe from ``channel``; with ``needs_confirmation`` wait for the gateway's confirmation."""
        split_channel(channel)
        processor = subscription_processor if subscription_processor is not None else self._processor
        done = threading.Event()
        result: list[bool] = []

        def finish(ok: bool) -> None:
            result.append(ok)
            done.set()

        with self._registry_lock:
            state = self._channels.pop(channel, None)
            if state is None:
                state = SubscriptionState(channel, data, False, processor)
            self._driver.enqueue(
                ev.Unsubscribe(state, channel, data, bool(needs_confirmation), processor, finish)
            )
        self._driver.kick()
        if not done.is_set() and self._should_wait(None):
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
        with self._registry_lock:
            state = self._channels.get(channel)
            if state is None:
                raise KeyError(f"no subscription for channel {channel!r}")
            if data is not UNDEFINED:
                state.data = data
            if needs_confirmation is not UNDEFINED:
                state.needs_confirmation = bool(needs_confirmation)
            if subscription_processor is not UNDEFINED:
                state.processor = subscription_processor
            self._driver.enqueue(
                ev.Modify(
                    channel,
                    status=None if status is UNDEFINED else bool(status),
                    data=None if data is UNDEFINED else data,
                    set_data=data is not UNDEFINED,
                    confirm=None if needs_confirmation is UNDEFINED else bool(needs_confirmation),
                    processor=None if subscription_processor is UNDEFINED else subscription_processor,
                )
            )
        self._driver.kick()
        self._sync()

    def recreate_subscriptions(self) -> None:
        """Send every stored subscription again (e.g. after a reset)."""
        self._driver.post(ev.Recreate())

    def has_subscription(self, channel: str) -> bool:
        return channel in self._channels

    def is_subscription_active(self, channel: str) -> bool:
        state = self._channels.get(channel)
        return state is not None and state.active

    @property
    def subscriptions(self) -> dict[str, SubscriptionState]:
        """A snapshot of the server subscriptions by channel (each shared by its handles)."""
        with self._registry_lock:
            return dict(self._channels)

    def server_ids(self, key: IbkrWsKey) -> dict[str, int] | None:
        """Server ids by which the gateway knows this key's subscriptions (market history), or None."""
        if key is not IbkrWsKey.MARKET_HISTORY:
            return None
        ids = self._machine.server_ids
        return dict(ids) if ids else None

    def _on_status(self, token: Any, status: SubscriptionStatus) -> None:
        """The machine changed a subscription's status (control loop)."""
        if isinstance(token, SubscriptionState):
            if status is SubscriptionStatus.UNSUBSCRIBED:
                with self._registry_lock:
                    if self._channels.get(token.channel) is token:
                        del self._channels[token.channel]
            token.set_status(status)

    # =============================================================================================
    # seed API: queues
    # =============================================================================================
    def new_queue_accessor(self, key: IbkrWsKey) -> QueueAccessor[IbkrWsKey]:
        """An accessor of ``key``'s one queue (IBind's semantics and item shapes; docs/ibind.md)."""
        return self._queues.new_queue_accessor(key)

    def get(self, key: IbkrWsKey, block: bool = False, timeout: float | None = None) -> Any | None:
        return self._queues.get(key, block, timeout)

    def empty(self, key: IbkrWsKey) -> bool:
        return self._queues.empty(key)

    def _report_queue(self, kind: str, text: str) -> None:
        _LOGGER.warning("%s: %s", kind.lower(), text)
        self._errors.on_next(ErrorEvent(ErrorKind[kind], text))

    # =============================================================================================
    # connections (the driver opens them; each has its own reader)
    # =============================================================================================
    def _retap(self) -> None:
        """Keep ``_tapped`` (read by the reader per frame) equal to: someone taps the incoming frames."""
        self._tapped = bool(self._wire._observers or self._frames._observers or self._log_raw)

    def _tap_in(self, connection: Connection, data: bytes | str) -> None:
        """An incoming frame to ``wire``, ``frames`` and the raw log, whichever is on."""
        if self._wire._observers:
            self._wire.on_next(WireEvent("in", data, connection.id))
        if self._frames._observers:
            self._frames.on_next(data)
        if self._log_raw:
            _LOGGER.debug("recv: %s", self._for_log(data))

    def _new_reader(self, conn: int) -> _Reader:
        reader = _Reader(self, conn, self._reader)
        self._reader = reader
        return reader

    def _cookie(self) -> str | None:
        """Runs on the reader thread before the handshake: ``api={"session": "<id>"}`` from tickle."""
        session_id = session_id_from_tickle(self._rest.tickle())
        self._session_id = session_id
        return "api=" + orjson.dumps({"session": session_id}).decode()

    def _socket_url_provider(self) -> Callable[[], str] | None:
        """A REST session that knows the socket URL (OAuth: the token in its query can change with
        a renewal) is asked for it on every connect."""
        socket_url = getattr(self._rest, "socket_url", None)
        return socket_url if callable(socket_url) else None

    def _wire_out(self, payload: str, connection: Connection) -> None:
        if self._wire._observers:
            self._wire.on_next(WireEvent("out", payload, connection.id))

    def _join_readers(self, timeout: float) -> None:
        driver = self._driver
        for reader in [*driver.retired, *driver.readers.values()]:
            if reader.connection is not None:
                reader.connection.join(timeout)

    def _retire_control_thread(self) -> None:
        """After start() gave up: let the control loop settle, then end its thread (a new one starts
        with the next event), so a failed start leaves no thread behind."""
        self._sync()
        self._join_readers(self._timeout + 1.0)
        if self._owns_scheduler and not self._driver.on_control_thread():
            old = self._scheduler
            self._scheduler = ControlScheduler()
            old_thread = self._driver.control_thread
            assert isinstance(old, ControlScheduler)
            old.dispose()
            self._driver.control_thread = None
            if old_thread is not None and old_thread is not threading.current_thread():
                old_thread.join(2.0)

    def _sync(self, timeout: float = 10.0) -> None:
        """Wait until the control loop has handled every event posted before this call (not on the
        control loop itself, nor in virtual time, where that is already so)."""
        if self._virtual or self._driver.on_control_thread() or self._driver.finished.is_set():
            return
        done = threading.Event()
        self._driver.post(done.set)
        done.wait(timeout)

    # =============================================================================================
    # helpers
    # =============================================================================================
    def _redact(self, data: bytes | str) -> str:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if self._session_id:
            text = text.replace(self._session_id, "<session>")
        return text

    def _for_log(self, data: bytes | str) -> str:
        """Text for the log: session id redacted, account ids masked."""
        return mask_account_ids(self._redact(data), (self._account_id,))

    def report_error(self, exception: BaseException, payload: Any = None) -> None:
        """Put an exception raised by user code on another thread (an operator, a callback) on
        ``client.errors`` as an OBSERVER_ERROR, as the client does for observers it calls itself."""
        self._on_observer_error(exception, payload)

    def _on_observer_error(self, exc: BaseException, value: Any) -> None:
        _LOGGER.error(
            "an observer raised %r (on client.errors); that observer's pipeline has ended, the others go on",
            exc,
        )
        self._errors.on_next(ErrorEvent(ErrorKind.OBSERVER_ERROR, f"an observer raised {exc!r}", exc, value))

    @staticmethod
    def _on_errors_observer_error(exc: BaseException, value: Any) -> None:
        _LOGGER.error(
            "an observer of client.errors raised %r while handling %s", exc, mask_account_ids(str(value))
        )

    def _now(self) -> float:
        return self._scheduler.now.timestamp()

    def _should_wait(self, wait: bool | None) -> bool:
        if self._virtual or self._driver.on_control_thread():
            return False
        if wait is None:
            return not threading.current_thread().name.startswith(_LIBRARY_THREADS)
        return wait

    # ---- typed streams (rxibkr.streams.hubs): delegating methods go here --------------------------------
    # Typed, parsed, merged streams per topic: cold and reference-counted (the first observer
    # subscribes, the last disposal unsubscribes), kept across reconnects. See rxibkr.streams.hubs.
    def market_data(
        self, conid: int | str, fields: str | int | Iterable[str | int] | None = None
    ) -> Observable[MarketDataUpdate]:
        """Parsed market-data updates of one contract (changed fields only; merge them with
        ``rxibkr.streams.operators.snapshots()``). One ``smd`` per conid, widened to the union of the
        observers' ``fields`` (ids or names; None: a quote set). See ``TypedStreams.market_data``."""
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
        return streams_of(self).market_history(conid, period, bar, exchange, outside_rth, source)

    def orders(self, filters: str | Iterable[str] | None = None) -> Observable[OrderUpdate]:
        """Live orders: the REST snapshot, then ``sor`` deltas merged into full order states;
        ``filters``: statuses to keep. See ``TypedStreams.orders``."""
        return streams_of(self).orders(filters)

    def trades(self, days: int | None = None, realtime_only: bool = False) -> Observable[Execution]:
        """Executions (``str``) deduplicated by ``execution_id``, re-emitted when the commission
        arrives. See ``TypedStreams.trades``."""
        return streams_of(self).trades(days, realtime_only)

    def pnl(self) -> Observable[PnlRow]:
        """P&L rows (``spl``), merged per ``<account>.Core`` key. See ``TypedStreams.pnl``."""
        return streams_of(self).pnl()

    def account_summary(
        self,
        account: str | None = None,
        keys: str | Iterable[str] | None = None,
        fields: str | Iterable[str] | None = None,
    ) -> Observable[SummaryItem]:
        """Account summary items (``ssd``) of ``account`` (default ``account_id``).
        See ``TypedStreams.account_summary``."""
        return streams_of(self).account_summary(account, keys, fields)

    def ledger(self, account: str | None = None) -> Observable[LedgerRow]:
        """Ledger rows (``sld``) per currency, blank rows merged. See ``TypedStreams.ledger``."""
        return streams_of(self).ledger(account)

    def price_ladder(
        self, conid: int | str, exchange: str | None = None, account: str | None = None
    ) -> Observable[Ladder]:
        """BookTrader ladders (``sbd``); ``account`` defaults to ``account_id`` (ValueError when
        neither is known). See ``TypedStreams.price_ladder``."""
        return streams_of(self).price_ladder(conid, exchange, account)

    def notifications(self) -> Observable[Notification]:
        """Unsolicited ``ntf`` notices and prompts, one per item."""
        return streams_of(self).notifications()

    def bulletins(self) -> Observable[Bulletin]:
        """Unsolicited ``blt`` bulletins, one per item."""
        return streams_of(self).bulletins()

    def auth_status(self) -> Observable[AuthStatus]:
        """Every ``sts`` frame, parsed."""
        return streams_of(self).auth_status()

    # ---- end typed streams ------------------------------------------------------------------------

    # ---- record / replay (rxibkr.record): delegating methods go here --------
    def record(self, path: str | os.PathLike[str]) -> Recorder:
        """Append every frame in and out, and connection open/close events, to the JSON Lines file ``path``.

        Returns an ``rxibkr.record.Recorder`` (a Disposable): dispose it to stop; the file is flushed and
        closed when ``dispose()`` returns. Session ids are redacted. Replay with
        ``IbkrWsClient(transport=rxibkr.record.ReplayTransport(path))``. See ``rxibkr.record``.
        """
        from rxibkr.record import Recorder as _Recorder  # a layer above the client: imported on use

        return _Recorder(self, path)

    # ---- end record / replay ----------------------------------------------------------------------

    def __enter__(self) -> IbkrWsClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"IbkrWsClient({self._public_url!r}, state={self._state.value.value})"


class _Reader:
    """The listener of one connection: the hot path, on that connection's reader thread.

    It decodes every frame and delivers it straight to the per-key subjects; only control-relevant
    frames go to the control loop (greeting, ``sts``, errors, confirmations, ``smh`` replies,
    heartbeats), and the first data frame of the connection and of each awaited channel, once.
    Before delivering anything it waits until the previous connection's reader has finished
    delivering, so an observer's calls never overlap across a reconnect.
    """

    __slots__ = (
        "batched", "client", "closing", "conn", "connection", "done", "first_data", "opened", "prev",
        "progress_at",
    )  # fmt: skip

    def __init__(self, client: IbkrWsClient, conn: int, prev: _Reader | None) -> None:
        self.client = client
        self.conn = conn
        self.prev = prev
        self.connection: Connection | None = None
        self.closing = False  # the client closed it (vs the server, or the network)
        self.done = threading.Event()  # set when this reader delivers nothing more
        self.first_data = True
        self.opened = False
        self.batched = False  # the transport calls on_batch_end: a queue consumer is woken there
        self.progress_at = -math.inf  # when on_progress last told the control loop

    def finished(self) -> bool:
        return self.done.is_set()

    @property
    def scheduler(self) -> abc.SchedulerBase:
        """The client's control scheduler (a replay transport adopts a virtual-time one)."""
        return self.client._scheduler

    def _fence(self) -> None:
        prev = self.prev
        if prev is not None:
            if not self.client._virtual:
                prev.done.wait()
            self.prev = None  # let the chain of old readers go

    def on_open(self, connection: Connection) -> None:
        self._fence()
        self.opened = True
        client = self.client
        client._last_pong = client._last_heartbeat = client._now()  # check_ping/check_health count from here
        if client._wire._observers:
            client._wire.on_next(WireEvent("open", None, connection.id))
        client._driver.post(ev.Opened(self.conn))

    # decode()'s fast path, inlined in on_frame (bound as default arguments: local lookups)
    from rxibkr.protocol.decode import _ROUTES, Message

    def on_frame(
        self,
        connection: Connection,
        data: bytes | str,
        _loads: Callable[[bytes | str], Any] = orjson.loads,
        _routes_get: Callable[[Any], IbkrWsKey | None] = _ROUTES.get,
        _new: Callable[[type[Message]], Message] = object.__new__,
        _message: type[Message] = Message,
        _md: IbkrWsKey = _MARKET_DATA,
        _data: MessageKind = _DATA,
        _int: type[int] = int,
    ) -> None:
        client = self.client
        if client._reader is not self:
            return  # a connection the client abandoned
        if self.prev is not None:
            self._fence()
        if client._tapped:  # client.wire, client.frames or the raw log: one check per frame for the three
            client._tap_in(connection, data)
        # decode(data), its fast path inlined: a known data topic without "error"; anything else
        # (not JSON, not an object, no topic, an error, a topic not met yet) takes decode() itself
        try:
            obj = _loads(data)
            topic = obj["topic"]
            key = None if "error" in obj else _routes_get(topic)
        except Exception:
            key = None
        if key is None:
            message = decode(data)
            key = message.key
            if key is _md:  # the first frame of a topic (decode learns it), or a peculiar one
                client._market_data_subject.on_next(message)
                client._queues_put(message)
                if self.first_data or client._awaiting:
                    self._data_seen(message)
                return
        elif key is _md:
            # market data, the bulk of the traffic: the subject's loop inlined, no control checks; the
            # Message is built only for observers (the queue takes its dict)
            subject = client._market_data_subject
            calls = subject._calls
            built: Message | None = None  # the Message, once built (for observers, or a fallback)
            if calls:
                built = message = _new(_message)
                message.kind = _data
                message.key = key
                message.topic = topic
                message.data = obj
                message.raw = data
                message.error = None
                for call in calls:
                    try:
                        call(message)
                    except Exception as exc:  # an observer's bug must not stop the stream
                        subject._on_observer_error(exc, message)
            # the IBind queue's put (IbindQueues.put), inlined for a market-data message with an int
            # conid: the queue takes the message's dict (IbindQueues.md_queue)
            q = client._md_queue
            if q is not None and type(obj.get("conid")) is _int:  # one lookup
                items = q.items
                if len(items) >= q.limit:  # full: drop the oldest (or report an unbounded backlog)
                    if q.silent:  # bounded, nobody has read it yet: its drops are reported at the first read
                        try:
                            items.popleft()
                            q.dropped += 1
                        except IndexError:  # emptied meanwhile
                            pass
                    else:
                        client._queues.overflow(q)
                items.append(obj)
                if q.waiters and not self.batched:
                    q.wake()  # else once per batch of frames: on_batch_end
            else:
                if built is None:  # no observer: the Message is built here, once
                    built = _message(_data, key, topic, obj, data)
                client._queues_put(built)
            if self.first_data or client._awaiting:
                self._data_seen(built if built is not None else _message(_data, key, topic, obj, data))
            return
        else:
            message = _new(_message)
            message.kind = _data
            message.key = key
            message.topic = topic
            message.data = obj
            message.raw = data
            message.error = None
        client._subjects[key].on_next(message)  # type: ignore[index]
        client._queues_put(message)
        if message.kind is not _data or key in _CONTROL_KEYS or key is _SYSTEM:
            if key is _SYSTEM and message.kind is _data and "hb" in message.data:  # type: ignore[operator]
                client._last_heartbeat = client._now()
                client._driver.post(ev.Heartbeat(self.conn))
            else:
                client._driver.post(ev.Control(self.conn, message))
            return
        if self.first_data or client._awaiting:
            self._data_seen(message)

    def _data_seen(self, message: Message) -> None:
        """A data frame: the connection's first (it proves the session), or the first of an awaited
        channel (it confirms that subscription): tell the control loop, once each."""
        client = self.client
        if self.first_data:
            self.first_data = False
            channel = message.channel
            if channel is not None and client._awaiting.pop(channel, None) is None:
                channel = None
            client._driver.post(ev.Data(self.conn, channel))
        elif client._awaiting:
            channel = message.channel
            if channel is not None and client._awaiting.pop(channel, None) is not None:
                client._driver.post(ev.Data(self.conn, channel))

    def on_batch_end(self, connection: Connection) -> None:
        """Every frame of one socket read is delivered: wake a consumer waiting for market data.

        One hand-over per batch instead of per frame (a consumer woken takes everything present before
        it waits again). At low rates a read holds one frame, so each frame still wakes it at once.
        Until the transport calls this, ``on_frame`` wakes the consumer itself (transports that do not
        batch: replay, the testing kit's).
        """
        self.batched = True
        q = self.client._md_queue
        if q is not None and q.waiters and q.items:
            q.wake()

    def on_progress(self, connection: Connection) -> None:
        """Part of a large frame arrived: the watchdogs wait again from now. Told to the control loop
        at most four times per ``max_ping_interval`` (a 10 MB frame is hundreds of reads)."""
        client = self.client
        now = client._now()
        if client._reader is self and now - self.progress_at >= client._max_ping_interval / 4:
            self.progress_at = now
            client._driver.post(ev.Receiving(self.conn))

    def on_pong(self, connection: Connection) -> None:
        client = self.client
        if client._reader is self:
            client._last_pong = client._now()
            client._pongs.on_next(None)
            client._driver.post(ev.Pong(self.conn))

    def on_close(
        self, connection: Connection, code: int | None, reason: str, error: BaseException | None
    ) -> None:
        client = self.client
        try:
            if client._wire._observers:
                initiator = "client" if self.closing else ("server" if code is not None else None)
                client._wire.on_next(WireEvent("close", None, connection.id, code, initiator))
            tls = is_tls_verification_error(error)
            retryable, failure = True, ""
            if tls:
                retryable, failure = False, describe_tls_failure(client._public_url, error)
            elif error is not None and not self.opened and not self.closing:
                # a connect that failed: is it worth trying again (a timeout, a 5xx), or not (a
                # refused port, an unknown host, an HTTP 404 on the upgrade, ws:// against TLS)?
                verdict = classify_connect_error(error, client._public_url)
                retryable, failure = verdict.retryable, verdict.reason
            closed = ev.Closed(self.conn, code, reason, error, retryable=retryable, tls=tls, failure=failure)
            client._driver.post(closed)
        finally:
            # frames delivered since the transport's last on_batch_end (a close frame in the same read)
            q = client._md_queue
            if q is not None and q.waiters and q.items:
                q.wake()
            # done only once the readers before it are: a connection that never delivered must
            # not let the next one overtake an older reader still inside an observer
            self._fence()
            self.done.set()


_LIBRARY_THREADS = ("rxibkr-", "typed-streams-rest")


__all__ = ["UNDEFINED", "IbkrWsClient", "SessionError", "WireEvent", "mask_account_ids"]
