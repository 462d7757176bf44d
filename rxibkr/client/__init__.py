"""The client layer: the ``IbkrWsClient`` facade, the driver of the session machine, per-key
subjects, subscription handles and IBind's queues.

Names are imported on first use (PEP 562): ``rxibkr.streams`` imports the subscription handles from
here while the facade imports the streams, and neither import may run the other's module first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rxibkr.client.core import UNDEFINED, IbkrWsClient, SessionError, WireEvent, mask_account_ids
    from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
    from rxibkr.client.queues import QueueAccessor, QueueController
    from rxibkr.client.subscriptions import Subscription, SubscriptionState, SubscriptionStatus

_EXPORTS: dict[str, str] = {
    "UNDEFINED": "rxibkr.client.core",
    "IbkrWsClient": "rxibkr.client.core",
    "SessionError": "rxibkr.client.core",
    "WireEvent": "rxibkr.client.core",
    "mask_account_ids": "rxibkr.client.core",
    "ConnectionState": "rxibkr.client.events",
    "ErrorEvent": "rxibkr.client.events",
    "ErrorKind": "rxibkr.client.events",
    "QueueAccessor": "rxibkr.client.queues",
    "QueueController": "rxibkr.client.queues",
    "Subscription": "rxibkr.client.subscriptions",
    "SubscriptionState": "rxibkr.client.subscriptions",
    "SubscriptionStatus": "rxibkr.client.subscriptions",
}

__all__ = [
    "UNDEFINED",
    "ConnectionState",
    "ErrorEvent",
    "ErrorKind",
    "IbkrWsClient",
    "QueueAccessor",
    "QueueController",
    "SessionError",
    "Subscription",
    "SubscriptionState",
    "SubscriptionStatus",
    "WireEvent",
    "mask_account_ids",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rxibkr.client' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
