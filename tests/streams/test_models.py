"""The typed models: parsing of every shape the protocol reference shows, and the fast market-data
parser agreeing with the protocol core's parse_value on any input."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxibkr.protocol import FIELD_KINDS, FIELDS, FieldKind, decode, parse_price, parse_value
from rxibkr.streams.models import (
    AuthStatus,
    Bar,
    Bulletin,
    Execution,
    History,
    Ladder,
    LadderRow,
    MarketDataUpdate,
    Notification,
    OrderUpdate,
    PnlRow,
    Quote,
    SummaryItem,
    field_value,
    new_quote,
    new_update,
    parse_market_data,
)

FIELD_IDS = [*FIELDS, "87_raw"]
NAMES = {**FIELDS, "87_raw": "volume_raw"}
PRICE_IDS = {fid for fid, kind in FIELD_KINDS.items() if kind is FieldKind.PRICE}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


numeric_text = st.from_regex(r"\A[CH ]{0,2}[-+]?[0-9]{0,6}([.][0-9]{0,4})?([eE][-+]?[0-9]{1,3})?[KMB%]?\Z")
values = st.one_of(
    numeric_text,
    st.text(max_size=8),
    st.sampled_from(
        ["", "N/A", "n/a", "-", " 1.5 ", "1,234.5", "12.2M", "C271.67", "H1", "1e999", "1_0", "inf"]
    ),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(FIELD_IDS), values)
def test_fast_parser_agrees_with_parse_value(fid: str, value: Any) -> None:
    for _ in range(2):  # the second time from the memo
        fields, prefixes = parse_market_data({fid: value, "conid": 1, "_updated": 2, "topic": "smd+1"})
        assert list(fields) == [NAMES[fid]]
        assert same(fields[NAMES[fid]], parse_value(fid, value)), (fid, value)
        if fid in PRICE_IDS and isinstance(value, str):
            price = parse_price(value)
            expected = ("C" if price.is_close else "") + ("H" if price.is_halted else "")
            assert prefixes.get(NAMES[fid], "") == expected
        else:
            assert NAMES[fid] not in prefixes


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from([*FIELD_IDS, "conid", "_updated", "9999", "topic"]), values, max_size=6)
)
def test_one_field_is_parsed_as_the_whole_quote_parses_it(data: dict[str, Any]) -> None:
    """Quote.get / MarketDataUpdate.get / changes(field) parse one field (field_value), with the
    same result as the full parse, for every name, present or not."""
    fields, _ = parse_market_data(data)
    quote = new_quote(1, 2, data, None)
    for name in [*NAMES.values(), *FIELD_IDS, "conid", "_updated", "9999", "topic", "nope"]:
        expected = fields.get(name, "missing")
        assert same(field_value(data, name, "missing"), expected), (name, data)
        assert same(quote.get(name, "default"), "default" if expected in (None, "missing") else expected)


def test_parser_keeps_unknown_keys_and_drops_bookkeeping() -> None:
    fields, prefixes = parse_market_data(
        {
            "server_id": "q0",
            "conidEx": "1",
            "conid": 1,
            "_updated": 1,
            "topic": "smd+1",
            "9999": "x",
            "TimestampBase": 5,
        }
    )
    assert fields == {"9999": "x", "TimestampBase": 5} and prefixes == {}


def test_market_data_update_from_message() -> None:
    message = decode(b'{"topic":"smd+8314","_updated":"1712596911593","31":"189.60","7059":"100"}')
    update = MarketDataUpdate.from_message(message)
    assert update is not None
    assert (update.conid, update.updated) == (8314, 1712596911593)
    assert update.fields == {"last_price": 189.6, "last_size": 100} and update.raw == message.raw
    assert "last_price" in repr(update)
    assert MarketDataUpdate.from_message(decode(b'{"topic":"smd","x":1}')) is None
    assert MarketDataUpdate.from_message(decode(b"garbage")) is None
    assert new_update(8314, 1712596911593, update.data, message) == update
    with pytest.raises(dataclasses.FrozenInstanceError):
        update.conid = 1  # type: ignore[misc]


def test_quote_typed_access() -> None:
    data = {
        "31": "C271.67",
        "84": "271.55",
        "86": "271.66",
        "88": "200",
        "85": "500",
        "7059": "100",
        "87": "12.2M",
        "87_raw": 1.22e7,
        "70": "272",
        "71": "270.5",
        "7295": "271",
        "7741": "270",
        "82": "1.67",
        "83": 0.62,
        "55": "AAPL",
        "6509": "RpB",
        "7633": "21.5%",
    }
    q = Quote(265598, 5, data)
    assert (q.bid, q.ask, q.last, q.is_close, q.is_halted) == (271.55, 271.66, 271.67, True, False)
    assert (q.bid_size, q.ask_size, q.last_size, q.volume) == (200, 500, 100, 12_200_000.0)
    assert (q.high, q.low, q.open, q.prior_close, q.change, q.change_percent) == (
        272.0,
        270.5,
        271.0,
        270.0,
        1.67,
        0.62,
    )
    assert (q.symbol, q.availability) == ("AAPL", "RpB")
    assert q.mid == pytest.approx(271.605) and q.spread == pytest.approx(0.11)
    assert q.get("implied_vol_percent") == 21.5 and q.get("missing", 0) == 0
    assert q.fields["ask_size"] == 500 and q.time is not None
    assert new_quote(265598, 5, data, None) == q
    empty = Quote(1, None, {"31": "N/A", "55": "-"})
    assert (empty.bid, empty.mid, empty.spread, empty.last, empty.symbol, empty.volume, empty.time) == (
        None,
    ) * 7
    assert Quote(1, 1, {"31": "H12"}).is_halted


def test_bars_and_history() -> None:
    assert Bar.from_history({"o": 1, "c": 2, "h": 3, "l": 0.5, "v": 10, "t": 1000}) == Bar(
        1000, 1.0, 3.0, 0.5, 2.0, 10.0, raw={"o": 1, "c": 2, "h": 3, "l": 0.5, "v": 10, "t": 1000}
    )
    only_close = Bar.from_history({"c": "2.5", "t": "2000"})
    assert only_close is not None and (only_close.open, only_close.high, only_close.volume) == (
        2.5,
        2.5,
        None,
    )
    assert Bar.from_history({"o": 1}) is None and Bar.from_history({"t": 1}) is None
    assert only_close.datetime is not None
    message = decode(
        orjson.dumps(
            {
                "serverId": 341115,
                "symbol": "AAPL",
                "priceFactor": 100,
                "barLength": 300,
                "points": 1,
                "topic": "smh+265598",
                "data": [{"o": 1, "c": 1, "h": 1, "l": 1, "t": 1}, "junk", {"x": 1}],
            }
        )
    )
    history = History.from_message(message)
    assert (history.conid, history.server_id, history.bar_length, len(history.bars)) == (
        265598,
        "341115",
        300,
        1,
    )
    assert history.bars[0].conid == 265598
    assert History.from_message(decode(b'{"topic":"smh+1","data":"nope"}')).bars == ()


def test_orders_and_executions() -> None:
    u = OrderUpdate(
        1,
        {
            "acct": "DU1",
            "orderId": 1,
            "status": "Cancelled",
            "price": "",
            "lastExecutionTime_r": 1594229751000,
            "orderDesc": "Buy 1",
            "order_ref": "ref-1",
            "conid": "265598",
            "totalSize": "100",
        },
        frozenset({"status"}),
        {"status": "Cancelled"},
    )
    assert (u.account, u.price, u.is_done, u.is_filled, u.conid, u.total_size) == (
        "DU1",
        None,
        True,
        False,
        265598,
        100.0,
    )
    assert u.last_execution_time is not None and u.order_ref == "ref-1" and u.description == "Buy 1"
    assert Execution.from_mapping({"no": "id"}) is None
    e = Execution.from_mapping({"execution_id": 7, "price": "1.5", "net_amount": 3.0, "accountCode": "DU1"})
    assert e is not None and (e.execution_id, e.price, e.net_amount, e.account, e.commission) == (
        "7",
        1.5,
        3.0,
        "DU1",
        None,
    )


def test_account_models() -> None:
    row = PnlRow("DU1.Core", {"rowType": 1, "dpl": "-1.5", "uel": 2, "el": 3, "mv": 4, "nl": 5, "upl": 6})
    assert (row.account, row.daily, row.excess_liquidity_unrounded, row.market_value) == (
        "DU1",
        -1.5,
        2.0,
        4.0,
    )
    assert SummaryItem.from_mapping("DU1", {"no": "key"}) is None
    item = SummaryItem.from_mapping("DU1", {"key": "AccountType", "value": "INDIVIDUAL", "timestamp": 1})
    assert item is not None and item.number is None and item.value == "INDIVIDUAL"


def test_ladder_rows() -> None:
    assert LadderRow.from_mapping({"row": 1, "focus": 1, "price": "100 @ 12.5"}) == LadderRow(
        1, 12.5, 100.0, None, None, True, {"row": 1, "focus": 1, "price": "100 @ 12.5"}
    )
    ladder = Ladder.from_message(
        decode(b'{"topic":"sbd+DU1+265598","data":[{"row":0,"price":"1","bid":"5"},7]}')
    )
    assert (ladder.account, ladder.conid, ladder.exchange, len(ladder)) == ("DU1", 265598, None, 1)


def test_unsolicited_models() -> None:
    ntf = decode(b'{"topic":"ntf","args":{"id":5,"text":"t"}}')
    assert [(n.id, n.text, n.prompt) for n in Notification.from_message(ntf)] == [("5", "t", False)]
    assert Notification.from_message(decode(b'{"topic":"ntf","args":"nope"}')) == []
    blt = decode(b'{"topic":"blt","args":[{"id":1,"message":"m","exchanges":["A","B"]}, 3]}')
    assert [(b.id, b.exchanges) for b in Bulletin.from_message(blt)] == [("1", "A,B")]
    sts = decode(
        b'{"topic":"sts","args":{"authenticated":false,"competing":true,"serverName":"s","username":"u"}}'
    )
    status = AuthStatus.from_message(sts)
    assert status is not None and (status.authenticated, status.competing, status.server_name) == (
        False,
        True,
        "s",
    )
    assert AuthStatus.from_message(decode(b'{"topic":"sts","args":[1]}')) is None
