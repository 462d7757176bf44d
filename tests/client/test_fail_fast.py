"""Failures no retry can fix end ``start()`` at once, with the reason (issue 15, finding 2)."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from rxibkr import ConnectionState, ErrorKind, IbkrWsClient
from rxibkr.sim import GatewaySimulator

FAST: dict[str, Any] = {"tic_interval": None, "tickle_interval": None, "md_renewal_interval": None}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_start(client: IbkrWsClient) -> tuple[bool, float]:
    t0 = time.monotonic()
    try:
        return client.start(), time.monotonic() - t0
    finally:
        client.shutdown()


def test_a_refused_port_fails_start_at_once_with_the_reason() -> None:
    client = IbkrWsClient(url=f"ws://127.0.0.1:{free_port()}/v1/api/ws", timeout=5, **FAST)
    started, elapsed = timed_start(client)
    assert started is False and elapsed < 2.0  # not timeout x max_connection_attempts (50 s)
    assert client.last_error is not None and client.last_error.kind is ErrorKind.CONNECTION_ERROR
    assert "not retried" in client.last_error.message
    assert client.state.value is ConnectionState.STOPPED  # shut down after the FAILED start


def test_an_http_404_on_the_upgrade_fails_start_at_once() -> None:
    with GatewaySimulator() as sim:
        url = sim.ws_url.replace("/v1/api/ws", "/no/such/route")
        client = IbkrWsClient(url=url, cacert=sim.cacert, timeout=5, **FAST)
        states: list[ConnectionState] = []
        client.state.subscribe(states.append)
        started, elapsed = timed_start(client)
    assert started is False and elapsed < 2.0
    assert ConnectionState.FAILED in states
    assert client.last_error is not None and "404" in client.last_error.message


@pytest.mark.parametrize("host", ["nonexistent.invalid"])
def test_an_unknown_host_fails_start_at_once(host: str) -> None:
    client = IbkrWsClient(url=f"ws://{host}:5000/v1/api/ws", timeout=5, **FAST)
    started, elapsed = timed_start(client)
    assert started is False and elapsed < 3.0
    assert client.last_error is not None and client.last_error.kind is ErrorKind.CONNECTION_ERROR
