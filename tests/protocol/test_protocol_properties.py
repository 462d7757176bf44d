"""Property tests: decode never raises; builders round-trip through parse_request; parsers never raise."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from rxibkr.protocol import (
    FIELDS,
    ClientRequest,
    Message,
    MessageKind,
    account_summary,
    decode,
    ledger,
    market_data,
    market_history,
    orders,
    parse_fields,
    parse_number,
    parse_price,
    parse_request,
    price_ladder,
    session,
    trades,
    unsubscribe_account_summary,
    unsubscribe_ledger,
    unsubscribe_market_data,
    unsubscribe_market_history,
    unsubscribe_price_ladder,
)
from rxibkr.protocol.requests import BARS, FORMAT_CODES, PERIOD_UNITS, SOURCES

FAST = settings(max_examples=200, derandomize=True, deadline=None)
SLOW = settings(max_examples=80, derandomize=True, deadline=None)  # for the costly-to-generate JSON objects

TOPICS = [
    "smd+265598",
    "smd",
    "sor",
    "str",
    "spl",
    "ssd+DU1234567",
    "sld+DU1",
    "sbd+DU1+1",
    "smh+1",
    "system",
    "sts",
    "act",
    "blt",
    "ntf",
    "tic",
    "error",
    "shs+exercise",
    "",
    "smd+",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
objects = st.dictionaries(
    st.sampled_from(["topic", "error", "message", "result", "args", "31", "conid"]) | st.text(max_size=8),
    json_values | st.sampled_from(TOPICS),
    max_size=6,
)


def _check(message: Message, raw: object) -> None:
    assert isinstance(message, Message)
    assert isinstance(message.kind, MessageKind)
    assert message.key is not None
    assert message.raw is raw
    assert (message.data is None) == (message.kind is MessageKind.MALFORMED)
    assert (message.error is None) == (message.kind in (MessageKind.DATA, MessageKind.CONTROL))
    # the lazy views never raise either
    message.target, message.channel, message.args, repr(message)


@FAST
@given(st.binary(max_size=300))
def test_decode_never_raises_on_bytes(raw: bytes) -> None:
    _check(decode(raw), raw)


@FAST
@given(st.text(max_size=300))
def test_decode_never_raises_on_text(raw: str) -> None:
    _check(decode(raw), raw)


@SLOW
@given(json_values)
def test_decode_of_json_values(value: Any) -> None:
    raw = orjson.dumps(value)
    message = decode(raw)
    _check(message, raw)
    assert (message.kind is MessageKind.MALFORMED) == (not isinstance(value, dict))


@SLOW
@given(objects, st.sampled_from([b"", b"\x00", b" \n", b"\x00\x00"]))
def test_decode_of_objects_binary_and_text_agree(obj: dict[str, Any], tail: bytes) -> None:
    raw = orjson.dumps(obj) + tail
    binary, text = decode(raw), decode(raw.decode())
    _check(binary, raw)
    assert binary.kind is not MessageKind.MALFORMED
    assert binary.data == obj
    assert (binary.kind, binary.key, binary.topic, binary.error) == (
        text.kind,
        text.key,
        text.topic,
        text.error,
    )
    again = decode(raw)  # the fast path for topics seen before gives the same answer
    assert again == binary


@SLOW
@given(objects, st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=3).map(bytes))
def test_invalid_utf8_inside_strings_keeps_the_message(obj: dict[str, Any], junk: bytes) -> None:
    obj = {**obj, "note": "x"}
    raw = orjson.dumps(obj).replace(b'"note":"x"', b'"note":"' + junk + b'"')
    message = decode(raw)
    _check(message, raw)
    assert message.kind is not MessageKind.MALFORMED


@FAST
@given(st.text(max_size=60))
def test_parse_request_raises_only_value_error(payload: str) -> None:
    try:
        request = parse_request(payload)
    except ValueError:
        return
    assert isinstance(request, ClientRequest)
    # what was parsed is what the payload says: its action and channel head it, its targets follow
    assert request.action in ("s", "u", "tic", "ech", "session")
    if request.action in ("s", "u"):
        assert payload.startswith(request.action + request.channel)
        assert request.key is not None
        assert all(t in payload for t in request.targets)
    else:
        assert request.key is None


@SLOW
@given(json_values | st.text(max_size=12))
def test_field_parsers_never_raise(value: Any) -> None:
    number = parse_number(value)
    assert number is None or isinstance(number, int | float)
    if isinstance(value, str) and number is not None:
        assert math.isfinite(number)  # text never parses to inf or nan
    price = parse_price(value)
    assert price.value is None or isinstance(price.value, float)
    # a price is its number once the C/H prefixes are gone
    assert price.value == (None if number is None else float(number)) or isinstance(value, str)
    parsed = parse_fields({"31": value, "87": value, "55": value, "x": value})
    assert parsed["last_price"] == price.value  # ids renamed to names, values parsed
    assert parsed["x"] == value  # not a field: unchanged


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)


@FAST
@given(finite, st.sampled_from(["", "C", "H", "CH", "HC"]))
def test_numbers_and_prices_round_trip_through_their_wire_text(x: float, prefix: str) -> None:
    assert parse_number(x) == x and parse_number(repr(x)) == x
    assert parse_number(f"{x:,.4f}") == float(f"{x:.4f}")  # thousands separators
    assert parse_number(f"{x:.2f}%") == float(f"{x:.2f}")
    price = parse_price(f"{prefix}{x!r}")
    assert price == (x, "C" in prefix, "H" in prefix)


@FAST
@given(st.integers(-(10**12), 10**12), st.sampled_from(["K", "M", "B"]))
def test_suffixed_numbers_scale_exactly(n: int, suffix: str) -> None:
    scale = {"K": 10**3, "M": 10**6, "B": 10**9}[suffix]
    assert parse_number(f"{n}{suffix}") == float(n * scale)
    assert parse_number(f"{n}{suffix.lower()}") == float(n * scale)
    assert parse_number(str(n)) == n and isinstance(parse_number(str(n)), int)


# --- builders round-trip ---------------------------------------------------------------------------------

conids = st.integers(1, 2**40)
tokens = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)
field_ids = st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=8)
names = st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=4)


@FAST
@given(conids, st.none() | field_ids, st.none() | tokens)
def test_market_data_round_trip(conid: int, fields: list[str] | None, exchange: str | None) -> None:
    target = str(conid) if exchange is None else f"{conid}@{exchange}"
    args = {} if fields is None else {"fields": fields}
    assert parse_request(market_data(conid, fields, exchange)) == ClientRequest("s", "md", (target,), args)
    assert parse_request(unsubscribe_market_data(target)) == ClientRequest("u", "md", (target,), {})


periods = st.sampled_from(sorted(PERIOD_UNITS)).flatmap(
    lambda unit: st.integers(1, PERIOD_UNITS[unit]).map(lambda n: f"{n}{unit}")
)
formats = st.lists(st.sampled_from(FORMAT_CODES), min_size=1, max_size=5, unique=True).map("/".join)


@FAST
@given(
    conids,
    periods,
    st.sampled_from(BARS),
    st.none() | tokens,
    st.booleans(),
    st.sampled_from(SOURCES),
    st.none() | formats,
)
def test_market_history_round_trip(
    conid: int, period: str, bar: str, exchange: str | None, outside_rth: bool, source: str, fmt: str | None
) -> None:
    payload = market_history(
        conid, period=period, bar=bar, exchange=exchange, outside_rth=outside_rth, source=source, format=fmt
    )
    expected: dict[str, Any] = {} if exchange is None else {"exchange": exchange}
    expected |= {"period": period, "bar": bar, "outsideRth": outside_rth, "source": source}
    if fmt is not None:
        expected["format"] = fmt
    assert parse_request(payload) == ClientRequest("s", "mh", (str(conid),), expected)


@FAST
@given(tokens | st.integers(1, 10**9))
def test_unsubscribe_market_history_round_trip(server_id: str | int) -> None:
    assert parse_request(unsubscribe_market_history(server_id)) == ClientRequest("u", "mh", (str(server_id),))


@FAST
@given(tokens, conids, st.none() | tokens)
def test_price_ladder_round_trip(account: str, conid: int, exchange: str | None) -> None:
    targets = (account, str(conid)) if exchange is None else (account, str(conid), exchange)
    assert parse_request(price_ladder(account, conid, exchange)) == ClientRequest("s", "bd", targets)
    assert parse_request(unsubscribe_price_ladder(account)) == ClientRequest("u", "bd", (account,))


@FAST
@given(st.none() | names, st.none() | st.integers(1, 7), st.booleans())
def test_orders_and_trades_round_trip(filters: list[str] | None, days: int | None, realtime: bool) -> None:
    assert parse_request(orders(filters)) == ClientRequest(
        "s", "or", (), {} if filters is None else {"filters": filters}
    )
    expected: dict[str, Any] = {"realtimeUpdatesOnly": True} if realtime else {}
    if days is not None:
        expected["days"] = days
    assert parse_request(trades(days, realtime)) == ClientRequest("s", "tr", (), expected)


@FAST
@given(tokens, st.none() | names, st.none() | names)
def test_account_summary_and_ledger_round_trip(
    account: str, keys: list[str] | None, fields: list[str] | None
) -> None:
    expected: dict[str, Any] = {}
    if keys is not None:
        expected["keys"] = keys
    if fields is not None:
        expected["fields"] = fields
    assert parse_request(account_summary(account, keys, fields)) == ClientRequest(
        "s", "sd", (account,), expected
    )
    assert parse_request(ledger(account, keys, fields)) == ClientRequest("s", "ld", (account,), expected)
    assert parse_request(unsubscribe_account_summary(account)) == ClientRequest("u", "sd", (account,), {})
    assert parse_request(unsubscribe_ledger(account)) == ClientRequest("u", "ld", (account,), {})


@FAST
@given(st.text(min_size=1, max_size=40).filter(lambda s: s.isprintable() and not any(c.isspace() for c in s)))
def test_session_round_trip(session_id: str) -> None:
    assert parse_request(session(session_id)) == ClientRequest(
        "session", "session", (), {"session": session_id}
    )
