"""Frame decoding: one received frame (bytes or str) -> one :class:`Message`, never an exception.

This is the hot path: ``orjson.loads`` on the frame as received, a membership test for ``error``, one
dict lookup of the topic and one small object. Routing (protocol section 3) is by dict lookups: the
exact topic first, then its ``'smd+'``-style prefix; data topics met once are remembered (bounded) so
the next frame of ``smd+265598`` needs a single lookup. Derived views (target, channel, args) are
computed only when asked for. Frames that fail to parse are retried leniently (invalid UTF-8 replaced,
trailing NUL/whitespace and a BOM removed) so that a stray byte does not lose a message; only then the
frame is MALFORMED, with the raw frame kept.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import orjson

from .keys import IbkrWsKey


class MessageKind(Enum):
    """What a decoded frame is."""

    DATA = "data"
    """A JSON object with a known topic."""
    CONTROL = "control"
    """A recognised topic-less object (waiting for session, unsubscribe confirmations)."""
    ERROR = "error"
    """An object with an ``error`` key, or topic ``error``."""
    UNKNOWN = "unknown"
    """A JSON object with an unknown topic, or an unrecognised topic-less object."""
    MALFORMED = "malformed"
    """Not JSON, not a JSON object, empty, or not bytes/str at all."""


_DATA = MessageKind.DATA
_CONTROL = MessageKind.CONTROL
_ERROR_KIND = MessageKind.ERROR
_UNKNOWN = MessageKind.UNKNOWN
_MALFORMED = MessageKind.MALFORMED
_ERROR_KEY = IbkrWsKey.ERROR

# Topics matched exactly (unsolicited ones, and the solicited ones when they carry no target).
_EXACT: dict[str, IbkrWsKey] = {
    "system": IbkrWsKey.SYSTEM,
    "tic": IbkrWsKey.SYSTEM,
    "sts": IbkrWsKey.AUTHENTICATION_STATUS,
    "act": IbkrWsKey.ACCOUNT_UPDATES,
    "blt": IbkrWsKey.BULLETINS,
    "ntf": IbkrWsKey.NOTIFICATIONS,
    "error": IbkrWsKey.ERROR,
    "smd": IbkrWsKey.MARKET_DATA,
    "smh": IbkrWsKey.MARKET_HISTORY,
    "sbd": IbkrWsKey.PRICE_LADDER,
    "sor": IbkrWsKey.ORDERS,
    "str": IbkrWsKey.TRADES,
    "spl": IbkrWsKey.PNL,
    "ssd": IbkrWsKey.ACCOUNT_SUMMARY,
    "sld": IbkrWsKey.ACCOUNT_LEDGER,
}

# Solicited topics with a target, matched on topic[:4] ('smd+265598' -> 'smd+').
_PREFIX: dict[str, IbkrWsKey] = {topic + "+": key for topic, key in _EXACT.items() if key.solicited}

MAX_LEARNED_TOPICS = 4096
"""Bound of the fast-path table of data topics seen so far ('smd+265598', ...)."""

# Data topics for the fast path of decode(): the exact data topics, plus every data topic met once
# (bounded). Only a speed-up: _route() gives the same answer for any topic.
_ROUTES: dict[str, IbkrWsKey] = {topic: key for topic, key in _EXACT.items() if key is not IbkrWsKey.ERROR}

_EXACT_get = _EXACT.get
_PREFIX_get = _PREFIX.get
_routes_get = _ROUTES.get
_loads = orjson.loads
_new_message = object.__new__

_WAITING_FOR_SESSION = "waiting for session"
_UNSUBSCRIBED_RESULTS: dict[str, IbkrWsKey] = {
    "unsubscribed from summary": IbkrWsKey.ACCOUNT_SUMMARY,
    "unsubscribed from ledger": IbkrWsKey.ACCOUNT_LEDGER,
}
_UNSUBSCRIBED = "Unsubscribed "


class Message:
    """One decoded frame.

    ``kind``: :class:`MessageKind`; ``key``: the :class:`IbkrWsKey` stream it belongs to (ERROR for
    errors, unknown and malformed frames); ``topic``: the full topic (``'smd+265598'``) or None;
    ``data``: the parsed object (None when MALFORMED); ``raw``: the frame exactly as received;
    ``error``: a short description for MALFORMED / UNKNOWN / ERROR, else None.
    """

    __slots__ = ("data", "error", "key", "kind", "raw", "topic")

    kind: MessageKind
    key: IbkrWsKey | None
    topic: str | None
    data: dict[str, Any] | None
    raw: bytes | str
    error: str | None

    def __init__(
        self,
        kind: MessageKind,
        key: IbkrWsKey | None,
        topic: str | None,
        data: dict[str, Any] | None,
        raw: bytes | str,
        error: str | None = None,
    ) -> None:
        self.kind = kind
        self.key = key
        self.topic = topic
        self.data = data
        self.raw = raw
        self.error = error

    @property
    def target(self) -> str | None:
        """What follows the channel in the topic: the conid of ``smd+265598``, the account of
        ``ssd+DU1234567``, ``'ACCT+CONID[+EXCH]'`` of ``sbd``; the server id of an ``Unsubscribed
        <serverId>`` control message; otherwise None."""
        topic = self.topic
        if isinstance(topic, str):
            plus = topic.find("+")
            return topic[plus + 1 :] if plus >= 0 else None
        if self.kind is _CONTROL and self.key is IbkrWsKey.MARKET_HISTORY and self.data is not None:
            return _unsubscribed_server_id(self.data.get("message"))
        return None

    @property
    def channel(self) -> str | None:
        """The topic without its leading 's' for solicited topics (``'md+265598'``, ``'or'``), the topic
        itself otherwise (``'sts'``); None for topic-less messages."""
        topic = self.topic
        if not isinstance(topic, str):
            return None
        if topic in _SOLICITED_TOPICS or topic[:4] in _PREFIX:
            return topic[1:]
        return topic

    @property
    def args(self) -> Any:
        """``data['args']`` (None when absent)."""
        data = self.data
        return data.get("args") if data is not None else None

    def __repr__(self) -> str:
        raw: object = self.raw
        if isinstance(raw, str) and len(raw) > 80:
            raw = raw[:77] + "..."
        elif isinstance(raw, bytes) and len(raw) > 80:
            raw = raw[:77] + b"..."
        key = self.key.name if self.key is not None else None
        text = f"Message(kind={self.kind.name}, key={key}, topic={self.topic!r}, raw={raw!r}"
        if self.error is not None:
            text += f", error={self.error!r}"
        return text + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.kind is other.kind
            and self.key is other.key
            and self.topic == other.topic
            and self.data == other.data
            and self.raw == other.raw
            and self.error == other.error
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


_SOLICITED_TOPICS = frozenset(topic[:3] for topic in _PREFIX)


def _unsubscribed_server_id(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    _, found, rest = text.rpartition(_UNSUBSCRIBED)
    if not found:
        return None
    parts = rest.split()
    return parts[0] if parts else None


def decode(frame: bytes | str) -> Message:
    """Decode one frame into a :class:`Message`; never raises, whatever the input."""
    try:
        obj = _loads(frame)
    except Exception:
        return _decode_lenient(frame)
    # Fast path for data frames: anything unusual (not a dict, an 'error' key, no topic, a topic not
    # seen before) falls through to _route, which applies the full rules.
    try:
        if "error" in obj:
            return _route(frame, obj)
        topic = obj["topic"]
        key = _routes_get(topic)
    except Exception:
        return _route(frame, obj)
    if key is None:
        return _route(frame, obj)
    message = _new_message(Message)
    message.kind = _DATA
    message.key = key
    message.topic = topic
    message.data = obj
    message.raw = frame
    message.error = None
    return message


def _route(frame: Any, obj: Any) -> Message:
    """The full routing rules of protocol section 3, for a parsed value."""
    if type(obj) is not dict:
        return _malformed(frame, f"JSON {type(obj).__name__} is not an object")
    if "error" in obj:
        return _error_message(frame, obj)
    topic = obj.get("topic")
    if topic is None:
        return _topicless(frame, obj)
    if not isinstance(topic, str):
        return _odd_topic(frame, obj)
    key = _EXACT_get(topic) or _PREFIX_get(topic[:4])
    if key is None:
        return Message(_UNKNOWN, _ERROR_KEY, topic, obj, frame, f"unknown topic {topic!r}")
    if key is _ERROR_KEY:
        return Message(_ERROR_KIND, _ERROR_KEY, topic, obj, frame, _describe_error(obj))
    if len(_ROUTES) < MAX_LEARNED_TOPICS:
        _ROUTES[topic] = key  # next time this topic takes the fast path
    return Message(_DATA, key, topic, obj, frame, None)


def _odd_topic(frame: Any, obj: Any) -> Message:
    """A topic that is not a string (a number, a list...)."""
    try:
        topic = obj.get("topic")
        error = f"topic is a {type(topic).__name__}, not a str"
        return Message(_UNKNOWN, _ERROR_KEY, None, obj, frame, error)
    except Exception:  # pragma: no cover - defensive
        return _malformed(frame, "undecodable frame")


def _describe_error(obj: dict[str, Any]) -> str:
    error = obj.get("error")
    if error is None:
        error = obj.get("message")
    text = error if isinstance(error, str) else ("error" if error is None else _short(error))
    code = obj.get("code")
    if code is not None:
        text += f" (code {_short(code)})"
    return text


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _error_message(frame: Any, obj: dict[str, Any]) -> Message:
    topic = obj.get("topic")
    return Message(
        _ERROR_KIND, _ERROR_KEY, topic if isinstance(topic, str) else None, obj, frame, _describe_error(obj)
    )


def _topicless(frame: Any, obj: dict[str, Any]) -> Message:
    message = obj.get("message")
    if isinstance(message, str):
        if message.strip().lower() == _WAITING_FOR_SESSION:
            return Message(_CONTROL, IbkrWsKey.SYSTEM, None, obj, frame, None)
        if _unsubscribed_server_id(message) is not None:
            return Message(_CONTROL, IbkrWsKey.MARKET_HISTORY, None, obj, frame, None)
    result = obj.get("result")
    if isinstance(result, str):
        key = _UNSUBSCRIBED_RESULTS.get(result.strip().lower())
        if key is not None:
            return Message(_CONTROL, key, None, obj, frame, None)
    return Message(_UNKNOWN, _ERROR_KEY, None, obj, frame, "unrecognised topic-less object")


def _malformed(frame: Any, error: str) -> Message:
    return Message(_MALFORMED, _ERROR_KEY, None, None, frame, error)


_TRAILING = "\x00 \t\r\n"
_TRAILING_BYTES = b"\x00 \t\r\n"


def _decode_lenient(frame: Any) -> Message:
    """The slow path after ``orjson.loads`` failed: repair what is safe to repair, else MALFORMED."""
    try:
        data: bytes | str
        if isinstance(frame, bytearray | memoryview):
            data = bytes(frame)
        elif isinstance(frame, bytes | str):
            data = frame
        else:
            return _malformed(frame, f"frame is a {type(frame).__name__}, not bytes or str")
        if isinstance(data, bytes):
            text = data.rstrip(_TRAILING_BYTES).decode("utf-8", "replace")
        else:
            text = data.rstrip(_TRAILING)
            if not text.isascii():
                # lone surrogates (e.g. from surrogateescape) are not valid UTF-8 for orjson
                text = text.encode("utf-8", "replace").decode("utf-8")
        text = text.lstrip("\ufeff")
        if not text.strip():
            return _malformed(frame, "empty frame")
        try:
            obj = _loads(text)
        except orjson.JSONDecodeError as exc:
            return _malformed(frame, f"invalid JSON: {exc}")
        return _route(frame, obj)
    except Exception as exc:  # pragma: no cover - defensive: decode never raises
        return _malformed(frame, f"undecodable frame: {type(exc).__name__}")
