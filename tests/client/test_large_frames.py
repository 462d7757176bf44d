"""A frame that takes longer than ``max_ping_interval`` to arrive is not a dead gateway.

Heartbeats and pongs queue behind a large frame on the same TCP stream, so while it arrives on a slow
link no liveness sign can reach the client. The bytes arriving are that sign: the watchdogs wait again
from each part (``on_progress``). A relay between the client and the simulator paces the gateway's bytes
like a slow link; the simulator is real (TLS, heartbeats, pongs).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from reactivex.testing import TestScheduler
from simclient import running_client
from waiting import wait_until

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ErrorEvent, ErrorKind
from rxibkr.protocol import IbkrWsKey
from rxibkr.session import events as ev
from rxibkr.sim import GatewaySimulator
from rxibkr.testing import FakeTransport


class SlowLink:
    """A TCP relay on 127.0.0.1: client bytes pass at once; the gateway's pass at once, or ``step``
    bytes every ``pause`` seconds while :meth:`pace` is on (a slow link, not a synchronisation)."""

    def __init__(self, port: int) -> None:
        self._target = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._paced: tuple[int, float] | None = None
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="slow-link", daemon=True).start()

    def url(self, ws_url: str) -> str:
        return ws_url.replace(f":{self._target[1]}/", f":{self.port}/")

    def pace(self, step: int, pause: float) -> None:
        self._paced = (step, pause)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target)
            except OSError:  # the simulator has stopped (a reconnect at the test's end)
                client.close()
                continue
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_gateway: bool) -> None:
        try:
            while chunk := source.recv(65536):
                paced = self._paced if from_gateway else None
                if paced is None:
                    sink.sendall(chunk)
                    continue
                step, pause = paced
                for at in range(0, len(chunk), step):
                    sink.sendall(chunk[at : at + step])
                    time.sleep(pause)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(heartbeat_interval=0.1, md_interval=3600, greeting_delay=0.01) as simulator:
        yield simulator


@pytest.fixture
def link(sim: GatewaySimulator) -> Iterator[SlowLink]:
    relay = SlowLink(int(sim.ws_url.rsplit(":", 1)[1].split("/", 1)[0]))
    yield relay
    relay.close()


def test_a_frame_slower_than_max_ping_interval_keeps_the_connection(
    sim: GatewaySimulator, link: SlowLink
) -> None:
    options: dict[str, Any] = dict(
        url=link.url(sim.ws_url), timeout=3, ping_interval=0.1, max_ping_interval=1.0
    )
    with running_client(sim, **options) as client:
        errors: list[ErrorEvent] = []
        notices: list[Any] = []
        client.errors.subscribe(errors.append)
        client.observe(IbkrWsKey.NOTIFICATIONS).subscribe(notices.append)
        text = "y" * (2 * 1024 * 1024)
        link.pace(32 * 1024, 0.02)  # at most 1.6 MB/s: the frame takes 1.28 s or more
        started = time.monotonic()
        sim.send_raw(b'{"topic":"ntf","args":[{"id":"1","text":"' + text.encode() + b'"}]}', binary=True)
        assert wait_until(lambda: notices, 20)
        took = time.monotonic() - started
        assert took > 1.0, took  # longer than max_ping_interval: else this shows nothing
        assert [n.data["args"] for n in notices] == [[{"id": "1", "text": text}]]
        assert not [e for e in errors if e.kind is ErrorKind.WATCHDOG], errors
        assert sim.total_connections == 1
        # and the watchdogs still work: a gateway that really goes quiet is reset
        sim.stop_pongs()
        sim.pause_heartbeats()
        assert wait_until(lambda: any(e.kind is ErrorKind.WATCHDOG for e in errors), 10), errors


def test_parts_of_a_large_frame_keep_the_watchdogs_waiting_in_virtual_time() -> None:
    scheduler = TestScheduler()
    transport = FakeTransport(scheduler, heartbeat_interval=1.0)
    client = IbkrWsClient(
        url="ws://x.test/v1/api/ws", scheduler=scheduler, transport=transport, max_ping_interval=4.0
    )
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)
    told: list[ev.Receiving] = []
    post = client._driver.post

    def spy(event: Any) -> None:
        if isinstance(event, ev.Receiving):
            told.append(event)
        post(event)

    client._driver.post = spy  # type: ignore[method-assign]
    client.start()
    scheduler.advance_by(1.5)
    assert client.ready and not errors
    connection = transport.current
    transport.heartbeats = False  # from here on only the large frame's parts arrive:
    transport.auto_pong = False  # its bytes hold back every heartbeat and pong
    for _ in range(40):  # 10 virtual seconds, 2.5 times max_ping_interval
        for _ in range(3):
            connection.receive_part()
        scheduler.advance_by(0.25)
    assert not errors and client.ready and len(transport.connections) == 1
    assert len(told) == 10  # told at most once per max_ping_interval / 4, not per read
    scheduler.advance_by(4.0)  # the frame stalls: no bytes at all
    assert errors and {e.kind for e in errors} == {ErrorKind.WATCHDOG}, errors
    client.shutdown()
