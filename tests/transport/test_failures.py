"""classify_connect_error on the real exceptions of real failed connects: sockets, the simulator, a raw
server answering with a chosen status, and IbkrSession's REST call that precedes every upgrade."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rxibkr.io.failures import ConnectFailure, classify_connect_error
from rxibkr.io.rest import IbkrSession, SessionError
from rxibkr.io.tls import TlsPolicy
from rxibkr.io.transport import ConnectOptions, ProtocolViolation

from .support import RawServer, frame, run_until_closed

pytest.importorskip("aiohttp")
pytest.importorskip("trustme")

from rxibkr.sim import GatewaySimulator


@pytest.fixture(scope="module")
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator() as simulator:
        yield simulator


@pytest.fixture
def pins(tmp_path: Path) -> Path:
    return tmp_path / "pins.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def socket_failure(
    url: str, cacert: str | bool | None = None, *, pins: Path, timeout: float = 3
) -> ConnectFailure:
    """Open ``url`` with the real transport (no REST call) and classify the error it closed with."""
    policy = TlsPolicy.for_url(url, cacert, pin_file=pins)
    recorder = run_until_closed(ConnectOptions(url=url, timeout=timeout, ssl_context=policy.ssl_context()))
    assert recorder.close is not None and not recorder.opened.is_set()
    error = recorder.close[2]
    assert error is not None
    return classify_connect_error(error, url)


def rest_failure(base_url: str, cacert: str | bool | None = None, *, pins: Path) -> ConnectFailure:
    session = IbkrSession(base_url, cacert=cacert, pin_file=pins, timeout=3)
    with pytest.raises(SessionError) as caught:
        session.tickle()
    return classify_connect_error(caught.value, base_url)


def test_a_refused_port_is_not_retryable(pins: Path) -> None:
    port = free_port()
    for failure in (
        socket_failure(f"wss://127.0.0.1:{port}/v1/api/ws", pins=pins),
        rest_failure(f"https://127.0.0.1:{port}/v1/api", pins=pins),
    ):
        assert (failure.kind, failure.retryable) == ("refused", False)
        assert f"127.0.0.1:{port}" in failure.reason and "running" in failure.reason


def test_an_unresolvable_host_is_not_retryable(pins: Path) -> None:
    for failure in (
        socket_failure("wss://nonexistent.invalid:5000/v1/api/ws", pins=pins),
        rest_failure("https://nonexistent.invalid:5000/v1/api", pins=pins),
    ):
        assert (failure.kind, failure.retryable) == ("dns", False), failure
        assert "nonexistent.invalid" in failure.reason


def test_a_404_on_the_upgrade_is_not_retryable(sim: GatewaySimulator, pins: Path) -> None:
    url = f"wss://127.0.0.1:{sim.port}/v1/api/wrong"
    failure = socket_failure(url, sim.cacert, pins=pins)
    assert failure == ConnectFailure(False, failure.reason, "http_status", 404)
    assert "/v1/api/ws" in failure.reason


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, "auth", False),
        (403, "auth", False),
        (400, "http_status", False),
        (429, "http_status", True),
        (500, "http_status", True),
        (503, "http_status", True),
    ],
)
def test_the_upgrades_http_status_decides(status: int, kind: str, retryable: bool) -> None:
    server = RawServer(status_line=f"HTTP/1.1 {status} Something".encode())
    recorder = run_until_closed(ConnectOptions(url=server.url, timeout=3))
    assert recorder.close is not None and recorder.close[2] is not None
    failure = classify_connect_error(recorder.close[2], server.url)
    assert (failure.kind, failure.retryable, failure.status) == (kind, retryable, status)


def test_maintenance_503_on_the_simulators_upgrade_is_retryable(pins: Path) -> None:
    with GatewaySimulator() as gateway:
        gateway.maintenance(30)
        failure = socket_failure(gateway.ws_url, gateway.cacert, pins=pins)
    assert (failure.kind, failure.retryable, failure.status) == ("http_status", True, 503)


def test_a_401_from_the_rest_session_is_auth(sim: GatewaySimulator, pins: Path) -> None:
    session = IbkrSession(sim.rest_url, cacert=sim.cacert)
    sim.set_authenticated(False)
    try:
        with pytest.raises(SessionError) as caught:
            session.accounts()
    finally:
        sim.set_authenticated(True)
    failure = classify_connect_error(caught.value, sim.rest_url)
    assert (failure.kind, failure.retryable, failure.status) == ("auth", False, 401)


def test_ws_against_the_tls_port_is_not_retryable_and_says_wss(sim: GatewaySimulator, pins: Path) -> None:
    for failure in (
        socket_failure(f"ws://127.0.0.1:{sim.port}/v1/api/ws", pins=pins),
        rest_failure(f"http://127.0.0.1:{sim.port}/v1/api", pins=pins),
    ):
        assert (failure.kind, failure.retryable) == ("protocol", False), failure
        assert "wss://" in failure.reason


def test_garbage_in_answer_to_the_upgrade_is_a_protocol_failure() -> None:
    server = RawServer(raw_answer=b"\x15\x03\x03\x00\x02\x02\x46")  # a TLS alert, as a TLS port may send
    recorder = run_until_closed(ConnectOptions(url=server.url, timeout=3))
    assert recorder.close is not None and recorder.close[2] is not None
    failure = classify_connect_error(recorder.close[2], server.url)
    assert (failure.kind, failure.retryable) == ("protocol", False), (failure, recorder.close)


def test_wss_against_a_plain_port_is_a_tls_failure(pins: Path) -> None:
    with GatewaySimulator(tls=False) as plain:
        failure = socket_failure(f"wss://127.0.0.1:{plain.port}/v1/api/ws", pins=pins)
    assert (failure.kind, failure.retryable) == ("tls", False)
    assert "ws://" in failure.reason


def test_a_certificate_that_does_not_verify_is_not_retryable(sim: GatewaySimulator, pins: Path) -> None:
    for failure in (
        socket_failure(f"wss://localhost:{sim.port}/v1/api/ws", True, pins=pins),
        rest_failure(f"https://localhost:{sim.port}/v1/api", True, pins=pins),
    ):
        assert (failure.kind, failure.retryable) == ("tls", False)
        assert "cacert" in failure.reason


def test_a_stalled_handshake_times_out_and_is_retryable(sim: GatewaySimulator, pins: Path) -> None:
    sim.stall_handshake(True)
    try:
        failure = socket_failure(sim.ws_url, sim.cacert, pins=pins, timeout=0.5)
    finally:
        sim.stall_handshake(False)
    assert (failure.kind, failure.retryable) == ("timeout", True)


def test_a_protocol_violation_is_retryable() -> None:
    server = RawServer(frame(b"x", 0x83))
    recorder = run_until_closed(ConnectOptions(url=server.url, timeout=3))
    assert recorder.close is not None and isinstance(recorder.close[2], ProtocolViolation)
    failure = classify_connect_error(recorder.close[2], server.url)
    assert (failure.kind, failure.retryable) == ("protocol", True)


def test_anything_else_is_retryable() -> None:
    assert classify_connect_error(RuntimeError("odd")).retryable is True
    assert classify_connect_error(ConnectionResetError("reset"), "wss://h:1/").kind == "network"
