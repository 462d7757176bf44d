"""Parsing of client -> server text frames (pure).

Grammar: ``TOPIC+TARGET[+TARGET...]+{JSON}``, with the deviations seen in the wild: bare ``tic``,
``utr``, ``spl``, ``upl``, ``umh+<id>``, ``usd+<acct>``; ``upl{}`` (the gateway doc's typo);
``sbd+<acct>+<conid>[+<exch>]``; and the in-band session message ``{"session":"<id>"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class Command:
    """One parsed client frame.

    ``topic`` is the three-letter command (``"smd"``, ``"tic"``...), ``"session"`` for the in-band
    session message, or ``"unknown"``. ``error`` is set when the JSON part is malformed.
    """

    topic: str
    targets: tuple[str, ...] = ()
    args: dict[str, Any] = field(default_factory=dict)
    raw: str = ""
    error: str | None = None

    @property
    def target(self) -> str:
        return self.targets[0] if self.targets else ""


def parse(text: str) -> Command:
    raw = text
    text = text.strip()
    if not text:
        return Command("unknown", raw=raw)
    if text.startswith("{"):
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            return Command("unknown", raw=raw, error="malformed JSON")
        if isinstance(obj, dict) and "session" in obj:
            return Command("session", args=obj, raw=raw)
        return Command("unknown", raw=raw)
    brace = text.find("{")
    if brace >= 0:
        head, json_text = text[:brace], text[brace:]
    else:
        head, json_text = text, ""
    parts = [p.strip() for p in head.strip().rstrip("+").split("+")]
    topic = parts[0]
    if len(topic) != 3 or not topic.isalpha():
        return Command("unknown", raw=raw)
    args: dict[str, Any] = {}
    error = None
    if json_text:
        try:
            obj = orjson.loads(json_text)
        except orjson.JSONDecodeError:
            error = "malformed JSON arguments"
        else:
            if isinstance(obj, dict):
                args = obj
            else:
                error = "arguments must be a JSON object"
    return Command(topic, tuple(parts[1:]), args, raw, error)


def parse_conid(target: str) -> tuple[int, str] | None:
    """``"265598@ISLAND" -> (265598, "265598@ISLAND")``; None unless a positive integer conid."""
    base, _, exchange = target.partition("@")
    base = base.strip()
    if not base.isdigit():
        return None
    conid = int(base)
    if conid <= 0:
        return None
    conid_ex = f"{conid}@{exchange.strip()}" if exchange.strip() else str(conid)
    return conid, conid_ex
