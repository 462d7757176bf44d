"""rxibkr: a ReactiveX client for the Interactive Brokers Client Portal Web API WebSocket.

The public names live here; everything else is private. ``GatewaySimulator`` needs the ``sim``
extra (aiohttp, trustme) and is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rxibkr.client import UNDEFINED, IbkrWsClient, WireEvent
from rxibkr.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.protocol import (
    IbkrSubscriptionProcessor,
    IbkrWsKey,
    Message,
    MessageKind,
    SubscriptionProcessor,
    decode,
)
from rxibkr.queues import QueueAccessor, QueueController
from rxibkr.session import IbkrSession, SessionError
from rxibkr.subscriptions import Subscription, SubscriptionStatus

if TYPE_CHECKING:
    from rxibkr.sim import GatewaySimulator

__version__ = "0.1.0"

__all__ = [
    "UNDEFINED",
    "ConnectionState",
    "ErrorEvent",
    "ErrorKind",
    "GatewaySimulator",
    "IbkrSession",
    "IbkrSubscriptionProcessor",
    "IbkrWsClient",
    "IbkrWsKey",
    "Message",
    "MessageKind",
    "QueueAccessor",
    "QueueController",
    "SessionError",
    "Subscription",
    "SubscriptionProcessor",
    "SubscriptionStatus",
    "WireEvent",
    "__version__",
    "decode",
]


def __getattr__(name: str) -> Any:
    if name == "GatewaySimulator":
        from rxibkr.sim import GatewaySimulator

        return GatewaySimulator
    raise AttributeError(f"module 'rxibkr' has no attribute {name!r}")
