"""Failures no retry can fix end ``start()`` at once, with the reason (issue 15, finding 2)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from waiting import wait_until

from rxibkr import ConnectionState, ErrorKind, IbkrWsClient, IbkrWsKey
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


def test_a_gateway_refusal_fails_the_subscription_at_once_without_resending() -> None:
    with GatewaySimulator(heartbeat_interval=0.5) as sim:
        client = IbkrWsClient(url=sim.ws_url, cacert=sim.cacert, subscription_timeout=0.5, **FAST)
        try:
            assert client.start()
            t0 = time.monotonic()
            sub = client.subscribe("md+999999999", {"fields": ["31"]})  # an unknown conid: refused
            assert sub.status.value == "failed" and time.monotonic() - t0 < 1.0
            assert client.last_error is not None and client.last_error.kind is ErrorKind.SUBSCRIPTION_FAILED
            assert "refused by the gateway" in client.last_error.message
            time.sleep(1.2)  # two subscription timeouts: a retry would have gone out by now
            sent = [t for _c, t in sim.received_frames() if t.startswith("smd+999999999")]
            assert len(sent) == 1
        finally:
            client.shutdown()


def test_a_gateway_without_a_greeting_is_usable() -> None:
    """Live gateways on some days send no system/act/sts at all: start() still succeeds, data
    flows, and check_health() is True after the first heartbeat."""
    with GatewaySimulator(greeting=False, heartbeat_interval=0.5, md_interval=0.05) as sim:
        client = IbkrWsClient(
            url=sim.ws_url, cacert=sim.cacert, ping_interval=0.5, max_ping_interval=3, **FAST
        )
        try:
            got: list[Any] = []
            heartbeat = threading.Event()
            client.market_data(265598).subscribe(got.append)
            client.observe(IbkrWsKey.SYSTEM).subscribe(lambda m: "hb" in (m.data or {}) and heartbeat.set())
            assert client.check_health() is False  # not started
            assert client.start() is True
            assert client.check_health() is True  # right after the socket opened
            assert wait_until(lambda: len(got) >= 3, 5)
            assert heartbeat.wait(5)
            assert client.check_health() is True  # after the first heartbeat
        finally:
            client.shutdown()
