"""rxibkr: a ReactiveX client for the Interactive Brokers Client Portal Web API WebSocket.

The public names live here; everything else is private. They are imported on first use (PEP 562),
so ``import rxibkr.testing.plugin`` (loaded by pytest in every run) or ``import rxibkr.sim`` does not
pull in the client. ``GatewaySimulator`` needs the ``sim`` extra (aiohttp, trustme).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rxibkr import operators
    from rxibkr.aio import QueueOverflowError, aiter, on_loop
    from rxibkr.client import UNDEFINED, IbkrWsClient, WireEvent
    from rxibkr.events import ConnectionState, ErrorEvent, ErrorKind
    from rxibkr.models import (
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
    from rxibkr.plot import LivePlot, live_plot
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
    from rxibkr.streams import HistoryLimitError, TypedStreams, streams_of
    from rxibkr.subscriptions import Subscription, SubscriptionState, SubscriptionStatus

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
    "SubscriptionState": "rxibkr.subscriptions",
    "MarketDataUpdate": "rxibkr.models",
    "Quote": "rxibkr.models",
    "Bar": "rxibkr.models",
    "History": "rxibkr.models",
    "OrderUpdate": "rxibkr.models",
    "Execution": "rxibkr.models",
    "PnlRow": "rxibkr.models",
    "SummaryItem": "rxibkr.models",
    "LedgerRow": "rxibkr.models",
    "Ladder": "rxibkr.models",
    "LadderRow": "rxibkr.models",
    "Notification": "rxibkr.models",
    "Bulletin": "rxibkr.models",
    "AuthStatus": "rxibkr.models",
    "TypedStreams": "rxibkr.streams",
    "streams_of": "rxibkr.streams",
    "HistoryLimitError": "rxibkr.streams",
    "aiter": "rxibkr.aio",
    "on_loop": "rxibkr.aio",
    "QueueOverflowError": "rxibkr.aio",
    "live_plot": "rxibkr.plot",
    "LivePlot": "rxibkr.plot",
}
_SUBMODULES = frozenset({"operators", "protocol", "testing", "sim", "record", "plot"})

__all__ = [
    "UNDEFINED",
    "AuthStatus",
    "Bar",
    "Bulletin",
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
    "TypedStreams",
    "WireEvent",
    "__version__",
    "aiter",
    "decode",
    "live_plot",
    "on_loop",
    "operators",
    "streams_of",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"rxibkr.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rxibkr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
