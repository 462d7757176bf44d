"""What the session machine is told (events) and what it asks for (actions).

Frozen dataclasses, as in h11: the machine takes one event at a time and returns a list of actions.
Opaque objects (``token``, ``handle``, ``finish``, ``processor``) are passed through untouched; the
machine never calls anything on them except ``processor.make_subscribe_payload`` /
``make_unsubscribe_payload``, which are functions of their arguments.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from rxibkr.protocol import Message, SubscriptionProcessor


class ConnectionState(enum.Enum):
    """Where the client's connection stands. ``client.state`` emits these."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    OPEN = "open"  # socket open, gateway session not yet confirmed
    AUTHENTICATED = "authenticated"  # session confirmed: subscriptions flow
    UNAUTHENTICATED = "unauthenticated"  # gateway said authenticated:false; polling REST for recovery
    RECONNECTING = "reconnecting"
    FAILED = "failed"  # gave up: max_connection_attempts exhausted or a fatal error (bad TLS)


class ErrorKind(enum.Enum):
    """What went wrong, for events on ``client.errors``."""

    MALFORMED_FRAME = "malformed_frame"  # not JSON / not an object
    UNKNOWN_FRAME = "unknown_frame"  # valid JSON, unknown topic or shape
    GATEWAY_ERROR = "gateway_error"  # the gateway sent an error frame
    SUBSCRIPTION_FAILED = "subscription_failed"  # refused by the gateway, or never confirmed
    UNSUBSCRIPTION_FAILED = "unsubscription_failed"
    OBSERVER_ERROR = "observer_error"  # a user observer raised; the stream carries on
    CONNECTION_ERROR = "connection_error"  # a connect attempt failed
    CONNECTION_LOST = "connection_lost"  # the socket closed unexpectedly
    WATCHDOG = "watchdog"  # ping or heartbeat watchdog reset the connection
    AUTHENTICATION = "authentication"  # gateway reported authenticated:false
    COMPETING_SESSION = "competing_session"
    TLS = "tls"  # certificate verification failed: fatal, no retry
    REST_ERROR = "rest_error"
    QUEUE_OVERFLOW = "queue_overflow"  # an IBind queue nobody reads dropped its oldest items


class SubscriptionStatus(enum.Enum):
    PENDING = "pending"  # wanted; not sent yet (no session) or sent and awaiting confirmation
    ACTIVE = "active"  # confirmed by the gateway (or sent, where the channel confirms nothing)
    FAILED = "failed"  # refused, or never confirmed after every retry; reported on client.errors
    UNSUBSCRIBED = "unsubscribed"  # disposed: the unsubscribe payload was sent; never replayed


# =================================================================================================
# events
# =================================================================================================


@dataclass(frozen=True, slots=True)
class Start:
    """``start()``: connect (again, after a stop or a failure) and confirm the session."""


@dataclass(frozen=True, slots=True)
class Stop:
    """``shutdown()`` (unsubscribe everything, forget every subscription) or ``disconnect()``."""

    shutdown: bool


@dataclass(frozen=True, slots=True)
class GiveUp:
    """``start()`` stopped waiting: fail unless the session is confirmed."""


@dataclass(frozen=True, slots=True)
class HardReset:
    restart: bool
    why: str


@dataclass(frozen=True, slots=True)
class Opened:
    conn: int


@dataclass(frozen=True, slots=True)
class Closed:
    """A connection ended (exactly once per connection). ``retryable`` False: a failure no retry can
    fix (TLS verification, an HTTP 4xx on the upgrade, ...), described by ``reason``."""

    conn: int
    code: int | None = None
    reason: str = ""
    error: BaseException | None = None
    retryable: bool = True
    tls: bool = False
    failure: str = ""


@dataclass(frozen=True, slots=True)
class Control:
    """A frame that matters to control (greeting, ``sts``, errors, confirmations, ``smh`` replies)."""

    conn: int
    message: Message


@dataclass(frozen=True, slots=True)
class Heartbeat:
    conn: int


@dataclass(frozen=True, slots=True)
class Pong:
    conn: int


@dataclass(frozen=True, slots=True)
class Receiving:
    """Bytes of a frame too large for one read are arriving: the gateway is alive, even though no
    heartbeat or pong can reach the client before that frame ends (they queue behind it)."""

    conn: int


@dataclass(frozen=True, slots=True)
class Data:
    """The first data frame of a connection (``channel`` None), or of an awaited channel."""

    conn: int
    channel: str | None


@dataclass(frozen=True, slots=True)
class TimerFired:
    name: str
    token: int


