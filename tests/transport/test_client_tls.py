"""The client's TLS default, end to end: without cacert a loopback gateway is pinned on first use; a
changed certificate fails closed at once with a TLS event saying how to re-pin."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind

pytest.importorskip("aiohttp")
pytest.importorskip("trustme")

from rxibkr.sim import GatewaySimulator

FAST: dict[str, Any] = {
    "timeout": 3,
    "tic_interval": None,
    "tickle_interval": None,
    "md_renewal_interval": None,
}


def start(url: str, **kwargs: Any) -> tuple[bool, float, list[ErrorEvent], list[ConnectionState]]:
    client = IbkrWsClient(url=url, **{**FAST, **kwargs})
    errors: list[ErrorEvent] = []
    states: list[ConnectionState] = []
    client.errors.subscribe(errors.append)
    client.state.subscribe(states.append)
    started = time.monotonic()
    try:
        return client.start(), time.monotonic() - started, errors, states
    finally:
        client.shutdown()


def test_without_cacert_a_loopback_gateway_is_pinned_and_a_changed_certificate_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pins = tmp_path / "pins.json"
    monkeypatch.setenv("RXIBKR_TLS_PINS", str(pins))
    monkeypatch.delenv("RXIBKR_CACERT", raising=False)
    with GatewaySimulator() as first, warnings.catch_warnings():
        warnings.simplefilter("error")  # verified: no "verification is disabled", no InsecureRequestWarning
        port = first.port
        ok, _, errors, _ = start(first.ws_url)
        assert ok, errors
        assert f"127.0.0.1:{port}" in pins.read_text()
        ok, _, errors, _ = start(first.ws_url)  # the pin holds on the next connection
        assert ok, errors
    with GatewaySimulator(port=port) as second:  # the same host:port with another certificate
        connections = second.total_connections
        ok, elapsed, errors, states = start(second.ws_url, max_connection_attempts=5)
        assert ok is False and elapsed < 2.0  # fatal at once: no retry
        assert ConnectionState.FAILED in states
        tls = [e for e in errors if e.kind is ErrorKind.TLS]
        assert len(tls) == 1, errors
        assert "changed" in tls[0].message and str(pins) in tls[0].message and "re-pin" in tls[0].message
        assert second.total_connections == connections  # nothing was upgraded
