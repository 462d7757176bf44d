"""Drive IBind 0.1.14's IbkrWsClient and rxibkr's IbindQueues with the same raw frames.

IBind's side is its real message handling: ``IbkrWsClient._wrap_callback(_handle_on_message)``, the
callback websocket-client calls for each frame (an exception in it is logged and the frame is lost, as
on a live connection). The client is constructed without connecting. rxibkr's side is
``decode(frame)`` then ``IbindQueues.put``, as the client's reader thread does. After each frame every
queue of both is drained and the items are compared exactly: equal values, equal types and equal dict
key order (:func:`exact`).

Deviations that docs/ibind.md lists are recognised by :func:`classify`, each by checking that the
difference is exactly the documented one; any other difference fails the tests.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from ibind.client import ibkr_ws_client as ibind_ws

from rxibkr.client.queues import IbindQueues, QueueController, queued_keys
from rxibkr.protocol import IbkrWsKey, MessageKind, decode

logging.getLogger("ibind").setLevel(logging.CRITICAL + 1)  # IBind logs every frame it cannot handle

IBIND_VERSION = version("ibind")
assert IBIND_VERSION == "0.1.14", f"the differential tests pin IBind 0.1.14, found {IBIND_VERSION}"

ACCOUNT = "DU1234567"
UNSOLICITED = [key for key in IbkrWsKey if not key.solicited]
KEY_NAMES = [key.name for key in IbkrWsKey]

Items = dict[str, list[Any]]


def exact(value: Any) -> Any:
    """A comparable form that also tells apart types (1 / 1.0 / True) and dict key orders."""
    if isinstance(value, dict):
        return ("dict", [(exact(k), exact(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [exact(v) for v in value])
    return (type(value).__name__, value)


class IbindSide:
    """IBind's IbkrWsClient, not connected, every unsolicited key queued."""

    def __init__(self, unsolicited: Iterable[IbkrWsKey] = UNSOLICITED) -> None:
        self.client = ibind_ws.IbkrWsClient(
            account_id=ACCOUNT,
            url="wss://127.0.0.1:9/v1/api/ws",
            cacert=False,
            unsolicited_channels_to_be_queued=[ibind_ws.IbkrWsKey[k.name] for k in unsolicited],
        )
        self._on_message = self.client._wrap_callback(self.client._handle_on_message)

    def feed(self, frame: str) -> Items:
        self._on_message(None, frame)
        return self.drain()

    def drain(self) -> Items:
        out: Items = {}
        for name in KEY_NAMES:
            key = ibind_ws.IbkrWsKey[name]
            while not self.client.empty(key):
                out.setdefault(name, []).append(self.client.get(key))
        return out


class RxSide:
    """rxibkr's IbindQueues with the same queued keys, fed decoded messages."""

    def __init__(self, unsolicited: Iterable[IbkrWsKey] = UNSOLICITED, **kwargs: Any) -> None:
        self.reports: list[tuple[str, str]] = []
        self.keys = queued_keys(list(unsolicited))
        self.queues = IbindQueues(
            kwargs.pop("QueueControllerClass", QueueController[IbkrWsKey]),
            self.keys,
            lambda kind, text: self.reports.append((kind, text)),
            **kwargs,
        )

    def feed(self, frame: str | bytes) -> Items:
        self.queues.put(decode(frame.encode() if isinstance(frame, str) else frame))
        return self.drain()

    def drain(self) -> Items:
        out: Items = {}
        for key in self.keys:
            while not self.queues.empty(key):
                out.setdefault(key.name, []).append(self.queues.get(key))
        return out


def _loads(frame: str) -> Any:
    try:
        return json.loads(frame)
    except ValueError:
        return None


def classify(frame: str, ib: Items, rx: Items) -> str | None:
    """ "equal", the name of a documented deviation, or None (an undocumented difference)."""
    if exact(ib) == exact(rx):
        return "equal" if ib else "equal-nothing-queued"
    obj = _loads(frame)
    if not isinstance(obj, dict):
        return None
    topic = obj.get("topic")
    is_md = "error" not in obj and isinstance(topic, str) and topic[1:3] == "md"
    # 1. an smd frame without conid: IBind queues None, rxibkr nothing
    if is_md and "conid" not in obj and ib == {"MARKET_DATA": [None]} and rx == {}:
        return "md-without-conid"
    # 2. an smd frame without _updated: IBind raises KeyError (frame lost), rxibkr queues it without
    if is_md and "conid" in obj and "_updated" not in obj and ib == {} and list(rx) == ["MARKET_DATA"]:
        again = _reference().feed(json.dumps({**obj, "_updated": 0}))
        expected = again["MARKET_DATA"][0]
        del expected[obj["conid"]]["_updated"]
        if exact(rx["MARKET_DATA"]) == exact([expected]):
            return "md-without-_updated"
    # 3. SYSTEM listed: IBind never queues it, rxibkr queues the 'system' frames whole
    if topic == "system" and ib == {} and exact(rx) == exact({"SYSTEM": [obj]}):
        return "system-queued"
    # 4. an error frame whose topic IBind cannot slice ("", null, 5): IBind raises before queueing it
    odd_topic = "topic" in obj and not (isinstance(topic, str) and topic)
    if "error" in obj and odd_topic and ib == {} and exact(rx) == exact({"ERROR": [obj]}):
        return "error-frame-with-odd-topic"
    # 5. JSON that json.loads reads and orjson does not (NaN, Infinity) or reads otherwise (ints > 64 bits)
    if ib and decode(frame.encode()).kind is MessageKind.MALFORMED and rx == {}:
        return "orjson-rejects"
    if ib and rx and _has_big_int(obj):
        return "orjson-big-int-as-float"
    return None


_REFERENCE: list[IbindSide] = []


def _reference() -> IbindSide:
    """A spare IBind client for re-running a variant of a frame."""
    if not _REFERENCE:
        _REFERENCE.append(IbindSide())
    return _REFERENCE[0]


def _has_big_int(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_big_int(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_big_int(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64


@dataclass
class Tally:
    """Per-frame outcomes of a differential run."""

    outcomes: Counter[str] = field(default_factory=Counter)
    undocumented: list[tuple[str, Items, Items]] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(self.outcomes.values())


_PAIR: list[tuple[IbindSide, RxSide]] = []


def run(frames: Iterable[str], tally: Tally | None = None) -> Tally:
    """Feed each frame to IBind and to rxibkr; tally the per-frame outcomes."""
    tally = tally if tally is not None else Tally()
    if not _PAIR:
        _PAIR.append((IbindSide(), RxSide()))
    ib_side, rx_side = _PAIR[0]  # reused: every queue is drained after each frame
    for frame in frames:
        ib, rx = ib_side.feed(frame), rx_side.feed(frame)
        outcome = classify(frame, ib, rx)
        if outcome is None:
            tally.undocumented.append((frame, ib, rx))
            outcome = "UNDOCUMENTED"
        tally.outcomes[outcome] += 1
    return tally
