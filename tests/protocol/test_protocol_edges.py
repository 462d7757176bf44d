"""Edges of the wire format that mutation testing found untested: a UTF-8 BOM, error frames without
a text, Message's bounded repr, every smh source and format code, bad ech targets, Price defaults."""

from __future__ import annotations

import orjson
import pytest

from rxibkr.protocol import IbkrWsKey, Message, MessageKind, decode, parse_request
from rxibkr.protocol.fields import Price, parse_price
from rxibkr.protocol.requests import (
    FORMAT_CODES,
    SOURCES,
    market_history_args,
    session,
    unsubscribe_price_ladder,
)


def test_a_utf8_bom_before_the_json_is_ignored() -> None:
    raw = orjson.dumps({"topic": "smd+1", "conid": 1, "31": "2.5"})
    for frame in (b"\xef\xbb\xbf" + raw, "\ufeff" + raw.decode()):
        message = decode(frame)
        assert (message.kind, message.key, message.topic) == (
            MessageKind.DATA,
            IbkrWsKey.MARKET_DATA,
            "smd+1",
        )
        assert message.data == orjson.loads(raw)


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ({"error": None, "code": 7}, "error (code 7)"),
        ({"error": {"why": "x"}}, "{'why': 'x'}"),
        ({"error": "bad", "code": "E1"}, "bad (code 'E1')"),
        ({"error": None, "message": "said so"}, "said so"),
    ],
)
def test_an_error_frame_is_described_whatever_its_error_is(frame: dict[str, object], error: str) -> None:
    message = decode(orjson.dumps(frame))
    assert message.kind is MessageKind.ERROR
    assert message.error == error


def test_a_message_repr_is_bounded_and_says_what_it_is() -> None:
    short = orjson.dumps({"topic": "system", "hb": 1})
    assert repr(decode(short)) == f"Message(kind=DATA, key=SYSTEM, topic='system', raw={short!r})"
    exactly = b'{"topic":"system","x":"' + b"a" * (80 - 25) + b'"}'
    assert len(exactly) == 80 and repr(exactly) in repr(decode(exactly))  # 80 bytes: whole
    long = b'{"topic":"system","x":"' + b"a" * 500 + b'"}'
    text = repr(decode(long))
    assert repr(long[:77] + b"...") in text and len(text) < 200
    long_text = long.decode()
    assert repr(long_text[:77] + "...") in repr(decode(long_text))
    bad = repr(decode(b"{nope"))
    assert bad.startswith("Message(kind=MALFORMED") and ", error=" in bad


# the protocol's lists (README section 2), written out: not the library's own tuples
@pytest.mark.parametrize("source", ["midpoint", "trades", "bid_ask", "bid", "ask"])
def test_every_smh_source_is_accepted(source: str) -> None:
    assert market_history_args(bar="1min", period="1d", source=source)["source"] == source
    assert source in SOURCES


@pytest.mark.parametrize("code", ["%o", "%c", "%h", "%l", "%v"])
def test_every_smh_format_code_is_accepted(code: str) -> None:
    assert market_history_args(bar="1min", period="1d", format=code)["format"] == code
    assert code in FORMAT_CODES


def test_smh_defaults() -> None:
    assert market_history_args() == {"period": "1d", "bar": "5min", "outsideRth": False, "source": "trades"}


def test_a_bad_ech_target_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ech target must be printable ASCII"):
        parse_request("ech+a b")
    assert parse_request("ech+hb").targets == ("hb",)


def test_a_price_has_no_flags_unless_prefixed() -> None:
    assert Price(1.5) == (1.5, False, False)
    assert parse_price("1.5") == Price(1.5)
    assert parse_price("C1.5") == Price(1.5, is_close=True)


def test_message_kinds_are_public_values() -> None:
    assert [k.value for k in MessageKind] == ["data", "control", "error", "unknown", "malformed"]


def test_messages_compare_by_content_and_never_equal_other_types() -> None:
    a = Message(MessageKind.DATA, IbkrWsKey.PNL, "spl", {"x": 1}, b"{}", None)
    assert (a == 5) is False and (a != "spl") is True
    assert a == Message(MessageKind.DATA, IbkrWsKey.PNL, "spl", {"x": 1}, b"{}", None)
    assert a != Message(MessageKind.DATA, IbkrWsKey.ACCOUNT_LEDGER, "spl", {"x": 1}, b"{}", None)
    assert a != Message(MessageKind.DATA, IbkrWsKey.PNL, "spl2", {"x": 1}, b"{}", None)
    assert a != Message(MessageKind.DATA, IbkrWsKey.PNL, "spl", {"x": 2}, b"{}", None)


def test_a_topicless_object_nobody_knows_says_so() -> None:
    message = decode(b'{"foo": 1}')
    assert message.error == "unrecognised topic-less object"
    assert message.channel is None and message.target is None


def test_unsubscribe_requests_have_their_key() -> None:
    assert parse_request("umd+265598+{}").key is IbkrWsKey.MARKET_DATA
    assert parse_request("tic").key is None


def test_bad_session_ids_and_accounts_are_refused_by_name() -> None:
    for bad in ("", "a b", "a\x01b", "a\tb"):
        with pytest.raises(ValueError, match="session_id"):
            session(bad)
    with pytest.raises(ValueError, match="account must be printable"):
        unsubscribe_price_ladder("DU 1")


@pytest.mark.parametrize(
    ("unit", "limit"), [("min", 30), ("h", 8), ("d", 1000), ("w", 792), ("m", 182), ("y", 15)]
)
def test_smh_periods_are_bounded_per_unit_as_the_protocol_says(unit: str, limit: int) -> None:
    assert market_history_args(period=f"{limit}{unit}")["period"] == f"{limit}{unit}"
    assert market_history_args(period=f"1{unit}")["period"] == f"1{unit}"
    for bad in (f"{limit + 1}{unit}", f"0{unit}"):
        with pytest.raises(
            ValueError, match=r"\{1-30\}min, \{1-8\}h, \{1-1000\}d, \{1-792\}w, \{1-182\}m or \{1-15\}y"
        ):
            market_history_args(period=bad)


def test_targets_with_control_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="account must be printable"):
        unsubscribe_price_ladder("DU\x011")


def test_account_summary_args_carry_keys_and_fields() -> None:
    from rxibkr.protocol.requests import account_summary

    request = parse_request(account_summary("DU1", keys=["a"], fields=["b", "c"]))
    assert request.args == {"keys": ["a"], "fields": ["b", "c"]}
