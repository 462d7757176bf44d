"""Differential: IbkrSubscriptionProcessor payloads of IBind 0.1.14 and rxibkr (a table, then hypothesis).

Equal strings for every channel/data pair both accept. Where IBind accepts what rxibkr rejects at the
call (a channel that is not a non-empty str, data that is not a dict), that is a documented deviation;
where both raise, rxibkr's exception is an instance of IBind's exception type.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibind.client.ibkr_ws_client import IbkrSubscriptionProcessor as IbindProcessor

from rxibkr.protocol import ArgumentTypeError, IbkrSubscriptionProcessor, parse_request

IB = IbindProcessor()
RX = IbkrSubscriptionProcessor()
METHODS = ("make_subscribe_payload", "make_unsubscribe_payload")


def call(processor: Any, method: str, channel: Any, data: Any) -> tuple[str, Any]:
    try:
        return "ok", getattr(processor, method)(channel, data)
    except Exception as exc:
        return "raises", exc


circular: dict[str, Any] = {}
circular["self"] = circular

TABLE: list[tuple[Any, Any]] = [
    ("md", {"foo": "bar"}),  # the seed's example: smd+{"foo": "bar"}
    ("md", None),
    ("md", {}),
    ("md+265598", {"fields": ["31", "84", "86"]}),
    (
        "mh+265598",
        {"exchange": "SMART", "period": "1d", "bar": "1min", "outsideRth": False, "source": "trades"},
    ),
    ("or", None),
    ("or", {}),
    ("tr", {"realtimeUpdatesOnly": True, "days": 1}),
    ("pl", {}),
    ("sd+DU1234567", {"keys": ["AccruedCash-S"], "fields": ["currency", "monetaryValue"]}),
    ("ld+DU1234567", {"keys": ["LedgerListBASE"]}),
    ("bd+DU1234567+265598+SMART", None),
    ("md", {1: "int key", 2.5: "float key", False: "bool key", None: "null key"}),
    ("md", {"big": 2**80, "neg": -(2**70)}),
    ("md", {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}),
    ("md", {"unicode": "é✓🙂", "ctl": "\x00\n"}),
    ("md", {"nested": {"a": [1, 2.0, None, True, {"b": []}]}}),
    ("md", {"tuple": (1, 2)}),
    ("md", {"set": {1}}),  # json.dumps: TypeError
    ("md", {(1, 2): "tuple key"}),  # json.dumps: TypeError
    ("md", circular),  # json.dumps: ValueError
]

# (channel, data) pairs IBind accepts and rxibkr rejects at the call (docs/ibind.md lists them)
REJECTED = [(5, None), (b"md", None), ("", None), (None, None), ("md", [1]), ("md", "x"), ("md", 3)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("channel", "data"), TABLE)
def test_table(method: str, channel: Any, data: Any) -> None:
    ib, rx = call(IB, method, channel, data), call(RX, method, channel, data)
    assert ib[0] == rx[0], (ib, rx)
    if ib[0] == "ok":
        assert rx[1] == ib[1]
    else:
        assert isinstance(rx[1], type(ib[1])), (ib, rx)
        assert isinstance(rx[1], ArgumentTypeError) and "data" in str(rx[1])


def test_the_seed_examples() -> None:
    assert RX.make_subscribe_payload("md", {"foo": "bar"}) == 'smd+{"foo": "bar"}'
    assert RX.make_subscribe_payload("md") == "smd"
    assert RX.make_unsubscribe_payload("md", {"foo": "bar"}) == 'umd+{"foo": "bar"}'
    assert RX.make_unsubscribe_payload("md") == "umd+{}"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("channel", "data"), REJECTED)
def test_documented_rejections(method: str, channel: Any, data: Any) -> None:
    assert call(IB, method, channel, data)[0] == "ok"
    kind, exc = call(RX, method, channel, data)
    assert kind == "raises" and isinstance(exc, ValueError)
    assert ("channel" if data is None else "data") in str(exc)


_KEYS = st.one_of(
    st.text(max_size=6),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
_LEAF = st.one_of(st.text(max_size=6), st.integers(-(2**90), 2**90), st.floats(), st.booleans(), st.none())
_JSON = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)
_CHANNELS = st.one_of(
    st.sampled_from(["md", "mh", "bd", "or", "tr", "pl", "sd", "ld"]),
    st.builds(lambda c, t: f"{c}+{t}", st.sampled_from(["md", "sd", "mh"]), st.text(min_size=1, max_size=8)),
    st.text(min_size=1, max_size=10),
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(METHODS),
    _CHANNELS,
    st.one_of(st.none(), st.dictionaries(_KEYS, _JSON, max_size=4)),
)
def test_hypothesis_equal_payloads(method: str, channel: str, data: dict[Any, Any] | None) -> None:
    ib, rx = call(IB, method, channel, data), call(RX, method, channel, data)
    assert ib[0] == rx[0]
    if ib[0] == "ok":
        assert rx[1] == ib[1]
    else:
        assert isinstance(rx[1], type(ib[1]))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["md+265598", "mh+265598", "sd+DU1234567", "ld+DU1234567", "or", "tr", "pl"]),
    st.dictionaries(
        st.text(max_size=6), st.one_of(st.text(max_size=6), st.integers(-(2**63), 2**63 - 1)), max_size=3
    ),
)
def test_the_simulator_parses_the_spaced_payloads(channel: str, data: dict[str, Any]) -> None:
    for payload in (RX.make_subscribe_payload(channel, data), RX.make_unsubscribe_payload(channel, data)):
        request = parse_request(payload)
        assert request.args == data
