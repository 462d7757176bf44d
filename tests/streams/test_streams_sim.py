"""Every typed stream against the gateway simulator over real sockets (TLS), including after the
simulator drops the connection: the client reconnects, resubscribes, and the stream goes on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import aclosing
from typing import Any, Generic, TypeVar

import pytest
from simclient import running_client

from rxibkr import operators as rxo
from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState
from rxibkr.protocol import IbkrWsKey
from rxibkr.streams import HistoryLimitError, streams_of
from rxibkr.streams.aio import aiter, on_loop
from rxibkr.streams.models import (
    AuthStatus,
    Bar,
    Bulletin,
    Execution,
    Ladder,
    LedgerRow,
    MarketDataUpdate,
    Notification,
    OrderUpdate,
    PnlRow,
    Quote,
    SummaryItem,
)

from .support import AAPL, IBM, wait_until

sim_module = pytest.importorskip("rxibkr.sim")

T = TypeVar("T")
MSFT = 272093


class Collect(Generic[T]):
    """A thread-safe observer that records values, errors and completion."""

    def __init__(self) -> None:
        self.values: list[T] = []
        self.errors: list[Exception] = []
        self.completed = False
        self._lock = threading.Lock()

    def on_next(self, value: T) -> None:
        with self._lock:
            self.values.append(value)

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)

    def on_completed(self) -> None:
        self.completed = True

    def snapshot(self) -> list[T]:
        with self._lock:
            return list(self.values)

    def wait(self, predicate: Callable[[list[T]], bool], timeout: float = 5.0) -> list[T]:
        assert wait_until(lambda: predicate(self.snapshot()), timeout), (
            f"timed out; {len(self.values)} values, errors={self.errors}, last={self.values[-3:]}"
        )
        return self.snapshot()


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    with sim_module.GatewaySimulator(
        seed=3,
        heartbeat_interval=0.5,
        greeting_delay=0.01,
        md_interval=0.02,
        pnl_interval=0.05,
        ledger_interval=0.1,
        summary_interval=0.1,
        sbd_interval=0.05,
        order_step_delay=0.005,
        fill_delay=0.02,
        commission_delay=0.05,
        volatility=0.002,
        trade_probability=0.9,
    ) as simulator:
        yield simulator


@pytest.fixture
def client(sim: Any) -> Iterator[IbkrWsClient]:
    with running_client(
        sim,
        timeout=3,
        ping_interval=0.5,
        max_ping_interval=2.0,
        subscription_timeout=0.5,
        subscription_retries=3,
        reconnect_backoff=(0.05, 0.3),
    ) as c:
        yield c


def reconnect(sim: Any, client: IbkrWsClient) -> None:
    """Drop every socket on the simulator's side and wait until the client is back."""
    before = sim.total_connections
    states: list[ConnectionState] = []
    sub = client.state.subscribe(states.append)
    assert sim.drop_connections() >= 1
    assert wait_until(lambda: sim.total_connections > before and client.ready, 10)
    sub.dispose()
    assert ConnectionState.RECONNECTING in states


def received(sim: Any, prefix: str) -> list[str]:
    return [text for _conn, text in sim.received_frames() if text.startswith(prefix)]


def test_market_data_and_snapshots_go_on_after_a_reconnect(sim: Any, client: IbkrWsClient) -> None:
    updates: Collect[MarketDataUpdate] = Collect()
    quotes: Collect[Quote] = Collect()
    client.market_data(AAPL).subscribe(updates)
    client.market_data(AAPL, ["last_price", "bid_price", "ask_price", "mark_price"]).pipe(
        rxo.snapshots()
    ).subscribe(quotes)
    first = quotes.wait(lambda q: len(q) >= 5 and q[-1].bid is not None and q[-1].ask is not None)
    q = first[-1]
    assert (
        q.conid == AAPL and q.symbol == "AAPL" and q.bid is not None and q.ask is not None and q.bid < q.ask
    )
    assert q.get("mark_price") is not None  # the widened field arrives
    assert streams_of(client).duplicates_dropped >= 1  # the simulator doubles the first update
    assert all(u.conid == AAPL and u.updated for u in updates.snapshot())
    dropped = streams_of(client).duplicates_dropped
    count = len(quotes.snapshot())
    reconnect(sim, client)
    quotes.wait(lambda q: len(q) >= count + 5)
    assert not quotes.completed and not quotes.errors and not updates.completed
    assert streams_of(client).duplicates_dropped > dropped  # the first update after resubscribing
    smd = received(sim, "smd+265598")
    assert len(smd) >= 3 and '"7635"' in smd[-1]  # resubscribed with the union


def test_market_data_disposal_unsubscribes_once_and_routes_by_conid(sim: Any, client: IbkrWsClient) -> None:
    aapl: Collect[MarketDataUpdate] = Collect()
    ibm: Collect[MarketDataUpdate] = Collect()
    a = client.market_data(AAPL, ["31", "84"]).subscribe(aapl)
    b = client.market_data(IBM, ["31", "84"]).subscribe(ibm)
    aapl.wait(lambda v: len(v) >= 3)
    ibm.wait(lambda v: len(v) >= 3)
    assert {u.conid for u in aapl.snapshot()} == {AAPL} and {u.conid for u in ibm.snapshot()} == {IBM}
    a.dispose()
    b.dispose()
    assert wait_until(lambda: len(received(sim, "umd+8314")) >= 1, 5)
    assert wait_until(lambda: not any("smd" in t for t in sim.active_subscriptions().values()), 5)


