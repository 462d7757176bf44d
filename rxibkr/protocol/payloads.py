"""Subscription payload strings, with the semantics of IBind's ``IbkrSubscriptionProcessor``.

``make_subscribe_payload('md+265598', {'fields': ['31']})`` -> ``'smd+265598+{"fields":["31"]}'``;
the JSON part is compact (orjson), unlike IBind's ``json.dumps`` spacing, which the server ignores.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import orjson

from .errors import ArgumentTypeError


class SubscriptionProcessor(ABC):
    """Turns a channel (``'md+265598'``) and optional data into the text a client sends."""

    @abstractmethod
    def make_subscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        """Return the payload that subscribes to ``channel``."""

    @abstractmethod
    def make_unsubscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        """Return the payload that unsubscribes from ``channel``."""


def _check_channel(channel: object) -> str:
    if not isinstance(channel, str):
        raise ArgumentTypeError(f"channel must be a non-empty str, got {type(channel).__name__}")
    if not channel:
        raise ValueError("channel must be a non-empty str, got ''")
    return channel


def _dump(data: object) -> str:
    if not isinstance(data, dict):
        raise ArgumentTypeError(f"data must be a dict or None, got {type(data).__name__}")
    try:
        return orjson.dumps(data).decode()
    except orjson.JSONEncodeError as exc:
        raise ArgumentTypeError(f"data is not JSON-serialisable: {exc}") from None


class IbkrSubscriptionProcessor(SubscriptionProcessor):
    """IBKR payloads: ``s<channel>[+<json>]`` and ``u<channel>+<json or {}>``."""

    def make_subscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        """``'s' + channel``, plus ``'+' + json(data)`` only when data is not None.

        Examples: ``('md', {'foo': 'bar'})`` -> ``'smd+{"foo":"bar"}'``; ``('md')`` -> ``'smd'``.
        """
        payload = "s" + _check_channel(channel)
        if data is not None:
            payload += "+" + _dump(data)
        return payload

    def make_unsubscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        """``'u' + channel + '+' + json(data or {})``.

        Examples: ``('md', {'foo': 'bar'})`` -> ``'umd+{"foo":"bar"}'``; ``('md')`` -> ``'umd+{}'``.
        """
        return "u" + _check_channel(channel) + "+" + _dump({} if data is None else data)
