"""pytest plugin (entry point ``pytest11: rxibkr``): fixtures for testing strategies against rxibkr.

* ``ibkr_virtual`` -- :func:`rxibkr.testing.virtual_client`: a client on a ``TestScheduler`` with a
  scripted gateway, through the greeting at virtual time 0; shut down after the test.
* ``ibkr_sim`` -- a running :class:`rxibkr.sim.GatewaySimulator` on an ephemeral loopback port, TLS on,
  fast intervals (heartbeat every second, market data every 50 ms); stopped after the test. Skipped when
  the ``sim`` extra (aiohttp, trustme) is not installed.
* ``ibkr_client`` -- a started ``IbkrWsClient`` connected to ``ibkr_sim`` (TLS verified against the
  simulator's CA); shut down after the test.

Options per test through markers: ``@pytest.mark.ibkr_sim(seed=3, md_interval=0.01)``,
``@pytest.mark.ibkr_client(subscription_timeout=1)``, ``@pytest.mark.ibkr_virtual(heartbeat_interval=None)``.

This module loads in every pytest run of a project that has rxibkr installed, so it imports only pytest
at import time; the client, the simulator and its aiohttp are imported inside the fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from rxibkr.client.core import IbkrWsClient
    from rxibkr.sim import GatewaySimulator
    from rxibkr.testing.virtual import VirtualClient

SIM_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 0,
    "tls": True,
    "seed": 0,
    "heartbeat_interval": 1.0,
    "md_interval": 0.05,
    "greeting_delay": 0.0,
}
"""The ``ibkr_sim`` fixture's simulator options (a marker's keywords override them)."""


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "ibkr_sim(**options): GatewaySimulator options for the ibkr_sim fixture",
        "ibkr_client(**options): IbkrWsClient options for the ibkr_client fixture",
        "ibkr_virtual(**options): virtual_client() options for the ibkr_virtual fixture",
    ):
        config.addinivalue_line("markers", line)


def _options(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    marker = request.node.get_closest_marker(name)
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def ibkr_virtual(request: pytest.FixtureRequest) -> Iterator[VirtualClient]:
    """A started client on a ``TestScheduler`` and its scripted gateway (``.client``, ``.gateway``...)."""
    from rxibkr.testing.virtual import virtual_client

    vc = virtual_client(**_options(request, "ibkr_virtual"))
    try:
        yield vc
    finally:
        vc.shutdown()


@pytest.fixture
def ibkr_sim(request: pytest.FixtureRequest) -> Iterator[GatewaySimulator]:
    """A running gateway simulator (``.ws_url``, ``.cacert``, ``.account``...), stopped after the test."""
    pytest.importorskip("aiohttp", reason="the ibkr_sim fixture needs rxibkr's sim extra (aiohttp, trustme)")
    pytest.importorskip("trustme", reason="the ibkr_sim fixture needs rxibkr's sim extra (aiohttp, trustme)")
    from rxibkr.sim import GatewaySimulator

    sim = GatewaySimulator(**{**SIM_DEFAULTS, **_options(request, "ibkr_sim")})
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def ibkr_client(ibkr_sim: GatewaySimulator, request: pytest.FixtureRequest) -> Iterator[IbkrWsClient]:
    """A client connected to ``ibkr_sim`` with its session confirmed; shut down after the test."""
    from rxibkr.client.core import IbkrWsClient

    options: dict[str, Any] = {
        "url": ibkr_sim.ws_url,
        "cacert": ibkr_sim.cacert if ibkr_sim.cacert is not None else False,
        "account_id": ibkr_sim.account,
        "timeout": 5.0,
        **_options(request, "ibkr_client"),
    }
    client = IbkrWsClient(**options)
    try:
        if not client.start():
            pytest.fail(f"ibkr_client: no confirmed session from the simulator at {ibkr_sim.ws_url}")
        yield client
    finally:
        client.shutdown()
