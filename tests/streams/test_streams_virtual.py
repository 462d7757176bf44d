"""The client's typed streams in virtual time: a real client, a scripted gateway, a TestScheduler."""

from __future__ import annotations

from typing import Any

import pytest

from rxibkr import operators as rxo
from rxibkr.client.events import ErrorKind
from rxibkr.streams import DEFAULT_FIELDS, HistoryLimitError, streams_of
from rxibkr.streams.models import (
    AuthStatus,
    Bar,
    Bulletin,
    Execution,
    History,
    Ladder,
    LedgerRow,
    MarketDataUpdate,
    Notification,
    OrderUpdate,
    PnlRow,
    Quote,
    SummaryItem,
)

from .support import AAPL, ACCOUNT, IBM, Rest, f, sent, smd, started

# =================================================================================================
# market data
# =================================================================================================


def test_market_data_one_subscription_per_conid_widened_by_later_observers() -> None:
    client, transport, _ = started()
    s = streams_of(client)
    a: list[MarketDataUpdate] = []
    b: list[MarketDataUpdate] = []
    first = s.market_data(AAPL).subscribe(a.append)
    assert sent(transport) == ['smd+265598+{"fields": [' + ", ".join(f'"{x}"' for x in DEFAULT_FIELDS) + "]}"]
    second = s.market_data(AAPL, ["31", "last_price", 7633]).subscribe(b.append)  # 7633 is new
    assert len(sent(transport, "smd")) == 2
    assert sent(transport)[-1].endswith(', "6509", "7633"]}')  # the union, re-sent
    third = s.market_data(AAPL, ["84"]).subscribe(b.append)  # nothing new: nothing sent
    assert len(sent(transport, "smd")) == 2
    transport.receive(smd(AAPL, 1, **f(_31="271.67", _84="271.55", _7633="21.5")))
    assert len(a) == 1 and len(b) == 2  # every observer gets every subscribed field
    first.dispose()
    second.dispose()
    assert sent(transport, "umd") == []
    third.dispose()
    assert sent(transport, "umd") == ["umd+265598+{}"]
    third.dispose()
    assert sent(transport, "umd") == ["umd+265598+{}"]


def test_market_data_update_carries_conid_time_parsed_fields_and_raw() -> None:
    client, transport, _ = started()
    got: list[MarketDataUpdate] = []
    client_streams = streams_of(client)
    client_streams.market_data("265598", ["last_price", "bid_price", "volume"]).subscribe(got.append)
    frame = smd(AAPL, 1777552110061, **f(_31="C271.67", _84="N/A", _87="12.2M", _87_raw=1.22e7, _83=0.56))
    transport.receive(frame)
    (update,) = got
    assert update.conid == AAPL and update.updated == 1777552110061
    assert update.time is not None and update.time.year == 2026
    assert update.fields == {
        "quote_server": "q1",
        "last_price": 271.67,
        "bid_price": None,
        "volume": 12_200_000.0,
        "volume_raw": 12_200_000.0,
        "change_percent": 0.56,
    }
    assert update.prefixes == {"last_price": "C"}
    assert update.get("last_price") == 271.67 and update.get("ask_price", "-") == "-"
    assert update.data["31"] == "C271.67" and update.message.topic == "smd+265598"
    assert isinstance(update.raw, bytes) and b'"C271.67"' in update.raw


def test_duplicated_first_update_is_emitted_once() -> None:
    client, transport, _ = started()
    got: list[MarketDataUpdate] = []
    s = streams_of(client)
    s.market_data(AAPL).subscribe(got.append)
    first = smd(AAPL, 10, **f(_6509="RpB", _31="1.5", _84="1.4"))
    transport.receive(first)
    transport.receive(dict(reversed(list(first.items()))))  # same content, other key order
    transport.receive(smd(AAPL, 11, **f(_84="1.45")))
    transport.receive(smd(AAPL, 12, **f(_84="1.45")))  # a later update with new server time: kept
    assert [u.updated for u in got] == [10, 11, 12]
    assert s.duplicates_dropped == 1


