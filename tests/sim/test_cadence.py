"""Market data as live gateways send it: a gateway-wide grid, a per-instrument rate, first updates
after a delay in the gateway's order, price-less first frames, ``6509`` on the first two frames only,
the ``C`` prefix for frozen values only (issue 14). Small timings stand for the real 500 ms / 0.2-1.1 s."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from rxibkr.sim import GatewaySimulator
from rxibkr.sim.topics import first_update_delay, is_priceless_first

from .support import Frame, Rest, WsClient, is_topic

Connect = Callable[..., WsClient]
BOOKKEEPING = {"topic", "conid", "conidEx", "server_id", "6119", "_updated"}
AAPL = 265598
UNIVERSE = [265598, 272093, 3691937, 208813719, 76792991, 4815747, 107113386, 756733, 320227571, 8314]


def smd(conid: int, *fields: str) -> str:
    quoted = ",".join(f'"{f}"' for f in fields)
    return f'smd+{conid}+{{"fields":[{quoted}]}}'


def is_smd(frame: Frame) -> bool:
    return str(frame.get("topic", "")).startswith("smd+")


def test_a_rate_makes_instruments_tick_now_and_then_on_the_grid(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    interval, rate, duration = 0.1, 1.5, 2.0
    sim = sim_factory(md_interval=interval, md_rate=rate, pnl_follows_prices=False)
    client = connect(sim)
    for conid in UNIVERSE:
        client.send(smd(conid, "31", "84", "86"))
    client.collect_n(2 * len(UNIVERSE), is_smd)  # the duplicated first updates
    deltas = client.collect(duration, is_smd)
    expected = duration * rate * len(UNIVERSE)  # the gateway's throughput: rate per subscribed conid
    assert 0.4 * expected <= len(deltas) <= 1.5 * expected, (len(deltas), expected)
    assert len(deltas) < 0.3 * len(UNIVERSE) * duration / interval  # far from every conid every tick
    # the frames of one tick share its instant; ticks are a grid interval apart
    stamps = sorted({f["_updated"] for f in deltas})
    batches = [stamps[0]]
    for stamp in stamps[1:]:
        if stamp - batches[-1] > 3:
            batches.append(stamp)
    gaps = [b - a for a, b in itertools.pairwise(batches)]
    assert gaps and min(gaps) >= interval * 1000 * 0.5, gaps


def test_without_a_rate_every_instrument_ticks_on_every_step(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=60.0, trade_probability=1.0)
    client = connect(sim)
    for conid in UNIVERSE[:3]:
        client.send(smd(conid, "31", "84", "86", "7762"))
    client.collect_n(6, is_smd)
    sim.market_step(4)
    assert len(client.collect_n(12, is_smd)) == 12  # a trade per step changes 31/7762 every time


def test_first_updates_come_after_a_delay_in_the_gateways_order(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    interval, low, high = 0.05, 0.1, 0.4
    sim = sim_factory(md_interval=interval, md_first_delay=(low, high))
    delays = {c: first_update_delay(sim.config, c) or 0.0 for c in UNIVERSE}
    conids: list[int] = []
    for conid in sorted(UNIVERSE, key=delays.__getitem__):  # instruments whose delays differ clearly
        if not conids or delays[conid] - delays[conids[-1]] >= 0.01:
            conids.append(conid)
    subscription_order = sorted(conids)
    gateway_order = sorted(conids, key=delays.__getitem__)
    assert subscription_order != gateway_order
    for reverse in (False, True):  # a second socket subscribing the other way round sees the same order
        client = connect(sim)
        sent: dict[int, float] = {}
        for conid in sorted(conids, reverse=reverse):
            client.send(smd(conid, "31", "84"))
            sent[conid] = time.monotonic()
        arrivals: list[int] = []
        while len(arrivals) < len(conids):
            frame = client.recv_until(is_smd, timeout=2.0)
            if frame["conid"] in arrivals:
                continue  # the duplicate of a first update
            waited = time.monotonic() - sent[frame["conid"]]
            assert low <= waited <= high + interval + 0.25, (frame["conid"], waited)
            assert {"31", "84"} <= set(frame)
            arrivals.append(frame["conid"])
        assert arrivals == gateway_order
        client.close()


def test_first_update_right_away_without_a_delay(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    sent = time.monotonic()
    client.send(smd(AAPL, "31"))
    client.recv_until(is_topic(f"smd+{AAPL}"))
    assert time.monotonic() - sent < 0.2


def test_some_instruments_start_without_prices(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=60.0, priceless_first=0.5)
    priceless = {c for c in UNIVERSE if is_priceless_first(sim.config, c)}
    assert priceless and priceless != set(UNIVERSE)
    client = connect(sim)
    for conid in UNIVERSE:
        client.send(smd(conid, "31", "84", "86"))
    firsts: dict[int, list[Frame]] = {}
    for frame in client.collect_n(2 * len(UNIVERSE), is_smd):
        firsts.setdefault(frame["conid"], []).append(frame)
    for conid, (first, copy) in firsts.items():
        assert first == copy and list(first) != list(copy)
        if conid in priceless:
            assert set(first) == BOOKKEEPING | {"6509"}, first  # availability only, no prices
        else:
            assert {"31", "84", "86", "6509"} <= set(first)
    sim.market_step()
    followups = {f["conid"]: f for f in client.collect(0.3, is_smd) if f["conid"] in priceless}
    assert set(followups) == priceless
    assert all({"31", "84", "86"} <= set(f) and "6509" not in f for f in followups.values())


def test_6509_is_on_the_first_two_frames_only(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=60.0, trade_probability=1.0)
    client = connect(sim)
    client.send(smd(AAPL, "31", "84", "86"))
    first, copy = client.collect_n(2, is_smd)
    assert "6509" in first and "6509" in copy
    sim.market_step(120)
    deltas = client.collect(0.5, is_smd)
    assert len(deltas) >= 60  # (the old simulator repeated 6509 on every 50th)
    assert not [f for f in deltas if "6509" in f]


def first_value(sim: GatewaySimulator, client: WsClient, conid: int) -> dict[str, Any]:
    client.send(smd(conid, "31", "84", "86"))
    return client.recv_until(is_topic(f"smd+{conid}"))


def test_open_market_values_carry_no_c_prefix(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=60.0, c_prefix_before_trade=False)
    client = connect(sim)
    for conid in (AAPL, 272093, 123456789):
        first = first_value(sim, client, conid)
        assert not first["31"].startswith("C") and float(first["31"]) > 0, first
        assert first["6509"] in ("RpB", "DPB")


def test_closed_market_freezes_values_with_the_c_prefix(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=60.0, market_closed=True, c_prefix_before_trade=False)
    client = connect(sim)
    first = first_value(sim, client, AAPL)
    assert first["31"].startswith("C") and float(first["31"][1:]) > 0
    assert first["6509"] == "ZB"
    client.recv()  # the copy
    sim.market_step(5)
    assert client.collect(0.15, is_smd) == []  # frozen: nothing changes
    (item,) = Rest(sim).json("GET", "/iserver/marketdata/snapshot", conids=str(AAPL), fields="31")
    assert item["31"] == first["31"] and item["6509"] == "ZB"
