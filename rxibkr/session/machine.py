"""The session machine: the whole control logic of a client, pure.

``SessionMachine.handle(event) -> list[action]``: the connection lifecycle and its backoff, session
confirmation, the subscription registry (channels with their handles, the union of every handle's
market-data fields, confirmations and retries, refusals), renewals, liveness watchdogs and the loss
of authentication. No threads, no sockets, no clock, no Rx: time passes only through
:class:`TimerFired` events for timers it asked for with :class:`SetTimer`; jitter comes from the
``random`` function it is given. The client's driver runs the actions on one control loop.

When is the session confirmed? Live gateways do not always greet (on some days no ``system`` success,
no ``act`` and no ``sts`` arrive after the socket opens), so any of these confirms it while the
connection is OPEN: ``sts`` authenticated, ``system`` success, a heartbeat, any data frame, or the
REST auth status (authenticated and connected) asked right after the socket opened. A gateway that
says it is not authenticated (``sts`` false, "waiting for session") holds the subscriptions back.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from rxibkr.protocol import IbkrSubscriptionProcessor, IbkrWsKey, MessageKind, SubscriptionProcessor
from rxibkr.protocol import requests as rq
from rxibkr.session.events import (
    Action,
    Await,
    CancelTimer,
    Close,
    Closed,
    ConnectionState,
    Control,
    Data,
    ErrorKind,
    Event,
    GiveUp,
    HardReset,
    Heartbeat,
    Modify,
    Open,
    Opened,
    Ping,
    Pong,
    Receiving,
    Recreate,
    Release,
    Report,
    Rest,
    RestDone,
    Send,
    SendSession,
    SetState,
    SetTimer,
    Start,
    StartDone,
    Status,
    Stop,
    Stopped,
    Subscribe,
    SubscriptionStatus,
    TimerFired,
    Unawait,
    Unsubscribe,
    UnsubscribeDone,
    Warn,
)
from rxibkr.session.registry import Channel, split_channel

_ACTIVE = SubscriptionStatus.ACTIVE
_PENDING = SubscriptionStatus.PENDING
_FAILED = SubscriptionStatus.FAILED
_UNSUBSCRIBED = SubscriptionStatus.UNSUBSCRIBED

# connection-scoped timers (cancelled when the connection ends), session-scoped ones (cancelled
# when the session ends: a reconnect, or authentication lost)
_CONNECTION_TIMERS = ("ping", "pong_watch", "session", "greeting")

GREETING_GRACE = 1.0
"""Seconds after the socket opens before a missing greeting is made up for by the REST auth status."""
_SESSION_TIMERS = ("heartbeat_watch", "tic", "renew", "tickle")


class Settings:
    """The machine's configuration (plain values)."""

    __slots__ = (
        "account_id",
        "backoff_first",
        "backoff_max",
        "has_rest",
        "has_rest_orders",
        "jitter",
        "max_connection_attempts",
        "max_ping_interval",
        "max_reconnect_attempts",
        "md_renewal_interval",
        "ping_interval",
        "restart_on_close",
        "restart_on_critical",
        "subscription_retries",
        "subscription_timeout",
        "tic_interval",
        "tickle_interval",
        "timeout",
        "url",
    )

    def __init__(
        self,
        *,
        url: str = "wss://localhost:5000/v1/api/ws",
        account_id: str | None = None,
        ping_interval: float = 10.0,
        max_ping_interval: float = 20.0,
        timeout: float = 5.0,
        restart_on_close: bool = True,
        restart_on_critical: bool = True,
        max_connection_attempts: int = 10,
        max_reconnect_attempts: int | None = None,
        subscription_retries: int = 5,
        subscription_timeout: float = 2.0,
        tic_interval: float | None = 60.0,
        tickle_interval: float | None = 60.0,
        md_renewal_interval: float | None = 540.0,
        backoff_first: float = 0.25,
        backoff_max: float = 30.0,
        jitter: bool = True,
        has_rest: bool = False,
        has_rest_orders: bool = False,
    ) -> None:
        self.url = url
        self.account_id = account_id
        self.ping_interval = ping_interval
        self.max_ping_interval = max_ping_interval
        self.timeout = timeout
        self.restart_on_close = restart_on_close
        self.restart_on_critical = restart_on_critical
        self.max_connection_attempts = max_connection_attempts
        self.max_reconnect_attempts = max_reconnect_attempts
        self.subscription_retries = subscription_retries
        self.subscription_timeout = subscription_timeout
        self.tic_interval = tic_interval
        self.tickle_interval = tickle_interval
        self.md_renewal_interval = md_renewal_interval
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.has_rest = has_rest
        self.has_rest_orders = has_rest_orders