def test_routing_by_conid_and_late_observer_gets_the_merged_state_first() -> None:
    client, transport, _ = started()
    s = streams_of(client)
    aapl: list[MarketDataUpdate] = []
    ibm: list[MarketDataUpdate] = []
    s.market_data(AAPL).subscribe(aapl.append)
    s.market_data(IBM).subscribe(ibm.append)
    transport.receive(smd(AAPL, 1, **f(_31="1.5", _84="1.4", _86="1.6")))
    transport.receive(smd(IBM, 1, **f(_31="150.0")))
    transport.receive(smd(AAPL, 2, **f(_84="1.45")))
    transport.receive(smd(999, 2, **f(_84="9")))  # nobody asked: ignored
    assert [u.conid for u in aapl] == [AAPL, AAPL] and [u.conid for u in ibm] == [IBM]
    late: list[MarketDataUpdate] = []
    s.market_data(AAPL).subscribe(late.append)
    assert len(late) == 1
    assert late[0].fields["bid_price"] == 1.45 and late[0].fields["last_price"] == 1.5
    assert late[0].updated == 2
    transport.receive(smd(AAPL, 3, **f(_31="1.55")))
    assert [u.updated for u in late] == [2, 3] and len(aapl) == 3


def test_snapshots_merge_partial_updates_into_quotes() -> None:
    client, transport, _ = started()
    quotes: list[Quote] = []
    streams_of(client).market_data(AAPL).pipe(rxo.snapshots()).subscribe(quotes.append)
    transport.receive(smd(AAPL, 1, **f(_31="C271.00", _84="271.55", _86="271.66", _88="200", _85="500")))
    transport.receive(smd(AAPL, 2, **f(_86="271.70")))
    transport.receive(smd(AAPL, 3, **f(_31="271.68", _7059="100")))
    q1, q2, q3 = quotes
    assert (q1.bid, q1.ask, q1.last, q1.is_close) == (271.55, 271.66, 271.0, True)
    assert (q2.bid, q2.ask, q2.last, q2.is_close) == (271.55, 271.70, 271.0, True)
    assert (q3.last, q3.last_size, q3.is_close, q3.bid_size, q3.ask_size) == (271.68, 100, False, 200, 500)
    assert q3.mid == pytest.approx(271.625) and q3.spread == pytest.approx(0.15)
    assert q3.fields["ask_price"] == 271.70 and q3.update is not None and q3.update.updated == 3


def test_fused_snapshots_give_what_the_operator_gives_late_observers_duplicates_and_all() -> None:
    """market_data(c).pipe(snapshots()) is fused (the hub merges once and emits the quotes); with any
    operator in between it is not: both give the same quotes, to first and late observers alike."""
    from reactivex import operators as ops

    client, transport, _ = started()
    stream = streams_of(client).market_data(AAPL)
    fused: list[Quote] = []
    plain: list[Quote] = []
    updates: list[MarketDataUpdate] = []
    stream.pipe(rxo.snapshots()).subscribe(fused.append)
    stream.pipe(ops.map(lambda u: u), rxo.snapshots()).subscribe(plain.append)
    stream.subscribe(updates.append)
    first = smd(AAPL, 1, **f(_31="C271.00", _84="271.55"))
    transport.receive(first)
    transport.receive(dict(reversed(list(first.items()))))  # the gateway's duplicate
    transport.receive(smd(AAPL, 2, **f(_86="271.70")))
    late_fused: list[Quote] = []
    late_plain: list[Quote] = []
    stream.pipe(rxo.snapshots()).subscribe(late_fused.append)
    stream.pipe(ops.map(lambda u: u), rxo.snapshots()).subscribe(late_plain.append)
    transport.receive(smd(AAPL, 3, **f(_31="271.68", _84="271.60")))

    def seen(quotes: list[Quote]) -> list[tuple[Any, ...]]:
        return [(q.conid, q.updated, dict(q.data), q.bid, q.ask, q.last, q.is_close) for q in quotes]

    assert len(fused) == 3 and seen(fused) == seen(plain)
    assert len(late_fused) == 2 and seen(late_fused) == seen(late_plain) == seen(fused)[1:]
    assert [q.update for q in fused] == updates and all(q.update is not None for q in late_fused)
    assert fused[0].data is not fused[1].data and "86" not in fused[0].data  # each quote keeps its state


