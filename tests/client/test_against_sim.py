"""The real client against the real simulator over loopback TLS."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from simclient import sim_client
from waiting import wait_until

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.protocol import IbkrWsKey, Message

sim_module = pytest.importorskip("rxibkr.sim")
GatewaySimulator = sim_module.GatewaySimulator


@pytest.fixture
def sim() -> Iterator[Any]:
    with GatewaySimulator(heartbeat_interval=0.2, md_interval=0.02, greeting_delay=0.01) as simulator:
        yield simulator


def make_client(sim: Any, **kwargs: Any) -> IbkrWsClient:
    options: dict[str, Any] = dict(
        timeout=3,
        ping_interval=0.2,
        max_ping_interval=1.0,
        subscription_timeout=0.5,
        subscription_retries=3,
        reconnect_backoff=(0.05, 0.5),
    )
    options.update(kwargs)
    return sim_client(sim, **options)


@pytest.fixture
def client(sim: Any) -> Iterator[IbkrWsClient]:
    c = make_client(sim)
    assert c.start() is True
    yield c
    c.shutdown()


def sim_received(sim: Any) -> list[str]:
    return [text for _conn, text in sim.received_frames()]


def test_every_topic_subscribes_and_unsubscribes(sim: Any, client: IbkrWsClient) -> None:
    acct = sim.account
    channels: list[tuple[str, dict[str, Any] | None]] = [
        ("md+265598", {"fields": ["31", "84", "86"]}),
        ("mh+265598", {"period": "1d", "bar": "1h", "source": "trades"}),
        (f"bd+{acct}+265598", None),
        ("or", {}),
        ("tr", {}),
        ("pl", {}),
        (f"sd+{acct}", {}),
        (f"ld+{acct}", {}),
    ]
    subs = [client.subscribe(channel, data) for channel, data in channels]
    by_channel = {s.channel: s for s in subs}
    for channel in ("md+265598", "mh+265598", "tr", "pl", f"sd+{acct}", f"ld+{acct}"):
        assert by_channel[channel], f"{channel} not confirmed: {by_channel[channel].status}"
    server_ids = client.server_ids(IbkrWsKey.MARKET_HISTORY)
    assert server_ids and list(server_ids.values()) == [265598]
    for sub in subs:
        sub.dispose()
    (server_id,) = server_ids
    expected = [
        "umd+265598+{}",
        f"umh+{server_id}",
        f"ubd+{acct}",
        "uor+{}",
        "utr",
        "upl+{}",
        f"usd+{acct}+{{}}",
        f"uld+{acct}+{{}}",
    ]
    assert wait_until(lambda: all(e in sim_received(sim) for e in expected)), sim_received(sim)


def test_market_data_flows_and_queue_accessor_gets_it(sim: Any, client: IbkrWsClient) -> None:
    accessor = client.new_queue_accessor(IbkrWsKey.MARKET_DATA)
    seen: list[Message] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(seen.append)
    assert client.subscribe("md+265598", {"fields": ["31", "84", "86"]})
    assert wait_until(lambda: len(seen) >= 5)
    item = accessor.get(block=True, timeout=2)
    assert 265598 in item and "conid" in item[265598]


def test_tls_verification_with_a_wrong_ca_fails_closed(sim: Any, tmp_path: Any) -> None:
    trustme = pytest.importorskip("trustme")
    wrong = tmp_path / "wrong-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong))
    errors: list[ErrorEvent] = []
    c = make_client(sim, cacert=str(wrong), max_connection_attempts=2)
    c.errors.subscribe(errors.append)
    started = time.monotonic()
    assert c.start() is False
    assert time.monotonic() - started < 6
    assert c.state.value is ConnectionState.FAILED
    assert any(e.kind is ErrorKind.TLS or "certificate" in e.message.lower() for e in errors), errors
    c.shutdown()


def test_reconnect_after_drop_restores_every_subscription(sim: Any, client: IbkrWsClient) -> None:
    md = client.subscribe("md+265598", {"fields": ["31"]})
    pnl = client.subscribe("pl", {})
    assert md and pnl
    first = sim.total_connections
    sim.drop_connections()
    assert wait_until(lambda: sim.total_connections > first and client.ready, 10)
    assert wait_until(lambda: md.active and pnl.active, 10)
    seen: list[Message] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(seen.append)
    assert wait_until(lambda: len(seen) >= 3)


def test_heartbeat_watchdog_fires_when_heartbeats_pause(sim: Any, client: IbkrWsClient) -> None:
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)
    first = sim.total_connections
    sim.pause_heartbeats()
    assert wait_until(lambda: any(e.kind is ErrorKind.WATCHDOG for e in errors), 5)
    sim.resume_heartbeats()
    assert wait_until(lambda: sim.total_connections > first and client.ready, 10)


def test_ping_watchdog_fires_when_pongs_stop(sim: Any, client: IbkrWsClient) -> None:
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)
    first = sim.total_connections
    sim.stop_pongs()
    assert wait_until(lambda: any("pong" in e.message for e in errors), 5)
    sim.resume_pongs()
    assert wait_until(lambda: sim.total_connections > first and client.ready, 10)


def test_auth_loss_and_silent_recovery(sim: Any, client: IbkrWsClient) -> None:
    md = client.subscribe("md+265598", {"fields": ["31"]})
    assert md
    states: list[ConnectionState] = []
    client.state.subscribe(states.append)
    sim.set_authenticated(False)
    assert wait_until(lambda: client.state.value is ConnectionState.UNAUTHENTICATED, 5)
    sim.set_authenticated(True)  # the gateway says nothing: the client must notice through REST
    assert wait_until(lambda: client.ready and md.active, 10)
    assert ConnectionState.UNAUTHENTICATED in states


def test_shutdown_leaves_no_thread(sim: Any) -> None:
    before = set(threading.enumerate())
    c = make_client(sim)
    assert c.start()
    assert c.subscribe("md+265598", {"fields": ["31"]})
    c.shutdown()
    assert wait_until(lambda: not (set(threading.enumerate()) - before), 5), (
        set(threading.enumerate()) - before
    )


def test_stalled_handshake_start_returns_false_in_bound(sim: Any) -> None:
    sim.stall_handshake(True)
    before = set(threading.enumerate())
    c = make_client(sim, timeout=0.5, max_connection_attempts=2)
    started = time.monotonic()
    assert c.start() is False
    assert time.monotonic() - started <= 0.5 * 2 + 0.5
    c.shutdown()
    assert wait_until(lambda: not (set(threading.enumerate()) - before), 3), (
        set(threading.enumerate()) - before
    )