class SessionMachine:
    """Events in, actions out. See the module docstring."""

    def __init__(self, settings: Settings, random: Callable[[], float] = lambda: 1.0) -> None:
        self.settings = settings
        self._random = random
        self.state = ConnectionState.STOPPED
        self.running = False
        self.stopped_for_good = False
        self.conn: int | None = None  # the current connection
        self.conn_opened = False
        self._next_conn = 0
        self._starting: bool  # no session confirmed since Start: set by Start, read only while running
        self._attempts: int  # failed connection attempts in a row: set by Start
        self._auth_poll_attempt: int  # set when authentication is lost
        self._timers: dict[str, int] = {}  # name -> token of the live timer
        self._tokens = itertools.count()
        self.channels: dict[str, Channel] = {}
        self._awaiting: dict[str, Channel] = {}  # match channel -> channel awaiting confirmation
        self._unsub_awaiting: dict[tuple[IbkrWsKey, str | None], tuple[Channel, Any]] = {}
        self.server_ids: Mapping[str, int] = {}  # market history: server id -> conid (replaced on change)
        self._out: list[Action] = []

    # =============================================================================================
    # the one entry point
    # =============================================================================================
    def handle(self, event: Event) -> list[Action]:
        """Apply ``event``; return the actions to run, in order."""
        out: list[Action] = []
        self._out = out
        handler = _HANDLERS[type(event)]
        handler(self, event)
        self._out = []
        return out

    @property
    def ready(self) -> bool:
        return self.state is ConnectionState.AUTHENTICATED

    # =============================================================================================
    # lifecycle
    # =============================================================================================
    def _on_start(self, _event: Start) -> None:
        if self.stopped_for_good:
            return
        if self.running:  # (stopped or failed: not running)
            if self.ready:
                self._emit(StartDone(True))
            return
        self.running = True
        self._starting = True
        self._attempts = 0
        self._connect(ConnectionState.CONNECTING)

    def _connect(self, state: ConnectionState) -> None:  # (no reconnect timer is running)
        self._set_state(state)
        self._next_conn += 1
        self.conn = self._next_conn  # conn_opened is False: the last connection's teardown said so
        self._emit(Open(self.conn))

    def _on_opened(self, event: Opened) -> None:
        if event.conn != self.conn:
            self._emit(Close(event.conn))
            return
        s = self.settings
        self.conn_opened = True
        self._set_state(ConnectionState.OPEN)
        self._timer("ping", s.ping_interval, periodic=True)
        self._timer("pong_watch", s.max_ping_interval)
        # no confirmation by any means within this bound: a failed attempt. Without REST the first
        # heartbeat may be the only confirmation, and it can come up to one heartbeat period late.
        bound = s.timeout if s.has_rest else max(s.timeout, s.max_ping_interval)
        self._timer("session", bound)
        if s.has_rest:
            # no greeting within the grace period: ask REST whether the session is there. Not at
            # once: frames written before the gateway's upstream session exists are discarded,
            # and a greeting (when there is one) marks that moment better.
            self._timer("greeting", min(GREETING_GRACE, s.timeout / 2))

    def _on_closed(self, event: Closed) -> None:
        if event.conn != self.conn:
            return  # an abandoned connection finishing
        was_open = self.conn_opened
        self.conn = None
        self._teardown_connection()
        if not self.running:
            self._set_state(ConnectionState.STOPPED)
            return
        url = self.settings.url
        if event.tls:
            self._report(
                ErrorKind.TLS,
                event.failure
                or f"TLS verification failed for {url}: {event.error}. Check cacert (the gateway's CA "
                "certificate) or pass cacert=False to disable verification.",
                event.error,
            )
            self._fail()
            return
        if not event.retryable and self._starting:
            # no retry can fix it (a refused port, an unknown host, an HTTP 4xx on the upgrade):
            # start() learns it at once. Once a session existed, the same failure may be a gateway
            # restarting, and is retried with backoff like any other.
            self._report(
                ErrorKind.CONNECTION_ERROR,
                f"connect to {url} failed: {event.failure or repr(event.error)} (not retried)",
                event.error,
            )
            self._fail()
            return
        if was_open:
            detail = (
                f"code={event.code}"
                + (f" reason={event.reason!r}" if event.reason else "")
                + (f" error={event.error!r}" if event.error else "")
            )
            self._report(ErrorKind.CONNECTION_LOST, f"connection closed ({detail})", event.error)
            if not self.settings.restart_on_close:
                self.running = False
                self._set_state(ConnectionState.STOPPED)
                self._emit(StartDone(False))
                return
            self._set_state(ConnectionState.RECONNECTING)
            self._schedule_reconnect(failed_attempt=False)
        else:
            failure = event.failure or repr(event.error)
            self._report(ErrorKind.CONNECTION_ERROR, f"connect to {url} failed: {failure}", event.error)
            self._set_state(ConnectionState.RECONNECTING)
            self._schedule_reconnect(failed_attempt=True)

    def _schedule_reconnect(self, failed_attempt: bool) -> None:
        if failed_attempt:
            self._attempts += 1
        s = self.settings
        limit = s.max_connection_attempts if self._starting else s.max_reconnect_attempts
        if limit is not None and self._attempts >= limit:
            self._report(ErrorKind.CONNECTION_ERROR, f"giving up after {self._attempts} connection attempts")
            self._fail()
            return
        self._timer("reconnect", self.backoff(self._attempts))

    def backoff(self, attempt: int) -> float:
        s = self.settings
        delay: float = min(s.backoff_max, s.backoff_first * (2 ** max(0, attempt - 1)))
        if s.jitter:
            delay *= 0.5 + 0.5 * self._random()
        return delay

    def _fail(self) -> None:
        self.running = False
        self._drop_connection(ConnectionState.FAILED)
        self._emit(StartDone(False))

    def _on_give_up(self, _event: GiveUp) -> None:
        if not self.ready and self.running:
            self._fail()

    def _on_stop(self, event: Stop) -> None:
        if event.shutdown:
            if self.ready:
                for channel in list(self.channels.values()):
                    if channel.status is _ACTIVE:
                        self._send_unsubscribe(channel, None, channel.processor)
            for channel in list(self.channels.values()):
                self._cancel(channel.timer)
                self._set_status(channel, _UNSUBSCRIBED)
            self.channels.clear()
            for channel, finish in self._unsub_awaiting.values():
                self._cancel(channel.unsub_timer)
                self._emit(UnsubscribeDone(finish, False))
            self._unsub_awaiting.clear()
        self.running = False
        self._drop_connection(ConnectionState.STOPPED)
        self._emit(StartDone(False))
        if event.shutdown:
            self.stopped_for_good = True
            self._emit(Stopped())

    def _on_hard_reset(self, event: HardReset) -> None:
        self._hard_reset(event.restart)

    def _hard_reset(self, restart: bool) -> None:
        if not restart:
            self.running = False
            self._drop_connection(ConnectionState.STOPPED)
            self._emit(StartDone(False))
        elif self.running:
            self._drop_connection(ConnectionState.RECONNECTING)
            self._connect(ConnectionState.RECONNECTING)

    def _drop_connection(self, state: ConnectionState) -> None:
        """Abandon the current connection (its late events are ignored) and stop every timer."""
        conn, self.conn = self.conn, None
        if conn is not None:
            self._emit(Close(conn, 1000))
        self._cancel("reconnect")
        self._teardown_connection()
        self._set_state(state)

    def _teardown_connection(self) -> None:
        self.conn_opened = False
        for name in _CONNECTION_TIMERS:
            self._cancel(name)
        self._cancel("auth_poll")
        for channel, finish in self._unsub_awaiting.values():
            self._cancel(channel.unsub_timer)
            self._set_status(channel, _UNSUBSCRIBED)
            self._emit(UnsubscribeDone(finish, True))
        self._unsub_awaiting.clear()
        self.server_ids = {}
        self._end_session()

    def _end_session(self) -> None:
        """The session's timers stop and every subscription waits to be sent again (PENDING)."""
        for name in _SESSION_TIMERS:
            self._cancel(name)
        self._awaiting.clear()
        self._emit(Unawait(None))
        for channel in self.channels.values():
            self._cancel(channel.timer)
            channel.attempts = 0
            channel.preflight = False
            self._set_status(channel, _PENDING)

    # =============================================================================================
    # timers and liveness
    # =============================================================================================
    def _on_timer(self, event: TimerFired) -> None:
        name = event.name
        if self._timers.get(name) != event.token:
            return  # cancelled or replaced since
        if not name.endswith("!"):  # periodic timers keep their token
            del self._timers[name]
        base = name.removesuffix("!")
        if base == "ping":
            if self.conn is not None:
                self._emit(Ping(self.conn))
        elif base == "pong_watch":
            self._watchdog("no pong")
        elif base == "heartbeat_watch":
            self._watchdog("no heartbeat")
        elif base == "session":  # live only while OPEN: the confirmation and teardown cancel it
            self._report(
                ErrorKind.CONNECTION_ERROR,
                f"no session confirmation within {self._session_bound():g} s",
            )
            self._drop_connection(ConnectionState.RECONNECTING)
            self._schedule_reconnect(failed_attempt=True)
        elif base == "greeting":
            if self.state is ConnectionState.OPEN:  # not once the gateway said unauthenticated
                self._emit(Rest("auth_status", self.conn))
        elif base == "reconnect":
            self._connect(ConnectionState.RECONNECTING)
        elif base == "auth_poll":
            self._auth_poll()
        elif base == "tic":
            self._send(rq.tic())
        elif base == "renew":
            self._renew_market_data()
        elif base == "tickle":
            self._emit(Rest("tickle", self.conn))
        elif base.startswith("sub:"):
            channel = self.channels.get(base[4:])
            if channel is not None:
                self._subscription_timed_out(channel)
        elif base.startswith("unsub:"):
            self._unsubscribe_timed_out(base[6:])

    def _session_bound(self) -> float:
        s = self.settings
        return s.timeout if s.has_rest else max(s.timeout, s.max_ping_interval)

    def _watchdog(self, what: str) -> None:  # its timers end with the connection (and stop)
        self._report(
            ErrorKind.WATCHDOG,
            f"{what} for {self.settings.max_ping_interval:g} s: resetting the connection",
        )
        self._hard_reset(self.settings.restart_on_critical)

    def _on_pong(self, event: Pong) -> None:
        if event.conn == self.conn and self.conn_opened:
            self._timer("pong_watch", self.settings.max_ping_interval)

    def _on_receiving(self, event: Receiving) -> None:
        """A large frame is arriving: the watchdogs running wait again from now (none is started)."""
        if event.conn != self.conn:
            return
        for name in ("pong_watch", "heartbeat_watch"):
            if name in self._timers:
                self._timer(name, self.settings.max_ping_interval)

    def _on_heartbeat(self, event: Heartbeat) -> None:
        if event.conn != self.conn:
            return
        if self.state is ConnectionState.OPEN:
            self._session_confirmed()
        if self.ready:
            self._timer("heartbeat_watch", self.settings.max_ping_interval)

    # =============================================================================================
    # session
    # =============================================================================================
    def _on_control(self, event: Control) -> None:
        if event.conn != self.conn:
            return
        message = event.message
        kind = message.kind
        data = message.data or {}
        key = message.key
        if kind is MessageKind.MALFORMED:
            self._report(ErrorKind.MALFORMED_FRAME, f"malformed frame: {message.error}", payload=message)
        elif kind is MessageKind.UNKNOWN:
            self._report(ErrorKind.UNKNOWN_FRAME, f"unknown frame: {message.error}", payload=message)
        elif kind is MessageKind.ERROR:
            self._on_error_frame(message, data)
        elif kind is MessageKind.CONTROL:
            self._on_topicless(message)
        elif key is IbkrWsKey.AUTHENTICATION_STATUS:
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
        elif key is IbkrWsKey.SYSTEM:
            if "success" in data:
                self._session_confirmed()
        elif key is IbkrWsKey.ACCOUNT_UPDATES:
            args = data.get("args")
            accounts = args.get("accounts") if isinstance(args, Mapping) else None
            account = self.settings.account_id
            if account and isinstance(accounts, list) and account not in accounts:
                self._emit(Warn("the gateway's accounts do not include the configured account_id"))
        elif key is IbkrWsKey.MARKET_HISTORY:
            self._on_history_reply(message, data)

    def _on_error_frame(self, message: Any, data: Mapping[str, Any]) -> None:
        self._report(ErrorKind.GATEWAY_ERROR, f"gateway error: {dict(data)}", payload=message, redact=True)
        # a refusal of one subscription (an error frame naming its topic, with a 4xx code) ends it
        # at once: no retry can change the gateway's mind
        topic = data.get("topic")
        code = data.get("code")
        if not isinstance(topic, str) or not (isinstance(code, int) and 400 <= code < 500):
            return
        channel = self._awaiting.get(topic[1:]) if topic.startswith("s") else None
        if channel is None:
            channel = next((c for c in self.channels.values() if "s" + c.match_channel == topic), None)
        if channel is None:  # (a channel that ended is neither registered nor awaited)
            return
        self._cancel(channel.timer)
        self._awaiting.pop(channel.match_channel, None)
        self._emit(Unawait(channel.match_channel))
        channel.refused = True
        self._report(
            ErrorKind.SUBSCRIPTION_FAILED,
            f"subscription {channel.name!r} refused by the gateway: {data.get('error')!s} (code {code})",
            payload=channel.token,
            redact=True,
        )
        self._set_status(channel, _FAILED)

    def _on_topicless(self, message: Any) -> None:
        key = message.key
        if key is IbkrWsKey.SYSTEM:  # the decoder recognised "waiting for session"
            if self.conn is not None:
                self._emit(SendSession(self.conn))
        else:
            self._on_unsubscribed(key, message)

    def _on_unsubscribed(self, key: IbkrWsKey, message: Any) -> None:
        target = message.target if key is IbkrWsKey.MARKET_HISTORY else None
        if target in self.server_ids:
            self.server_ids = {k: v for k, v in self.server_ids.items() if k != target}
        pending = self._unsub_awaiting.pop((key, target), None)  # (the decoder gives each a key)
        if pending is None:
            # confirmations of summary/ledger do not name the account: take the oldest waiting one
            for waiting_key in list(self._unsub_awaiting):
                if waiting_key[0] is key:
                    pending = self._unsub_awaiting.pop(waiting_key)
                    break
        if pending is not None:
            channel, finish = pending
            self._cancel(channel.unsub_timer)
            self._set_status(channel, _UNSUBSCRIBED)
            self._emit(UnsubscribeDone(finish, True))

    def _on_history_reply(self, message: Any, data: Mapping[str, Any]) -> None:
        server_id = data.get("serverId")
        conid = data.get("conid")
        if server_id is not None:
            if conid is None:
                conid = message.target  # smh+CONID
            try:
                self.server_ids = {**self.server_ids, str(server_id): int(conid)}  # type: ignore[arg-type]
            except (TypeError, ValueError):
                pass
            name = message.channel
            if not any(c.match_channel == name for c in self.channels.values()):
                # a reply to a history disposed before it came: free the gateway's slot now
                self._send(rq.unsubscribe_market_history(str(server_id)))
                self.server_ids = {k: v for k, v in self.server_ids.items() if k != str(server_id)}
        self._confirm(message.channel)  # (nothing awaits a channel that is not registered)

    def _session_confirmed(self) -> None:  # by an event of the current connection
        if self.state is ConnectionState.AUTHENTICATED:
            return
        s = self.settings
        self._attempts = 0
        self._starting = False
        self._cancel("session")
        self._cancel("greeting")
        self._set_state(ConnectionState.AUTHENTICATED)
        self._emit(StartDone(True))
        self._timer("heartbeat_watch", s.max_ping_interval)
        if s.tic_interval:
            self._timer("tic", s.tic_interval, periodic=True)
        if s.md_renewal_interval:
            self._timer("renew", s.md_renewal_interval, periodic=True)
        if s.tickle_interval and s.has_rest:
            self._timer("tickle", s.tickle_interval, periodic=True)
        for channel in list(self.channels.values()):
            self._send_subscribe(channel)

    def _on_data(self, event: Data) -> None:
        if event.conn != self.conn:
            return
        if self.state is ConnectionState.OPEN:
            self._session_confirmed()  # data flows: the session is there, greeting or not
        if event.channel is not None:
            self._confirm(event.channel)

    def _auth_lost(self, args: Mapping[str, Any]) -> None:
        if self.state is ConnectionState.UNAUTHENTICATED:
            return
        self._report(
            ErrorKind.AUTHENTICATION,
            f"the gateway reports authenticated=false ({dict(args)})",
            redact=True,
        )
        self._set_state(ConnectionState.UNAUTHENTICATED)
        self._cancel("session")
        self._end_session()
        self._auth_poll_attempt = 0
        self._schedule_auth_poll()

    def _schedule_auth_poll(self) -> None:
        self._auth_poll_attempt += 1
        self._timer("auth_poll", self.backoff(self._auth_poll_attempt))

    def _auth_poll(self) -> None:
        if self.state is not ConnectionState.UNAUTHENTICATED:
            return
        if not self.settings.has_rest:
            self._hard_reset(True)
            return
        self._emit(Rest("auth_poll", self.conn))

    def _on_rest_done(self, event: RestDone) -> None:
        what = event.what
        if what == "auth_status":  # asked right after the socket opened
            if event.conn != self.conn or self.state is not ConnectionState.OPEN:
                return
            if not event.ok:
                self._report(ErrorKind.REST_ERROR, f"auth status failed: {event.value}", event.value)
            elif _authenticated(event.value, require_connected=True):
                self._session_confirmed()
        elif what == "auth_poll":
            if self.state is not ConnectionState.UNAUTHENTICATED:
                return
            if not event.ok:
                self._report(ErrorKind.REST_ERROR, f"auth status poll failed: {event.value}", event.value)
                self._schedule_auth_poll()
            elif _authenticated(event.value, require_connected=False):
                self._hard_reset(True)
            else:
                self._schedule_auth_poll()
        elif what == "tickle":
            if not event.ok:
                self._report(ErrorKind.REST_ERROR, f"tickle failed: {event.value}", event.value)
        elif what == "preflight":
            if not event.ok:
                self._report(
                    ErrorKind.REST_ERROR, f"live orders pre-flight failed: {event.value}", event.value
                )
            channel = self.channels.get(event.channel) if event.channel is not None else None
            if channel is not None and channel.preflight and event.conn == self.conn:
                channel.preflight = False
                self._send_subscribe_now(channel)

    # =============================================================================================
    # subscriptions
    # =============================================================================================
    def _on_subscribe(self, event: Subscribe) -> None:
        if self.stopped_for_good:
            return
        channel = self.channels.get(event.channel)
        if channel is not None and channel.token is not event.token:
            # the caller's view moved on (the last handle went, a new one came): a new channel
            self._end_channel(channel)
            channel = None
        if channel is None:
            channel = Channel(event.channel, event.token, event.confirm, event.processor)
            self.channels[event.channel] = channel
            channel.add(event.handle, event.data)
            send = True
        else:
            before = channel.data
            channel.add(event.handle, event.data)
            send = (
                channel.data != before
                or event.processor is not channel.processor
                or event.confirm != channel.confirm
                or channel.status not in (_ACTIVE, _PENDING)
            )
            if send:
                channel.confirm = event.confirm
                channel.processor = event.processor
                channel.refused = False
                self._cancel(channel.timer)
                channel.attempts = 0
                if channel.status is not _ACTIVE:
                    self._set_status(channel, _PENDING)
        if send and self.ready:
            self._send_subscribe(channel)

    def _send_subscribe(self, channel: Channel) -> None:
        if channel.key is IbkrWsKey.ORDERS and self.settings.has_rest_orders:
            # protocol §3.4: query live orders (force, then plain) before sor, or sor may stay mute
            if not channel.preflight:
                channel.preflight = True
                self._emit(Rest("preflight", self.conn, channel.name))
            return
        self._send_subscribe_now(channel)

    def _send_subscribe_now(self, channel: Channel) -> None:
        # every caller found the channel registered and the session ready (its timer not running)
        try:
            payload = channel.processor.make_subscribe_payload(channel.name, channel.data)
        except Exception as exc:  # data changed by modify_subscription, a failing custom processor
            self._unawait(channel)
            self._report(
                ErrorKind.SUBSCRIPTION_FAILED,
                f"cannot build the subscribe payload of {channel.name!r}: {exc}",
                exc,
                payload=channel.token,
            )
            self._set_status(channel, _FAILED)
            return
        self._send(payload)
        channel.sent_data = channel.data
        if not channel.confirm:
            self._set_status(channel, _ACTIVE)
            return
        channel.attempts += 1
        if channel.match_channel not in self._awaiting:
            self._awaiting[channel.match_channel] = channel
            self._emit(Await(channel.match_channel))
        self._timer(channel.timer, self.settings.subscription_timeout)

    def _subscription_timed_out(self, channel: Channel) -> None:
        if channel.status is not _PENDING:
            return
        s = self.settings
        if channel.attempts < s.subscription_retries:
            self._send_subscribe_now(channel)
            return
        self._report(
            ErrorKind.SUBSCRIPTION_FAILED,
            f"subscription {channel.name!r} not confirmed after {channel.attempts} attempts "
            f"of {s.subscription_timeout:g} s",
            payload=channel.token,
        )
        # FAILED after the report (whoever waits on the status finds the event), but still awaited:
        # data that comes late on this session makes it ACTIVE
        self._set_status(channel, _FAILED)

    def _confirm(self, match_channel: str) -> None:
        channel = self._awaiting.pop(match_channel, None)
        if channel is None:
            return
        self._cancel(channel.timer)
        if self.channels.get(channel.name) is channel:
            self._set_status(channel, _ACTIVE)

    def _unawait(self, channel: Channel) -> None:
        if self._awaiting.get(channel.match_channel) is channel:
            del self._awaiting[channel.match_channel]
            self._emit(Unawait(channel.match_channel))

    def _on_recreate(self, _event: Recreate) -> None:
        for channel in self.channels.values():
            self._cancel(channel.timer)
            channel.attempts = 0
            channel.preflight = False
            self._set_status(channel, _PENDING)
        if self.ready:
            for channel in list(self.channels.values()):
                self._send_subscribe(channel)

    def _renew_market_data(self) -> None:
        for channel in list(self.channels.values()):
            if channel.key is IbkrWsKey.MARKET_DATA and channel.status is _ACTIVE:
                try:
                    payload = channel.processor.make_subscribe_payload(channel.name, channel.data)
                except Exception:
                    continue
                self._send(payload)

    def _on_release(self, event: Release) -> None:
        channel = self.channels.get(event.channel)
        if channel is None or channel.token is not event.token:
            return  # ended already (unsubscribed, or replaced by a newer request)
        channel.remove(event.handle)
        if not channel.handles:
            self._end_channel(channel)

    def _end_channel(self, channel: Channel) -> None:
        """End a registered channel (the caller found it in ``channels``)."""
        del self.channels[channel.name]
        self._cancel(channel.timer)
        self._unawait(channel)
        if self.ready and not channel.refused:  # a refused channel has nothing to end
            self._send_unsubscribe(channel, None, channel.processor)
        self._set_status(channel, _UNSUBSCRIBED)

    def _on_unsubscribe(self, event: Unsubscribe) -> None:
        channel = self.channels.pop(event.channel, None)
        if channel is None:
            channel = Channel(event.channel, event.token, event.confirm, event.processor)  # ad hoc
        else:
            self._cancel(channel.timer)
            self._unawait(channel)
        if not self.ready:
            self._set_status(channel, _UNSUBSCRIBED)
            self._emit(UnsubscribeDone(event.finish, True))
            return
        self._send_unsubscribe(channel, event.data, event.processor)
        if not event.confirm:
            self._set_status(channel, _UNSUBSCRIBED)
            self._emit(UnsubscribeDone(event.finish, True))
            return
        self._set_status(channel, _PENDING)
        target = None
        if channel.key is IbkrWsKey.MARKET_HISTORY:
            target = next(iter(self._history_server_ids(channel)), None)
        # keyed by the server id a history confirmation names; otherwise by the channel, so that two
        # waiting unsubscribes of one key (two accounts' summaries) never overwrite each other: a
        # confirmation that names nothing ends the oldest waiter of its key
        self._unsub_awaiting[(channel.key, target if target is not None else channel.name)] = (
            channel,
            event.finish,
        )
        channel.unsub_target = target
        self._timer(
            channel.unsub_timer, self.settings.subscription_timeout * self.settings.subscription_retries
        )

    def _unsubscribe_timed_out(self, name: str) -> None:
        for waiting_key, (channel, finish) in list(self._unsub_awaiting.items()):
            if channel.name == name:
                del self._unsub_awaiting[waiting_key]
                self._report(
                    ErrorKind.UNSUBSCRIPTION_FAILED,
                    f"unsubscribe of {name!r} not confirmed",
                    payload=channel.token,
                )
                self._set_status(channel, _UNSUBSCRIBED)
                self._emit(UnsubscribeDone(finish, False))  # (one waiter per channel)

    def _on_modify(self, event: Modify) -> None:
        channel = self.channels.get(event.channel)
        if channel is None:
            return  # the caller checked; it went meanwhile
        if event.set_data:
            channel.override(event.data)
        if event.confirm is not None:
            channel.confirm = event.confirm
        if event.processor is not None:
            channel.processor = event.processor
        if event.status is not None:
            self._set_status(channel, _ACTIVE if event.status else _PENDING)

    def _send_unsubscribe(
        self, channel: Channel, data: dict[str, Any] | None, processor: SubscriptionProcessor
    ) -> None:
        for payload in self._unsubscribe_payloads(channel, data, processor):
            self._send(payload)

    def _history_server_ids(self, channel: Channel) -> list[str]:
        """The gateway's server ids of a market history subscription (learnt from its ``smh`` replies)."""
        conid = channel.match_channel.partition("+")[2]
        return [sid for sid, c in self.server_ids.items() if str(c) == conid]

    def _unsubscribe_payloads(
        self, channel: Channel, data: dict[str, Any] | None, processor: SubscriptionProcessor
    ) -> list[str]:
        """The ``u...`` payloads; with IBKR's processor, the protocol's irregular forms (§2)."""
        if type(processor) is IbkrSubscriptionProcessor:
            key = channel.key
            target = channel.match_channel.partition("+")[2]
            if key is IbkrWsKey.MARKET_HISTORY:
                return [rq.unsubscribe_market_history(sid) for sid in self._history_server_ids(channel)]
            if key is IbkrWsKey.TRADES:
                return [rq.unsubscribe_trades()]
            if key is IbkrWsKey.PRICE_LADDER and target:
                return [rq.unsubscribe_price_ladder(target.partition("+")[0])]
        try:
            return [processor.make_unsubscribe_payload(channel.name, data)]
        except Exception as exc:
            self._report(
                ErrorKind.UNSUBSCRIPTION_FAILED,
                f"cannot build the unsubscribe payload of {channel.name!r}: {exc}",
                exc,
                payload=channel.token,
            )
            return []

    # =============================================================================================
    # helpers
    # =============================================================================================
    def _emit(self, action: Action) -> None:
        self._out.append(action)

    def _send(self, payload: str) -> None:
        if self.conn is not None:  # always, where it is called (ready, or a timer of the connection)
            self._emit(Send(self.conn, payload))

    def _set_state(self, state: ConnectionState) -> None:
        if self.state is not state:
            self.state = state
            self._emit(SetState(state))

    def _set_status(self, channel: Channel, status: SubscriptionStatus) -> None:
        if channel.status is not status:
            channel.status = status
            self._emit(Status(channel.token, status))

    def _report(
        self,
        kind: ErrorKind,
        message: str,
        exception: BaseException | None = None,
        payload: Any = None,
        redact: bool = False,
    ) -> None:
        self._emit(Report(kind, message, exception, payload, redact))

    def _timer(self, name: str, delay: float, periodic: bool = False) -> None:
        """(Re)start timer ``name``; a periodic one is stored as ``name + '!'``."""
        key = name + "!" if periodic else name
        if key in self._timers:
            self._emit(CancelTimer(key))
        token = self._timers[key] = next(self._tokens)
        self._emit(SetTimer(key, delay, token, periodic))

    def _cancel(self, name: str) -> None:
        for key in (name, name + "!"):
            if self._timers.pop(key, None) is not None:
                self._emit(CancelTimer(key))