def test_market_data_goes_on_after_reconnect_and_resubscribes_the_union() -> None:
    client, transport, scheduler = started()
    s = streams_of(client)
    got: list[MarketDataUpdate] = []
    completed: list[bool] = []
    s.market_data(AAPL, ["31"]).subscribe(got.append, on_completed=lambda: completed.append(True))
    s.market_data(AAPL, ["84"]).subscribe(lambda _: None)
    first = smd(AAPL, 1, **f(_31="1.5", _84="1.4"))
    transport.receive(first)
    transport.current.drop()
    scheduler.advance_by(1.0)
    assert len(transport.connections) == 2 and client.ready
    assert transport.texts(2) == ['smd+265598+{"fields": ["31", "84"]}']
    again = smd(AAPL, 5, **f(_31="1.6", _84="1.5"))
    transport.receive(again)
    transport.receive(dict(reversed(list(again.items()))))  # the first update is doubled again
    transport.receive(smd(AAPL, 6, **f(_31="1.7")))
    assert [u.updated for u in got] == [1, 5, 6] and completed == []


def test_an_observer_exception_reaches_client_errors_and_the_others_go_on() -> None:
    client, transport, _ = started()
    errors: list[Any] = []
    client.errors.subscribe(errors.append)
    s = streams_of(client)
    good: list[MarketDataUpdate] = []

    def bad(_: Any) -> None:
        raise RuntimeError("strategy bug")

    s.market_data(AAPL).subscribe(bad)
    s.market_data(AAPL).subscribe(good.append)
    transport.receive(smd(AAPL, 1, **f(_31="1")))
    transport.receive(smd(AAPL, 2, **f(_31="2")))
    assert len(good) == 2
    assert [e.kind for e in errors] == [ErrorKind.OBSERVER_ERROR] * 2


