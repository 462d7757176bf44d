"""The streams layer: typed per-topic streams (hubs), their models, operators for strategies, and
asyncio adapters. Built on the client's public surface (``observe``, ``subscribe``)."""

from __future__ import annotations

from rxibkr.streams.hubs import DEFAULT_FIELDS, MAX_HISTORIES, HistoryLimitError, TypedStreams, streams_of

__all__ = ["DEFAULT_FIELDS", "MAX_HISTORIES", "HistoryLimitError", "TypedStreams", "streams_of"]
