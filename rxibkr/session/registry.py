"""The subscription registry's records: one :class:`Channel` per server subscription.

A channel is shared by every handle that asked for it. What is sent is the union of what the handles
asked for: for market data the union of their ``fields`` (so a typed stream asking for bid and an
IBind-style ``subscribe`` asking for last both get theirs, and both survive a reconnect); for other
channels the latest request. Pure data: no threads, no I/O.
"""

from __future__ import annotations

from typing import Any

from rxibkr.protocol import IbkrWsKey, SubscriptionProcessor
from rxibkr.session.events import SubscriptionStatus


def split_channel(channel: str) -> tuple[IbkrWsKey, str]:
    """``'md+265598@SMART'`` -> (MARKET_DATA, ``'md+265598'``): the key, and the channel as topics echo it."""
    if not isinstance(channel, str) or not channel:
        raise TypeError(f"channel: expected a non-empty str such as 'md+265598', got {channel!r}")
    head, sep, rest = channel.partition("+")
    key = IbkrWsKey.from_channel(head)
    if not key.solicited:
        raise ValueError(f"channel: {head!r} is unsolicited; observe it with client.observe({key}) instead")
    if not sep:
        return key, head
    parts = rest.split("+")
    if key in (IbkrWsKey.MARKET_DATA, IbkrWsKey.MARKET_HISTORY):
        parts[0] = parts[0].partition("@")[0]
    return key, head + "+" + "+".join(parts)


def union_data(requests: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Market data: one request carrying every requester's fields (first-asked order kept); the
    other keys of the latest request that has them."""
    given = [data for data in requests if data is not None]
    if not given:
        return None
    merged: dict[str, Any] = {}
    fields: list[Any] = []
    seen: set[Any] = set()
    any_fields = False
    for data in given:
        merged.update(data)
        requested = data.get("fields")
        if isinstance(requested, list | tuple):
            any_fields = True
            for f in requested:
                marker = str(f)
                if marker not in seen:
                    seen.add(marker)
                    fields.append(f)
    if any_fields:
        merged["fields"] = fields
    return merged


class Channel:
    """One server subscription: its handles (each with its request), its status and retry state."""

    __slots__ = (
        "_data",
        "attempts",
        "confirm",
        "handles",
        "key",
        "match_channel",
        "name",
        "override_data",
        "preflight",
        "processor",
        "refused",
        "sent_data",
        "status",
        "timer",
        "token",
        "unsub_target",
        "unsub_timer",
    )

    def __init__(self, name: str, token: Any, confirm: bool, processor: SubscriptionProcessor) -> None:
        self.key, self.match_channel = split_channel(name)
        self.name = name
        self.token = token
        self.confirm = confirm
        self.processor = processor
        self.handles: dict[Any, dict[str, Any] | None] = {}  # handle -> its request, in arrival order
        self.status = SubscriptionStatus.PENDING
        self.attempts = 0
        self.preflight = False
        self.refused = False
        self.sent_data: dict[str, Any] | None = None
        self.override_data: tuple[dict[str, Any] | None] | None = None  # modify_subscription(data=...)
        self.timer = "sub:" + name
        self.unsub_timer = "unsub:" + name
        self.unsub_target: str | None = None
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any] | None:
        """What the subscribe payload carries."""
        return self._data

    def add(self, handle: Any, data: dict[str, Any] | None) -> None:
        self.handles[handle] = data
        self.override_data = None
        self._recompute(latest=data)

    def remove(self, handle: Any) -> None:
        self.handles.pop(handle, None)

    def override(self, data: dict[str, Any] | None) -> None:
        self.override_data = (data,)
        self._data = data

    def _recompute(self, latest: dict[str, Any] | None) -> None:
        if self.key is IbkrWsKey.MARKET_DATA:
            self._data = union_data(list(self.handles.values()))
        else:
            self._data = latest

    def __repr__(self) -> str:
        return f"Channel({self.name!r}, {self.status.value}, handles={len(self.handles)})"
