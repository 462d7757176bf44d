"""Differential: queue items of IBind 0.1.14 and rxibkr for the same frames, per key, exactly.

Frames: every inbound golden frame (tests/protocol/data/frames.jsonl), frames from every factory of
``rxibkr.testing.frames``, a table of edge cases, and hypothesis-generated market data and frames.
The per-frame outcome counts of the fixed sets are pinned here and quoted in docs/ibind.md.
"""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ibind.client.ibkr_ws_client import IbkrWsKey as IbindKey
from ibind_harness import ACCOUNT, IbindSide, RxSide, Tally, classify, exact, run

from rxibkr.protocol import IbkrWsKey, decode
from rxibkr.protocol.fields import FIELDS, IBIND_FIELDS
from rxibkr.testing import frames as f

GOLDEN = Path(__file__).resolve().parents[1] / "protocol" / "data" / "frames.jsonl"


def golden_frames() -> list[str]:
    rows = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["frame"] for row in rows if row.get("direction") == "in"]


def factory_frames() -> list[str]:
    """At least one frame from every factory of rxibkr.testing.frames, every topic."""
    made: list[Any] = [
        *f.greeting(),
        f.system(),
        f.hb(),
        f.sts(),
        f.sts(authenticated=False),
        f.act(),
        f.tic(),
        f.waiting_for_session(),
        f.smd(265598, last=271.5, bid=271.4, ask=271.6, volume="12.2M", change_pct=0.5),
        f.smd(265598, {"74": "150.2", "6119": "q1", "7293": "300", "7294": "100", "58": "x", "201": "C"}),
        f.smd(8314, conid_ex="8314@SMART", updated=f.EPOCH_MS + 500, last="C99.5"),
        f.smh(265598, [f.bar(f.EPOCH_MS, 1, 2, 3, 0.5, 100)], server_id="7"),
        f.unsubscribed_history("7"),
        f.sbd(ACCOUNT, 265598, [f.ladder_row(0, "271.5", bid="3"), f.ladder_row(1, "271.6", ask="4")]),
        f.sor(f.order(1)),
        f.sor(f.order_delta(1, status="Filled")),
        f.str_(f.execution("e1"), f.execution("e2", commission="1.0")),
        f.spl(),
        f.ssd(),
        f.unsubscribed_summary(),
        f.sld(),
        f.unsubscribed_ledger(),
        f.ntf(f.notice("n1", "hello", title="t")),
        f.ntf(f.prompt(1, "r1", "sure?")),
        f.blt(f.bulletin(1, "exchange closed")),
        f.error("No accounts", topic="smd"),
        f.error("bad request"),
    ]
    return [json.dumps(frame) for frame in made]


EDGE_FRAMES = [
    '{"topic":"smd+1","conid":1,"_updated":5,"6008":99,"31":"1","server_id":"q0","conidEx":"1"}',
    '{"topic":"smd+1","31":"1.5"}',  # no conid
    '{"topic":"smd+1","conid":1,"31":"1.5"}',  # no _updated
    '{"topic":"smd+1","conid":[1],"_updated":1}',  # unhashable conid
    '{"topic":"smd+1","conid":null,"_updated":1,"string":"s","integer_str":"i"}',
    '{"topic":"umd+1","conid":1,"_updated":1,"31":"2"}',  # IBind routes by letters 1-2
    '{"topic":"sorx","args":[]}',
    '{"topic":"xtr","args":[]}',
    '{"topic":"sts"}',  # no args
    '{"topic":"sts","args":null}',
    '{"topic":"ntf"}',
    '{"topic":"act","args":{}}',
    '{"topic":"error","message":"boom"}',  # topic error without an error key: IBind does not queue it
    '{"error":"bad","code":1}',
    '{"error":"bad","topic":""}',  # IBind raises on topic[0] before it queues the error
    '{"topic":"sor","error":"bad"}',
    '{"topic":"tic","alive":true}',
    '{"topic":"system","hb":1}',
    '{"topic":5}',
    '{"topic":""}',
    '{"topic":"s"}',
    '{"message":"waiting for session"}',
    '{"result":"unsubscribed from summary"}',
    '{"message":"Unsubscribed 7"}',
    "[1,2]",
    '"error"',
    "not json",
    '{"topic":"smd+1","conid":1,"_updated":1,"31":NaN}',
    '{"topic":"sor","args":[{"orderId":123456789012345678901234567890}]}',
]

# Per-frame outcomes (pinned; docs/ibind.md quotes them).
EXPECTED = {
    "golden": {"equal": 24, "equal-nothing-queued": 11, "system-queued": 7},
    "factories": {"equal": 21, "equal-nothing-queued": 5, "system-queued": 3},
    "edges": {
        "equal": 11,
        "equal-nothing-queued": 12,
        "md-without-conid": 1,
        "md-without-_updated": 1,
        "error-frame-with-odd-topic": 1,
        "system-queued": 1,
        "orjson-rejects": 1,
        "orjson-big-int-as-float": 1,
    },
}


def _check(name: str, tally: Tally) -> None:
    assert tally.undocumented == [], tally.undocumented[:3]
    assert dict(tally.outcomes) == EXPECTED[name]


def test_golden_frames() -> None:
    frames = golden_frames()
    assert len(frames) == 42
    _check("golden", run(frames))


def test_factory_frames_of_every_topic() -> None:
    _check("factories", run(factory_frames()))


def test_edge_frames() -> None:
    _check("edges", run(EDGE_FRAMES))


