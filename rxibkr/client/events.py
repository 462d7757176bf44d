"""Values published on the client's ``errors`` and ``state`` streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rxibkr.session.events import ConnectionState, ErrorKind


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


__all__ = ["ConnectionState", "ErrorEvent", "ErrorKind"]
