"""Socket login (cookie / in-band session), the confirmation burst, heartbeats, pings, tic, encoding."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest
import websocket

from rxibkr.sim import GatewaySimulator

from .support import Frame, Rest, WsClient, is_topic, open_ws

Connect = Callable[..., WsClient]


def greeting(client: WsClient) -> list[Frame]:
    return [client.recv(2.0) for _ in range(3)]


@pytest.mark.parametrize(
    "cookie",
    [
        'api={"session":"SID"}',
        'api={"session": "SID"}',
        "api=" + quote('{"session":"SID"}'),
        "api=" + quote('{"session": "SID"}'),
        "api=SID",
        'other=1; api={"session":"SID"}; more=2',
    ],
)
def test_cookie_variants_authenticate(any_sim: GatewaySimulator, cookie: str) -> None:
    client = open_ws(any_sim, cookie=cookie.replace("SID", any_sim.session_id))
    try:
        frames = greeting(client)
        assert [f["topic"] for f in frames] == ["system", "act", "sts"]
    finally:
        client.close()


def test_tickle_cookie_replay_authenticates(sim: GatewaySimulator, rest: Rest) -> None:
    resp = rest.call("POST", "/tickle")
    set_cookie = resp.headers["Set-Cookie"]
    assert set_cookie.startswith("x-sess-uuid=") and "HttpOnly" in set_cookie and "Path=/v1/api" in set_cookie
    client = open_ws(sim, cookie=set_cookie.split(";")[0])
    try:
        assert client.recv_until(is_topic("sts"))["args"]["authenticated"] is True
    finally:
        client.close()


@pytest.mark.parametrize(
    "cookie", [None, 'api={"session":"00000000000000000000000000000000"}', "api=nonsense"]
)
def test_without_a_valid_cookie_the_server_waits_for_the_session(
    any_sim: GatewaySimulator, rest: Rest, cookie: str | None
) -> None:
    client = open_ws(any_sim, cookie=cookie)
    try:
        assert client.recv(2.0) == {"message": "waiting for session"}
        client.send("tic")
        client.send('smd+265598+{"fields":["31"]}')
        client.send('{"session":"00000000000000000000000000000000"}')  # wrong id: ignored
        assert client.collect(0.1) == []  # nothing else until the session arrives
        session = Rest(any_sim).json("POST", "/tickle")["session"]
        client.send(f'{{"session":"{session}"}}')
        assert [f["topic"] for f in greeting(client)] == ["system", "act", "sts"]
        dropped = any_sim.received_frames(dropped=True)
        assert [t for _, t in dropped] == [
            "tic",
            'smd+265598+{"fields":["31"]}',
            '{"session":"00000000000000000000000000000000"}',
        ]
        assert any_sim.received_frames(dropped=False) == [(1, f'{{"session":"{session}"}}')]
    finally:
        client.close()


def test_session_message_on_an_authenticated_socket_is_an_error(
    sim: GatewaySimulator, connect: Connect
) -> None:
    client = connect(sim)
    client.send(f'{{"session":"{sim.session_id}"}}')
    frame = client.recv_until(lambda f: "error" in f)
    assert frame == {"error": "Topic unknown", "code": 1}


def test_greeting_shapes_match_live_frames(sim: GatewaySimulator, golden: dict[str, Frame]) -> None:
    client = open_ws(sim)
    try:
        system, act, sts = greeting(client)
    finally:
        client.close()
    assert system == {"topic": "system", "success": "simuser", "isFT": False, "isPaper": True}
    assert list(system) == list(golden["system-live"])
    live_act = golden["act-live"]["args"]
    assert act["topic"] == "act"
    assert list(act["args"]) == list(live_act)
    assert act["args"]["accounts"] == [sim.account] and act["args"]["selectedAccount"] == sim.account
    assert set(act["args"]["acctProps"][sim.account]) == set(live_act["acctProps"]["DU1234567"])
    assert set(act["args"]["allowFeatures"]) == set(live_act["allowFeatures"])
    assert act["args"]["chartPeriods"] == live_act["chartPeriods"]
    assert set(act["args"]["serverInfo"]) == {"serverName", "serverVersion"}
    assert act["args"]["sessionId"] != sim.session_id  # an internal id, not the tickle session
    assert list(sts["args"]) == list(golden["sts-live"]["args"])
    assert sts["args"]["authenticated"] is True and sts["args"]["competing"] is False
    assert sts["args"]["username"] == "simuser"


def test_greeting_waits_greeting_delay_and_early_frames_are_dropped(
    sim_factory: Callable[..., GatewaySimulator],
) -> None:
    sim = sim_factory(greeting_delay=0.3)
    client = open_ws(sim)
    try:
        opened = time.monotonic()
        client.send('smd+265598+{"fields":["31"]}')
        client.send("tic")
        first = client.recv(2.0)
        assert time.monotonic() - opened >= 0.25
        assert first["topic"] == "system"
        client.recv_until(is_topic("sts"))
        # the early frames were recorded as dropped and never acted upon
        assert sim.received_frames(dropped=True) == [(1, 'smd+265598+{"fields":["31"]}'), (1, "tic")]
        assert client.collect(0.1, lambda f: f.get("topic") in ("tic", "smd+265598")) == []
        log = sim.received_log()
        assert all(entry.dropped for entry in log) and log[0].time <= log[1].time
        # after the burst the same frames work
        client.send("tic")
        assert client.recv_until(is_topic("tic"))["alive"] is True
    finally:
        client.close()


def test_drop_early_frames_can_be_switched_off(sim_factory: Callable[..., GatewaySimulator]) -> None:
    sim = sim_factory(greeting_delay=0.2, drop_early_frames=False)
    client = open_ws(sim)
    try:
        client.send("tic")
        client.recv_until(is_topic("tic"))
        assert sim.received_frames(dropped=True) == []
    finally:
        client.close()


def test_heartbeats_every_interval(
    sim_factory: Callable[..., GatewaySimulator], golden: dict[str, Frame]
) -> None:
    sim = sim_factory(heartbeat_interval=0.05)
    client = open_ws(sim)
    try:
        client.recv_until(is_topic("sts"))
        beats = client.collect_n(4, is_topic("system"), timeout=2.0)
        assert all(set(b) == set(golden["hb-live"]) for b in beats)
        stamps = [b["hb"] for b in beats]
        assert stamps == sorted(stamps)
        assert abs(stamps[0] - time.time() * 1000) < 5000
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert all(30 <= g <= 400 for g in gaps), gaps
    finally:
        client.close()


def test_pings_get_pongs(any_sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(any_sim)
    client.ws.ping(b"probe-1")
    client.ws.settimeout(2.0)
    while True:
        opcode, frame = client.ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_PONG:
            assert frame.data == b"probe-1"
            break


def test_tic_is_answered_four_times(
    sim: GatewaySimulator, connect: Connect, golden: dict[str, Frame]
) -> None:
    client = connect(sim)
    client.send("tic")
    replies = client.collect_n(4, is_topic("tic"))
    assert len({str(r) for r in replies}) == 1  # identical
    assert list(replies[0]) == list(golden["tic-live"])
    assert replies[0]["id"] == sim.session_id and replies[0]["alive"] is True
    assert client.collect(0.1, is_topic("tic")) == []  # exactly four


def test_tic_replies_is_configurable(sim_factory: Callable[..., GatewaySimulator], connect: Connect) -> None:
    sim = sim_factory(tic_replies=1)
    client = connect(sim)
    client.send("tic")
    client.recv_until(is_topic("tic"))
    assert client.collect(0.1, is_topic("tic")) == []


def test_ech_hb_is_accepted_and_optionally_echoed(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    quiet = sim_factory()
    client = connect(quiet)
    client.send("ech+hb")
    client.send("tic")
    client.recv_until(is_topic("tic"))  # no error came before it
    echoing = sim_factory(echo_hb=True, binary_frames=False)
    client2 = connect(echoing)
    client2.send("ech+hb")
    opcode, data = client2.recv_raw()
    while data.startswith(b"{"):
        opcode, data = client2.recv_raw()
    assert (opcode, data) == (websocket.ABNF.OPCODE_TEXT, b"ech+hb")


def test_frames_are_binary_by_default_and_text_on_request(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    binary = connect(sim_factory())
    binary.send("tic")
    binary.recv_until(is_topic("tic"))
    assert set(binary.opcodes) == {websocket.ABNF.OPCODE_BINARY}
    text = connect(sim_factory(binary_frames=False))
    text.send("tic")
    text.recv_until(is_topic("tic"))
    assert set(text.opcodes) == {websocket.ABNF.OPCODE_TEXT}


def test_frames_are_compact_json(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.send("tic")
    _, data = client.recv_raw()
    while b'"tic"' not in data:
        _, data = client.recv_raw()
    assert b": " not in data and b", " not in data


def test_unknown_commands_get_an_error_frame(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.send("hello")
    assert client.recv_until(lambda f: "error" in f) == {"error": "Topic unknown", "code": 1}


def test_number_frames_counts_every_frame_per_connection(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(number_frames=True)
    a = connect(sim, greet=False)
    frames = [a.recv() for _ in range(3)]
    assert [f["_seq"] for f in frames] == [1, 2, 3]
    a.send('smd+265598+{"fields":["31","84","86"]}')
    a.send("tic")
    more = a.collect(0.15)
    assert [f["_seq"] for f in more] == list(range(4, 4 + len(more)))
    b = connect(sim, greet=False)
    assert b.recv()["_seq"] == 1  # per connection
    without = connect(sim_factory())
    without.send("tic")
    assert "_seq" not in without.recv_until(is_topic("tic"))


def test_connection_counters(sim: GatewaySimulator, connect: Connect) -> None:
    assert (sim.connection_count, sim.total_connections) == (0, 0)
    a = connect(sim)
    connect(sim)
    assert sim.wait_for(lambda: sim.connection_count == 2, 2.0)
    a.close()
    assert sim.wait_for(lambda: sim.connection_count == 1, 2.0)
    assert sim.total_connections == 2
    assert sim.sent_count >= 6  # two greetings