def _authenticated(status: Any, *, require_connected: bool) -> bool:
    status = getattr(status, "data", status)
    return (
        isinstance(status, Mapping)
        and status.get("authenticated") is True
        and (not require_connected or status.get("connected", True) is not False)
    )


_HANDLERS: dict[type, Callable[[SessionMachine, Any], None]] = {
    Start: SessionMachine._on_start,
    Stop: SessionMachine._on_stop,
    GiveUp: SessionMachine._on_give_up,
    HardReset: SessionMachine._on_hard_reset,
    Opened: SessionMachine._on_opened,
    Closed: SessionMachine._on_closed,
    Control: SessionMachine._on_control,
    Heartbeat: SessionMachine._on_heartbeat,
    Pong: SessionMachine._on_pong,
    Receiving: SessionMachine._on_receiving,
    Data: SessionMachine._on_data,
    TimerFired: SessionMachine._on_timer,
    RestDone: SessionMachine._on_rest_done,
    Subscribe: SessionMachine._on_subscribe,
    Release: SessionMachine._on_release,
    Unsubscribe: SessionMachine._on_unsubscribe,
    Modify: SessionMachine._on_modify,
    Recreate: SessionMachine._on_recreate,
}

__all__ = ["SessionMachine", "Settings", "split_channel"]
