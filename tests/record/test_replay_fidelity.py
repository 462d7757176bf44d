"""Replay as it happened (format 2): who closed, the close code, greetings only where there were some."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from reactivex.testing import TestScheduler

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.protocol import IbkrWsKey
from rxibkr.record import Recording, ReplayTransport
from rxibkr.testing import frames

URL = "ws://replay.invalid/v1/api/ws"
HEADER = '{"format":"rxibkr-recording","version":2,"t":0,"clock":"wall"}'


def frame(t: float, obj: dict[str, Any]) -> str:
    return orjson.dumps({"t": t, "dir": "in", "frame": orjson.dumps(obj).decode(), "binary": True}).decode()


def connection(conn: int, t0: float, prices: Sequence[float], greeting: bool = True) -> list[str]:
    lines = [orjson.dumps({"t": t0, "dir": "meta", "event": "open", "conn": conn}).decode()]
    if greeting:
        lines += [frame(t0 + 0.01, f) for f in (frames.system(), frames.sts())]
    lines += [frame(t0 + 0.5 + i, frames.smd(265598, last=p)) for i, p in enumerate(prices)]
    return lines


def close(t: float, conn: int, by: str, code: int | None = 1000) -> str:
    return orjson.dumps(
        {"t": t, "dir": "meta", "event": "close", "conn": conn, "code": code, "by": by}
    ).decode()


class Run:
    def __init__(self, lines: list[str], **options: Any) -> None:
        self.scheduler = TestScheduler()
        self.transport = ReplayTransport(Recording.parse(lines), scheduler=self.scheduler, **options)
        self.client = IbkrWsClient(url=URL, scheduler=self.scheduler, transport=self.transport)
        self.errors: list[ErrorEvent] = []
        self.prices: list[str] = []
        self.client.errors.subscribe(self.errors.append)
        self.client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: self.prices.append(m.data["31"]))
        self.client.start()

    def advance(self, seconds: float) -> None:
        self.scheduler.advance_by(seconds)

    def kinds(self) -> list[ErrorKind]:
        return [e.kind for e in self.errors]


def test_a_client_close_replays_as_one_no_connection_lost_no_reconnect() -> None:
    run = Run([HEADER, *connection(1, 0.0, [1, 2]), close(3.0, 1, "client")])
    run.advance(4)  # (much later the client's heartbeat watchdog would reset: no heartbeats recorded)
    assert run.prices == ["1", "2"]
    assert ErrorKind.CONNECTION_LOST not in run.kinds()
    assert len(run.transport.connections) == 1  # no reconnect
    assert run.client.state.value is ConnectionState.AUTHENTICATED and run.transport.finished
    run.client.shutdown()  # the client closes it, as it did live
    run.advance(1)
    assert run.transport.connections[0].closed and run.transport.forced_closes == 0


def test_a_server_close_replays_with_its_code_and_the_client_reconnects() -> None:
    lines = [HEADER, *connection(1, 0.0, [1]), close(2.0, 1, "server", 1011), *connection(2, 3.0, [2])]
    run = Run(lines)
    run.advance(30)
    lost = [e for e in run.errors if e.kind is ErrorKind.CONNECTION_LOST]
    assert len(lost) == 1 and "code=1011" in lost[0].message
    assert len(run.transport.connections) >= 2 and run.prices == ["1", "2"]
    run.client.shutdown()


def test_a_client_reset_the_replaying_client_does_not_repeat_is_forced_when_the_next_connection_is_due() -> (
    None
):
    lines = [HEADER, *connection(1, 0.0, [1]), close(2.0, 1, "client"), *connection(2, 5.0, [2])]
    run = Run(lines)
    run.advance(4.9)
    assert len(run.transport.connections) == 1 and run.kinds() == []  # waiting for the client
    run.advance(30)
    assert run.transport.forced_closes == 1 and run.prices == ["1", "2"]
    run.client.shutdown()


def test_a_connection_without_greeting_replays_without_one() -> None:
    """What some live gateways do: data and heartbeats, no system/sts; replay adds nothing, and the
    client confirms the session from the data itself, as it does against such a gateway."""
    run = Run([HEADER, *connection(1, 0.0, [1, 2], greeting=False)])
    run.advance(3)
    assert run.transport.synthesized == []
    assert run.client.state.value is ConnectionState.AUTHENTICATED
    run.client.shutdown()


def test_greeting_synthesis_only_on_request_for_old_recordings() -> None:
    old = [frame(0.0, frames.smd(265598, last=1))]  # format 1, began mid-session: no open, no greeting
    plain = Run(old)
    plain.advance(3)
    assert plain.transport.synthesized == []  # nothing made up; the data alone confirms the session
    assert plain.client.state.value is ConnectionState.AUTHENTICATED
    plain.client.shutdown()
    asked = Run(old, synthesize_greeting=True)
    asked.advance(3)
    assert asked.transport.synthesized == [0] and asked.client.state.value is ConnectionState.AUTHENTICATED
    asked.client.shutdown()


def test_a_recording_attached_to_an_authenticated_session_replays_it_confirmed() -> None:
    attached = '{"t":0,"dir":"meta","event":"open","attached":true,"state":"authenticated"}'
    run = Run([HEADER, attached, frame(0.5, frames.smd(265598, last=7))])
    run.advance(3)
    assert run.transport.synthesized == [0] and run.prices == ["7"]
    assert run.client.state.value is ConnectionState.AUTHENTICATED
    run.client.shutdown()