def test_market_data_completes_on_shutdown_and_checks_arguments() -> None:
    client, _, _ = started()
    s = streams_of(client)
    with pytest.raises(ValueError, match="conid"):
        s.market_data(-1)
    with pytest.raises(TypeError, match="conid"):
        s.market_data(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fields"):
        s.market_data(AAPL, ["not_a_field"])
    with pytest.raises(ValueError, match="fields"):
        s.market_data(AAPL, [])
    done: list[bool] = []
    s.market_data(AAPL).subscribe(on_completed=lambda: done.append(True))
    client.shutdown()
    assert done == [True]
    with pytest.raises(RuntimeError, match="shut down"):
        s.market_data(AAPL).subscribe(lambda _: None)


# =================================================================================================
# market history
# =================================================================================================


def smh(conid: int, server_id: str, bars: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "serverId": server_id,
        "symbol": "AAPL",
        "text": "APPLE INC",
        "priceFactor": 100,
        "startTime": "20260317-18:00:00",
        "high": "12586/14469/65",
        "low": "12283/34103/0",
        "timePeriod": "7200s",
        "barLength": 300,
        "mdAvailability": "S",
        "outsideRth": False,
        "data": bars,
        "points": len(bars),
        "topic": f"smh+{conid}",
    }


BAR1 = {"o": 125.0, "c": 125.5, "h": 126.0, "l": 124.9, "v": 1000, "t": 1_700_000_000_000}
BAR2 = {"o": 125.5, "c": 125.2, "h": 125.8, "l": 125.0, "v": 800, "t": 1_700_000_300_000}


def test_market_history_bars_and_umh_with_the_server_id() -> None:
    client, transport, _ = started()
    s = streams_of(client)
    bars: list[Bar] = []
    sub = s.market_history(AAPL, period="2h", bar="5min").subscribe(bars.append)
    expected = 'smh+265598+{"period": "2h", "bar": "5min", "outsideRth": false, "source": "trades"}'
    assert sent(transport) == [expected]
    transport.receive(smh(AAPL, "7731", [BAR1, BAR2]))
    assert [(b.time, b.open, b.close, b.volume) for b in bars] == [
        (1_700_000_000_000, 125.0, 125.5, 1000.0),
        (1_700_000_300_000, 125.5, 125.2, 800.0),
    ]
    assert bars[0].conid == AAPL and bars[0].raw == BAR1
    changed = {**BAR2, "c": 125.3}
    transport.receive(smh(AAPL, "7731", [BAR1, changed]))  # only the changed bar again
    assert [b.close for b in bars] == [125.5, 125.2, 125.3]
    late: list[Bar] = []
    replies: list[History] = []
    s.market_history(AAPL, period="2h", bar="5min").subscribe(late.append)
    s.market_history_replies(AAPL, period="2h", bar="5min").subscribe(replies.append)
    assert [b.close for b in late] == [125.5, 125.3]
    assert len(replies) == 1 and replies[0].server_id == "7731" and replies[0].price_factor == 100
    assert len(sent(transport, "smh")) == 1  # shared
    sub.dispose()
    assert sent(transport, "umh") == []  # the late observers still hold the subscription


def test_market_history_disposal_sends_umh() -> None:
    client, transport, _ = started()
    s = streams_of(client)
    a = s.market_history(AAPL, "1d", "1h").subscribe(lambda _: None)
    b = s.market_history(AAPL, "1d", "1h").subscribe(lambda _: None)
    transport.receive(smh(AAPL, "4242", [BAR1]))
    a.dispose()
    assert sent(transport, "umh") == []
    b.dispose()
    assert sent(transport, "umh") == ["umh+4242"]


def test_a_sixth_history_raises_and_other_parameters_for_the_same_conid_too() -> None:
    client, _, _ = started()
    s = streams_of(client)
    subs = [s.market_history(conid, "1d", "1h").subscribe(lambda _: None) for conid in range(1, 6)]
    errors: list[Exception] = []
    s.market_history(6, "1d", "1h").subscribe(lambda _: None, errors.append)
    assert len(errors) == 1 and isinstance(errors[0], HistoryLimitError)
    assert "at most 5" in str(errors[0])
    with pytest.raises(HistoryLimitError):
        s.market_history(7, "1d", "1h").subscribe(lambda _: None)  # no on_error: raised
    with pytest.raises(ValueError, match="same parameters"):
        s.market_history(1, "2d", "1h").subscribe(lambda _: None)
    shared = s.market_history(1, "1d", "1h").subscribe(lambda _: None)  # same parameters: fine
    subs[4].dispose()
    s.market_history(6, "1d", "1h").subscribe(lambda _: None)  # a slot is free again
    shared.dispose()
    with pytest.raises(ValueError, match="bar"):
        s.market_history(1, "1d", "7min")


# =================================================================================================
# orders
# =================================================================================================

ORDER = {
    "acct": ACCOUNT,
    "conid": AAPL,
    "orderId": 922048212,
    "ticker": "AAPL",
    "status": "Submitted",
    "orderType": "Limit",
    "side": "BUY",
    "price": 372,
    "totalSize": 100.0,
    "filledQuantity": 0.0,
    "remainingQuantity": 100.0,
    "timeInForce": "GTC",
}


def test_orders_start_with_rest_then_merge_sor_deltas() -> None:
    rest = Rest([ORDER])
    client, transport, _ = started(rest)
    got: list[OrderUpdate] = []
    streams_of(client).orders().subscribe(got.append)
    assert sent(transport, "sor") == ["sor+{}"]
    assert [(u.order_id, u.status, u.source, u.price) for u in got] == [
        (922048212, "Submitted", "rest", 372.0)
    ]
    transport.receive(
        {
            "topic": "sor",
            "args": [
                {"acct": ACCOUNT, "orderId": 922048212, "filledQuantity": 60.0, "remainingQuantity": 40.0},
                {
                    "acct": ACCOUNT,
                    "orderId": 922048212,
                    "status": "Filled",
                    "price": "372.00",
                    "avgPrice": "371.9",
                },
            ],
        }
    )
    partial, filled = got[1:]
    assert partial.changed == {"filledQuantity", "remainingQuantity"} and partial.status == "Submitted"
    assert (partial.filled, partial.remaining, partial.ticker, partial.source) == (60.0, 40.0, "AAPL", "ws")
    assert filled.is_filled and filled.is_done and filled.avg_price == 371.9 and filled.price == 372.0
    assert filled.fields["totalSize"] == 100.0 and filled.account == ACCOUNT


def test_orders_new_order_lifecycle_market_price_and_identity_frames() -> None:
    client, transport, _ = started(Rest())
    got: list[OrderUpdate] = []
    streams_of(client).orders().subscribe(got.append)
    full = {
        "acct": ACCOUNT,
        "conid": 320227571,
        "orderId": 196655192,
        "orderDesc": "Buy 1 QQQ Market, Day",
        "ticker": "QQQ",
        "status": "Inactive",
        "orderType": "Market",
        "price": "",
        "side": "BUY",
    }
    transport.receive({"topic": "sor", "args": [full]})
    transport.receive(
        {"topic": "sor", "args": [{"acct": ACCOUNT, "conid": 320227571, "orderId": 196655192}]}
    )  # identity-only: nothing changes, nothing emitted
    for status in ("PendingSubmit", "PreSubmitted", "Submitted"):
        transport.receive(
            {"topic": "sor", "args": [{"acct": ACCOUNT, "orderId": 196655192, "status": status}]}
        )
    assert [u.status for u in got] == ["Inactive", "PendingSubmit", "PreSubmitted", "Submitted"]
    assert got[0].price is None and got[-1].order_type == "Market" and not got[-1].is_done


def test_orders_filters_rest_failure_and_late_observers() -> None:
    rest = Rest([ORDER, {**ORDER, "orderId": 1, "status": "Cancelled"}])
    client, transport, _ = started(rest)
    s = streams_of(client)
    working: list[OrderUpdate] = []
    s.orders(filters=["Submitted"]).subscribe(working.append)
    assert [u.order_id for u in working] == [922048212]
    transport.receive({"topic": "sor", "args": [{"acct": ACCOUNT, "orderId": 922048212, "status": "Filled"}]})
    assert len(working) == 1  # filtered on the merged status
    late: list[OrderUpdate] = []
    s.orders().subscribe(late.append)
    assert sorted((u.order_id, u.status) for u in late) == [(1, "Cancelled"), (922048212, "Filled")]
    assert sent(transport, "sor") == ["sor+{}"]  # one server subscription

    rest2 = Rest()
    rest2.fail = True
    client2, transport2, _ = started(rest2)
    got: list[OrderUpdate] = []
    streams_of(client2).orders().subscribe(got.append)
    transport2.receive({"topic": "sor", "args": [ORDER]})
    assert [u.order_id for u in got] == [922048212]


def test_orders_are_refreshed_from_rest_after_a_reconnect() -> None:
    rest = Rest([ORDER])
    client, transport, scheduler = started(rest)
    got: list[OrderUpdate] = []
    streams_of(client).orders().subscribe(got.append)
    calls = rest.live_orders_calls
    rest.orders = [{**ORDER, "status": "Filled", "filledQuantity": 100.0}, {**ORDER, "orderId": 5}]
    transport.current.drop()
    scheduler.advance_by(1.0)
    assert client.ready and rest.live_orders_calls > calls
    assert [(u.order_id, u.status) for u in got] == [
        (922048212, "Submitted"),
        (922048212, "Filled"),
        (5, "Submitted"),
    ]
    assert got[1].changed == {"status", "filledQuantity"} and got[1].source == "rest"


def test_orders_without_rest_session() -> None:
    client, transport, _ = started(None)
    got: list[OrderUpdate] = []
    streams_of(client).orders().subscribe(got.append)
    transport.receive({"topic": "sor", "args": [ORDER]})
    assert [u.status for u in got] == ["Submitted"]


# =================================================================================================
# trades
# =================================================================================================


def execution(execution_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "symbol": "AAPL",
        "side": "B",
        "order_description": "Bot 1 @ 130.64 on ISLAND",
        "trade_time": "20210408-22:10:01",
        "trade_time_r": 1617919801000,
        "size": 1,
        "price": "130.64",
        "net_amount": 130.64,
        "exchange": "ISLAND",
        "account": ACCOUNT,
        "conid": "265598",
        "order_id": 66807500,
        **extra,
    }


def test_trades_are_deduplicated_and_updated_when_the_commission_arrives() -> None:
    client, transport, _ = started()
    s = streams_of(client)
    got: list[Execution] = []
    s.trades().subscribe(got.append)
    assert sent(transport, "str") == ["str+{}"]
    transport.receive({"topic": "str", "args": []})
    transport.receive({"topic": "str", "args": [execution("e1")]})
    transport.receive({"topic": "str", "args": [execution("e1")]})  # a plain re-send
    transport.receive({"topic": "str", "args": [execution("e1", commission="0.35"), execution("e2")]})
    transport.receive({"topic": "str", "args": [execution("e1", commission="0.35")]})
    assert [(e.execution_id, e.revision, e.commission) for e in got] == [
        ("e1", 0, None),
        ("e1", 1, 0.35),
        ("e2", 0, None),
    ]
    e = got[1]
    assert (e.price, e.size, e.conid, e.order_id, e.side, e.account) == (
        130.64,
        1.0,
        AAPL,
        66807500,
        "B",
        ACCOUNT,
    )
    assert e.trade_time is not None and e.trade_time.year == 2021
    late: list[Execution] = []
    s.trades(days=3).subscribe(late.append)  # wider: re-sent with days
    assert sent(transport, "str")[-1] == 'str+{"days": 3}'
    assert [x.execution_id for x in late] == ["e1", "e2"]
    rt: list[Execution] = []
    s.trades(realtime_only=True).subscribe(rt.append)
    assert rt == [] and len(sent(transport, "str")) == 2
    with pytest.raises(ValueError):
        s.trades(days=9)


def test_trades_realtime_only_alone_asks_the_gateway_for_no_history() -> None:
    client, transport, _ = started()
    streams_of(client).trades(realtime_only=True).subscribe(lambda _: None)
    assert sent(transport, "str") == ['str+{"realtimeUpdatesOnly": true}']


# =================================================================================================
# P&L, summary, ledger, ladder
# =================================================================================================


def test_pnl_rows_are_merged_per_key() -> None:
    client, transport, _ = started()
    rows: list[PnlRow] = []
    streams_of(client).pnl().subscribe(rows.append)
    assert sent(transport, "spl") == ["spl+{}"]
    key = f"{ACCOUNT}.Core"
    transport.receive(
        {"topic": "spl", "args": {key: {"rowType": 1, "dpl": -58.28, "nl": 1020000.0, "upl": 4600.0}}}
    )
    transport.receive({"topic": "spl", "args": {key: {"dpl": -60.0}}})
    assert [(r.daily, r.unrealized, r.net_liquidity) for r in rows] == [
        (-58.28, 4600.0, 1020000.0),
        (-60.0, 4600.0, 1020000.0),
    ]
    assert rows[0].account == ACCOUNT and rows[0].row_type == 1 and rows[0].market_value is None


def test_account_summary_union_of_keys_and_per_observer_filter() -> None:
    client, transport, _ = started()
    s = streams_of(client)
    net: list[SummaryItem] = []
    every: list[SummaryItem] = []
    s.account_summary(keys=["NetLiquidation-S"]).subscribe(net.append)
    s.account_summary(keys="ExcessLiquidity-S", fields=["currency", "monetaryValue"]).subscribe(every.append)
    assert sent(transport, "ssd") == [
        f'ssd+{ACCOUNT}+{{"keys": ["NetLiquidation-S"]}}',
        # every field: the first observer wants them all
        f'ssd+{ACCOUNT}+{{"keys": ["NetLiquidation-S", "ExcessLiquidity-S"]}}',
    ]
    transport.receive(
        {
            "result": [
                {
                    "key": "ExcessLiquidity-S",
                    "currency": "USD",
                    "monetaryValue": 1005353.88,
                    "severity": 0,
                    "timestamp": 1783031080,
                },
                {
                    "key": "NetLiquidation-S",
                    "currency": "USD",
                    "monetaryValue": 1020000.0,
                    "severity": 0,
                    "timestamp": 1783031080,
                },
                {"key": "Cushion", "value": "0.9913", "severity": 0, "timestamp": 1783031080},
            ],
            "topic": f"ssd+{ACCOUNT}",
        }
    )
    assert [i.key for i in net] == ["NetLiquidation-S"]
    assert [i.key for i in every] == ["ExcessLiquidity-S"]
    item = every[0]
    assert (item.account, item.monetary_value, item.currency, item.timestamp) == (
        ACCOUNT,
        1005353.88,
        "USD",
        1783031080,
    )
    assert item.time is not None and item.number == 1005353.88
    everything: list[SummaryItem] = []
    s.account_summary().subscribe(everything.append)
    assert {i.key for i in everything} == {"ExcessLiquidity-S", "NetLiquidation-S", "Cushion"}
    assert sent(transport, "ssd")[-1] == f"ssd+{ACCOUNT}+{{}}"  # None (everything) wins
    cushion = next(i for i in everything if i.key == "Cushion")
    assert cushion.value == "0.9913" and cushion.number == 0.9913 and cushion.monetary_value is None


def test_ledger_rows_merge_blank_rows() -> None:
    client, transport, _ = started()
    rows: list[LedgerRow] = []
    streams_of(client).ledger().subscribe(rows.append)
    assert sent(transport, "sld") == [f"sld+{ACCOUNT}+{{}}"]
    transport.receive(
        {
            "result": [
                {
                    "acctCode": ACCOUNT,
                    "cashbalance": 2.0201311791131118e8,
                    "key": "LedgerListBASE",
                    "exchangeRate": 1.0,
                    "netLiquidationValue": 2.0280151634374067e8,
                    "secondKey": "BASE",
                    "timestamp": 1700248325,
                },
                {"key": "LedgerListEUR", "timestamp": 1700248325},
            ],
            "topic": f"sld+{ACCOUNT}",
        }
    )
    transport.receive(
        {"result": [{"key": "LedgerListBASE", "timestamp": 1700248335}], "topic": f"sld+{ACCOUNT}"}
    )
    base1, eur, base2 = rows
    assert base1.cash_balance == pytest.approx(2.0201311791131118e8) and not base1.blank
    assert base1.currency == "BASE" and eur.currency == "EUR" and eur.blank and eur.cash_balance is None
    assert base2.blank and base2.cash_balance == base1.cash_balance and base2.timestamp == 1700248335


def test_price_ladder_account_default_and_missing_account() -> None:
    client, transport, _ = started()
    ladders: list[Ladder] = []
    streams_of(client).price_ladder(AAPL).subscribe(ladders.append)
    assert sent(transport, "sbd") == [f"sbd+{ACCOUNT}+265598"]
    transport.receive(
        {
            "topic": f"sbd+{ACCOUNT}+265598",
            "data": [
                {"row": 0, "focus": 0, "price": "271.70", "ask": "300"},
                {"row": 1, "focus": 1, "price": "100 @ 271.65"},
                {"row": 2, "focus": 0, "price": "271.60", "bid": "200"},
            ],
        }
    )
    (ladder,) = ladders
    assert (ladder.account, ladder.conid, len(ladder)) == (ACCOUNT, AAPL, 3)
    ask, trade, bid = ladder
    assert (ask.price, ask.ask_size, ask.bid_size) == (271.70, 300.0, None)
    assert (trade.price, trade.size, trade.focus) == (271.65, 100.0, True)
    assert (bid.price, bid.bid_size) == (271.60, 200.0)
    with_exchange: list[Ladder] = []
    streams_of(client).price_ladder(IBM, exchange="NYSE", account="DU7654321").subscribe(with_exchange.append)
    assert sent(transport, "sbd")[-1] == "sbd+DU7654321+8314+NYSE"
    transport.receive({"topic": "sbd+DU7654321+8314+NYSE", "data": []})
    assert with_exchange[0].exchange == "NYSE" and with_exchange[0].rows == ()

    no_account, _, _ = started(account_id=None)
    with pytest.raises(ValueError, match="account"):
        streams_of(no_account).price_ladder(AAPL)
    with pytest.raises(ValueError, match="account"):
        streams_of(no_account).ledger()


# =================================================================================================
# unsolicited
# =================================================================================================


def test_notifications_bulletins_and_auth_status_normalise_args() -> None:
    client, transport, _ = started()
    s = streams_of(client)
    notes: list[Notification] = []
    bulletins: list[Bulletin] = []
    statuses: list[AuthStatus] = []
    s.notifications().subscribe(notes.append)
    s.bulletins().subscribe(bulletins.append)
    s.auth_status().subscribe(statuses.append)
    transport.receive(
        {
            "topic": "ntf",
            "args": {
                "id": "INDICATIVE",
                "text": "CFD quotes...",
                "title": "Warning",
                "url": "https://x.test/",
            },
        }
    )
    transport.receive(
        {
            "topic": "ntf",
            "args": [
                {"id": "118", "text": "Order SELL 1 MSFT ... canceled", "title": None, "url": None},
                {
                    "orderId": 1883733600,
                    "reqId": "29042",
                    "dismissable": [],
                    "text": "Use the Price Management Algo?",
                    "options": ["Use on this order", "Always use", "Do not use"],
                    "type": "M",
                    "messageId": "p12",
                    "prompt": True,
                },
            ],
        }
    )
    transport.receive(
        {"topic": "blt", "args": [{"id": 1789618148, "exchanges": None, "message": "[BBSMSG Bulletin]"}]}
    )
    transport.receive({"topic": "blt", "args": {"id": "", "message": ""}})
    transport.receive({"topic": "sts", "args": {"competing": False}})
    assert [(n.id, n.title, n.prompt) for n in notes] == [
        ("INDICATIVE", "Warning", False),
        ("118", None, False),
        (None, None, True),
    ]
    assert notes[2].order_id == 1883733600 and notes[2].options[0] == "Use on this order"
    assert notes[2].message_id == "p12" and notes[2].req_id == "29042"
    assert [(b.id, b.message) for b in bulletins] == [("1789618148", "[BBSMSG Bulletin]"), ("", "")]
    assert statuses[-1].competing is False and statuses[-1].authenticated is None


# =================================================================================================
# the client delegates
# =================================================================================================


def test_client_methods_delegate_to_the_streams() -> None:
    client, transport, _ = started(Rest([ORDER]))
    got: list[Any] = []
    for stream in (
        client.market_data(AAPL),
        client.market_history(AAPL, "1d", "1h"),
        client.orders(),
        client.trades(),
        client.pnl(),
        client.account_summary(),
        client.ledger(),
        client.price_ladder(AAPL),
        client.notifications(),
        client.bulletins(),
        client.auth_status(),
    ):
        stream.subscribe(got.append)
    assert {t[:3] for t in sent(transport)} == {"smd", "smh", "sor", "str", "spl", "ssd", "sld", "sbd"}
    assert streams_of(client) is streams_of(client)
    assert isinstance(got[0], OrderUpdate)


def test_one_ladder_per_account() -> None:
    client, transport, _ = started()
    s = streams_of(client)
    first = s.price_ladder(AAPL).subscribe(lambda _: None)
    same = s.price_ladder(AAPL).subscribe(lambda _: None)  # the same ladder: shared
    with pytest.raises(ValueError, match="one ladder per account"):
        s.price_ladder(IBM).subscribe(lambda _: None)
    first.dispose()
    same.dispose()
    assert sent(transport, "ubd") == [f"ubd+{ACCOUNT}"]
    s.price_ladder(IBM).subscribe(lambda _: None)
    assert sent(transport, "sbd")[-1] == f"sbd+{ACCOUNT}+8314"


def test_a_late_observer_raising_during_the_replay_is_not_attached() -> None:
    client, transport, _ = started()
    s = streams_of(client)
    keep = s.market_data(AAPL).subscribe(lambda _: None)
    transport.receive(smd(AAPL, 1, **f(_31="1.5")))

    def bad(_: Any) -> None:
        raise RuntimeError("bug in the late observer")

    with pytest.raises(RuntimeError, match="late observer"):
        s.market_data(AAPL).subscribe(bad)
    keep.dispose()
    assert sent(transport, "umd") == ["umd+265598+{}"]  # the failed observer held nothing
