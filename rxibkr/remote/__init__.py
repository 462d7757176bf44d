"""Scale-out: one gateway session published to Redis Streams, consumed by many processes.

``serve(client, redis_url)`` (or ``rxibkr serve --redis redis://...``) holds the one
:class:`~rxibkr.client.core.IbkrWsClient` and publishes every decoded message once;
``RemoteClient(redis_url)`` offers the client's stream API (``observe``, ``subscribe``,
``market_data``, ``orders``...) in any process that can reach that Redis. See docs/scale-out.md.
Needs redis-py: ``pip install 'rxibkr[remote]'``.
"""

from __future__ import annotations

from rxibkr.remote._layout import DEFAULT_LEASE_TTL, DEFAULT_MAXLEN, DEFAULT_PREFIX
from rxibkr.remote.client import MessageGap, RemoteClient, RemoteSubscription, RemoteSubscriptionState
from rxibkr.remote.local import LocalRedis
from rxibkr.remote.server import Server, ServeStats, merge_data, serve

__all__ = [
    "DEFAULT_LEASE_TTL",
    "DEFAULT_MAXLEN",
    "DEFAULT_PREFIX",
    "LocalRedis",
    "MessageGap",
    "RemoteClient",
    "RemoteSubscription",
    "RemoteSubscriptionState",
    "ServeStats",
    "Server",
    "merge_data",
    "serve",
]