# -- the four findings of issue 13, as tests ----------------------------------------------------------
def test_finding_1_item_shapes_are_ibinds() -> None:
    rx = RxSide()
    items = rx.feed(json.dumps(f.sor(f.order(1))))
    assert items["ORDERS"][0]["topic"] == "sor" and items["ORDERS"][0]["args"][0]["orderId"] == 1
    assert rx.feed(json.dumps(f.str_(f.execution("e1"))))["TRADES"][0]["topic"] == "str"
    assert "args" in rx.feed(json.dumps(f.spl()))["PNL"][0]
    assert rx.feed(json.dumps(f.blt(f.bulletin(1, "x"))))["BULLETINS"][0]["topic"] == "blt"
    assert rx.feed(json.dumps(f.sts()))["AUTHENTICATION_STATUS"] == [f.sts()["args"]]
    md = rx.feed(json.dumps(f.smd(265598, {"74": "1.5", "6119": "q0", "7293": "9"})))["MARKET_DATA"][0]
    row = md[265598]
    assert row["avg_price"] == "1.5" and row["market_data_marker"] == "q0" and row["52_week_high"] == "9"
    assert "server_id" not in row and "conidEx" not in row
    # the typed models keep their own readable names
    assert FIELDS["74"] == "average_cost" and IBIND_FIELDS["74"] == "avg_price"


def test_finding_2_a_message_before_any_accessor_is_kept() -> None:
    ib, rx = IbindSide(), RxSide()
    frame = json.dumps(f.smd(265598, last=1.5))
    ib._on_message(None, frame)
    rx.queues.put(decode(frame.encode()))
    got_ib = ib.client.get(IbindKey.MARKET_DATA)  # the seed's convenience get: no accessor made before
    got_rx = rx.queues.get(IbkrWsKey.MARKET_DATA)
    assert got_rx is not None and exact(got_rx) == exact(got_ib)
    ib._on_message(None, json.dumps(f.spl()))
    rx.queues.put(decode(json.dumps(f.spl()).encode()))
    assert exact(rx.queues.get(IbkrWsKey.PNL)) == exact(ib.client.get(IbindKey.PNL)) != exact(None)


def test_finding_3_accessors_share_the_one_queue_and_hold_nothing() -> None:
    rx = RxSide()
    accessors = [rx.queues.new_queue_accessor(IbkrWsKey.MARKET_DATA) for _ in range(200)]
    refs = [weakref.ref(a) for a in accessors]
    message = decode(json.dumps(f.smd(265598, last=1.5)).encode())
    for _ in range(1000):
        rx.queues.put(message)
    assert rx.queues.qsize(IbkrWsKey.MARKET_DATA) == 1000  # one queue, not 200 copies
    assert all(a.qsize() == 1000 for a in accessors)
    assert accessors[0].get() is not None and accessors[199].qsize() == 999  # they compete, as IBind's
    del accessors
    gc.collect()
    assert all(r() is None for r in refs)


# -- hypothesis ---------------------------------------------------------------------------------------------
_IDS = sorted(set(IBIND_FIELDS) | set(FIELDS) | {"87_raw", "server_id", "conidEx", "6119", "x", ""})
_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_SCALAR = st.one_of(
    st.text(max_size=8), _INT64, st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none()
)
_VALUE = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@st.composite
def md_frames(draw: st.DrawFn) -> str:
    frame: dict[str, Any] = draw(st.dictionaries(st.sampled_from(_IDS), _VALUE, max_size=12))
    if draw(st.booleans()) or draw(st.booleans()):
        frame["conid"] = draw(st.one_of(st.integers(1, 10**9), st.text(max_size=4), _SCALAR))
    if draw(st.booleans()) or draw(st.booleans()):
        frame["_updated"] = draw(_INT64)
    items = list(frame.items())
    order = draw(st.permutations(range(len(items)))) if items else []
    conid = draw(st.integers(1, 10**6))
    ordered = dict([items[i] for i in order])
    ordered["topic"] = draw(st.sampled_from([f"smd+{conid}", "smd", f"umd+{conid}"]))
    return json.dumps(ordered)


_TOPICS = ["smd+1", "smh+1", "sbd+A+1", "sor", "str", "spl", "ssd+A", "sld+A", "act", "sts", "blt", "ntf"]
_BODY_KEYS = ["args", "error", "message", "result", "conid", "_updated", "31"]


@st.composite
def any_frames(draw: st.DrawFn) -> str:
    topic = draw(
        st.one_of(
            st.sampled_from(
                [
                    "smd+1",
                    "smh+1",
                    "sbd+A+1",
                    "sor",
                    "str",
                    "spl",
                    "ssd+A",
                    "sld+A",
                    "act",
                    "sts",
                    "blt",
                    "ntf",
                ]
            ),
            st.sampled_from(["system", "tic", "error", "xmd", "uor", "s", ""]),
            st.text(max_size=5),
            st.none(),
        )
    )
    body: dict[str, Any] = draw(
        st.dictionaries(
            st.sampled_from(["args", "error", "message", "result", "conid", "_updated", "31"]),
            _VALUE,
            max_size=4,
        )
    )
    if topic is not None:
        body["topic"] = topic
    return json.dumps(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(md_frames(), min_size=1, max_size=5))
def test_hypothesis_market_data(frames: list[str]) -> None:
    tally = run(frames)
    assert tally.undocumented == [], tally.undocumented[:3]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_frames(), min_size=1, max_size=5))
def test_hypothesis_any_frames(frames: list[str]) -> None:
    tally = run(frames)
    assert tally.undocumented == [], tally.undocumented[:3]


@pytest.mark.parametrize("frame", EDGE_FRAMES)
def test_classify_names_every_edge_frame(frame: str) -> None:
    ib, rx = IbindSide().feed(frame), RxSide().feed(frame)
    assert classify(frame, ib, rx) is not None
