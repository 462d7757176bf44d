"""Fault injection: drops, silent gateway, missing pongs, auth loss, maintenance, stalled handshakes,
garbage frames, latency, pushes — and that all of it is safe to call from any thread."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import websocket

from rxibkr.sim import GatewaySimulator

from .support import Closed, Frame, Rest, WsClient, is_topic, open_ws, sslopt

Connect = Callable[..., WsClient]
AAPL = 265598
SMD = 'smd+265598+{"fields":["31","84","86"]}'


def test_drop_connections_aborts_without_a_close_frame(any_sim: GatewaySimulator, connect: Connect) -> None:
    a, b = connect(any_sim), connect(any_sim)
    assert any_sim.drop_connections() == 2
    for client in (a, b):
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)) as info:
            for _ in range(100):
                client.recv(1.0)
        assert not isinstance(info.value, Closed)
    assert any_sim.wait_for(lambda: any_sim.connection_count == 0, 2.0)
    assert connect(any_sim).recv_until(is_topic("system"))  # and the server is still fine


def test_pause_and_resume_heartbeats(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.recv_until(is_topic("system"))
    sim.pause_heartbeats()
    client.collect(0.12)
    assert client.collect(0.15, is_topic("system")) == []
    sim.resume_heartbeats()
    assert client.recv_until(is_topic("system"), timeout=1.0)["hb"] > 0
    sim.pause_heartbeats(0.3)  # with a duration: resumes by itself
    client.collect(0.12)
    assert client.collect(0.1, is_topic("system")) == []
    assert client.recv_until(is_topic("system"), timeout=1.0)


def pong_within(client: WsClient, timeout: float) -> bool:
    client.ws.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            client.ws.settimeout(max(0.01, deadline - time.monotonic()))
            opcode, _ = client.ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_PONG:
                return True
    except websocket.WebSocketTimeoutException:
        return False
    return False


def test_stop_and_resume_pongs(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    sim.stop_pongs()
    client.ws.ping(b"1")
    assert not pong_within(client, 0.3)
    sim.resume_pongs()
    client.ws.ping(b"2")
    assert pong_within(client, 1.0)


def test_auth_loss_and_silent_recovery(
    sim: GatewaySimulator, connect: Connect, rest: Rest, golden: dict[str, Frame]
) -> None:
    client = connect(sim)
    client.send(SMD)
    client.send("spl+{}")
    client.recv_until(is_topic(f"smd+{AAPL}"))
    sim.set_authenticated(False)
    sts = client.recv_until(is_topic("sts"))
    assert sts["args"]["authenticated"] is False and set(sts["args"]) == set(golden["sts-live"]["args"])
    client.collect(0.05)
    assert client.collect(0.1, lambda f: f.get("topic") in (f"smd+{AAPL}", "spl")) == []  # data stopped
    assert rest.json("GET", "/iserver/auth/status")["authenticated"] is False
    assert rest.json("POST", "/tickle")["iserver"]["authStatus"]["authenticated"] is False
    assert rest.call("GET", "/iserver/accounts").status == 401
    client.send(SMD)  # resubscribing on this socket does nothing
    assert client.collect(0.1, is_topic(f"smd+{AAPL}")) == []
    fresh = connect(sim, greet=False)
    assert fresh.recv()["args"]["authenticated"] is False  # a new socket hears about it too, and no data
    sim.set_authenticated(True)
    assert rest.json("POST", "/iserver/auth/status")["authenticated"] is True
    assert client.collect(0.1, is_topic("sts")) == []  # recovery is silent
    client.send(SMD)
    assert client.collect(0.1, is_topic(f"smd+{AAPL}")) == []  # still nothing on the old socket
    new = connect(sim)  # a new connection works again
    new.send(SMD)
    assert new.recv_until(is_topic(f"smd+{AAPL}"))["conid"] == AAPL


def test_reauthenticate_can_restore_the_session(sim_factory: Callable[..., GatewaySimulator]) -> None:
    sim = sim_factory(reauthenticate_delay=0.05)
    rest = Rest(sim)
    sim.set_authenticated(False)
    assert rest.json("POST", "/iserver/reauthenticate") == {"message": "triggered"}
    assert sim.wait_for(lambda: rest.json("GET", "/iserver/auth/status")["authenticated"], 2.0)


def test_competing_session(sim: GatewaySimulator, connect: Connect, rest: Rest) -> None:
    client = connect(sim)
    sim.competing_session()
    sts = client.recv_until(is_topic("sts"))["args"]
    assert sts["competing"] is True and sts["authenticated"] is True
    assert rest.json("GET", "/iserver/auth/status")["competing"] is True
    sim.competing_session(lose_auth=True)
    sts = client.recv_until(is_topic("sts"))["args"]
    assert sts["competing"] is True and sts["authenticated"] is False
    assert rest.json("GET", "/iserver/auth/status")["authenticated"] is False


def test_maintenance_closes_with_1000_and_refuses_for_a_while(
    any_sim: GatewaySimulator, connect: Connect
) -> None:
    client = connect(any_sim)
    rest = Rest(any_sim)
    any_sim.maintenance(0.4)
    with pytest.raises(Closed) as info:
        for _ in range(100):
            client.recv(1.0)
    assert info.value.code == 1000
    assert rest.call("GET", "/tickle").status == 503
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(any_sim.ws_url, sslopt=sslopt(any_sim), cookie=any_sim.cookie, timeout=2)
    assert refused.value.status_code == 503
    assert any_sim.wait_for(lambda: rest.call("GET", "/tickle").status == 200, 2.0)
    assert connect(any_sim).recv_until(is_topic("system"))


def test_end_maintenance_early(sim: GatewaySimulator, rest: Rest) -> None:
    sim.maintenance(60)
    assert rest.call("GET", "/tickle").status == 503
    sim.end_maintenance()
    assert rest.call("GET", "/tickle").status == 200


def test_stalled_handshake(sim: GatewaySimulator) -> None:
    sim.stall_handshake(True)
    started = time.monotonic()
    with pytest.raises((websocket.WebSocketTimeoutException, socket.timeout, TimeoutError)):
        websocket.create_connection(sim.ws_url, sslopt=sslopt(sim), cookie=sim.cookie, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert sim.total_connections == 0
    assert sim.wait_for(lambda: sim.stalled_handshakes == 0, 3.0)  # the abandoned upgrade is released
    # a client still waiting when the stall ends gets its upgrade
    result: dict[str, object] = {}

    def patient() -> None:
        try:
            client = open_ws(sim)
            result["frame"] = client.recv_until(is_topic("sts"))
            client.close()
        except Exception as exc:  # reported below
            result["error"] = exc

    thread = threading.Thread(target=patient)
    thread.start()
    assert sim.wait_for(lambda: sim.stalled_handshakes == 1, 3.0)  # its upgrade is held
    assert "frame" not in result
    sim.stall_handshake(False)
    thread.join(3.0)
    assert "error" not in result and result.get("frame")
    client = open_ws(sim)
    assert client.recv_until(is_topic("sts"))
    client.close()


def test_an_abandoned_stalled_upgrade_is_released(sim: GatewaySimulator) -> None:
    sim.stall_handshake(True)
    url = urlsplit(sim.ws_url)
    assert url.hostname and url.port
    raw: socket.socket = socket.create_connection((url.hostname, url.port), timeout=3)
    if url.scheme == "wss":
        raw = ssl.create_default_context(cafile=sim.cacert).wrap_socket(raw, server_hostname=url.hostname)
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert sim.wait_for(lambda: sim.stalled_handshakes == 1, 3.0)  # held while its client waits
    raw.close()
    assert sim.wait_for(lambda: sim.stalled_handshakes == 0, 3.0)  # released when it hangs up
    sim.stall_handshake(False)
    client = open_ws(sim)
    assert client.recv_until(is_topic("sts"))
    client.close()
    assert sim.total_connections == 1  # the abandoned request never became a connection


def test_stop_while_stalled_is_bounded(sim_factory: Callable[..., GatewaySimulator]) -> None:
    sim = sim_factory()
    sim.stall_handshake(True)
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            websocket.create_connection(sim.ws_url, sslopt=sslopt(sim), cookie=sim.cookie, timeout=5)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    assert sim.wait_for(lambda: sim.stalled_handshakes == 1, 3.0)  # stop() finds it held
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 2.0
    thread.join(3.0)
    assert errors and not thread.is_alive()


def test_send_raw_garbage(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    assert sim.send_raw(b"\x00\xffnot json") == 1
    opcode, data = client.recv_raw()
    while data.startswith(b'{"topic":"system"'):
        opcode, data = client.recv_raw()
    assert (opcode, data) == (websocket.ABNF.OPCODE_BINARY, b"\x00\xffnot json")
    sim.send_raw(b'{"topic":"x","bad":"\x99"}', binary=False)  # a text frame with invalid UTF-8
    opcode, data = client.recv_raw()
    while data.startswith(b'{"topic":"system"'):
        opcode, data = client.recv_raw()
    assert (opcode, data) == (websocket.ABNF.OPCODE_TEXT, b'{"topic":"x","bad":"\x99"}')
    sim.send_raw("[1,2]")
    assert client.recv_raw()[1] in (b"[1,2]", b'{"topic":"system"')  # str is sent UTF-8 encoded


def test_latency_delays_every_frame_in_order(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(number_frames=True)
    client = connect(sim)
    sim.latency(100)
    sent = time.monotonic()
    client.send("tic")
    client.recv_until(is_topic("tic"))
    assert time.monotonic() - sent >= 0.09
    client.ws.ping(b"x")
    ping_sent = time.monotonic()
    assert pong_within(client, 1.0) and time.monotonic() - ping_sent >= 0.09
    sim.latency(0)
    frames = client.collect(0.15)
    seqs = [f["_seq"] for f in frames]
    assert seqs == sorted(seqs)
    sent = time.monotonic()
    client.send("tic")
    client.recv_until(is_topic("tic"))
    assert time.monotonic() - sent < 0.09


def test_push_notification_and_bulletin(
    sim: GatewaySimulator, connect: Connect, golden: dict[str, Frame]
) -> None:
    a, b = connect(sim), connect(sim)
    assert sim.push_notification("Order will be cancelled", id="118") == 2
    for client in (a, b):
        ntf = client.recv_until(is_topic("ntf"))
        assert isinstance(ntf["args"], list)
        assert set(ntf["args"][0]) == set(golden["ntf-live"]["args"][0])
        assert ntf["args"][0]["id"] == "118" and ntf["args"][0]["title"] is None
    prompt = golden["ntf-prompt-live"]["args"]
    sim.push_notification(args=prompt)
    assert a.recv_until(is_topic("ntf"))["args"] == prompt
    sim.push_bulletin("To all traders: hello", id=1789618148)
    blt = a.recv_until(is_topic("blt"))
    assert set(blt["args"][0]) == set(golden["blt-live"]["args"][0]) and blt["args"][0]["id"] == 1789618148
    assert sim.push_account_update() == 2
    assert a.recv_until(is_topic("act"))["args"]["accounts"] == [sim.account]


def test_faults_from_many_threads(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.send(SMD)
    client.recv_until(is_topic(f"smd+{AAPL}"))
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer(action: Callable[[], object]) -> None:
        try:
            while not stop.is_set():
                action()
        except BaseException as exc:
            errors.append(exc)

    actions: list[Callable[[], object]] = [
        lambda: (sim.pause_heartbeats(0.01), sim.resume_heartbeats()),
        lambda: sim.set_price(AAPL, 270.0 + (time.monotonic() % 1)),
        lambda: sim.active_subscriptions(),
        lambda: (sim.latency(1), sim.latency(0)),
        lambda: sim.push_notification("x"),
        lambda: sim.quote(AAPL),
    ]
    counts = [0] * len(actions)

    def counted(i: int, action: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            counts[i] += 1
            return action()

        return run

    threads = [threading.Thread(target=hammer, args=(counted(i, a),)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    # every action overlapped the others many times (a count, not a duration)
    assert sim.wait_for(lambda: min(counts) >= 20, 10.0), counts
    stop.set()
    for t in threads:
        t.join(2.0)
    assert not errors, errors
    client.send("tic")
    assert client.recv_until(is_topic("tic"), timeout=5.0)["alive"] is True


def test_fault_methods_work_from_the_loop_thread_too(sim: GatewaySimulator) -> None:
    # a callback running on the simulator's own thread must not dead-lock
    done = threading.Event()

    def on_loop() -> None:
        sim.pause_heartbeats(0.01)
        sim.maintenance(0.01)
        done.set()

    loop = sim._loop  # test-only peek: schedule a call on the simulator's loop
    assert loop is not None
    loop.call_soon_threadsafe(on_loop)
    assert done.wait(2.0)


def test_session_lapses_quietly_without_keepalive(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(session_timeout=0.6)
    rest = Rest(sim)
    client = connect(sim)
    client.send(SMD)
    client.recv_until(is_topic(f"smd+{AAPL}"))
    # tic keeps the session alive past its timeout: pacing (time must pass), not a synchronisation;
    # a gap of a sixth of the timeout leaves room for a loaded machine
    started = time.monotonic()
    while time.monotonic() - started < 0.9:
        time.sleep(0.1)
        client.send("tic")
    assert rest.json("GET", "/iserver/auth/status")["authenticated"] is True
    assert sim.wait_for(lambda: not sim.authenticated, 2.0)
    client.collect(0.05)
    quiet = client.collect(0.1)
    assert not [f for f in quiet if f.get("topic") in (f"smd+{AAPL}", "sts")]  # no data, no announcement
    assert rest.json("POST", "/tickle")["iserver"]["authStatus"]["authenticated"] is False
