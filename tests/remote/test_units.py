"""Argument checks and helpers of rxibkr.remote (a real Redis where a connection is needed)."""

from __future__ import annotations

import pytest

from rxibkr.remote import LocalRedis, RemoteClient, Server
from rxibkr.remote._layout import Layout, connect, pack, parse_id, public_url


def test_public_url_hides_the_password() -> None:
    assert public_url("redis://user:secret@host:6379/0") == "redis://***@host:6379/0"
    assert public_url("redis://host:6379/0") == "redis://host:6379/0"


def test_layout_and_ids() -> None:
    layout = Layout("desk1")
    assert layout.md(265598) == "desk1:md:265598" and layout.lease("c1") == "desk1:lease:c1"
    assert parse_id(b"1700000000000-5") == (1700000000000, 5)
    assert pack("SET", "k", 1) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n"
    with pytest.raises(ValueError, match="prefix"):
        Layout("has space")


def test_bad_arguments_fail_at_the_call(redis_server: LocalRedis) -> None:
    with pytest.raises(ValueError, match="redis_url"):
        connect("http://localhost:6379")
    with pytest.raises(ValueError, match="lease_ttl"):
        RemoteClient(redis_server.url, lease_ttl=0)
    with pytest.raises(ValueError, match="maxlen"):
        Server(object(), redis_server.url, maxlen=0)  # type: ignore[arg-type]
    with RemoteClient(redis_server.url, lease_ttl=5.0) as client:
        with pytest.raises(ValueError, match="channel"):
            client.subscribe("xx+1", wait=False)
        with pytest.raises(TypeError, match="data"):
            client.subscribe("md+1", {"fields": object()}, wait=False)  # type: ignore[dict-item]
        assert client.subscriptions == {}
        # no serve is running: the client says so, and a subscription waits in its lease
        assert client.state.value.value == "stopped"
        handle = client.subscribe("md+265598", {"fields": ["31"]}, wait=False)
        assert not handle and client.has_subscription("md+265598")
        handle.dispose()
        assert not client.has_subscription("md+265598")
    with pytest.raises(RuntimeError, match="shut down"):
        client.subscribe("md+1", wait=False)


def test_local_redis_restarts_on_the_same_port_without_data(redis_server: LocalRedis) -> None:
    r = connect(redis_server.url)
    r.set("k", "v")
    port = redis_server.port
    redis_server.restart()
    assert redis_server.port == port
    assert connect(redis_server.url).get("k") is None
