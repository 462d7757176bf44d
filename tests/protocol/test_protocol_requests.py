"""Request builders (protocol section 2): exact strings, every ValueError path, and parse_request."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from rxibkr.protocol import (
    ArgumentTypeError,
    ClientRequest,
    IbkrWsKey,
    account_summary,
    echo_heartbeat,
    ledger,
    market_data,
    market_history,
    orders,
    parse_request,
    pnl,
    price_ladder,
    session,
    tic,
    trades,
    unsubscribe_account_summary,
    unsubscribe_ledger,
    unsubscribe_market_data,
    unsubscribe_market_history,
    unsubscribe_orders,
    unsubscribe_pnl,
    unsubscribe_price_ladder,
    unsubscribe_trades,
)

ACCT = "DU1234567"

EXACT: list[tuple[str, str]] = [
    (market_data(265598, ["31", "84"]), 'smd+265598+{"fields":["31","84"]}'),
    (market_data("265598", [31, 84]), 'smd+265598+{"fields":["31","84"]}'),
    (market_data(265598, ["last_price", "bid_price"]), 'smd+265598+{"fields":["31","84"]}'),
    (market_data(265598, "31"), 'smd+265598+{"fields":["31"]}'),
    (market_data(265598), "smd+265598+{}"),
    (market_data("265598@ISLAND", ["31"]), 'smd+265598@ISLAND+{"fields":["31"]}'),
    (market_data(265598, ["31"], exchange="ISLAND"), 'smd+265598@ISLAND+{"fields":["31"]}'),
    (unsubscribe_market_data(265598), "umd+265598+{}"),
    (unsubscribe_market_data("265598@ISLAND"), "umd+265598@ISLAND+{}"),
    (
        market_history(265598),
        'smh+265598+{"period":"1d","bar":"5min","outsideRth":false,"source":"trades"}',
    ),
    (
        market_history(
            265598,
            exchange="ISLAND",
            period="2h",
            bar="5min",
            outside_rth=True,
            source="bid_ask",
            format="%h/%l",
        ),
        'smh+265598+{"exchange":"ISLAND","period":"2h","bar":"5min","outsideRth":true,'
        '"source":"bid_ask","format":"%h/%l"}',
    ),
    (unsubscribe_market_history("341115"), "umh+341115"),
    (unsubscribe_market_history(341115), "umh+341115"),
    (price_ladder(ACCT, 265598), f"sbd+{ACCT}+265598"),
    (price_ladder(ACCT, "265598", "ISLAND"), f"sbd+{ACCT}+265598+ISLAND"),
    (unsubscribe_price_ladder(ACCT), f"ubd+{ACCT}"),
    (orders(), "sor+{}"),
    (orders("Submitted"), 'sor+{"filters":["Submitted"]}'),
    (orders(["Submitted", "Filled"]), 'sor+{"filters":["Submitted","Filled"]}'),
    (unsubscribe_orders(), "uor+{}"),
    (trades(), "str+{}"),
    (trades(realtime_only=True), 'str+{"realtimeUpdatesOnly":true}'),
    (trades(days=3), 'str+{"days":3}'),
    (trades(days=7, realtime_only=True), 'str+{"realtimeUpdatesOnly":true,"days":7}'),
    (unsubscribe_trades(), "utr"),
    (pnl(), "spl+{}"),
    (unsubscribe_pnl(), "upl+{}"),
    (account_summary(ACCT), f"ssd+{ACCT}+{{}}"),
    (
        account_summary(
            ACCT, keys=["AccruedCash-S", "ExcessLiquidity-S"], fields=["currency", "monetaryValue"]
        ),
        f'ssd+{ACCT}+{{"keys":["AccruedCash-S","ExcessLiquidity-S"],"fields":["currency","monetaryValue"]}}',
    ),
    (account_summary(ACCT, fields="currency"), f'ssd+{ACCT}+{{"fields":["currency"]}}'),
    (unsubscribe_account_summary(ACCT), f"usd+{ACCT}+{{}}"),
    (ledger(ACCT), f"sld+{ACCT}+{{}}"),
    (ledger(ACCT, keys=["LedgerListBASE"]), f'sld+{ACCT}+{{"keys":["LedgerListBASE"]}}'),
    (unsubscribe_ledger(ACCT), f"uld+{ACCT}+{{}}"),
    (tic(), "tic"),
    (echo_heartbeat(), "ech+hb"),
    (session("aeccc9d7515398c50fa894d967d099b1"), '{"session":"aeccc9d7515398c50fa894d967d099b1"}'),
]


@pytest.mark.parametrize(("built", "expected"), EXACT, ids=[expected for _, expected in EXACT])
def test_builders_produce_the_exact_strings(built: str, expected: str) -> None:
    assert built == expected


@pytest.mark.parametrize(
    "period", ["1min", "30min", "1h", "8h", "1d", "1000d", "1w", "792w", "1m", "182m", "15y"]
)
def test_market_history_accepts_every_period_unit(period: str) -> None:
    assert json.loads(market_history(1, period=period).split("+", 2)[2])["period"] == period


BAD_CALLS: list[tuple[str, Any, dict[str, Any], str]] = [
    # (name, function, kwargs, argument named in the message)
    ("conid not numeric", market_data, {"conid": "AAPL"}, "conid"),
    ("conid zero", market_data, {"conid": 0}, "conid"),
    ("conid negative", market_data, {"conid": -5}, "conid"),
    ("conid empty", market_data, {"conid": ""}, "conid"),
    ("conid bool", market_data, {"conid": True}, "conid"),
    ("conid float", market_data, {"conid": 1.5}, "conid"),
    ("conid None", market_data, {"conid": None}, "conid"),
    ("conid unicode digits", market_data, {"conid": "١٢٣"}, "conid"),
    ("conid exchange empty", market_data, {"conid": "265598@"}, "conid"),
    ("conid exchange twice", market_data, {"conid": "265598@ISLAND", "exchange": "NYSE"}, "exchange"),
    ("conid with plus", market_data, {"conid": "265598+1"}, "conid"),
    ("exchange with plus", market_data, {"conid": 1, "exchange": "A+B"}, "exchange"),
    ("exchange empty", market_data, {"conid": 1, "exchange": ""}, "exchange"),
    ("exchange not str", market_data, {"conid": 1, "exchange": 5}, "exchange"),
    ("fields empty", market_data, {"conid": 1, "fields": []}, "fields"),
    ("fields unknown name", market_data, {"conid": 1, "fields": ["last_prize"]}, "fields"),
    ("fields csv", market_data, {"conid": 1, "fields": "31,84"}, "fields"),
    ("fields bool", market_data, {"conid": 1, "fields": [True]}, "fields"),
    ("fields float", market_data, {"conid": 1, "fields": [31.0]}, "fields"),
    ("fields dict", market_data, {"conid": 1, "fields": {"31": 1}}, "fields"),
    ("fields bytes", market_data, {"conid": 1, "fields": b"31"}, "fields"),
    ("unsubscribe conid", unsubscribe_market_data, {"conid": "x"}, "conid"),
    ("history conid", market_history, {"conid": "x"}, "conid"),
    ("history conid with exchange", market_history, {"conid": "265598@ISLAND"}, "conid"),
    ("period unit", market_history, {"conid": 1, "period": "1s"}, "period"),
    ("period too long", market_history, {"conid": 1, "period": "31min"}, "period"),
    ("period zero", market_history, {"conid": 1, "period": "0d"}, "period"),
    ("period no count", market_history, {"conid": 1, "period": "d"}, "period"),
    ("period years", market_history, {"conid": 1, "period": "16y"}, "period"),
    ("period empty", market_history, {"conid": 1, "period": ""}, "period"),
    ("period not str", market_history, {"conid": 1, "period": 5}, "period"),
    ("bar unknown", market_history, {"conid": 1, "bar": "7min"}, "bar"),
    ("bar case", market_history, {"conid": 1, "bar": "1D"}, "bar"),
    ("source unknown", market_history, {"conid": 1, "source": "t"}, "source"),
    ("outside_rth not bool", market_history, {"conid": 1, "outside_rth": "yes"}, "outside_rth"),
    ("format unknown code", market_history, {"conid": 1, "format": "%o/%x"}, "format"),
    ("format repeated code", market_history, {"conid": 1, "format": "%o/%o"}, "format"),
    ("format empty", market_history, {"conid": 1, "format": ""}, "format"),
    ("format not str", market_history, {"conid": 1, "format": ["%o"]}, "format"),
    ("history exchange", market_history, {"conid": 1, "exchange": "A B"}, "exchange"),
    ("server id empty", unsubscribe_market_history, {"server_id": ""}, "server_id"),
    ("server id template", unsubscribe_market_history, {"server_id": "{serverId}"}, "server_id"),
    ("server id None", unsubscribe_market_history, {"server_id": None}, "server_id"),
    ("ladder account empty", price_ladder, {"account": "", "conid": 1}, "account"),
    ("ladder account plus", price_ladder, {"account": "DU1+2", "conid": 1}, "account"),
    ("ladder account int", price_ladder, {"account": 1234567, "conid": 1}, "account"),
    ("ladder conid", price_ladder, {"account": ACCT, "conid": "conid"}, "conid"),
    ("ladder exchange", price_ladder, {"account": ACCT, "conid": 1, "exchange": ""}, "exchange"),
    ("unsubscribe ladder account", unsubscribe_price_ladder, {"account": "{acctId}"}, "account"),
    ("filters empty list", orders, {"filters": []}, "filters"),
    ("filters empty str", orders, {"filters": ""}, "filters"),
    ("filters not str", orders, {"filters": [1]}, "filters"),
    ("filters int", orders, {"filters": 1}, "filters"),
    ("days zero", trades, {"days": 0}, "days"),
    ("days eight", trades, {"days": 8}, "days"),
    ("days bool", trades, {"days": True}, "days"),
    ("days str", trades, {"days": "3"}, "days"),
    ("realtime_only not bool", trades, {"realtime_only": 1}, "realtime_only"),
    ("summary account empty", account_summary, {"account": ""}, "account"),
    ("summary account None", account_summary, {"account": None}, "account"),
    ("summary account space", account_summary, {"account": "DU 1"}, "account"),
    ("summary account not ascii", account_summary, {"account": "DU\u00e91"}, "account"),
    ("summary keys empty", account_summary, {"account": ACCT, "keys": []}, "keys"),
    ("summary fields item", account_summary, {"account": ACCT, "fields": [""]}, "fields"),
    ("unsubscribe summary account", unsubscribe_account_summary, {"account": ""}, "account"),
    ("ledger account", ledger, {"account": "DU/1"}, "account"),
    ("ledger keys item type", ledger, {"account": ACCT, "keys": [None]}, "keys"),
    ("unsubscribe ledger account", unsubscribe_ledger, {"account": ""}, "account"),
    ("session empty", session, {"session_id": ""}, "session_id"),
    ("session space", session, {"session_id": "a b"}, "session_id"),
    ("session control", session, {"session_id": "ab\n"}, "session_id"),
    ("session not str", session, {"session_id": 5}, "session_id"),
]


@pytest.mark.parametrize(
    ("func", "kwargs", "argument"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    func: Any, kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ValueError, match=rf"\b{re.escape(argument)}\b"):  # the name itself, not in a word
        func(**kwargs)


@pytest.mark.parametrize(
    "call",
    [
        lambda: market_data(None),  # type: ignore[arg-type]
        lambda: market_data(1, fields=[object()]),  # type: ignore[list-item]
        lambda: session(5),  # type: ignore[arg-type]
        lambda: trades(days="3"),  # type: ignore[arg-type]
        lambda: account_summary(None),  # type: ignore[arg-type]
    ],
)
def test_wrong_types_are_also_type_errors(call: Any) -> None:
    with pytest.raises(ArgumentTypeError):
        call()
    with pytest.raises(TypeError):
        call()


PARSED: list[tuple[str, ClientRequest]] = [
    ("tic", ClientRequest("tic", "tic")),
    ("ech+hb", ClientRequest("ech", "ech", ("hb",))),
    ('{"session":"abc123"}', ClientRequest("session", "session", (), {"session": "abc123"})),
    ('smd+265598+{"fields":["31"]}', ClientRequest("s", "md", ("265598",), {"fields": ["31"]})),
    ("smd+265598@ISLAND+{}", ClientRequest("s", "md", ("265598@ISLAND",), {})),
    ("smd+265598", ClientRequest("s", "md", ("265598",), None)),
    ("umd+265598+{}", ClientRequest("u", "md", ("265598",), {})),
    ('smh+265598+{"period":"1d"}', ClientRequest("s", "mh", ("265598",), {"period": "1d"})),
    ("umh+341115", ClientRequest("u", "mh", ("341115",), None)),
    ("umh+341115+{}", ClientRequest("u", "mh", ("341115",), {})),
    (f"sbd+{ACCT}+265598", ClientRequest("s", "bd", (ACCT, "265598"), None)),
    (f"sbd+{ACCT}+265598+ISLAND", ClientRequest("s", "bd", (ACCT, "265598", "ISLAND"), None)),
    (f"ubd+{ACCT}", ClientRequest("u", "bd", (ACCT,), None)),
    ("sor+{}", ClientRequest("s", "or", (), {})),
    ('sor+{"filters":["Submitted"]}', ClientRequest("s", "or", (), {"filters": ["Submitted"]})),
    ("uor+{}", ClientRequest("u", "or", (), {})),
    ("str+{}", ClientRequest("s", "tr", (), {})),
    ("utr", ClientRequest("u", "tr", (), None)),
    ("utr+{}", ClientRequest("u", "tr", (), {})),
    ("spl", ClientRequest("s", "pl", (), None)),
    ("spl+{}", ClientRequest("s", "pl", (), {})),
    ("upl+{}", ClientRequest("u", "pl", (), {})),
    (f"ssd+{ACCT}+{{}}", ClientRequest("s", "sd", (ACCT,), {})),
    (f"usd+{ACCT}", ClientRequest("u", "sd", (ACCT,), None)),
    (
        f'sld+{ACCT}+{{\n  "keys": ["LedgerListBASE"]\n}}',
        ClientRequest("s", "ld", (ACCT,), {"keys": ["LedgerListBASE"]}),
    ),
    (f"uld+{ACCT}+{{}}", ClientRequest("u", "ld", (ACCT,), {})),
]


@pytest.mark.parametrize(("payload", "expected"), PARSED, ids=[p for p, _ in PARSED])
def test_parse_request(payload: str, expected: ClientRequest) -> None:
    assert parse_request(payload) == expected


@pytest.mark.parametrize(("built", "_"), EXACT, ids=[expected for _, expected in EXACT])
def test_every_built_payload_parses(built: str, _: str) -> None:
    request = parse_request(built)
    assert request.action in ("s", "u", "tic", "ech", "session")


def test_client_request_key_and_immutability() -> None:
    request = parse_request("smd+265598+{}")
    assert request.key is IbkrWsKey.MARKET_DATA
    assert parse_request("tic").key is None
    with pytest.raises(AttributeError):
        request.channel = "mh"  # type: ignore[misc]


BAD_PAYLOADS = [
    "",
    "t",
    "tick",
    "smd+",
    "smd+{",
    "smd+265598+[1]",
    "smd+265598+{}x",
    "smd+265598{}",
    "smd265598",
    "upl{}",  # the gateway doc's typo
    "umh+{serverId}",  # doc templates
    "ubd+{acctId}",
    "sbd+acctId+conid+exchange",
    "smd+AAPL+{}",
    "smd+1+2+{}",
    "smd+{}",
    "smh+265598@ISLAND+{}",
    "sor+DU1+{}",
    "ssd+{}",
    "sbd+DU1",
    "sbd+DU1+1+X+Y",
    "ubd+DU1+1",
    "sxx+{}",
    "xmd+1+{}",
    "shs+exercise+{}",
    "inp+exercise+{}",
    "ech+",
    "ech",
    '{"session":""}',
    '{"session":1}',
    '{"session":"a","x":1}',
    "{nope",
    "[]",
    "SMD+1+{}",
    "smd++{}",
    "sld+DU 1+{}",
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS)
def test_parse_request_rejects(payload: str) -> None:
    with pytest.raises(ValueError):
        parse_request(payload)


def test_parse_request_rejects_non_str() -> None:
    with pytest.raises(ArgumentTypeError, match="payload"):
        parse_request(b"tic")  # type: ignore[arg-type]


def test_a_bad_period_is_refused_with_every_accepted_form() -> None:
    forms = "{1-30}min, {1-8}h, {1-1000}d, {1-792}w, {1-182}m or {1-15}y"
    with pytest.raises(ValueError) as caught:
        market_history(1, period="9h")
    assert str(caught.value) == f"period must be {forms}, got '9h'"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ("smd+x", "conid"),
        ("smh+abc", "conid"),  # a history subscribes a plain conid (its unsubscribe names a server id)
        ("sbd+DU1+x", "conid"),
        ('{"session": 1', "session message"),
        ("spl+", "expected '\\+' and a target"),
    ],
)
def test_requests_that_break_the_grammar_are_refused_saying_what(payload: str, named: str) -> None:
    with pytest.raises(ValueError, match=rf"^{named}\b"):
        parse_request(payload)


def test_a_history_unsubscribe_names_a_server_id_not_a_conid() -> None:
    assert parse_request("umh+abc").targets == ("abc",)


def test_a_bool_conid_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        market_history(True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda: price_ladder(True, 1),  # type: ignore[arg-type]
        lambda: market_data(1, fields=[True]),  # type: ignore[list-item]
        lambda: unsubscribe_market_history(True),
    ],
)
def test_a_bool_is_a_type_error_where_an_int_is_allowed(call: Any) -> None:
    with pytest.raises(TypeError):
        call()


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: market_data(1, fields=["\u0661\u0662"]), "fields"),  # digits, but not ASCII ones
        (lambda: market_history(1, period="\u0661d"), "period"),
        (lambda: market_history(1, period="xd"), "period"),
        (lambda: parse_request("ssd+DU 1"), "target"),
        (lambda: parse_request("spl+{bad"), "request arguments"),
        (lambda: parse_request("smh+1+{bad"), "request arguments"),
    ],
)
def test_more_refusals_name_what_they_refuse(call: Any, named: str) -> None:
    with pytest.raises(ValueError, match=rf"^{named}\b"):
        call()
