"""Subscription payload strings, exactly as IBind's ``IbkrSubscriptionProcessor`` builds them.

``make_subscribe_payload('md', {'foo': 'bar'})`` -> ``'smd+{"foo": "bar"}'``: the JSON part is
``json.dumps(data)`` with its defaults (``", "``/``": "`` separators, non-string dict keys turned into
strings, integers of any size, ``NaN``/``Infinity`` written as such), so a payload is byte-for-byte what
IBind 0.1.14 sends. Unlike IBind, a channel that is not a non-empty str, or data that is not a dict (or
None), raises at once, naming the argument; data that ``json.dumps`` rejects raises
:class:`~rxibkr.protocol.errors.ArgumentTypeError`, which is both the TypeError and the ValueError that
``json.dumps`` would have raised. (The client's own request builders in ``requests.py`` stay compact.)
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

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


_dumps = json.dumps


def _dump(data: object) -> str:
    if not isinstance(data, dict):
        raise ArgumentTypeError(f"data must be a dict or None, got {type(data).__name__}")
    try:
        return _dumps(data)
    except (TypeError, ValueError) as exc:  # unserialisable value or key, circular reference
        raise ArgumentTypeError(f"data is not JSON-serialisable: {exc}") from None


class IbkrSubscriptionProcessor(SubscriptionProcessor):
    """IBKR payloads: ``s<channel>[+<json>]`` and ``u<channel>+<json or {}>``, JSON as ``json.dumps``."""

    def make_subscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        """``'s' + channel``, plus ``'+' + json.dumps(data)`` only when data is not None.

        Examples: ``('md', {'foo': 'bar'})`` -> ``'smd+{"foo": "bar"}'``; ``('md')`` -> ``'smd'``.
        """
        payload = "s" + _check_channel(channel)
        if data is not None:
            payload += "+" + _dump(data)
        return payload

    def make_unsubscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        """``'u' + channel + '+' + json.dumps(data or {})``.

        Examples: ``('md', {'foo': 'bar'})`` -> ``'umd+{"foo": "bar"}'``; ``('md')`` -> ``'umd+{}'``.
        """
        return "u" + _check_channel(channel) + "+" + _dump({} if data is None else data)
