"""Replay: a recording served through the whole client, in virtual time and in real time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from reactivex.testing import TestScheduler

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorKind
from rxibkr.protocol import IbkrWsKey, Message
from rxibkr.record import Recording, ReplayTransport, synthetic_greeting
from rxibkr.testing import frames, run_due, virtual_client

URL = "ws://replay.invalid/v1/api/ws"


def md(price: float) -> dict[str, Any]:
    return frames.smd(265598, last=price)


def make_recording(path: Path) -> list[tuple[float, str]]:
    """Two connections: prices at 1 and 3, the gateway closes at 4, prices at 7 and 9 on the next one."""
    vc = virtual_client(start=False)
    seen: list[tuple[float, str]] = []
    vc.client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: seen.append((vc.now, m.data["31"])))
    with vc.client.record(path):
        vc.client.start()
        run_due(vc.scheduler)
        vc.client.subscribe("md+265598", {"fields": ["31"]})
        vc.gateway.play("-a-b|--c-d", a=md(1), b=md(2), c=md(3), d=md(4))
        vc.advance_by(12)
    vc.shutdown()
    return seen


def all_messages(client: IbkrWsClient, sink: list[Message]) -> None:
    for key in IbkrWsKey:
        client.observe(key).subscribe(sink.append)


@pytest.fixture
def recording(tmp_path: Path) -> tuple[Path, list[tuple[float, str]]]:
    path = tmp_path / "session.jsonl"
    return path, make_recording(path)


def test_virtual_time_replay_repeats_the_live_timing_and_reconnects(recording: Any) -> None:
    path, live = recording
    scheduler = TestScheduler()
    transport = ReplayTransport(path, scheduler=scheduler)
    client = IbkrWsClient(url=URL, scheduler=scheduler, transport=transport, reconnect_jitter=False)
    assert client.rest is None  # no REST session, hence no REST call
    seen: list[tuple[float, str]] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: seen.append((scheduler.clock, m.data["31"])))
    states: list[ConnectionState] = []
    client.state.subscribe(states.append)
    client.start()
    scheduler.advance_by(20)
    assert seen == live == [(1.0, "1"), (3.0, "2"), (7.0, "3"), (9.0, "4")]
    # two recorded connections; the recording stopped while the second was open: it stays open
    assert len(transport.connections) == 2 and not transport.connections[1].closed
    assert states.count(ConnectionState.AUTHENTICATED) == 2 and transport.finished
    assert transport.speed == 1.0 and transport.virtual
    client.shutdown()


def test_the_client_sends_into_the_replay_not_anywhere(recording: Any) -> None:
    path, _ = recording
    scheduler = TestScheduler()
    transport = ReplayTransport(path)  # adopts the client's virtual-time scheduler
    client = IbkrWsClient(url=URL, scheduler=scheduler, transport=transport, reconnect_jitter=False)
    client.start()
    client.subscribe("md+265598", {"fields": ["31"]})
    scheduler.advance_by(20)
    # the live session's subscriptions are recorded as "out"; the replaying client made its own
    assert [f.data for f in Recording.load(path).frames("out")] == ['smd+265598+{"fields": ["31"]}'] * 3
    assert [(f.time, f.connection, f.text) for f in transport.sent] == [
        (0.0, 1, 'smd+265598+{"fields": ["31"]}'),
        (4.25, 2, 'smd+265598+{"fields": ["31"]}'),
        (6.25, 2, 'smd+265598+{"fields": ["31"]}'),
    ]
    assert transport.texts()[0].startswith("smd")
    client.shutdown()


def test_speed_scales_virtual_time(recording: Any) -> None:
    path, _ = recording
    scheduler = TestScheduler()
    transport = ReplayTransport(path, speed=2.0, scheduler=scheduler)
    client = IbkrWsClient(url=URL, scheduler=scheduler, transport=transport, reconnect_jitter=False)
    seen: list[tuple[float, str]] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: seen.append((scheduler.clock, m.data["31"])))
    client.start()
    scheduler.advance_by(20)
    # one timeline for the whole recording: the second connection opens when the client's own backoff
    # ends (2.25, later than the recorded 4.25 / 2), its frames keep their recorded times / 2
    assert seen == [(0.5, "1"), (1.5, "2"), (3.5, "3"), (4.5, "4")]
    client.shutdown()


def test_fast_replay_in_real_time_threads(recording: Any) -> None:
    path, _ = recording
    before = set(threading.enumerate())
    transport = ReplayTransport(path)
    client = IbkrWsClient(url=URL, transport=transport)
    messages: list[Message] = []
    all_messages(client, messages)
    assert client.start() is True
    # held after the session confirmation until wait(): a subscription made now misses nothing
    prices: list[str] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: prices.append(m.data["31"]))
    assert transport.wait(10.0)
    assert prices == ["1", "2", "3", "4"]
    assert [m.raw for m in messages] == [f.data for f in Recording.load(path).frames()]
    client.shutdown()
    assert set(threading.enumerate()) - before == set()


def test_paced_replay_takes_the_recorded_time_scaled(recording: Any) -> None:
    path, _ = recording
    transport = ReplayTransport(path, speed=20.0)
    client = IbkrWsClient(url=URL, transport=transport, reconnect_backoff=(0.01, 0.01))
    stamps: list[float] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: stamps.append(time.monotonic()))
    assert client.start()
    begin = time.monotonic()
    assert transport.wait(10.0)
    client.shutdown()
    assert len(stamps) == 4
    # 1 -> 3 recorded seconds apart at 20x: 0.1 s; the reconnect and 3, 4 follow on the timeline
    assert stamps[1] - stamps[0] == pytest.approx(0.1, abs=0.05)
    assert stamps[3] - stamps[2] == pytest.approx(0.1, abs=0.05)
    assert stamps[3] - begin == pytest.approx((9.0 - 0.0) / 20, abs=0.25)


def test_hold_expires_without_wait(recording: Any) -> None:
    path, _ = recording
    transport = ReplayTransport(path, hold=0.05)
    client = IbkrWsClient(url=URL, transport=transport)
    assert client.start()
    deadline = time.monotonic() + 5.0
    while not transport.finished and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    assert transport.finished
    client.shutdown()


def test_missing_greeting_is_synthesised(tmp_path: Path) -> None:
    path = tmp_path / "late.jsonl"
    vc = virtual_client()
    with vc.client.record(path):  # recording begins after the greeting
        vc.gateway.play("-a-b", a=md(1), b=md(2))
        vc.advance_by(3)
    vc.shutdown()
    transport = ReplayTransport(path)
    client = IbkrWsClient(url=URL, transport=transport)
    prices: list[str] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: prices.append(m.data["31"]))
    assert client.start() is True
    assert transport.wait(5.0) and prices == ["1", "2"]
    assert transport.synthesized == [0]
    client.shutdown()
    assert [m["topic"] for m in map(lambda f: __import__("orjson").loads(f), synthetic_greeting())] == [
        "system",
        "sts",
    ]


def test_unconfirmed_control_only_connection_is_not_given_a_greeting() -> None:
    recording = Recording.parse(
        [
            '{"t":0,"dir":"meta","event":"open","conn":1}',
            '{"t":0.1,"dir":"in","frame":"{\\"message\\":\\"waiting for session\\"}","binary":true}',
            '{"t":5,"dir":"meta","event":"close","conn":1}',
        ]
    )
    scheduler = TestScheduler()
    transport = ReplayTransport(recording, scheduler=scheduler)
    client = IbkrWsClient(url=URL, scheduler=scheduler, transport=transport)
    client.start()
    scheduler.advance_by(10)
    assert transport.synthesized == [] and client.state.value is not ConnectionState.AUTHENTICATED
    client.shutdown()


def test_a_recorded_failed_attempt_is_served_as_a_refusal() -> None:
    recording = Recording.parse(
        [
            '{"t":0,"dir":"meta","event":"close","conn":1}',
            '{"t":1,"dir":"meta","event":"open","conn":2}',
            '{"t":1,"dir":"in","frame":"{\\"topic\\":\\"sts\\",\\"args\\":{\\"authenticated\\":true}}","binary":true}',
        ]
    )
    scheduler = TestScheduler()
    transport = ReplayTransport(recording, scheduler=scheduler)
    client = IbkrWsClient(url=URL, scheduler=scheduler, transport=transport, reconnect_jitter=False)
    errors: list[Any] = []
    client.errors.subscribe(errors.append)
    client.start()
    scheduler.advance_by(5)
    # the recording says the attempt failed, not why: served as a failure worth retrying, as the
    # recorded client did retry (a refusal would end start() at once)
    assert isinstance(errors[0].exception, ConnectionAbortedError)
    assert errors[0].kind is ErrorKind.CONNECTION_ERROR
    assert client.ready and len(transport.connections) == 2
    client.shutdown()


def test_binary_frames_replay_byte_for_byte(tmp_path: Path) -> None:
    bad = b'{"topic":"smd+1","conid":1,"31":"1\x99"}'
    path = tmp_path / "bad.jsonl"
    vc = virtual_client(start=False)
    with vc.client.record(path):
        vc.client.start()
        run_due(vc.scheduler)
        vc.receive(bad)
    vc.shutdown()
    scheduler = TestScheduler()
    client = IbkrWsClient(url=URL, scheduler=scheduler, transport=ReplayTransport(path, scheduler=scheduler))
    raw: list[bytes | str] = []
    client.frames.subscribe(raw.append)
    client.start()
    scheduler.advance_by(1)
    assert raw[-1] == bad
    client.shutdown()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="speed"):
        ReplayTransport(Recording([]), speed=0)
    with pytest.raises(ValueError, match="hold"):
        ReplayTransport(Recording([]), hold=-1)


def test_empty_recording_stalls_and_is_finished() -> None:
    scheduler = TestScheduler()
    transport = ReplayTransport(Recording([]), scheduler=scheduler)
    client = IbkrWsClient(url=URL, scheduler=scheduler, transport=transport)
    client.start()
    scheduler.advance_by(100)
    assert transport.finished and client.state.value is ConnectionState.CONNECTING
    client.shutdown()
