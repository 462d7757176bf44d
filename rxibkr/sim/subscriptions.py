"""Per-connection subscription records (plain data, owned by the gateway's loop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MarketDataSub:
    """One ``smd`` stream: requested fields (ordered union), expiry, and what was last sent."""

    conid: int
    conid_ex: str
    topic: str
    fields: list[str]
    server_id: str
    expires_at: float
    last: dict[str, Any] = field(default_factory=dict)
    deltas_sent: int = 0
    first_due: float | None = None  # loop time of the first update; None once it was sent
    pending_full: bool = False  # the first frames carried no prices: send every value next tick

    def add_fields(self, new: list[str]) -> None:
        self.fields.extend(f for f in new if f not in self.fields)


@dataclass
class OrdersSub:
    """``sor``: optional status filters (lower-case); orders this socket has seen in full."""

    filters: frozenset[str] = frozenset()
    known: set[int] = field(default_factory=set)

    def accepts(self, status: str) -> bool:
        return not self.filters or status.lower() in self.filters


@dataclass
class LadderSub:
    """``sbd``: one price ladder stream."""

    account: str
    conid: int
    topic: str
