"""``smh``/``umh``: the §3.2 object, bars from period/bar, the five-slot limit, unsubscribe text."""

from __future__ import annotations

from collections.abc import Callable

from rxibkr.sim import GatewaySimulator

from .support import Frame, Rest, WsClient, is_topic

Connect = Callable[..., WsClient]
SMH = 'smh+265598+{"exchange":"ISLAND","period":"2h","bar":"5min","outsideRth":false,"source":"trades"}'


def test_history_reply_shape(sim: GatewaySimulator, connect: Connect, golden: dict[str, Frame]) -> None:
    client = connect(sim)
    client.send(SMH)
    reply = client.recv_until(is_topic("smh+265598"))
    assert list(reply) == list(golden["smh-doc"])  # every documented key, in the documented order
    assert isinstance(reply["serverId"], str) and reply["serverId"].isdigit()
    assert reply["symbol"] == "AAPL" and reply["text"] == "APPLE INC"
    assert reply["timePeriod"] == "7200s" and reply["barLength"] == 300 and reply["priceFactor"] == 100
    assert reply["mdAvailability"] == "S" and reply["outsideRth"] is False
    assert len(reply["data"]) == 24 and reply["points"] == 23
    assert all(set(bar) == {"o", "c", "h", "l", "v", "t"} for bar in reply["data"])
    assert len(reply["startTime"]) == 17 and reply["startTime"][8] == "-"
    assert reply["high"].count("/") == 2 and reply["low"].count("/") == 2
    assert client.collect(0.1, is_topic("smh+265598")) == []  # it answers once


def test_bars_follow_period_bar_and_format(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.send('smh+265598+{"period":"1d","bar":"1h","outsideRth":true,"format":"%o/%c"}')
    reply = client.recv_until(is_topic("smh+265598"))
    assert len(reply["data"]) == 24 and reply["barLength"] == 3600
    assert set(reply["data"][0]) == {"o", "c", "t"}
    client.send('smh+265598+{"period":"1w","bar":"1d"}')
    assert len(client.recv_until(is_topic("smh+265598"))["data"]) == 5
    client.send('smh+265598+{"period":"bogus","bar":"5min"}')
    empty = client.recv_until(is_topic("smh+265598"))
    assert empty["data"] == [] and empty["points"] == 0


def test_server_ids_are_fresh_and_deterministic(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    def ids(seed: int) -> list[str]:
        client = connect(sim_factory(seed=seed))
        out = []
        for _ in range(3):
            client.send(SMH)
            out.append(client.recv_until(is_topic("smh+265598"))["serverId"])
        return out

    first = ids(4)
    assert len(set(first)) == 3
    assert ids(4) == first


def test_sixth_history_is_refused_and_umh_frees_a_slot(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    server_ids = []
    for _ in range(5):
        client.send(SMH)
        server_ids.append(client.recv_until(is_topic("smh+265598"))["serverId"])
    client.send(SMH)
    refused = client.recv_until(is_topic("smh+265598"))
    assert refused == {
        "error": "Exceeded the maximum of 5 concurrent historical data subscriptions",
        "code": 429,
        "topic": "smh+265598",
    }
    assert sorted(sim.active_subscriptions()[1]["smh"]) == sorted(server_ids)
    client.send(f"umh+{server_ids[0]}")
    assert client.recv_until(lambda f: "message" in f) == {"message": f"Unsubscribed {server_ids[0]}"}
    client.send(SMH)
    assert "serverId" in client.recv_until(is_topic("smh+265598"))
    client.send("umh+999")  # unknown id: silent
    client.send("tic")
    assert client.recv_until(lambda f: "message" in f or f.get("topic") == "tic")["topic"] == "tic"


def test_history_slots_are_per_connection(sim: GatewaySimulator, connect: Connect) -> None:
    a, b = connect(sim), connect(sim)
    for _ in range(5):
        a.send(SMH)
        a.recv_until(is_topic("smh+265598"))
    b.send(SMH)
    assert "serverId" in b.recv_until(is_topic("smh+265598"))


def test_umh_confirmation_can_be_switched_off(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(umh_confirmation=False, max_history=1)
    client = connect(sim)
    client.send(SMH)
    server_id = client.recv_until(is_topic("smh+265598"))["serverId"]
    client.send(f"umh+{server_id}")
    assert client.collect(0.1, lambda f: "message" in f) == []
    client.send(SMH)  # the slot was freed all the same
    assert "serverId" in client.recv_until(is_topic("smh+265598"))


def test_rest_history_has_the_same_body(sim: GatewaySimulator, rest: Rest) -> None:
    body = rest.json("GET", "/iserver/marketdata/history", conid="265598", period="2h", bar="5min")
    assert len(body["data"]) == 24 and "travelTime" in body and body["symbol"] == "AAPL"
    assert rest.call("GET", "/iserver/marketdata/history").status == 400
