"""Orders over REST driving ``sor`` and ``str``: lifecycle, fills against the model, cancels, filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rxibkr.sim import GatewaySimulator

from .support import Frame, Rest, WsClient, is_topic

Connect = Callable[..., WsClient]
AAPL = 265598


def place(rest: Rest, acct: str, **order: Any) -> str:
    spec = {"conid": AAPL, "orderType": "MKT", "side": "BUY", "quantity": 1, "tif": "DAY"}
    spec.update(order)
    reply = rest.json("POST", f"/iserver/account/{acct}/orders", {"orders": [spec]})
    assert len(reply) == 1 and set(reply[0]) == {"order_id", "order_status", "encrypt_message"}
    assert reply[0]["order_status"] == "Submitted" and reply[0]["encrypt_message"] == "1"
    assert reply[0]["order_id"].isdigit()
    return str(reply[0]["order_id"])


def sor_args(frames: list[Frame]) -> list[dict[str, Any]]:
    out = []
    for f in frames:
        assert isinstance(f["args"], list)
        out.extend(f["args"])
    return out


def until_status(client: WsClient, status: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """Every sor update up to and including the one that reaches ``status``."""
    updates: list[dict[str, Any]] = []
    while True:
        frame = client.recv_until(is_topic("sor"), timeout)
        updates.extend(frame["args"])
        if any(u.get("status") == status for u in frame["args"]):
            return updates


def test_market_order_lifecycle_on_sor(
    sim: GatewaySimulator, connect: Connect, rest: Rest, golden: dict[str, Frame]
) -> None:
    client = connect(sim)
    client.send("sor+{}")
    assert client.collect(0.1, is_topic("sor")) == []  # no initial snapshot
    order_id = int(place(rest, sim.account))
    updates = until_status(client, "Filled")
    full, identity, pending, presub, submitted = updates[:5]
    live_full = golden["sor-full-inactive-live"]["args"][0]
    assert list(full) == list(live_full)  # the full object, key for key
    assert full["status"] == "Inactive" and full["orderId"] == order_id and full["acct"] == sim.account
    assert full["price"] == "" and full["orderType"] == "Market" and full["side"] == "BUY"
    assert full["sizeAndFills"] == "0/1" and full["remainingQuantity"] == 1.0
    assert set(identity) == set(golden["sor-identity-live"]["args"][0])
    assert pending == {
        "acct": sim.account,
        "orderId": order_id,
        "status": "PendingSubmit",
        "fgColor": "#3399CC",
    }
    assert set(presub) == set(golden["sor-presubmitted-live"]["args"][0])
    assert set(submitted) == set(golden["sor-submitted-live"]["args"][0])
    filled = updates[-1]
    assert (
        filled["status"] == "Filled"
        and filled["filledQuantity"] == 1.0
        and filled["remainingQuantity"] == 0.0
    )
    assert filled["sizeAndFills"] == "1" and filled["orderDesc"].startswith("Bought 1 AAPL")
    assert {"acct", "orderId"} <= set(filled) and "conid" not in filled  # a delta, not a full object
    avg = float(filled["avgPrice"])
    quote = sim.quote(AAPL)
    assert abs(avg - quote["mid"]) / quote["mid"] < 0.02


def test_limit_order_rests_until_the_market_crosses(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=60.0)
    rest = Rest(sim)
    client = connect(sim)
    client.send('sor+{"filters":[]}')
    bid = sim.quote(AAPL)["bid"]
    limit = round(bid * 0.98, 2)
    order_id = int(place(rest, sim.account, orderType="LMT", price=limit, quantity=10, cOID="lmt-1"))
    updates = until_status(client, "Submitted")
    assert updates[0]["price"] == f"{limit:.2f}" and updates[0]["order_ref"] == "lmt-1"
    assert updates[0]["orderDesc"] == f"Buy 10 AAPL Limit {limit:.2f}, Day"
    assert client.collect(0.1, is_topic("sor")) == []  # resting: nothing happens
    sim.set_price(AAPL, limit - 0.05)
    filled = until_status(client, "Filled")[-1]
    assert filled["avgPrice"] == f"{limit:.2f}"  # a resting limit fills at its price
    assert [o["status"] for o in sim.orders() if o["orderId"] == order_id] == ["Filled"]


def test_cancel_lifecycle(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect, golden: dict[str, Frame]
) -> None:
    sim = sim_factory(md_interval=60.0)
    rest = Rest(sim)
    client = connect(sim)
    client.send("sor+{}")
    order_id = place(rest, sim.account, orderType="LMT", price=1.0)
    until_status(client, "Submitted")
    reply = rest.json("DELETE", f"/iserver/account/{sim.account}/order/{order_id}")
    assert set(reply) == set(golden["cancel-live"]) and reply["msg"] == "Request was submitted"
    assert reply["order_id"] == int(order_id)
    updates = until_status(client, "Cancelled")
    assert updates[0]["status"] == "PendingCancel"
    assert list(updates[0]) == list(golden["sor-pendingcancel-live"]["args"][0])
    assert updates[-1] == {
        **{k: v for k, v in golden["sor-cancelled-live"]["args"][0].items()},
        "acct": sim.account,
        "orderId": int(order_id),
    }
    again = rest.call("DELETE", f"/iserver/account/{sim.account}/order/{order_id}")
    assert again.status == 400 and b"cannot be cancelled" in again.data
    assert rest.call("DELETE", f"/iserver/account/{sim.account}/order/42").status == 400


def test_sor_filters_and_uor(sim_factory: Callable[..., GatewaySimulator], connect: Connect) -> None:
    sim = sim_factory(md_interval=60.0)
    rest = Rest(sim)
    only_filled = connect(sim)
    only_filled.send('sor+{"filters":["Filled"]}')
    everything = connect(sim)
    everything.send("sor")
    stopped = connect(sim)
    stopped.send("sor+{}")
    stopped.send("uor+{}")
    assert sim.wait_for(lambda: "sor" not in sim.active_subscriptions()[3], 2.0)
    order_id = int(place(rest, sim.account))
    until_status(everything, "Filled")
    frames = only_filled.collect_n(1, is_topic("sor"))
    (update,) = sor_args(frames)
    assert update["status"] == "Filled" and update["orderId"] == order_id
    assert "conid" in update and "ticker" in update  # first sight of the order: the full object
    assert only_filled.collect(0.1, is_topic("sor")) == []
    assert stopped.collect(0.1, is_topic("sor")) == []


def test_filtered_rest_call_mutes_sor_until_force(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(md_interval=60.0)
    rest = Rest(sim)
    client = connect(sim)
    client.send("sor+{}")
    snapshot = rest.json("GET", "/iserver/account/orders", filters="Submitted")
    assert snapshot == {"orders": [], "snapshot": True}
    place(rest, sim.account)
    assert client.collect(0.1, is_topic("sor")) == []
    forced = rest.json("GET", "/iserver/account/orders", force="true")
    assert [o["status"] for o in forced["orders"]] == ["Filled"]
    place(rest, sim.account)
    until_status(client, "Filled")


def test_trades_stream(sim: GatewaySimulator, connect: Connect, rest: Rest, golden: dict[str, Frame]) -> None:
    client = connect(sim)
    client.send("str+{}")
    assert client.recv_until(is_topic("str")) == golden["str-empty-live"]
    history = client.collect(0.1, is_topic("str"))
    assert history, "the seeded execution of the last 24 h is replayed"
    first, with_commission = history[0]["args"][0], history[1]["args"][0]
    assert first["execution_id"] == with_commission["execution_id"]
    assert "commission" not in first and "commission" in with_commission
    live = golden["str-stk-commission-live"]["args"][0]
    assert list(with_commission) == list(live)
    order_id = int(place(rest, sim.account, quantity=3, cOID="trade-1"))
    new = client.collect_n(2, is_topic("str"))
    bare, complete = new[0]["args"][0], new[1]["args"][0]
    assert bare["order_id"] == order_id and bare["order_ref"] == "trade-1" and bare["side"] == "B"
    assert bare["size"] == 3.0 and isinstance(bare["price"], str) and bare["conid"] == AAPL
    assert bare["execution_id"] == complete["execution_id"] and complete["commission"] == "1.00"
    assert set(complete) == set(live) | {"order_ref"}
    assert isinstance(bare["trade_time_r"], int) and len(bare["trade_time"]) == 17
    assert bare["net_amount"] == round(3 * float(bare["price"]), 6)


def test_trades_realtime_only_and_days(sim: GatewaySimulator, connect: Connect) -> None:
    realtime = connect(sim)
    realtime.send('str+{"realtimeUpdatesOnly":true}')
    assert realtime.recv_until(is_topic("str")) == {"topic": "str", "args": []}
    assert realtime.collect(0.1, is_topic("str")) == []
    week = connect(sim)
    week.send('str+{"days":7}')
    week.recv_until(is_topic("str"))
    assert len(week.collect(0.1, is_topic("str"))) == 2 * 3  # three seeded executions, each twice
    week.send("utr")
    assert sim.wait_for(lambda: "str" not in sim.active_subscriptions()[2], 2.0)


def test_order_rejections(sim: GatewaySimulator, rest: Rest) -> None:
    base = f"/iserver/account/{sim.account}/orders"
    bad_bodies = [
        {"orders": [{"conid": AAPL, "orderType": "LMT", "side": "BUY", "quantity": 1}]},  # no price
        {"orders": [{"conid": AAPL, "orderType": "STP", "side": "BUY", "quantity": 1}]},
        {"orders": [{"conid": AAPL, "orderType": "MKT", "side": "HOLD", "quantity": 1}]},
        {"orders": [{"conid": AAPL, "orderType": "MKT", "side": "BUY", "quantity": 0}]},
        {"orders": [{"conid": 8595, "orderType": "MKT", "side": "BUY", "quantity": 1}]},
        {"orders": []},
        {},
    ]
    for body in bad_bodies:
        resp = rest.call("POST", base, body)
        assert resp.status == 400 and "error" in resp.json(), body
    assert rest.call("POST", "/iserver/account/DU0000000/orders", bad_bodies[0]).status == 400
    place(rest, sim.account, cOID="dup")
    dup = rest.call(
        "POST",
        base,
        {"orders": [{"conid": AAPL, "orderType": "MKT", "side": "BUY", "quantity": 1, "cOID": "dup"}]},
    )
    assert dup.status == 400 and "already registered" in dup.json()["error"]


def test_order_confirmation_prompt(sim_factory: Callable[..., GatewaySimulator]) -> None:
    sim = sim_factory(order_confirmations=True)
    rest = Rest(sim)
    prompt = rest.json(
        "POST",
        f"/iserver/account/{sim.account}/orders",
        {"orders": [{"conid": AAPL, "orderType": "MKT", "side": "SELL", "quantity": 2}]},
    )
    assert set(prompt[0]) == {"id", "message", "isSuppressed", "messageIds", "messageOptions"}
    reply = rest.json("POST", f"/iserver/reply/{prompt[0]['id']}", {"confirmed": True})
    assert reply[0]["order_status"] == "Submitted"
    assert rest.call("POST", f"/iserver/reply/{prompt[0]['id']}", {"confirmed": True}).status == 400


def test_live_orders_rest_and_helpers(sim_factory: Callable[..., GatewaySimulator]) -> None:
    sim = sim_factory(md_interval=60.0)
    rest = Rest(sim)
    resting = sim.place_order(AAPL, "BUY", 10, "LMT", price=1.0)
    sim.wait_for(lambda: sim.orders()[0]["status"] == "Submitted", 2.0)
    sim.fill_order(resting, price=1.5, quantity=4)
    orders = rest.json("GET", "/iserver/account/orders", force="true")
    assert orders["snapshot"] is True
    (order,) = orders["orders"]
    assert order["sizeAndFills"] == "4/6" and order["filledQuantity"] == 4.0 and order["avgPrice"] == "1.50"
    sim.cancel_order(resting)
    assert sim.wait_for(lambda: sim.orders()[0]["status"] == "Cancelled", 2.0)
    positions = rest.json("GET", f"/portfolio/{sim.account}/positions/0")
    assert any(p["conid"] == AAPL for p in positions)
    trades = rest.json("GET", "/iserver/account/trades", days="7")
    assert trades and all("commission" in t for t in trades)
