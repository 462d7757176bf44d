"""decode(): routing of protocol section 3, control messages, leniency, and Message's views."""

from __future__ import annotations

import orjson
import pytest

from rxibkr.protocol import IbkrWsKey, Message, MessageKind, decode

K = IbkrWsKey
M = MessageKind

ROUTES: list[tuple[str, MessageKind, IbkrWsKey]] = [
    ('{"topic":"system","hb":1}', M.DATA, K.SYSTEM),
    ('{"topic":"tic","alive":true,"id":"x","lastAccessed":1}', M.DATA, K.SYSTEM),
    ('{"topic":"sts","args":{}}', M.DATA, K.AUTHENTICATION_STATUS),
    ('{"topic":"act","args":{}}', M.DATA, K.ACCOUNT_UPDATES),
    ('{"topic":"blt","args":[]}', M.DATA, K.BULLETINS),
    ('{"topic":"ntf","args":[]}', M.DATA, K.NOTIFICATIONS),
    ('{"topic":"error","message":"boom"}', M.ERROR, K.ERROR),
    ('{"topic":"smd+265598","31":"1"}', M.DATA, K.MARKET_DATA),
    ('{"topic":"smd"}', M.DATA, K.MARKET_DATA),
    ('{"topic":"smh+265598","serverId":"1"}', M.DATA, K.MARKET_HISTORY),
    ('{"topic":"sbd+DU1234567+265598","data":[]}', M.DATA, K.PRICE_LADDER),
    ('{"topic":"sor","args":[]}', M.DATA, K.ORDERS),
    ('{"topic":"str","args":[]}', M.DATA, K.TRADES),
    ('{"topic":"spl","args":{}}', M.DATA, K.PNL),
    ('{"topic":"ssd+DU1234567","result":[]}', M.DATA, K.ACCOUNT_SUMMARY),
    ('{"topic":"sld+DU1234567","result":[]}', M.DATA, K.ACCOUNT_LEDGER),
    ('{"error":"x","topic":"smd+265598"}', M.ERROR, K.ERROR),
    ('{"error":"Topic unknown","code":1}', M.ERROR, K.ERROR),
    ('{"message":"waiting for session"}', M.CONTROL, K.SYSTEM),
    ('{"result":"unsubscribed from summary"}', M.CONTROL, K.ACCOUNT_SUMMARY),
    ('{"result":"unsubscribed from ledger"}', M.CONTROL, K.ACCOUNT_LEDGER),
    ('{"message":"Market history Unsubscribed 341115"}', M.CONTROL, K.MARKET_HISTORY),
    ('{"message":"hello"}', M.UNKNOWN, K.ERROR),
    ('{"result":"ok"}', M.UNKNOWN, K.ERROR),
    ("{}", M.UNKNOWN, K.ERROR),
    ('{"topic":null}', M.UNKNOWN, K.ERROR),
    ('{"topic":"xyz"}', M.UNKNOWN, K.ERROR),
    ('{"topic":""}', M.UNKNOWN, K.ERROR),
    ('{"topic":"smdx"}', M.UNKNOWN, K.ERROR),
    ('{"topic":"systemx"}', M.UNKNOWN, K.ERROR),
    ('{"topic":"umd+265598"}', M.UNKNOWN, K.ERROR),
    ('{"topic":"SMD+265598"}', M.UNKNOWN, K.ERROR),
    ('{"topic":5}', M.UNKNOWN, K.ERROR),
    ('{"topic":["smd"]}', M.UNKNOWN, K.ERROR),
    ('{"topic":{"a":1}}', M.UNKNOWN, K.ERROR),
    ("[]", M.MALFORMED, K.ERROR),
    ('"error"', M.MALFORMED, K.ERROR),
    ("null", M.MALFORMED, K.ERROR),
    ("3", M.MALFORMED, K.ERROR),
    ("", M.MALFORMED, K.ERROR),
    ("   ", M.MALFORMED, K.ERROR),
    ("\x00", M.MALFORMED, K.ERROR),
    ("ech+hb", M.MALFORMED, K.ERROR),
    ('{"topic":"sor",}', M.MALFORMED, K.ERROR),
    ('{"topic":"sor"}{"topic":"sor"}', M.MALFORMED, K.ERROR),
]