def test_market_history_bars_umh_and_the_limit(sim: Any, client: IbkrWsClient) -> None:
    bars: Collect[Bar] = Collect()
    sub = client.market_history(AAPL, period="1d", bar="1h").subscribe(bars)
    got = bars.wait(lambda b: len(b) >= 3)
    assert all(b.conid == AAPL and b.low <= b.open <= b.high for b in got)
    assert [b.time for b in got] == sorted(b.time for b in got)
    others = [
        client.market_history(conid, "1d", "1h").subscribe(lambda _: None)
        for conid in (IBM, MSFT, 8314 + 1, 756733)
    ]
    with pytest.raises(HistoryLimitError):
        client.market_history(4815747, "1d", "1h").subscribe(lambda _: None)
    # the client learns each server id from the reply; umh needs it (see the report on early disposal)
    assert wait_until(lambda: len(client.server_ids(IbkrWsKey.MARKET_HISTORY) or {}) == 5, 5)
    sub.dispose()
    for other in others:
        other.dispose()
    assert wait_until(lambda: len(received(sim, "umh+")) >= 5, 5)


def test_orders_follow_a_placed_order_to_the_fill_and_go_on_after_a_reconnect(
    sim: Any, client: IbkrWsClient
) -> None:
    orders: Collect[OrderUpdate] = Collect()
    client.orders().subscribe(orders)
    result = client.rest.place_order(
        sim.account, {"conid": AAPL, "orderType": "MKT", "side": "BUY", "quantity": 5, "tif": "DAY"}
    )
    order_id = int(result[0]["order_id"])
    got = orders.wait(lambda v: any(u.order_id == order_id and u.is_filled for u in v))
    mine = [u for u in got if u.order_id == order_id]
    statuses = [u.status for u in mine]
    assert statuses[-1] == "Filled" and statuses.count("Filled") == 1
    assert mine[0].ticker == "AAPL"  # the first update is a full order (sor snapshot or REST)
    filled = mine[-1]
    assert (filled.ticker, filled.side, filled.filled, filled.remaining, filled.price) == (
        "AAPL",
        "BUY",
        5.0,
        0.0,
        None,
    )
    assert filled.avg_price is not None and filled.avg_price > 0
    reconnect(sim, client)
    limit = sim.quote(AAPL)["bid"] * 0.5  # far from the market: rests
    result = client.rest.place_order(
        sim.account,
        {
            "conid": AAPL,
            "orderType": "LMT",
            "price": round(limit, 2),
            "side": "BUY",
            "quantity": 1,
            "tif": "DAY",
        },
    )
    second = int(result[0]["order_id"])
    orders.wait(lambda v: any(u.order_id == second and u.status == "Submitted" for u in v))
    sim.cancel_order(second)
    got = orders.wait(lambda v: any(u.order_id == second and u.status == "Cancelled" for u in v))
    assert [u for u in got if u.order_id == second][-1].price == pytest.approx(round(limit, 2))
    late: Collect[OrderUpdate] = Collect()
    client.orders(filters=["Filled"]).subscribe(late)
    assert order_id in {u.order_id for u in late.snapshot()} and second not in {
        u.order_id for u in late.snapshot()
    }


def test_trades_dedupe_and_commission_updates(sim: Any, client: IbkrWsClient) -> None:
    trades: Collect[Execution] = Collect()
    client.trades(days=7).subscribe(trades)
    history = trades.wait(
        lambda v: len({e.execution_id for e in v}) >= 3 and all(e.commission for e in v[-1:])
    )
    ids = [e.execution_id for e in history if e.revision == 0]
    assert len(ids) == len(set(ids))  # each execution once, then once more with its commission
    assert all(e.commission is not None for e in history if e.revision == 1)
    sim.place_order(AAPL, "SELL", 2)
    got = trades.wait(lambda v: any(e.size == 2.0 and e.side == "S" and e.commission is not None for e in v))
    new = [e for e in got if e.size == 2.0 and e.side == "S"]
    assert [e.revision for e in new] == [0, 1] and new[0].commission is None
    reconnect(sim, client)
    before = len(trades.snapshot())
    sim.place_order(IBM, "BUY", 3)
    got = trades.wait(lambda v: any(e.conid == IBM and e.size == 3.0 for e in v))
    assert all(e.execution_id for e in got[before:])
    revisions = [(e.execution_id, e.revision) for e in got]
    assert len(revisions) == len(set(revisions))  # the history re-sent after reconnecting: not again


