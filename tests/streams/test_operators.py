"""Marble and timed tests of every operator in virtual time (reactivex.testing)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import reactivex
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.marbles import marbles_testing

from rxibkr import operators as rxo
from rxibkr.protocol import decode
from rxibkr.streams.models import Bar, Execution, MarketDataUpdate, OrderUpdate, Quote

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error


def md(conid: int, updated: int, **ids: Any) -> MarketDataUpdate:
    frame = {"conid": conid, "_updated": updated, **{k.lstrip("_"): v for k, v in ids.items()}}
    frame["topic"] = f"smd+{conid}"
    update = MarketDataUpdate.from_message(decode(orjson.dumps(frame)))
    assert update is not None
    return update


def values(records: list[Any]) -> list[tuple[float, Any]]:
    """(time, value) of the on_next records; ("done", time) for completion."""
    out: list[tuple[float, Any]] = []
    for r in records:
        kind = r.value.kind
        if kind == "N":
            out.append((r.time, r.value.value))
        elif kind == "C":
            out.append((r.time, "|"))
        else:
            out.append((r.time, f"#{r.value.exception}"))
    return out


# =================================================================================================
# snapshots / quotes / changes / market_data_updates
# =================================================================================================


def test_snapshots_merge_per_conid() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(210, md(1, 10, _84="1.40", _86="1.60", _31="C1.50")),
        on_next(220, md(2, 11, _84="9.00")),
        on_next(230, md(1, 12, _86="1.55")),
        on_next(240, md(1, 13, _31="1.52", _7059="100")),
        on_completed(250),
    )
    result = scheduler.start(lambda: source.pipe(rxo.snapshots()))
    got = [
        (t, v) if v == "|" else (t, v.conid, v.bid, v.ask, v.last, v.is_close)
        for t, v in values(result.messages)
    ]
    assert got == [
        (210, 1, 1.40, 1.60, 1.50, True),
        (220, 2, 9.00, None, None, False),
        (230, 1, 1.40, 1.55, 1.50, True),
        (240, 1, 1.40, 1.55, 1.52, False),
        (250, "|"),
    ]
    last: Quote = result.messages[3].value.value
    assert last.updated == 13 and last.last_size == 100 and last.data["84"] == "1.40"
    assert last.fields == {"bid_price": 1.40, "ask_price": 1.55, "last_price": 1.52, "last_size": 100}


def test_snapshots_keep_errors() -> None:
    scheduler = TestScheduler()
    boom = RuntimeError("boom")
    source = scheduler.create_hot_observable(on_next(210, md(1, 1, _84="1")), on_error(220, boom))
    result = scheduler.start(lambda: source.pipe(rxo.snapshots()))
    assert result.messages[-1] == on_error(220, boom)


def test_quotes_only_when_the_top_of_book_changes() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(210, md(1, 1, _84="1.40", _86="1.60")),
        on_next(220, md(1, 2, _87="12K")),  # volume only: no new quote
        on_next(230, md(1, 3, _84="1.40")),  # same bid: no new quote
        on_next(240, md(1, 4, _88="300")),  # bid size: new quote
        on_next(250, md(1, 5, _31="H1.45")),  # halted last: new quote
    )
    result = scheduler.start(lambda: source.pipe(rxo.quotes()))
    got = [(t, q.updated, q.bid_size, q.is_halted) for t, q in values(result.messages)]
    assert got == [(210, 1, None, False), (240, 4, 300, False), (250, 5, 300, True)]
    assert result.messages[-1].value.value.volume == 12000.0


def run(messages: list[Any], *operators: Any) -> list[tuple[float, Any]]:
    """Subscribe ``hot(messages).pipe(*operators)`` on a fresh TestScheduler; (time, value) list."""
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(*messages)
    return values(scheduler.start(lambda: source.pipe(*operators)).messages)


def test_quotes_accept_quotes_and_reject_other_items() -> None:
    messages = [on_next(210, md(1, 1, _84="1.40")), on_next(220, md(1, 2, _84="1.41"))]
    assert [q.bid for _, q in run(messages, rxo.snapshots(), rxo.quotes())] == [1.40, 1.41]
    got = run([*messages, on_next(230, "junk"), on_next(240, md(1, 3, _84="1.5"))], rxo.quotes())
    assert len(got) == 3 and str(got[-1][1]).startswith("#expected a MarketDataUpdate or a Quote")


def test_changes_of_a_field_per_conid() -> None:
    messages = [
        on_next(210, md(1, 1, _84="1.40", _86="1.60")),
        on_next(220, md(2, 2, _84="1.40")),  # another conid: its own first value
        on_next(230, md(1, 3, _86="1.61")),
        on_next(240, md(1, 4, _84="1.41")),
        on_next(250, md(1, 5, _84="1.41")),
    ]
    by_attribute = run(messages, rxo.snapshots(), rxo.changes("bid"))
    assert [(t, q.conid, q.bid) for t, q in by_attribute] == [(210, 1, 1.40), (220, 2, 1.40), (240, 1, 1.41)]
    assert [t for t, _ in run(messages, rxo.snapshots(), rxo.changes("mid"))] == [210, 220, 230, 240]
    # on raw updates, an update that does not carry the field is skipped
    assert [t for t, _ in run(messages, rxo.changes("84"))] == [210, 220, 240]
    assert [t for t, _ in run(messages, rxo.snapshots(), rxo.changes("ask_price"))] == [210, 230]


def test_changes_with_marbles_on_plain_mappings() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        lookup = {"a": {"p": 1}, "b": {"p": 1}, "c": {"p": 2}, "d": {"q": 5}, "e": {"p": 1}}
        source = cold("-a-b-c-d-e-|", lookup)
        expected = exp("-a---c---e-|", lookup)
        assert start(source.pipe(rxo.changes("p"))) == expected
    with pytest.raises(TypeError):
        rxo.changes("")


def test_market_data_updates_from_messages() -> None:
    scheduler = TestScheduler()
    messages = [
        decode(b'{"topic":"smd+1","conid":1,"_updated":5,"31":"2.5"}'),
        decode(b'{"topic":"system","hb":1}'),
        decode(b'{"topic":"smd+2","_updated":"6","84":"1"}'),  # no conid key: from the topic
    ]
    source = scheduler.create_hot_observable(*(on_next(210 + i, m) for i, m in enumerate(messages)))
    result = scheduler.start(lambda: source.pipe(rxo.market_data_updates()))
    got = [(u.conid, u.updated, dict(u.fields)) for _, u in values(result.messages)]
    assert got == [(1, 5, {"last_price": 2.5}), (2, 6, {"bid_price": 1.0})]


# =================================================================================================
# ohlc
# =================================================================================================


def bars_of(records: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for t, v in values(records):
        if isinstance(v, Bar):
            out.append((t, v.time, v.open, v.high, v.low, v.close, v.count, v.volume, v.conid))
        else:
            out.append((t, v))
    return out


def test_ohlc_time_bars_closed_by_the_timer_or_by_the_next_tick() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, 10.0),
        on_next(203, 12.0),
        on_next(205, 9.0),
        on_next(207, 11.0),  # bar [200, 210) closes at 210 by its timer
        on_next(212, 11.5),
        on_next(220, 11.0),  # exactly on the boundary: belongs to [220, 230), closes [210, 220)
        on_next(236, 13.0),  # [220, 230) closed by its timer at 230; nothing in [230, 240)? no: 236 is
        on_completed(238),  # completion emits the bar in progress
    )
    result = scheduler.start(lambda: source.pipe(rxo.ohlc(10.0, scheduler)))
    assert bars_of(result.messages) == [
        (210, 200_000, 10.0, 12.0, 9.0, 11.0, 4, None, None),
        (220, 210_000, 11.5, 11.5, 11.5, 11.5, 1, None, None),
        (230, 220_000, 11.0, 11.0, 11.0, 11.0, 1, None, None),
        (238, 230_000, 13.0, 13.0, 13.0, 13.0, 1, None, None),
        (238, "|"),
    ]
    assert result.messages[0].value.value.interval == 10.0


def test_ohlc_per_conid_from_quotes_with_volume_and_the_subscription_scheduler() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, md(1, 1, _31="100.0", _7059="10")),
        on_next(202, md(2, 1, _31="50.0", _7059="5")),
        on_next(204, md(1, 2, _84="99.0")),  # no new last: the quote still has 100 -> a tick at 100
        on_next(206, md(1, 3, _31="101.0", _7059="20")),
        on_next(208, md(3, 1, _84="1")),  # never a last price: skipped
    )
    result = scheduler.start(
        lambda: source.pipe(
            rxo.snapshots(), rxo.ohlc(5, size=lambda q: q.last_size)
        )  # scheduler: subscription's
    )
    assert bars_of(result.messages) == [
        (205, 200_000, 100.0, 100.0, 100.0, 100.0, 2, 20.0, 1),
        (205, 200_000, 50.0, 50.0, 50.0, 50.0, 1, 5.0, 2),
        (210, 205_000, 101.0, 101.0, 101.0, 101.0, 1, 20.0, 1),
    ]


def test_ohlc_updates_only_count_updates_with_a_last_price_and_dispose_cancels_timers() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, md(1, 1, _31="100.0")),
        on_next(204, md(1, 2, _84="99.0")),  # an update without a last price: no tick
        on_next(206, md(1, 3, _31="102.0")),
    )
    result = scheduler.start(lambda: source.pipe(rxo.ohlc(5.0, scheduler)), disposed=207)
    assert bars_of(result.messages) == [
        (205, 200_000, 100.0, 100.0, 100.0, 100.0, 1, None, 1)
    ]  # no bar at 210


def test_ohlc_rejects_bad_intervals() -> None:
    for bad in (0, -1, "5", True):
        with pytest.raises(ValueError, match="interval"):
            rxo.ohlc(bad)  # type: ignore[arg-type]


# =================================================================================================
# latest
# =================================================================================================


def test_latest_conflates_and_counts() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        op = rxo.latest(5.0)  # the subscription's scheduler: the marbles' TestScheduler
        source = cold("-a-b-c-d---------e-f-g-----h-|")
        expected = exp("-a----c----d-----e----g----h-|")
        assert start(source.pipe(op)) == expected
        assert op.conflated == 2  # b replaced by c, f by g


def test_latest_emits_the_pending_value_on_completion_and_keeps_errors() -> None:
    scheduler = TestScheduler()
    op = rxo.latest(10.0, scheduler)
    source = scheduler.create_hot_observable(
        on_next(201, "a"), on_next(202, "b"), on_next(203, "c"), on_completed(204)
    )
    result = scheduler.start(lambda: source.pipe(op))
    assert values(result.messages) == [(201, "a"), (204, "c"), (204, "|")]
    assert op.conflated == 1
    boom = ValueError("boom")
    failing = scheduler.create_hot_observable(on_next(1001, "x"), on_next(1002, "y"), on_error(1003, boom))
    result = scheduler.start(
        lambda: failing.pipe(rxo.latest(10.0, scheduler)), created=1000, subscribed=1000, disposed=2000
    )
    assert values(result.messages) == [(1001, "x"), (1003, "#boom")]
    with pytest.raises(ValueError):
        rxo.latest(0)


# =================================================================================================
# order_state / dedupe_executions
# =================================================================================================


def test_order_state_merges_deltas_from_messages_and_mappings() -> None:
    scheduler = TestScheduler()
    sor = decode(
        orjson.dumps(
            {
                "topic": "sor",
                "args": [
                    {"acct": "DU1234", "orderId": 352055828, "status": "PendingSubmit", "fgColor": "#3399CC"},
                    {"acct": "DU1234", "orderId": 352055828, "status": "PreSubmitted", "bgColor": "#FFFFFF"},
                    {"acct": "DU1234", "orderId": 352055828, "status": "Submitted", "bgColor": "#000000"},
                ],
            }
        )
    )
    source = scheduler.create_hot_observable(
        on_next(210, sor),
        on_next(220, {"acct": "DU1234", "orderId": 352055828, "status": "Submitted"}),  # no change
        on_next(230, {"acct": "DU1234", "orderId": 352055828, "filledQuantity": 100.0, "price": ""}),
        on_next(240, {"no": "order id"}),
    )
    initial = [
        {"acct": "DU1234", "orderId": 352055828, "status": "Inactive", "ticker": "AAPL", "price": "372.5"}
    ]
    result = scheduler.start(lambda: source.pipe(rxo.order_state(initial)))
    updates: list[OrderUpdate] = [v for _, v in values(result.messages)]
    assert [(u.status, u.source) for u in updates] == [
        ("Inactive", "rest"),
        ("PendingSubmit", "ws"),
        ("PreSubmitted", "ws"),
        ("Submitted", "ws"),
        ("Submitted", "ws"),
    ]
    assert updates[0].price == 372.5 and updates[-1].price is None
    assert updates[-1].changed == {"filledQuantity", "price"} and updates[-1].ticker == "AAPL"
    assert updates[-1].fields["bgColor"] == "#000000"
    assert values(result.messages)[0][0] == 200  # the initial orders at subscription


def test_dedupe_executions() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        e1 = {"execution_id": "e1", "price": "1.5", "size": 1}
        e1c = {**e1, "commission": "0.35"}
        e2 = {"execution_id": "e2", "price": "2.5", "size": 2}
        source = cold("-a-a-b-c-b-|", {"a": e1, "b": e1c, "c": e2})
        result = start(source.pipe(rxo.dedupe_executions()))
        got = [
            (r.time, r.value.value.execution_id, r.value.value.revision)
            for r in result
            if r.value.kind == "N"
        ]
        assert got == [(201.0, "e1", 0), (205.0, "e1", 1), (207.0, "e2", 0)]
        assert isinstance(result[1].value.value, Execution) and result[1].value.value.commission == 0.35
    message = decode(b'{"topic":"str","args":[{"execution_id":"x","price":"1"}]}')
    out: list[Execution] = []
    reactivex.of(message, Execution("x", {"execution_id": "x", "price": "1"})).pipe(
        rxo.dedupe_executions()
    ).subscribe(out.append)
    assert [e.execution_id for e in out] == ["x"]
    errors: list[Exception] = []
    reactivex.of(42).pipe(rxo.dedupe_executions()).subscribe(on_error=errors.append)
    assert isinstance(errors[0], TypeError)
