"""Fixtures: a simulator serving both OAuth flows with generated keys, and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("cryptography")

from waiting import wait_until  # noqa: F401 (re-exported to the tests of this area)

from rxibkr.sim import GatewaySimulator

FAST: dict[str, Any] = dict(heartbeat_interval=0.2, md_interval=0.02, greeting_delay=0.01)


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(oauth=True, **FAST) as simulator:
        yield simulator


CLIENT: dict[str, Any] = dict(
    timeout=3,
    ping_interval=0.2,
    max_ping_interval=1.0,
    subscription_timeout=0.5,
    subscription_retries=3,
    reconnect_backoff=(0.05, 0.5),
)