@pytest.mark.parametrize(("frame", "kind", "key"), ROUTES, ids=[r[0] or "<empty>" for r in ROUTES])
def test_routing(frame: str, kind: MessageKind, key: IbkrWsKey) -> None:
    for raw in (frame, frame.encode()):
        for _ in range(2):  # the second time takes the fast path for topics seen once
            message = decode(raw)
            assert (message.kind, message.key) == (kind, key)
            assert message.raw is raw
            assert (message.error is None) == (kind in (M.DATA, M.CONTROL))
            assert (message.data is None) == (kind is M.MALFORMED)


def test_data_message_attributes() -> None:
    raw = b'{"server_id":"q1","conid":265598,"31":"271.67","topic":"smd+265598"}'
    message = decode(raw)
    assert message == Message(
        MessageKind.DATA,
        IbkrWsKey.MARKET_DATA,
        "smd+265598",
        {"server_id": "q1", "conid": 265598, "31": "271.67", "topic": "smd+265598"},
        raw,
        None,
    )
    assert message.target == "265598"
    assert message.channel == "md+265598"
    assert message.args is None


@pytest.mark.parametrize(
    ("topic", "target", "channel"),
    [
        ("smd+265598", "265598", "md+265598"),
        ("smd+265598@ISLAND", "265598@ISLAND", "md+265598@ISLAND"),
        ("smh+265598", "265598", "mh+265598"),
        ("sbd+DU1234567+265598", "DU1234567+265598", "bd+DU1234567+265598"),
        ("sbd+DU1234567+265598+ISLAND", "DU1234567+265598+ISLAND", "bd+DU1234567+265598+ISLAND"),
        ("ssd+DU1234567", "DU1234567", "sd+DU1234567"),
        ("sld+DU1234567", "DU1234567", "ld+DU1234567"),
        ("sor", None, "or"),
        ("str", None, "tr"),
        ("spl", None, "pl"),
        ("smd", None, "md"),
        ("system", None, "system"),
        ("sts", None, "sts"),
        ("tic", None, "tic"),
        ("act", None, "act"),
    ],
)
def test_target_and_channel(topic: str, target: str | None, channel: str) -> None:
    message = decode(f'{{"topic":"{topic}"}}')
    assert message.topic == topic
    assert message.target == target
    assert message.channel == channel


def test_unsubscribed_control_message_targets_the_server_id() -> None:
    message = decode('{"message":"Historical data Unsubscribed 341115"}')
    assert message.kind is MessageKind.CONTROL
    assert message.target == "341115"
    assert message.topic is None
    assert message.channel is None


def test_topicless_control_messages_have_no_target() -> None:
    for frame in ('{"message":"waiting for session"}', '{"result":"unsubscribed from summary"}'):
        assert decode(frame).target is None


def test_args() -> None:
    assert decode('{"topic":"sor","args":[{"orderId":1}]}').args == [{"orderId": 1}]
    assert decode("nope").args is None


def test_error_descriptions() -> None:
    assert decode('{"error":"No accounts","code":500,"topic":"smd"}').error == "No accounts (code 500)"
    assert decode('{"topic":"error","message":"boom"}').error == "boom"
    assert decode('{"error":{"a":1}}').error == "{'a': 1}"
    assert decode('{"topic":"nope"}').error == "unknown topic 'nope'"
    assert "not an object" in (decode("[1]").error or "")
    assert decode(b"").error == "empty frame"
    assert "invalid JSON" in (decode(b"{").error or "")


def test_invalid_utf8_is_replaced_not_lost() -> None:
    raw = b'{"topic":"ntf","args":[{"text":"caf\x99"}]}'
    message = decode(raw)
    assert message.kind is MessageKind.DATA
    assert message.key is IbkrWsKey.NOTIFICATIONS
    assert message.args == [{"text": "caf\ufffd"}]
    assert message.raw is raw