def test_pnl_summary_ledger_and_ladder(sim: Any, client: IbkrWsClient) -> None:
    pnl: Collect[PnlRow] = Collect()
    summary: Collect[SummaryItem] = Collect()
    net: Collect[SummaryItem] = Collect()
    ledger: Collect[LedgerRow] = Collect()
    ladders: Collect[Ladder] = Collect()
    client.pnl().subscribe(pnl)
    client.account_summary().subscribe(summary)
    client.account_summary(keys=["NetLiquidation"]).subscribe(net)
    client.ledger().subscribe(ledger)
    client.price_ladder(AAPL).subscribe(ladders)
    row = pnl.wait(lambda v: len(v) >= 2)[-1]
    assert row.account == sim.account and row.net_liquidity is not None and row.net_liquidity > 0
    items = summary.wait(lambda v: any(i.key == "NetLiquidation" for i in v))
    assert next(i for i in items if i.key == "AccountCode").value == sim.account
    assert {i.key for i in net.wait(lambda v: len(v) >= 1)} == {"NetLiquidation"}
    rows = ledger.wait(lambda v: any(r.blank for r in v) and len({r.key for r in v}) >= 3)
    blank = next(r for r in rows if r.blank)
    assert blank.cash_balance is not None  # merged with the last full row
    ladder = ladders.wait(lambda v: len(v) >= 2)[-1]
    assert (
        ladder.conid == AAPL
        and len(ladder) == 10
        and any(r.ask_size for r in ladder)
        and any(r.bid_size for r in ladder)
    )
    streams = (pnl, summary, ledger, ladders)
    counts = [len(c.snapshot()) for c in streams]
    reconnect(sim, client)
    for collected, count in zip(streams, counts, strict=True):
        collected.wait(lambda v, count=count: len(v) >= count + 2)  # type: ignore[misc]


def test_unsolicited_streams(sim: Any, client: IbkrWsClient) -> None:
    notes: Collect[Notification] = Collect()
    bulletins: Collect[Bulletin] = Collect()
    statuses: Collect[AuthStatus] = Collect()
    client.notifications().subscribe(notes)
    client.bulletins().subscribe(bulletins)
    client.auth_status().subscribe(statuses)
    sim.push_notification("Order will be canceled", id="118", title="Warning")
    sim.push_bulletin("[BBSMSG Bulletin] test", id=1789618148)
    assert notes.wait(lambda v: len(v) == 1)[0].text == "Order will be canceled"
    assert bulletins.wait(lambda v: len(v) == 1)[0].id == "1789618148"
    if not sim.config.greeting:
        return  # a gateway without a greeting sends no sts (RXIBKR_SIM_GREETING=0 runs)
    reconnect(sim, client)
    status = statuses.wait(lambda v: any(s.authenticated for s in v))[-1]
    assert status.authenticated is True and status.competing is False


def test_asyncio_async_for_and_on_loop_from_the_reader_thread(client: IbkrWsClient) -> None:
    async def main() -> tuple[list[Quote], set[int], int]:
        loop_thread = threading.get_ident()
        quotes: list[Quote] = []
        stream = client.market_data(AAPL, ["84", "86"]).pipe(rxo.snapshots())
        async with aclosing(aiter(stream, maxsize=1000)) as updates:
            async for quote in updates:
                quotes.append(quote)
                if len(quotes) == 5:
                    break
        threads: set[int] = set()
        got = asyncio.Event()
        count = 0

        def on_next(_: Quote) -> None:  # runs on the loop thread: loop objects are safe here
            nonlocal count
            threads.add(threading.get_ident())
            count += 1
            if count == 5:
                got.set()

        subscription = stream.pipe(on_loop()).subscribe(on_next)
        await asyncio.wait_for(got.wait(), 5)
        subscription.dispose()
        assert threads == {loop_thread}
        return quotes, threads, count

    quotes, _, count = asyncio.run(asyncio.wait_for(main(), 10))
    assert len(quotes) == 5 and all(q.conid == AAPL for q in quotes) and count >= 5
    assert quotes[-1].bid is not None


def test_market_history_goes_on_after_a_reconnect(sim: Any, client: IbkrWsClient) -> None:
    replies: Collect[Any] = Collect()
    bars: Collect[Bar] = Collect()
    a = streams_of(client).market_history_replies(MSFT, "2h", "5min").subscribe(replies)
    b = client.market_history(MSFT, "2h", "5min").subscribe(bars)
    first = replies.wait(lambda v: len(v) == 1)[0]
    assert first.server_id and first.symbol == "MSFT" and first.bars
    count = len(bars.snapshot())
    assert count == len(first.bars)
    reconnect(sim, client)
    second = replies.wait(lambda v: len(v) == 2)[1]
    assert second.server_id != first.server_id  # a new gateway handle after resubscribing
    assert not bars.completed and not bars.errors
    emitted = [(bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume) for bar in bars.snapshot()]
    assert len(emitted) == len(set(emitted))  # the bars of the new reply: only new or changed ones
    assert wait_until(lambda: second.server_id in (client.server_ids(IbkrWsKey.MARKET_HISTORY) or {}), 5)
    a.dispose()
    b.dispose()
    assert wait_until(lambda: any(t == f"umh+{second.server_id}" for t in received(sim, "umh+")), 5)
