"""rxibkr: a ReactiveX client for the Interactive Brokers Client Portal Web API WebSocket.

The public names live here; everything else is private. They are imported on first use (PEP 562),
so ``import rxibkr.testing.plugin`` (loaded by pytest in every run) or ``import rxibkr.sim`` does not
pull in the client. ``GatewaySimulator`` needs the ``sim`` extra (aiohttp, trustme).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rxibkr.client.core import UNDEFINED, IbkrWsClient, WireEvent
    from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
    from rxibkr.client.queues import QueueAccessor, QueueController
    from rxibkr.client.subscriptions import Subscription, SubscriptionState, SubscriptionStatus
    from rxibkr.io.failures import ConnectFailure, classify_connect_error
    from rxibkr.io.rest import IbkrSession, SessionError
    from rxibkr.io.tls import CertificatePinError, TlsMode, TlsPolicy
    from rxibkr.io.transport import ProtocolViolation
    from rxibkr.plot import LivePlot, live_plot
    from rxibkr.protocol import (
        IbkrSubscriptionProcessor,
        IbkrWsKey,
        Message,
        MessageKind,
        SubscriptionProcessor,
        decode,
    )
    from rxibkr.record import Recorder, Recording, ReplayTransport
    from rxibkr.sim import GatewaySimulator
    from rxibkr.streams import HistoryLimitError, TypedStreams, operators, streams_of
    from rxibkr.streams.aio import QueueOverflowError, aiter, on_loop
    from rxibkr.streams.models import (
        AuthStatus,
        Bar,
        Bulletin,
        Execution,
        History,
        Ladder,
        LadderRow,
        LedgerRow,
        MarketDataUpdate,
        Notification,
        OrderUpdate,
        PnlRow,
        Quote,
        SummaryItem,
    )

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "UNDEFINED": "rxibkr.client.core",
    "IbkrWsClient": "rxibkr.client.core",
    "WireEvent": "rxibkr.client.core",
    "ConnectionState": "rxibkr.client.events",
    "ErrorEvent": "rxibkr.client.events",
    "ErrorKind": "rxibkr.client.events",
    "IbkrSubscriptionProcessor": "rxibkr.protocol",
    "IbkrWsKey": "rxibkr.protocol",
    "Message": "rxibkr.protocol",
    "MessageKind": "rxibkr.protocol",
    "SubscriptionProcessor": "rxibkr.protocol",
    "decode": "rxibkr.protocol",
    "QueueAccessor": "rxibkr.client.queues",
    "QueueController": "rxibkr.client.queues",
    "Recorder": "rxibkr.record",
    "Recording": "rxibkr.record",
    "ReplayTransport": "rxibkr.record",
    "IbkrSession": "rxibkr.io.rest",
    "SessionError": "rxibkr.io.rest",
    "ConnectFailure": "rxibkr.io.failures",
    "classify_connect_error": "rxibkr.io.failures",
    "CertificatePinError": "rxibkr.io.tls",
    "TlsMode": "rxibkr.io.tls",
    "TlsPolicy": "rxibkr.io.tls",
    "ProtocolViolation": "rxibkr.io.transport",
    "GatewaySimulator": "rxibkr.sim",
    "Subscription": "rxibkr.client.subscriptions",
    "SubscriptionStatus": "rxibkr.client.subscriptions",
    "SubscriptionState": "rxibkr.client.subscriptions",
    "MarketDataUpdate": "rxibkr.streams.models",
    "Quote": "rxibkr.streams.models",
    "Bar": "rxibkr.streams.models",
    "History": "rxibkr.streams.models",
    "OrderUpdate": "rxibkr.streams.models",
    "Execution": "rxibkr.streams.models",
    "PnlRow": "rxibkr.streams.models",
    "SummaryItem": "rxibkr.streams.models",
    "LedgerRow": "rxibkr.streams.models",
    "Ladder": "rxibkr.streams.models",
    "LadderRow": "rxibkr.streams.models",
    "Notification": "rxibkr.streams.models",
    "Bulletin": "rxibkr.streams.models",
    "AuthStatus": "rxibkr.streams.models",
    "TypedStreams": "rxibkr.streams",
    "streams_of": "rxibkr.streams",
    "HistoryLimitError": "rxibkr.streams",
    "aiter": "rxibkr.streams.aio",
    "on_loop": "rxibkr.streams.aio",
    "QueueOverflowError": "rxibkr.streams.aio",
    "live_plot": "rxibkr.plot",
    "LivePlot": "rxibkr.plot",
}
_SUBMODULES: dict[str, str] = {
    "operators": "rxibkr.streams.operators",
    "protocol": "rxibkr.protocol",
    "testing": "rxibkr.testing",
    "sim": "rxibkr.sim",
    "record": "rxibkr.record",
    "plot": "rxibkr.plot",
    "remote": "rxibkr.remote",
    "auth": "rxibkr.auth",
}

__all__ = [
    "UNDEFINED",
    "AuthStatus",
    "Bar",
    "Bulletin",
    "CertificatePinError",
    "ConnectFailure",
    "ConnectionState",
    "ErrorEvent",
    "ErrorKind",
    "Execution",
    "GatewaySimulator",
    "History",
    "HistoryLimitError",
    "IbkrSession",
    "IbkrSubscriptionProcessor",
    "IbkrWsClient",
    "IbkrWsKey",
    "Ladder",
    "LadderRow",
    "LedgerRow",
    "LivePlot",
    "MarketDataUpdate",
    "Message",
    "MessageKind",
    "Notification",
    "OrderUpdate",
    "PnlRow",
    "ProtocolViolation",
    "QueueAccessor",
    "QueueController",
    "QueueOverflowError",
    "Quote",
    "Recorder",
    "Recording",
    "ReplayTransport",
    "SessionError",
    "Subscription",
    "SubscriptionProcessor",
    "SubscriptionState",
    "SubscriptionStatus",
    "SummaryItem",
    "TlsMode",
    "TlsPolicy",
    "TypedStreams",
    "WireEvent",
    "__version__",
    "aiter",
    "classify_connect_error",
    "decode",
    "live_plot",
    "on_loop",
    "operators",
    "streams_of",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rxibkr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
