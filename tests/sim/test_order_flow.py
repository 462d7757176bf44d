"""Orders, trades and P&L as live gateways deliver them: confirmation prompts with reply ids, a
``sor`` burst whose first frame is ``PendingSubmit``, ``str`` history by day with empty frames and a
resend pass, P&L that follows prices (issue 14)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from rxibkr.sim import GatewaySimulator

from .support import Frame, Rest, WsClient, is_topic

Connect = Callable[..., WsClient]
AAPL = 265598
FAR_LIMIT = {"conid": AAPL, "orderType": "LMT", "price": 1.0, "side": "BUY", "quantity": 1, "tif": "DAY"}


def test_placement_passes_through_every_prompt_before_the_order_exists(
    sim_factory: Callable[..., GatewaySimulator],
) -> None:
    sim = sim_factory(order_confirmations=True, order_prompts=("o163", "o354", "o10153"))
    rest = Rest(sim)
    answer = rest.json("POST", f"/iserver/account/{sim.account}/orders", {"orders": [FAR_LIMIT]})
    seen_ids, reply_ids = [], []
    while "id" in answer[0]:
        prompt = answer[0]
        assert set(prompt) == {"id", "message", "isSuppressed", "messageIds", "messageOptions"}
        assert isinstance(prompt["message"][0], str) and prompt["messageOptions"] == ["Yes", "No"]
        seen_ids += prompt["messageIds"]
        reply_ids.append(prompt["id"])
        assert sim.orders() == []  # nothing exists before the last confirmation
        answer = rest.json("POST", f"/iserver/reply/{prompt['id']}", {"confirmed": True})
    assert seen_ids == ["o163", "o354", "o10153"]
    assert len(set(reply_ids)) == 3 and all(len(r) == 36 and r.count("-") == 4 for r in reply_ids)
    assert answer[0]["order_status"] == "Submitted" and answer[0]["order_id"].isdigit()
    assert [o["orderId"] for o in sim.orders()] == [int(answer[0]["order_id"])]
    # a used reply id is gone; refusing a prompt places nothing
    assert rest.call("POST", f"/iserver/reply/{reply_ids[-1]}", {"confirmed": True}).status == 400
    first = rest.json("POST", f"/iserver/account/{sim.account}/orders", {"orders": [FAR_LIMIT]})
    assert rest.call("POST", f"/iserver/reply/{first[0]['id']}", {"confirmed": False}).status == 400
    assert len(sim.orders()) == 1


def test_sor_lifecycle_arrives_in_one_burst_starting_with_pending_submit(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    burst = 0.25
    sim = sim_factory(order_burst_delay=burst)
    client = connect(sim)
    client.send("sor+{}")
    rest = Rest(sim)
    placed = time.monotonic()
    (reply,) = rest.json("POST", f"/iserver/account/{sim.account}/orders", {"orders": [FAR_LIMIT]})
    order_id = int(reply["order_id"])
    assert sim.wait_for(lambda: sim.orders()[0]["status"] == "Submitted", 1.0)
    rest.json("DELETE", f"/iserver/account/{sim.account}/order/{order_id}")  # cancel within the window
    frames: list[Frame] = []
    arrivals: list[float] = []
    while len(frames) < 7:
        frames.append(client.recv_until(is_topic("sor"), timeout=2.0))
        arrivals.append(time.monotonic())
    assert arrivals[0] - placed >= burst * 0.9  # nothing before the burst...
    assert arrivals[-1] - arrivals[0] < 0.1  # ...then all seven together
    updates = [f["args"][0] for f in frames]
    assert all(u["orderId"] == order_id for u in updates)
    first = updates[0]
    assert first["status"] == "PendingSubmit" and "orderDesc" in first  # a full object, PendingSubmit
    assert set(updates[1]) == {"acct", "conidex", "conid", "orderId", "isEventTrading"}
    statuses = [u.get("status") for u in updates]
    assert statuses == [
        "PendingSubmit",
        None,
        "PendingSubmit",
        "PreSubmitted",
        "Submitted",
        "PendingCancel",
        "Cancelled",
    ]
    assert client.collect(0.15, is_topic("sor")) == []


def test_without_a_burst_the_lifecycle_starts_inactive_and_flows_at_once(
    sim: GatewaySimulator, connect: Connect, rest: Rest
) -> None:
    client = connect(sim)
    client.send("sor+{}")
    rest.json("POST", f"/iserver/account/{sim.account}/orders", {"orders": [FAR_LIMIT]})
    first = client.recv_until(is_topic("sor"), timeout=0.5)["args"][0]
    assert first["status"] == "Inactive"


def executions(frames: list[Frame]) -> list[dict[str, Any]]:
    return [e for f in frames for e in f["args"]]


def test_str_history_day_by_day_with_empty_days_and_a_resend_pass(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    resend = 0.3
    sim = sim_factory(str_days=7, str_day_frames=True, str_resend_after=resend, history_days=3)
    client = connect(sim)
    client.send("str+{}")  # no days given: the gateway's default, 7
    history = client.collect_n(10, is_topic("str"))
    shapes = [
        "empty" if not f["args"] else "bare" if "commission" not in f["args"][0] else "full" for f in history
    ]
    # days 6..3 have no trades, days 2, 1 and 0 one seeded execution each, oldest first
    assert shapes == ["empty"] * 4 + ["bare", "full"] * 3
    done = executions(history[4:])
    assert [e["execution_id"] for e in done[::2]] == [e["execution_id"] for e in done[1::2]]
    times = [int(e["trade_time_r"]) for e in done[1::2]]
    assert times == sorted(times)
    assert client.collect(resend * 0.6, is_topic("str")) == []
    again = client.collect_n(3, is_topic("str"), timeout=resend + 1.0)
    assert executions(again) == done[1::2]  # every execution once more, with its commission
    assert client.collect(0.1, is_topic("str")) == []
    short = connect(sim)
    short.send('str+{"days":5}')
    shapes = ["empty" if not f["args"] else "x" for f in short.collect_n(8, is_topic("str"))]
    assert shapes == ["empty", "empty", "x", "x", "x", "x", "x", "x"]


def test_str_realtime_only_skips_history_and_resend(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(str_days=7, str_day_frames=True, str_resend_after=0.05)
    client = connect(sim)
    client.send('str+{"realtimeUpdatesOnly":true}')
    assert client.recv_until(is_topic("str")) == {"topic": "str", "args": []}
    assert client.collect(0.2, is_topic("str")) == []


def pnl_rows(client: WsClient, count: int) -> list[dict[str, Any]]:
    frames = client.collect_n(count, is_topic("spl"), timeout=3.0)
    return [next(iter(f["args"].values())) for f in frames]


def test_pnl_follows_the_prices_of_held_instruments(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=0.02, pnl_interval=0.05, volatility=0.002)
    client = connect(sim)
    client.send("spl+{}")  # no market data subscription: the held instruments move by themselves
    rows = pnl_rows(client, 6)
    assert all(a != b for a, b in itertools.pairwise(rows))  # never the same row twice
    assert len({r["upl"] for r in rows}) > 1 and len({r["dpl"] for r in rows}) > 1


def test_pnl_moves_with_a_price_change(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=60.0, pnl_interval=0.05)
    held = Rest(sim).json("GET", f"/portfolio/{sim.account}/positions/0")[0]
    client = connect(sim)
    client.send("spl+{}")
    before = pnl_rows(client, 1)[0]
    assert client.collect(0.15, is_topic("spl")) == []  # nothing moved: no repeated row
    price = sim.quote(held["conid"])["mid"]
    sim.set_price(held["conid"], price + 10.0)
    after = pnl_rows(client, 1)[0]
    expected = held["position"] * 10.0
    assert abs((after["dpl"] - before["dpl"]) - expected) < 0.05 * abs(expected) + 1.0


def test_pnl_can_repeat_frozen_values_like_the_old_simulator(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=0.02, pnl_interval=0.05, pnl_follows_prices=False)
    client = connect(sim)
    client.send("spl+{}")
    rows = pnl_rows(client, 3)
    assert rows[0] == rows[1] == rows[2]
