"""Shared fixtures for the simulator tests (helpers live in ``support.py``).

Intervals are tiny so every wait is short and bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("trustme")

from rxibkr.sim import GatewaySimulator

from .support import Frame, Rest, WsClient, is_topic, load_golden, make_sim, open_ws


@pytest.fixture(scope="session")
def golden() -> dict[str, Frame]:
    """Server frames from the protocol reference and live captures (accounts/users redacted)."""
    return load_golden()


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., GatewaySimulator]]:
    """Start simulators with FAST intervals plus overrides; all are stopped at teardown."""
    started: list[GatewaySimulator] = []

    def factory(**kwargs: Any) -> GatewaySimulator:
        s = make_sim(**kwargs).start()
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()


@pytest.fixture
def sim(sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    """A TLS simulator with tiny intervals."""
    return sim_factory()


@pytest.fixture(params=["tls", "plain"])
def any_sim(request: pytest.FixtureRequest, sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    """The same test over TLS and over plain ws/http."""
    return sim_factory(tls=request.param == "tls")


@pytest.fixture
def connect() -> Iterator[Callable[..., WsClient]]:
    """``connect(sim)`` opens an authenticated socket (greeting consumed unless ``greet=False``)."""
    opened: list[WsClient] = []

    def do(target: GatewaySimulator, *, greet: bool = True, **kwargs: Any) -> WsClient:
        client = open_ws(target, **kwargs)
        opened.append(client)
        if greet:
            client.recv_until(is_topic("sts"))
        return client

    yield do
    for c in opened:
        c.close()


@pytest.fixture
def rest(sim: GatewaySimulator) -> Rest:
    return Rest(sim)
