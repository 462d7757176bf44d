"""Property tests: arbitrary frames never break the decoder or the client's dispatch path, and
arbitrary caller arguments to the payload builders give a clear exception or a well-formed payload.

The dispatcher properties drive a real client wired to a ``FakeTransport`` in virtual time: every
frame goes through ``IbkrWsClient.on_frame`` exactly as from the reader thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex.testing import TestScheduler

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.protocol import (
    IbkrSubscriptionProcessor,
    IbkrWsKey,
    Message,
    MessageKind,
    decode,
    market_data,
    market_history,
    price_ladder,
)
from rxibkr.testing import FakeTransport, frames

FAST = settings(max_examples=150, deadline=None, derandomize=True)
FEW = settings(max_examples=60, deadline=None, derandomize=True)

# -- strategies ------------------------------------------------------------------------------------
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
# topics the dispatcher routes (sts is left out: authenticated:false is a state change, tested elsewhere)
TOPICS = [
    "smd+1",
    "smd",
    "smh+1",
    "sbd+DU1+1",
    "sor",
    "str",
    "spl",
    "ssd+DU1",
    "sld+DU1",
    "system",
    "act",
    "blt",
    "ntf",
    "tic",
    "error",
    "zzz",
    "",
    "smd+",
    "s",
]
objects = st.dictionaries(
    st.sampled_from(["topic", "error", "message", "result", "args", "serverId", "conid", "hb", "success"])
    | st.text(max_size=6),
    json_values | st.sampled_from(TOPICS),
    max_size=5,
).filter(lambda o: o.get("topic") != "sts")
bad_bytes = st.binary(max_size=200) | st.sampled_from(
    [b"\x99", b"", b"\x00\x00", b"[1,2]", b"{", b'{"topic":"smd+1"', b"\xef\xbb\xbf{}", b"null", b"1e999"]
)
frame_values: st.SearchStrategy[bytes | str] = st.one_of(
    bad_bytes,
    st.text(max_size=100),
    objects.map(orjson.dumps),
    objects.map(lambda o: orjson.dumps(o).decode()),
    json_values.map(orjson.dumps),
    st.sampled_from(TOPICS).map(lambda t: orjson.dumps({"topic": t, "args": []})),
)


# =====================================================================================================
# the decoder
# =====================================================================================================
@FAST
@given(frame_values)
def test_decode_never_raises_and_classifies_each_frame_once(frame: bytes | str) -> None:
    message = decode(frame)
    assert isinstance(message, Message)
    assert message.raw is frame
    assert isinstance(message.kind, MessageKind)
    if message.kind is MessageKind.MALFORMED:
        assert message.data is None and message.error and message.key is IbkrWsKey.ERROR
    elif message.kind is MessageKind.DATA:
        assert isinstance(message.topic, str) and isinstance(message.data, dict) and message.key is not None
    else:
        assert isinstance(message.data, dict)
    repr(message)  # never raises either
    _ = message.channel, message.target, message.args


# =====================================================================================================
# payload builders
# =====================================================================================================
@FAST
@given(st.text(max_size=30), st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_subscription_payloads_are_well_formed(channel: str, data: dict[str, Any] | None) -> None:
    processor = IbkrSubscriptionProcessor()
    try:
        payload = processor.make_subscribe_payload(channel, data)
    except ValueError as exc:  # ArgumentTypeError is a ValueError too
        assert channel == "" or "data" in str(exc)
        return
    assert payload.startswith("s" + channel)
    if data is None:
        assert payload == "s" + channel
    else:
        assert orjson.loads(payload[len(channel) + 2 :]) == data
    assert processor.make_unsubscribe_payload(channel, data).startswith("u" + channel + "+")


@FAST
@given(
    st.one_of(st.integers(), st.text(max_size=12), st.none(), st.floats(), st.binary(max_size=4)), json_values
)
def test_request_builders_raise_clear_value_errors_or_build(conid: Any, fields: Any) -> None:
    builds: list[Callable[[], str]] = [
        lambda: market_data(conid, fields),
        lambda: market_history(conid, period=fields),
        lambda: price_ladder("DU1234567", conid),
    ]
    for build in builds:
        try:
            text = build()
        except ValueError as exc:  # includes ArgumentTypeError (also a TypeError)
            assert str(exc)
        else:
            assert isinstance(text, str) and text[:1] == "s" and "+" in text


@FAST
@given(
    st.one_of(st.integers(), st.none(), st.binary(max_size=4), st.lists(st.text(max_size=3), max_size=2)),
    json_values,
)
def test_client_subscribe_rejects_bad_arguments_with_type_or_value_errors(channel: Any, data: Any) -> None:
    client, transport, _ = _client()
    try:
        client.subscribe(channel, data)
    except (TypeError, ValueError) as exc:
        assert "channel" in str(exc) or "data" in str(exc) or "IbkrWsKey" in str(exc)
        assert client.subscriptions == {} and transport.texts() == []
    else:  # pragma: no cover - a non-str channel is never accepted
        raise AssertionError(f"subscribe({channel!r}, {data!r}) was accepted")


# =====================================================================================================
# the dispatcher: the client's on_frame path
# =====================================================================================================
EXPECTED_ERROR = {
    MessageKind.MALFORMED: ErrorKind.MALFORMED_FRAME,
    MessageKind.UNKNOWN: ErrorKind.UNKNOWN_FRAME,
    MessageKind.ERROR: ErrorKind.GATEWAY_ERROR,
}


def _client() -> tuple[IbkrWsClient, FakeTransport, TestScheduler]:
    scheduler = TestScheduler()
    transport = FakeTransport(scheduler, heartbeat_interval=None)
    client = IbkrWsClient(
        url="ws://gateway.test/v1/api/ws", scheduler=scheduler, transport=transport, reconnect_jitter=False
    )
    client.start()
    scheduler.advance_by(0.001)
    assert client.state.value is ConnectionState.AUTHENTICATED
    return client, transport, scheduler


def _good(n: int) -> bytes:
    return frames.encode(frames.smd(265598, last=100 + n, updated=n))


@FAST
@given(st.lists(st.tuples(st.booleans(), frame_values), max_size=25))
def test_arbitrary_frames_never_escape_are_reported_and_good_frames_still_arrive(
    script: list[tuple[bool, bytes | str]],
) -> None:
    client, transport, _ = _client()
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)
    market: list[Message] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(market.append)
    sub = client.subscribe("md+265598", {"fields": ["31"]})
    good: list[bytes] = [_good(-1)]
    transport.receive(good[0])
    expected: list[ErrorKind] = []
    for n, (good_first, bad) in enumerate(script):
        frame = _good(n)
        if good_first:
            good.append(frame)
            transport.receive(frame)  # never raises: the reader thread must survive any frame
        kind = EXPECTED_ERROR.get(decode(bad).kind)
        if kind is not None:
            expected.append(kind)
        transport.receive(bad)
        if not good_first:
            good.append(frame)
            transport.receive(frame)
    assert [m.raw for m in market if m.raw in good] == good  # every good frame once, in order
    assert [e.kind for e in errors] == expected, errors  # each bad frame reported once, nothing else
    assert client.state.value is ConnectionState.AUTHENTICATED
    assert sub.active


@FEW
@given(st.lists(frame_values, min_size=1, max_size=15))
def test_raising_observers_do_not_change_what_the_others_get(script: list[bytes | str]) -> None:
    client, transport, _ = _client()
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)

    def boom(_: Any) -> None:
        raise RuntimeError("observer bug")

    seen: dict[IbkrWsKey, list[Message]] = {}
    for key in dict.fromkeys(IbkrWsKey):
        client.observe(key).subscribe(boom)
        client.observe(key).subscribe(seen.setdefault(key, []).append)
    for frame in script:
        transport.receive(frame)
    delivered = sum(len(v) for v in seen.values())
    assert delivered == len(script)  # every frame reached exactly one per-key stream
    assert sum(e.kind is ErrorKind.OBSERVER_ERROR for e in errors) == delivered
