"""``spl``, ``ssd``, ``sld``, ``sbd`` and their unsubscribe spellings."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from rxibkr.sim import GatewaySimulator

from .support import Frame, WsClient, is_topic

Connect = Callable[..., WsClient]
AAPL = 265598


def test_pnl_stream(sim: GatewaySimulator, connect: Connect, golden: dict[str, Frame]) -> None:
    client = connect(sim)
    client.send("spl+{}")
    frames = client.collect_n(3, is_topic("spl"), timeout=2.0)
    live = golden["spl-live"]
    for frame in frames:
        assert list(frame) == list(live) and list(frame["args"]) == [f"{sim.account}.Core"]
        row = frame["args"][f"{sim.account}.Core"]
        assert list(row) == list(live["args"]["DU1234567.Core"])
        assert row["rowType"] == 1 and all(
            isinstance(row[k], float) for k in ("dpl", "nl", "upl", "el", "uel")
        )
        assert row["nl"] > 0 and row["mv"] > 0  # the seeded positions are valued
    client.send("upl+{}")
    assert sim.wait_for(lambda: "spl" not in sim.active_subscriptions()[1], 2.0)
    client.collect(0.06)
    assert client.collect(0.1, is_topic("spl")) == []


@pytest.mark.parametrize(("sub", "unsub"), [("spl", "upl"), ("spl+{}", "upl{}"), ("spl", "upl+{}")])
def test_pnl_spellings(sim: GatewaySimulator, connect: Connect, sub: str, unsub: str) -> None:
    client = connect(sim)
    client.send(sub)
    client.recv_until(is_topic("spl"))
    client.send(unsub)
    assert sim.wait_for(lambda: "spl" not in sim.active_subscriptions()[1], 2.0)


def test_pnl_interval(sim_factory: Callable[..., GatewaySimulator], connect: Connect) -> None:
    sim = sim_factory(pnl_interval=0.1)
    client = connect(sim)
    client.send("spl+{}")
    client.recv_until(is_topic("spl"))
    started = time.monotonic()
    client.collect_n(2, is_topic("spl"))
    assert 0.15 <= time.monotonic() - started <= 0.6


def test_account_summary(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect, golden: dict[str, Frame]
) -> None:
    sim = sim_factory(md_interval=60.0)
    client = connect(sim)
    client.send(f"ssd+{sim.account}+{{}}")
    frame = client.recv_until(is_topic(f"ssd+{sim.account}"))
    assert list(frame) == ["result", "topic"]
    entries = {e["key"]: e for e in frame["result"]}
    assert entries["AccountCode"]["value"] == sim.account
    live = golden["ssd-live"]["result"][0]
    assert set(entries["ExcessLiquidity-S"]) == set(live)
    assert all(
        isinstance(e["timestamp"], int) and abs(e["timestamp"] - time.time()) < 60 for e in entries.values()
    )
    assert {"NetLiquidation", "TotalCashValue", "BuyingPower", "MaintMarginReq", "AvailableFunds"} <= set(
        entries
    )
    # filters: keys and fields
    client.send(
        f'ssd+{sim.account}+{{"keys":["AccruedCash-S","ExcessLiquidity-S"],"fields":["currency","monetaryValue"]}}'
    )
    filtered = client.recv_until(lambda f: f.get("topic") == f"ssd+{sim.account}" and len(f["result"]) == 2)
    assert [e["key"] for e in filtered["result"]] == ["AccruedCash-S", "ExcessLiquidity-S"]
    assert all(set(e) == {"key", "currency", "monetaryValue", "timestamp"} for e in filtered["result"])
    # later frames only carry what changed
    sim.place_order(AAPL, "BUY", 100)
    update = client.recv_until(is_topic(f"ssd+{sim.account}"), timeout=3.0)
    assert [e["key"] for e in update["result"]] == ["ExcessLiquidity-S"]


@pytest.mark.parametrize("unsub", ["usd+{acct}+{{}}", "usd+{acct}"])
def test_account_summary_unsubscribe(
    sim: GatewaySimulator, connect: Connect, golden: dict[str, Frame], unsub: str
) -> None:
    client = connect(sim)
    client.send(f"ssd+{sim.account}+{{}}")
    client.recv_until(is_topic(f"ssd+{sim.account}"))
    client.send(unsub.format(acct=sim.account))
    assert client.recv_until(lambda f: "topic" not in f) == golden["usd-result"]
    assert "ssd" not in sim.active_subscriptions()[1]


def test_ledger(sim: GatewaySimulator, connect: Connect, golden: dict[str, Frame]) -> None:
    client = connect(sim)
    client.send(f"sld+{sim.account}+{{}}")
    first = client.recv_until(is_topic(f"sld+{sim.account}"))
    rows = {r["key"]: r for r in first["result"]}
    assert list(rows) == ["LedgerListBASE", "LedgerListUSD", "LedgerListEUR"]
    documented = set(golden["sld-live"]["result"][0]) | {
        "commodityMarketValue",
        "corporateBondsMarketValue",
        "funds",
        "issueOptionsMarketValue",
        "marketValue",
        "moneyFunds",
        "optionMarketValue",
        "tBillsMarketValue",
        "tBondsMarketValue",
        "warrantsMarketValue",
    }
    assert set(rows["LedgerListBASE"]) == documented
    assert rows["LedgerListBASE"]["secondKey"] == "BASE" and rows["LedgerListBASE"]["acctCode"] == sim.account
    ts = rows["LedgerListBASE"]["timestamp"]
    assert isinstance(ts, int) and abs(ts - time.time()) < 60  # seconds, not ms
    # the next frames: unchanged currencies come as blank rows
    later = client.recv_until(is_topic(f"sld+{sim.account}"))
    blank = {r["key"]: r for r in later["result"]}["LedgerListEUR"]
    assert set(blank) == {"key", "timestamp"}
    assert set(golden["sld-doc"]["result"][1]) == set(blank)


def test_ledger_filters_are_case_insensitive(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    client.send(
        f'sld+{sim.account}+{{"keys":["LedgerListBASE","LedgerListEUR"],'
        f'"fields":["cashBalance","exchangeRate"]}}'
    )
    first = client.recv_until(is_topic(f"sld+{sim.account}"))
    assert [r["key"] for r in first["result"]] == ["LedgerListBASE", "LedgerListEUR"]
    assert set(first["result"][0]) == {
        "acctCode",
        "key",
        "secondKey",
        "timestamp",
        "cashbalance",
        "exchangeRate",
    }


@pytest.mark.parametrize("unsub", ["uld+{acct}+{{}}", "uld+{acct}"])
def test_ledger_unsubscribe(
    sim: GatewaySimulator, connect: Connect, golden: dict[str, Frame], unsub: str
) -> None:
    client = connect(sim)
    client.send(f"sld+{sim.account}+{{}}")
    client.recv_until(is_topic(f"sld+{sim.account}"))
    client.send(unsub.format(acct=sim.account))
    assert client.recv_until(lambda f: "topic" not in f) == golden["uld-result"]
    client.collect(0.06)
    assert client.collect(0.1, is_topic(f"sld+{sim.account}")) == []


def test_wrong_account_is_an_error(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    for cmd in ("ssd+DU0000000+{}", "sld+DU0000000+{}", "sbd+DU0000000+265598"):
        client.send(cmd)
        frame = client.recv_until(lambda f: "error" in f)
        assert frame["topic"] == cmd[:3] + "+DU0000000" and frame["code"] == 400


@pytest.mark.parametrize("exchange", [None, "ISLAND"])
def test_price_ladder(sim: GatewaySimulator, connect: Connect, exchange: str | None) -> None:
    client = connect(sim)
    target = f"{sim.account}+{AAPL}" + (f"+{exchange}" if exchange else "")
    client.send(f"sbd+{target}")
    frames = client.collect_n(2, is_topic(f"sbd+{target}"))
    for frame in frames:
        rows = frame["data"]
        assert isinstance(rows, list) and [r["row"] for r in rows] == list(range(len(rows)))
        assert all({"row", "focus", "price"} <= set(r) and ("bid" in r) != ("ask" in r) for r in rows)
        prices = [float(r["price"]) for r in rows]
        assert prices == sorted(prices, reverse=True)
        asks = [r for r in rows if "ask" in r]
        bids = [r for r in rows if "bid" in r]
        assert min(float(r["price"]) for r in asks) > max(float(r["price"]) for r in bids)
        assert all(r["bid" if "bid" in r else "ask"].isdigit() for r in rows)
    client.send(f"ubd+{sim.account}")
    assert sim.wait_for(lambda: "sbd" not in sim.active_subscriptions()[1], 2.0)
    client.collect(0.05)
    assert client.collect(0.1, is_topic(f"sbd+{target}")) == []


@pytest.mark.parametrize(
    ("sub", "unsub"), [("str", "utr"), ("str+{}", "utr+{}"), ("sor", "uor"), ("sor+{}", "uor+{}")]
)
def test_orders_and_trades_spellings(sim: GatewaySimulator, connect: Connect, sub: str, unsub: str) -> None:
    client = connect(sim)
    client.send(sub)
    assert sim.wait_for(lambda: sub[:3] in sim.active_subscriptions()[1], 2.0)
    client.send(unsub)
    assert sim.wait_for(lambda: sub[:3] not in sim.active_subscriptions()[1], 2.0)


def test_active_subscriptions_lists_everything(sim: GatewaySimulator, connect: Connect) -> None:
    client = connect(sim)
    acct = sim.account
    for cmd in (
        'smd+265598+{"fields":["31"]}',
        'smh+265598+{"period":"1h","bar":"5min"}',
        "sor+{}",
        "str+{}",
        "spl+{}",
        f"ssd+{acct}+{{}}",
        f"sld+{acct}+{{}}",
        f"sbd+{acct}+265598",
    ):
        client.send(cmd)
    assert sim.wait_for(lambda: len(sim.active_subscriptions()[1]) == 8, 2.0)
    subs = sim.active_subscriptions()[1]
    assert subs["smd"] == ["265598"] and subs["ssd"] == [acct] and subs["sld"] == [acct]
    assert subs["sbd"] == [f"{acct}+265598"] and len(subs["smh"]) == 1
