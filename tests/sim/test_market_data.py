"""``smd``/``umd``: duplicated first update, deltas, formats, union of fields, expiry, sentinels."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rxibkr.sim import GatewaySimulator

from .support import Frame, Rest, WsClient, is_topic

Connect = Callable[..., WsClient]
BOOKKEEPING = {"topic", "conid", "conidEx", "server_id", "6119", "_updated"}
AAPL = 265598


def smd(conid: int | str, *fields: str) -> str:
    quoted = ",".join(f'"{f}"' for f in fields)
    return f'smd+{conid}+{{"fields":[{quoted}]}}'


def test_first_update_is_sent_twice_then_only_deltas(
    sim: GatewaySimulator, connect: Connect, golden: dict[str, Frame]
) -> None:
    client = connect(sim)
    client.send(smd(AAPL, "31", "84", "86", "6509", "83"))
    first = client.recv_until(is_topic(f"smd+{AAPL}"))
    second = client.recv()
    assert first == second  # identical content...
    assert list(first) != list(second)  # ...in another key order
    assert list(first)[:3] == ["6509", "conidEx", "topic"]  # as recorded live
    live_first, live_copy = golden["smd-first-live"], golden["smd-first-copy-live"]
    assert set(first) == set(live_first) and set(second) == set(live_copy)
    assert first["conid"] == AAPL and first["conidEx"] == str(AAPL) and first["topic"] == f"smd+{AAPL}"
    assert first["server_id"] == first["6119"] and first["server_id"].startswith("q")
    assert first["6509"] == "RpB"
    assert isinstance(first["_updated"], int) and len(str(first["_updated"])) == 13
    deltas = client.collect_n(3, is_topic(f"smd+{AAPL}"))
    for delta in deltas:
        assert BOOKKEEPING <= set(delta) <= BOOKKEEPING | {"31", "84", "86", "83", "6508", "6509"}
        assert set(delta) - BOOKKEEPING - {"6508", "6509"}, delta  # never an empty update
    assert "6508" in deltas[0]  # the service params string shows up once early on
    assert set(golden["smd-delta-live"]) <= set(deltas[1]) | {"84", "86"}


def test_values_are_formatted_like_the_gateway(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(trade_probability=1.0)
    client = connect(sim)
    fields = (
        "31",
        "55",
        "70",
        "71",
        "82",
        "83",
        "84",
        "85",
        "86",
        "87",
        "88",
        "7059",
        "7295",
        "7741",
        "7762",
    )
    client.send(smd(AAPL, *fields))
    first = client.recv_until(is_topic(f"smd+{AAPL}"))
    assert first["31"] == "C271.10"  # prior close, no trade yet
    assert first["55"] == "AAPL" and first["83"] == 0.0 and first["7741"] == "271.10"
    assert "70" not in first and "7295" not in first  # no day high / open before a trade
    merged: dict[str, Any] = dict(first)
    for delta in client.collect_n(3, is_topic(f"smd+{AAPL}")):
        merged.update(delta)
    for fid in ("31", "70", "71", "84", "86", "7295"):
        value = merged[fid]
        assert isinstance(value, str) and not value.startswith("C")
        whole, frac = value.split(".")
        assert whole.isdigit() and len(frac) == 2, (fid, value)
    for fid in ("85", "88", "7059", "7762"):
        assert isinstance(merged[fid], str) and merged[fid].isdigit(), (fid, merged[fid])
    assert isinstance(merged["83"], float) and isinstance(merged["82"], str)
    assert merged["87"][-1] in "KM" or merged["87"].isdigit()
    assert isinstance(merged["87_raw"], float)
    assert float(merged["70"]) >= float(merged["71"])
    assert float(merged["84"]) < float(merged["86"])


def test_volume_golden_shape(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect, golden: dict[str, Frame]
) -> None:
    sim = sim_factory(trade_probability=1.0)
    client = connect(sim)
    client.send(smd(AAPL, "87", "31"))
    client.recv_until(is_topic(f"smd+{AAPL}"))
    delta = client.recv_until(lambda f: f.get("topic") == f"smd+{AAPL}" and "87" in f and f["87"] != "0")
    live = golden["smd-volume-live"]
    assert {"87", "87_raw"} <= set(delta) and type(delta["87_raw"]) is type(live["87_raw"])


def test_resubscribing_adds_fields_and_renews(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(smd_expiry=1.0)
    client = connect(sim)
    client.send(smd(AAPL, "31"))
    client.recv_until(is_topic(f"smd+{AAPL}"))
    client.recv()
    client.send(smd(AAPL, "84", "86"))
    snap = client.recv_until(lambda f: f.get("topic") == f"smd+{AAPL}" and "84" in f)
    assert {"31", "84", "86"} <= set(snap)  # the union, with current values
    assert sim.active_subscriptions() == {1: {"smd": [str(AAPL)]}}
    # keep renewing past the original expiry (for 2.5 expiry periods): the stream must go on
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        client.collect(0.1)
        client.send(smd(AAPL, "31"))
    assert client.collect(0.3, is_topic(f"smd+{AAPL}"))
    assert sim.expired_market_data == 0


def test_stream_expires_silently(sim_factory: Callable[..., GatewaySimulator], connect: Connect) -> None:
    sim = sim_factory(smd_expiry=0.25, trade_probability=1.0)
    client = connect(sim)
    client.send(smd(AAPL, "31", "84", "86", "87"))
    assert client.collect(0.1, is_topic(f"smd+{AAPL}"))
    assert sim.wait_for(lambda: sim.active_subscriptions().get(1, {}).get("smd") is None, 2.0)
    assert sim.expired_market_data == 1  # counted, for tests of renewal
    client.collect(0.05)
    after = client.collect(0.15)
    assert not [f for f in after if f.get("topic") == f"smd+{AAPL}"]
    assert not [f for f in after if "error" in f or "message" in f]  # no termination message


def test_umd_stops_silently(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.send(smd(AAPL, "31", "84", "86"))
    client.recv_until(is_topic(f"smd+{AAPL}"))
    client.send(f"umd+{AAPL}+{{}}")
    assert sim.wait_for(lambda: not sim.active_subscriptions()[1], 2.0)
    client.collect(0.05)
    assert client.collect(0.1, is_topic(f"smd+{AAPL}")) == []


def test_no_subscription_survives_a_reconnect(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.send(smd(AAPL, "31", "84", "86"))
    client.recv_until(is_topic(f"smd+{AAPL}"))
    client.close()
    again = connect(sim)
    assert again.collect(0.15, is_topic(f"smd+{AAPL}")) == []
    assert sim.wait_for(lambda: list(sim.active_subscriptions().values()) == [{}], 2.0)


def test_conid_with_exchange(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.send(smd(f"{AAPL}@ISLAND", "31"))
    first = client.recv_until(is_topic(f"smd+{AAPL}"))
    assert first["conidEx"] == f"{AAPL}@ISLAND" and first["conid"] == AAPL


def test_unavailable_conid_gets_sentinels(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.send(smd(8595, "31", "84", "86"))
    first = client.recv_until(is_topic("smd+8595"))
    assert first["31"] == "N/A" and first["55"] == "-" and "84" not in first
    assert client.recv() == first
    assert client.collect(0.1, is_topic("smd+8595")) == []


def test_generated_instrument_for_other_conids(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.send(smd(123456789, "31", "55", "7051", "84"))
    first = client.recv_until(is_topic("smd+123456789"))
    assert first["31"].startswith("C") and first["55"].isalpha() and first["7051"]
    assert first["6509"] == "DPB"


def test_invalid_target_is_an_error(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    for bad in ("smd+abc+{}", "smd++{}", "smd+-5+{}", 'smd+0+{"fields":["31"]}', "smd"):
        client.send(bad)
        frame = client.recv_until(lambda f: "error" in f)
        assert frame["topic"] == "smd" and frame["code"] == 400, frame
    client.send("smd+265598+{broken")
    assert client.recv_until(lambda f: "error" in f)["error"] == "malformed JSON arguments"


def test_accounts_preflight_is_required_when_switched_on(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect, golden: dict[str, Frame]
) -> None:
    sim = sim_factory(require_accounts_preflight=True)
    client = connect(sim)
    client.send(smd(AAPL, "31"))
    assert client.recv_until(lambda f: "error" in f) == golden["error-no-accounts-live"]
    Rest(sim).json("GET", "/iserver/accounts")
    client.send(smd(AAPL, "31"))
    assert client.recv_until(is_topic(f"smd+{AAPL}"))["conid"] == AAPL


def test_market_model_is_deterministic_given_the_seed(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    def first_values(seed: int) -> list[dict[str, Any]]:
        sim = sim_factory(seed=seed, md_interval=60.0)  # no timer steps: we step by hand
        client = connect(sim)
        client.send(smd(AAPL, "31", "84", "86", "85", "88"))
        out = [client.recv_until(is_topic(f"smd+{AAPL}"))]
        client.recv()
        for _ in range(5):
            sim.market_step()
            out.append(client.recv_until(is_topic(f"smd+{AAPL}")))
        return [{k: v for k, v in f.items() if k not in ("_updated", "6508", "6509")} for f in out]

    assert first_values(11) == first_values(11)
    assert first_values(11) != first_values(12)


def test_several_connections_share_the_market(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=60.0)
    a, b = connect(sim), connect(sim)
    a.send(smd(AAPL, "84", "86"))
    fa = a.recv_until(is_topic(f"smd+{AAPL}"))
    b.send(smd(AAPL, "84", "86"))
    fb = b.recv_until(is_topic(f"smd+{AAPL}"))
    assert (fa["84"], fa["86"]) == (fb["84"], fb["86"])
    sim.market_step(3)
    da = a.collect(0.1, is_topic(f"smd+{AAPL}"))
    db = b.collect(0.1, is_topic(f"smd+{AAPL}"))
    strip = [{k: v for k, v in f.items() if k not in ("_updated", "6508")} for f in da]
    assert strip == [{k: v for k, v in f.items() if k not in ("_updated", "6508")} for f in db]


def test_rest_snapshot(sim: GatewaySimulator, rest: Rest, golden: dict[str, Frame]) -> None:
    items = rest.json("GET", "/iserver/marketdata/snapshot", conids=f"{AAPL},104747", fields="31,84,86,6509")
    live = golden["snapshot-live"]
    assert [i["conid"] for i in items] == [AAPL, 104747]
    assert set(items[0]) == set(live[0])
    assert set(items[1]) == set(live[1]) and items[1]["31"] == "N/A" and items[1]["55"] == "-"
    assert rest.call("GET", "/iserver/marketdata/snapshot").status == 400


def test_rest_snapshot_preflight(sim_factory: Callable[..., GatewaySimulator]) -> None:
    sim = sim_factory(snapshot_preflight=True)
    rest = Rest(sim)
    first = rest.json("GET", "/iserver/marketdata/snapshot", conids=str(AAPL), fields="31,84")
    assert "84" not in first[0] and first[0]["conid"] == AAPL
    second = rest.json("GET", "/iserver/marketdata/snapshot", conids=str(AAPL), fields="31,84")
    assert {"31", "84"} <= set(second[0])


def test_burst_delivers_every_frame(sim_factory: Callable[..., GatewaySimulator], connect: Connect) -> None:
    sim = sim_factory(number_frames=True, md_interval=60.0)
    client = connect(sim)
    client.send(smd(AAPL, "31", "84"))
    client.recv_until(is_topic(f"smd+{AAPL}"))
    client.recv()
    assert sim.burst(AAPL, 500) == 500
    frames = client.collect_n(500, is_topic(f"smd+{AAPL}"), timeout=10.0)
    seqs = [f["_seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + 500))
