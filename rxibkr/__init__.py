"""rxibkr: a ReactiveX client for the Interactive Brokers Client Portal Web API WebSocket.

The public names live here; everything else is private. They are imported on first use (PEP 562),
so ``import rxibkr.testing.plugin`` (loaded by pytest in every run) or ``import rxibkr.sim`` does not
pull in the client. ``GatewaySimulator`` needs the ``sim`` extra (aiohttp, trustme).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from rxibkr.record import Recorder, Recording, ReplayTransport
    from rxibkr.session import IbkrSession, SessionError
    from rxibkr.sim import GatewaySimulator
    from rxibkr.subscriptions import Subscription, SubscriptionStatus

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "UNDEFINED": "rxibkr.client",
    "IbkrWsClient": "rxibkr.client",
    "WireEvent": "rxibkr.client",
    "ConnectionState": "rxibkr.events",
    "ErrorEvent": "rxibkr.events",
    "ErrorKind": "rxibkr.events",
    "IbkrSubscriptionProcessor": "rxibkr.protocol",
    "IbkrWsKey": "rxibkr.protocol",
    "Message": "rxibkr.protocol",
    "MessageKind": "rxibkr.protocol",
    "SubscriptionProcessor": "rxibkr.protocol",
    "decode": "rxibkr.protocol",
    "QueueAccessor": "rxibkr.queues",
    "QueueController": "rxibkr.queues",
    "Recorder": "rxibkr.record",
    "Recording": "rxibkr.record",
    "ReplayTransport": "rxibkr.record",
    "IbkrSession": "rxibkr.session",
    "SessionError": "rxibkr.session",
    "GatewaySimulator": "rxibkr.sim",
    "Subscription": "rxibkr.subscriptions",
    "SubscriptionStatus": "rxibkr.subscriptions",
}

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
    "Recorder",
    "Recording",
    "ReplayTransport",
    "SessionError",
    "Subscription",
    "SubscriptionProcessor",
    "SubscriptionStatus",
    "WireEvent",
    "__version__",
    "decode",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rxibkr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
