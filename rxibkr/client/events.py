"""Values published on the client's ``errors`` and ``state`` streams."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


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
    SUBSCRIPTION_FAILED = "subscription_failed"  # never confirmed after all retries
    UNSUBSCRIPTION_FAILED = "unsubscription_failed"
    OBSERVER_ERROR = "observer_error"  # a user observer raised; the stream carries on
    CONNECTION_ERROR = "connection_error"  # a connect attempt failed
    CONNECTION_LOST = "connection_lost"  # the socket closed unexpectedly
    WATCHDOG = "watchdog"  # ping or heartbeat watchdog reset the connection
    AUTHENTICATION = "authentication"  # gateway reported authenticated:false
    COMPETING_SESSION = "competing_session"
    TLS = "tls"  # certificate verification failed: fatal, no retry
    REST_ERROR = "rest_error"


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """One problem, reported instead of raised: streams never error on these."""

    kind: ErrorKind
    message: str
    exception: BaseException | None = None
    # the Message or frame concerned; for subscription events the SubscriptionState (its .handles
    # are the Subscription handles callers hold)
    payload: Any = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"