@dataclass(frozen=True, slots=True)
class RestDone:
    """A REST call asked for by a :class:`Rest` action finished (``ok`` False: it raised ``value``)."""

    what: str
    conn: int | None
    ok: bool
    value: Any = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """One more handle on ``channel``; ``token`` is the channel's shared status object."""

    token: Any
    handle: Any
    channel: str
    data: dict[str, Any] | None
    confirm: bool
    processor: SubscriptionProcessor


@dataclass(frozen=True, slots=True)
class Release:
    token: Any
    handle: Any
    channel: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """``client.unsubscribe(channel)``: ends the channel for every handle; ``finish(ok)`` is called
    through an :class:`UnsubscribeDone` action."""

    token: Any
    channel: str
    data: dict[str, Any] | None
    confirm: bool
    processor: SubscriptionProcessor
    finish: Any


@dataclass(frozen=True, slots=True)
class Modify:
    channel: str
    status: bool | None = None
    data: dict[str, Any] | None = None
    set_data: bool = False
    confirm: bool | None = None
    processor: SubscriptionProcessor | None = None


@dataclass(frozen=True, slots=True)
class Recreate:
    """Send every held subscription again."""


Event = (
    Start
    | Stop
    | GiveUp
    | HardReset
    | Opened
    | Closed
    | Control
    | Heartbeat
    | Pong
    | Receiving
    | Data
    | TimerFired
    | RestDone
    | Subscribe
    | Release
    | Unsubscribe
    | Modify
    | Recreate
)


# =================================================================================================
# actions
# =================================================================================================


@dataclass(frozen=True, slots=True)
class Open:
    conn: int


@dataclass(frozen=True, slots=True)
class Close:
    conn: int
    code: int = 1000


@dataclass(frozen=True, slots=True)
class Send:
    conn: int
    payload: str


@dataclass(frozen=True, slots=True)
class SendSession:
    """Answer "waiting for session" with ``{"session": "<id>"}`` (the driver knows the id)."""

    conn: int


@dataclass(frozen=True, slots=True)
class Ping:
    conn: int


@dataclass(frozen=True, slots=True)
class SetTimer:
    name: str
    delay: float
    token: int
    periodic: bool = False


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class SetState:
    state: ConnectionState


@dataclass(frozen=True, slots=True)
class Report:
    kind: ErrorKind
    message: str
    exception: BaseException | None = None
    payload: Any = None
    redact: bool = False


@dataclass(frozen=True, slots=True)
class Warn:
    message: str


@dataclass(frozen=True, slots=True)
class Status:
    token: Any
    status: SubscriptionStatus


@dataclass(frozen=True, slots=True)
class Await:
    """Data of ``channel`` confirms its subscription: the reader tells the machine once."""

    channel: str


@dataclass(frozen=True, slots=True)
class Unawait:
    channel: str | None  # None: every channel


@dataclass(frozen=True, slots=True)
class Rest:
    """Run a blocking REST call off the control loop: ``auth_status``, ``tickle`` or ``preflight``."""

    what: str
    conn: int | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class StartDone:
    """Wake the callers of ``start()``: ``ok`` is whether the session was confirmed."""

    ok: bool


@dataclass(frozen=True, slots=True)
class UnsubscribeDone:
    finish: Any
    ok: bool


@dataclass(frozen=True, slots=True)
class Stopped:
    """The machine is stopped for good (``shutdown``): the driver completes the streams."""


Action = (
    Open
    | Close
    | Send
    | SendSession
    | Ping
    | SetTimer
    | CancelTimer
    | SetState
    | Report
    | Warn
    | Status
    | Await
    | Unawait
    | Rest
    | StartDone
    | UnsubscribeDone
    | Stopped
)

__all__ = [
    "Action",
    "Await",
    "CancelTimer",
    "Close",
    "Closed",
    "ConnectionState",
    "Control",
    "Data",
    "ErrorKind",
    "Event",
    "GiveUp",
    "HardReset",
    "Heartbeat",
    "Modify",
    "Open",
    "Opened",
    "Ping",
    "Pong",
    "Receiving",
    "Recreate",
    "Release",
    "Report",
    "Rest",
    "RestDone",
    "Send",
    "SendSession",
    "SetState",
    "SetTimer",
    "Start",
    "StartDone",
    "Status",
    "Stop",
    "Stopped",
    "Subscribe",
    "SubscriptionStatus",
    "TimerFired",
    "Unawait",
    "Unsubscribe",
    "UnsubscribeDone",
    "Warn",
]
