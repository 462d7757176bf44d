"""The recording format: one JSON object per line (JSON Lines), optionally zstandard-compressed.

Version 2 (this one) -- every recorder writes a header line first (a file appended to by several
recorders holds several)::

    {"format": "rxibkr-recording", "version": 2, "t": <seconds>, "clock": "wall"|"virtual"}

then, in the order they happened:

* a frame: ``{"t": <seconds>, "dir": "in"|"out", "frame": "<text>", "binary": <bool>}``; a frame whose
  bytes are not valid UTF-8 keeps a readable ``"frame"`` and carries the exact bytes in ``"b64"``;
* a connection opened: ``{"t": ..., "dir": "meta", "event": "open", "conn": <n>}``; recording started
  on an open connection: ``{"t": ..., "dir": "meta", "event": "open", "conn": <n>, "attached": true,
  "state": "<the client's state then>"}``;
* a connection closed: ``{"t": ..., "dir": "meta", "event": "close", "conn": <n>, "code": <int|null>,
  "by": "client"|"server"|"unknown"}`` (a close without an open is a connection attempt that failed).

Version 1 (before the header existed) is the same without the header, ``state``, ``code`` and ``by``;
it still loads (its closes count as ``"unknown"``). Session ids are never written (``"<session>"``).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

FORMAT = "rxibkr-recording"
FORMAT_VERSION = 2
"""The version written in the header line of new recordings."""

REDACTED = "<session>"
"""What session ids are replaced with in recordings."""

CLOSED_BY = ("client", "server", "unknown")

_MIN_SECRET = 4  # ignore implausibly short "session ids" rather than redact every "1" in a file


class Redactor:
    """Finds session ids in frames and replaces every known one. One thread only (the writer)."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self._secret_bytes: list[bytes] = []

    def learn(self, secret: object) -> None:
        if isinstance(secret, str) and len(secret) >= _MIN_SECRET and secret != REDACTED:
            if secret not in self.secrets:
                self.secrets.append(secret)
                self.secrets.sort(key=len, reverse=True)  # longest first: no partial replacement
                self._secret_bytes = [s.encode("utf-8", "surrogatepass") for s in self.secrets]

    def inspect(self, direction: str, data: bytes | str) -> None:
        """Learn the session ids a frame carries (tic reply, session message, act)."""
        probe = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        if direction == "in":
            if b'"tic"' not in probe and b'"sessionId"' not in probe:
                return
        elif b'"session"' not in probe:
            return
        try:
            obj = orjson.loads(probe)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict):
            return
        if direction == "out":
            self.learn(obj.get("session"))
        elif obj.get("topic") == "tic":
            self.learn(obj.get("id"))
        elif obj.get("topic") == "act" and isinstance(obj.get("args"), dict):
            self.learn(obj["args"].get("sessionId"))

    def redact_bytes(self, data: bytes) -> bytes:
        for secret in self._secret_bytes:
            if secret in data:
                data = data.replace(secret, b"<session>")
        return data

    def redact_str(self, data: str) -> str:
        for secret in self.secrets:
            if secret in data:
                data = data.replace(secret, REDACTED)
        return data


def encode_line(t: float, direction: str, data: bytes | str, redactor: Redactor | None = None) -> bytes:
    """One frame line of the recording format (redacted when a redactor is given)."""
    binary = not isinstance(data, str)
    b64: str | None = None
    if isinstance(data, str):
        text = redactor.redact_str(data) if redactor is not None else data
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: keep them exactly
            b64 = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")
            text = text.encode("utf-8", "replace").decode("utf-8")
    else:
        raw = bytes(data)
        if redactor is not None:
            raw = redactor.redact_bytes(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            b64 = base64.b64encode(raw).decode("ascii")
    obj: dict[str, Any] = {"t": t, "dir": direction, "frame": text, "binary": binary}
    if b64 is not None:
        obj["b64"] = b64
    return orjson.dumps(obj) + b"\n"


def header_line(t: float, clock: str) -> bytes:
    """The first line a recorder writes: format name and version."""
    return orjson.dumps({"format": FORMAT, "version": FORMAT_VERSION, "t": t, "clock": clock}) + b"\n"


def meta_line(t: float, event: str, conn: int | None, **extra: Any) -> bytes:
    obj: dict[str, Any] = {"t": t, "dir": "meta", "event": event}
    if conn is not None:
        obj["conn"] = conn
    obj.update(extra)
    return orjson.dumps(obj) + b"\n"


def decode_frame(obj: dict[str, Any], where: str) -> bytes | str:
    """The frame of a frame line, as it crossed the wire (``where`` names the line in errors)."""
    text = obj.get("frame")
    b64 = obj.get("b64")
    binary = bool(obj.get("binary", False))
    if b64 is not None:
        raw = base64.b64decode(b64)
        return raw if binary else raw.decode("utf-8", "surrogatepass")
    if not isinstance(text, str):
        raise ValueError(f"{where}: 'frame' must be a string")
    return text.encode("utf-8") if binary else text


__all__ = [
    "CLOSED_BY",
    "FORMAT",
    "FORMAT_VERSION",
    "REDACTED",
    "Redactor",
    "decode_frame",
    "encode_line",
    "header_line",
    "meta_line",
]
