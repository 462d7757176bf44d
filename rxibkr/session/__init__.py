"""The session layer: a pure session machine (events in, actions out) and its registry.

No sockets, threads, Rx or clocks here: see :mod:`rxibkr.session.machine`.
"""

from __future__ import annotations

from rxibkr.session.events import ConnectionState, ErrorKind, SubscriptionStatus
from rxibkr.session.machine import SessionMachine, Settings
from rxibkr.session.registry import Channel, split_channel, union_data

__all__ = [
    "Channel",
    "ConnectionState",
    "ErrorKind",
    "SessionMachine",
    "Settings",
    "SubscriptionStatus",
    "split_channel",
    "union_data",
]