def test_lone_surrogates_in_text_frames_are_replaced() -> None:
    message = decode('{"topic":"ntf","args":["\udc99"]}')
    assert message.kind is MessageKind.DATA
    assert message.args == ["?"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"topic":"sor"}\x00',
        b'{"topic":"sor"}\x00\x00\n',
        b'{"topic":"sor"}\r\n',
        '{"topic":"sor"}\x00',
        b'\xef\xbb\xbf{"topic":"sor"}',
        bytearray(b'{"topic":"sor"}'),
        memoryview(b'{"topic":"sor"}\x00'),
    ],
)
def test_trailing_nul_whitespace_bom_and_buffer_types(raw: bytes | str) -> None:
    message = decode(raw)
    assert (message.kind, message.key, message.topic) == (MessageKind.DATA, IbkrWsKey.ORDERS, "sor")
    assert message.raw is raw


@pytest.mark.parametrize("raw", [None, 5, 1.5, ["x"], {"topic": "sor"}, object()])
def test_not_a_frame_at_all(raw: object) -> None:
    message = decode(raw)  # type: ignore[arg-type]
    assert message.kind is MessageKind.MALFORMED
    assert message.key is IbkrWsKey.ERROR
    assert message.raw is raw
    assert "not bytes or str" in (message.error or "")
    repr(message)


def test_equality_and_repr() -> None:
    a = decode(b'{"topic":"sts","args":{"authenticated":true}}')
    b = decode(b'{"topic":"sts","args":{"authenticated":true}}')
    assert a == b
    assert a != decode(b'{"topic":"sts","args":{"authenticated":false}}')
    assert a != decode(b'{"args":{"authenticated":true},"topic":"sts"}')  # the same data, another frame
    assert a != "not a message"
    assert "AUTHENTICATION_STATUS" in repr(a)
    long = decode(b'{"topic":"sor","args":[' + b'{"x":1},' * 50 + b'{"x":1}]}')
    assert "..." in repr(long)
    assert "error=" in repr(decode(b"garbage"))
    with pytest.raises(TypeError):
        hash(a)


def test_public_constructor() -> None:
    message = Message(MessageKind.CONTROL, IbkrWsKey.SYSTEM, None, {"message": "waiting for session"}, b"{}")
    assert message.error is None
    assert message.target is None
    assert message.args is None


def test_the_target_of_a_message_built_by_hand() -> None:
    unsubscribed = {"message": "Unsubscribed 5"}
    assert Message(MessageKind.CONTROL, IbkrWsKey.MARKET_HISTORY, None, unsubscribed, b"{}").target == "5"
    assert Message(MessageKind.CONTROL, IbkrWsKey.ACCOUNT_SUMMARY, None, unsubscribed, b"{}").target is None
    assert Message(MessageKind.DATA, IbkrWsKey.MARKET_HISTORY, None, unsubscribed, b"{}").target is None
    assert Message(MessageKind.CONTROL, IbkrWsKey.MARKET_HISTORY, None, None, b"{}").target is None
    assert Message(MessageKind.UNKNOWN, IbkrWsKey.ERROR, "+5", {}, b"{}").target == "5"  # after the first '+'


def test_messages_of_another_kind_or_error_differ() -> None:
    data = {"topic": "sts"}
    a = Message(MessageKind.DATA, IbkrWsKey.AUTHENTICATION_STATUS, "sts", data, b"{}")
    assert a == Message(MessageKind.DATA, IbkrWsKey.AUTHENTICATION_STATUS, "sts", data, b"{}")
    assert a != Message(MessageKind.UNKNOWN, IbkrWsKey.AUTHENTICATION_STATUS, "sts", data, b"{}")
    assert a != Message(MessageKind.DATA, IbkrWsKey.AUTHENTICATION_STATUS, "sts", data, b"{}", "odd")


def test_an_odd_topic_and_a_long_error_are_described() -> None:
    assert decode(b'{"topic": 5}').error == "topic is a int, not a str"
    whole = ["a" * 196]  # repr: 200 characters, kept
    assert decode(orjson.dumps({"error": whole})).error == repr(whole)
    cut = ["a" * 197]
    assert decode(orjson.dumps({"error": cut})).error == repr(cut)[:197] + "..."
