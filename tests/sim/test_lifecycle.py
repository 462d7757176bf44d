"""Starting, stopping, addresses, TLS material, access control, determinism of identities."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Callable

import pytest
import urllib3
import websocket

from rxibkr.sim import GatewaySimulator

from .support import Closed, Rest, is_topic, make_sim, open_ws, sslopt


def test_start_is_fast_and_stop_is_bounded_and_idempotent() -> None:
    sim = make_sim()
    started = time.perf_counter()
    sim.start()
    elapsed = time.perf_counter() - started
    try:
        assert elapsed < 0.5, elapsed
        assert sim.running and sim.port > 0
        assert sim.start() is sim  # no-op
        cacert = sim.cacert
        assert cacert is not None and os.path.exists(cacert)
    finally:
        t0 = time.perf_counter()
        sim.stop()
        assert time.perf_counter() - t0 < 2.0
    sim.stop()  # idempotent
    assert not sim.running
    assert not os.path.exists(cacert)  # temp dir removed
    assert not any(t.name == "rxibkr-sim" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sim.port), timeout=1).close()


def test_context_manager_and_urls() -> None:
    with GatewaySimulator(tls=True, seed=7) as sim:
        assert sim.ws_url == f"wss://127.0.0.1:{sim.port}/v1/api/ws"
        assert sim.rest_url == f"https://127.0.0.1:{sim.port}/v1/api"
        assert sim.account == "DU1234567"
        assert len(sim.session_id) == 32 and int(sim.session_id, 16) >= 0
    with GatewaySimulator(tls=False) as plain:
        assert plain.ws_url.startswith("ws://127.0.0.1:") and plain.rest_url.startswith("http://127.0.0.1:")
        assert plain.cacert is None


def test_session_id_is_derived_from_the_seed() -> None:
    assert GatewaySimulator(seed=1).session_id == GatewaySimulator(seed=1).session_id
    assert GatewaySimulator(seed=1).session_id != GatewaySimulator(seed=2).session_id
    explicit = "ab" * 16
    assert GatewaySimulator(session_id=explicit).session_id == explicit


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="heartbeat_interval"):
        GatewaySimulator(heartbeat_interval=0)
    with pytest.raises(ValueError, match="port"):
        GatewaySimulator(port=70000)
    with pytest.raises(ValueError, match="session_id"):
        GatewaySimulator(session_id="xyz")
    with pytest.raises(ValueError):
        GatewaySimulator(allowed_hosts=("not-an-address",))


def test_fault_methods_need_a_running_simulator() -> None:
    with pytest.raises(RuntimeError, match="start"):
        GatewaySimulator().drop_connections()


def test_certificate_covers_loopback_names(sim: GatewaySimulator) -> None:
    assert sim.cacert is not None
    ctx = ssl.create_default_context(cafile=sim.cacert)
    for name in ("127.0.0.1", "localhost"):
        with (
            socket.create_connection(("127.0.0.1", sim.port), timeout=2) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() is not None
    # an unrelated CA is refused
    with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", sim.port), timeout=2) as raw:
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


def test_ipv6_loopback_listener() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        sim = make_sim(host="::1").start()
    except OSError:
        pytest.skip("IPv6 loopback not available")
    try:
        assert sim.ws_url.startswith("wss://[::1]:")
        data = Rest(sim).json("GET", "/tickle")
        assert data["session"] == sim.session_id
        client = open_ws(sim)
        assert client.recv_until(is_topic("sts"))["args"]["authenticated"] is True
        client.close()
    finally:
        sim.stop()


def test_hosts_outside_allowed_hosts_get_access_denied(sim_factory: Callable[..., GatewaySimulator]) -> None:
    sim = sim_factory(allowed_hosts=("10.9.9.9",))
    resp = Rest(sim).call("GET", "/tickle")
    assert resp.status == 404 and resp.data == b"Access Denied"
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(sim.ws_url, sslopt=sslopt(sim), cookie=sim.cookie, timeout=2)
    assert info.value.status_code == 404
    assert sim.total_connections == 0


def test_stop_closes_open_sockets(sim_factory: Callable[..., GatewaySimulator]) -> None:
    sim = sim_factory()
    client = open_ws(sim)
    client.recv_until(is_topic("sts"))
    sim.stop()
    with pytest.raises(Closed) as info:
        for _ in range(50):
            client.recv(1.0)
    assert info.value.code == 1001


def test_many_simulators_side_by_side(sim_factory: Callable[..., GatewaySimulator]) -> None:
    sims = [sim_factory(seed=i) for i in range(3)]
    assert len({s.port for s in sims}) == 3
    for s in sims:
        http = urllib3.PoolManager(ca_certs=s.cacert, retries=False, timeout=2.0)
        assert http.request("GET", s.rest_url + "/tickle").json()["session"] == s.session_id
