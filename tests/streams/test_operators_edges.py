"""Edges of the operators that mutation testing found untested: ohlc skips non-finite prices, accepts
sub-second intervals, passes errors on without a bar, unsubscribes from its source on dispose; quotes
react to every top-of-book field; order_state re-merges OrderUpdates; OrderBook.get."""

from __future__ import annotations

import math
from typing import Any

import pytest
import reactivex
from reactivex.disposable import Disposable
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.subscription import Subscription

from rxibkr import operators as rxo
from rxibkr.protocol import decode
from rxibkr.streams.models import Bar, OrderUpdate
from rxibkr.streams.operators import OrderBook, QuoteBook

from .test_operators import md, values

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error


def bars(records: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (t, v.open, v.high, v.low, v.close, v.count) if isinstance(v, Bar) else (t, v)
        for t, v in values(records)
    ]


def test_ohlc_skips_prices_that_are_not_finite() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, 10.0),
        on_next(202, math.nan),
        on_next(203, math.inf),
        on_next(204, -math.inf),
        on_next(204.5, "11.0"),  # not a number: no price
        on_next(204.7, True),  # a bool is not a price either
        on_next(205, 12.0),
        on_completed(207),
    )
    result = scheduler.start(lambda: source.pipe(rxo.ohlc(10.0, scheduler)))
    assert bars(result.messages) == [(207, 10.0, 12.0, 10.0, 12.0, 2), (207, "|")]


def test_ohlc_accepts_a_sub_second_interval() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(201.1, 1.0), on_next(201.7, 2.0), on_completed(202))
    result = scheduler.start(lambda: source.pipe(rxo.ohlc(0.5, scheduler)))
    assert bars(result.messages) == [(201.5, 1.0, 1.0, 1.0, 1.0, 1), (202, 2.0, 2.0, 2.0, 2.0, 1), (202, "|")]


def test_ohlc_passes_an_error_on_and_drops_the_bar_in_progress() -> None:
    scheduler = TestScheduler()
    boom = ValueError("boom")
    source = scheduler.create_hot_observable(on_next(201, 1.0), on_next(202, 3.0), on_error(203, boom))
    result = scheduler.start(lambda: source.pipe(rxo.ohlc(10.0, scheduler)))
    assert values(result.messages) == [(203, "#boom")]  # and no bar at 210 from the interval's timer


def test_ohlc_disposed_unsubscribes_from_its_source_and_emits_nothing_more() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(201, 1.0), on_next(206, 2.0), on_next(212, 3.0))
    result = scheduler.start(lambda: source.pipe(rxo.ohlc(5.0, scheduler)), disposed=208)
    assert bars(result.messages) == [(205, 1.0, 1.0, 1.0, 1.0, 1)]
    assert source.subscriptions == [Subscription(200, 208)]


def test_quotes_emit_on_every_top_of_book_field_only() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, md(1, 1, _84="1.0", _86="2.0", _31="1.5", _88="10", _85="20", _7059="5")),
        on_next(202, md(1, 2, _85="21")),  # ask size
        on_next(202.5, md(1, 2, _86="2.5")),  # ask price
        on_next(203, md(1, 3, _88="11")),  # bid size
        on_next(204, md(1, 4, _7059="6")),  # last size
        on_next(205, md(1, 5, _87="1000")),  # volume: not top of book
        on_completed(206),
    )
    result = scheduler.start(lambda: source.pipe(rxo.quotes()))
    assert [t for t, _ in values(result.messages)] == [201, 202, 202.5, 203, 204, 206]


def test_order_state_merges_order_updates_by_their_delta() -> None:
    scheduler = TestScheduler()
    first = OrderUpdate(
        7,
        {"orderId": 7, "status": "Submitted"},
        frozenset({"orderId", "status"}),
        {"orderId": 7, "status": "Submitted"},
    )
    later = OrderUpdate(
        7, {"orderId": 7, "status": "Filled"}, frozenset({"status"}), {"orderId": 7, "status": "Filled"}
    )
    source = scheduler.create_hot_observable(on_next(201, first), on_next(202, later), on_completed(203))
    result = scheduler.start(lambda: source.pipe(rxo.order_state()))
    got = [
        (t, v.order_id, v.fields.get("status"), sorted(v.changed))
        for t, v in values(result.messages)
        if v != "|"
    ]
    assert got == [(201, 7, "Submitted", ["orderId", "status"]), (202, 7, "Filled", ["status"])]


def test_order_book_get_returns_the_merged_state() -> None:
    book = OrderBook()
    assert book.get(7) is None
    book.apply({"orderId": 7, "status": "Submitted", "side": "BUY"})
    book.apply({"orderId": 7, "status": "Filled"})
    state = book.get(7)
    assert state is not None and dict(state.fields) == {"orderId": 7, "status": "Filled", "side": "BUY"}
    assert book.apply({"orderId": 7, "status": "Filled"}) is None  # changes nothing
    assert [u.order_id for u in book.current()] == [7]


def test_changes_of_the_ask_alias_follow_the_ask_price() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, {"conid": 1, "ask_price": 2.0, "bid_price": 1.0}),
        on_next(202, {"conid": 1, "ask_price": 2.0, "bid_price": 1.5}),
        on_next(203, {"conid": 1, "ask_price": 2.5, "bid_price": 1.5}),
    )
    result = scheduler.start(lambda: source.pipe(rxo.changes("ask")))
    assert [(t, v["ask_price"]) for t, v in values(result.messages)] == [(201, 2.0), (203, 2.5)]


def test_ohlc_and_latest_use_the_scheduler_they_are_given_over_the_subscriptions() -> None:
    outer, own = TestScheduler(), TestScheduler()
    source = outer.create_hot_observable(on_next(201, 1.0), on_next(202, 2.0))
    got: list[Any] = []
    latest_got: list[Any] = []
    outer.schedule_absolute(
        200, lambda *_: source.pipe(rxo.ohlc(10.0, own)).subscribe(got.append, scheduler=outer)
    )
    outer.schedule_absolute(
        200, lambda *_: source.pipe(rxo.latest(10.0, own)).subscribe(latest_got.append, scheduler=outer)
    )
    outer.advance_to(300)  # the subscription's clock passes the interval: nothing closes on it
    assert got == [] and latest_got == [1.0]
    own.advance_by(20)  # the operators' own clock does
    assert [(b.open, b.close, b.count) for b in got] == [(1.0, 2.0, 2)]
    assert latest_got == [1.0, 2.0]


def test_ohlc_and_latest_work_without_any_scheduler() -> None:
    bars_got: list[Any] = []
    reactivex.from_iterable([1.0, 3.0, 2.0]).pipe(rxo.ohlc(3600)).subscribe(bars_got.append)
    assert [(b.open, b.high, b.low, b.close, b.count) for b in bars_got] == [(1.0, 3.0, 1.0, 2.0, 3)]
    latest_got: list[Any] = []
    reactivex.from_iterable([1, 2, 3]).pipe(rxo.latest(3600)).subscribe(latest_got.append)
    assert latest_got == [1, 3]  # the first at once, the latest pending one at completion


def test_latest_emits_what_is_pending_at_completion_then_completes() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, "a"), on_next(202, "b"), on_next(203, "c"), on_completed(204)
    )
    result = scheduler.start(lambda: source.pipe(rxo.latest(10.0, scheduler)))
    assert values(result.messages) == [(201, "a"), (204, "c"), (204, "|")]


def test_order_state_errors_on_an_item_it_cannot_read() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, {"orderId": 1, "status": "Submitted"}), on_next(202, 42)
    )
    result = scheduler.start(lambda: source.pipe(rxo.order_state()))
    got = values(result.messages)
    assert got[0][0] == 201 and got[1][0] == 202 and str(got[1][1]).startswith("#expected a Message")


def test_changes_aliases_and_plain_objects() -> None:
    from dataclasses import dataclass

    @dataclass
    class Tick:
        conid: int
        level: float

    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, {"conid": 1, "bid_price": 1.0, "market_data_availability": "RpB"}),
        on_next(202, {"conid": 1, "bid_price": 1.0, "market_data_availability": "DpB"}),
        on_next(203, {"conid": 1, "bid_price": 1.5, "market_data_availability": "DpB"}),
    )
    bids = scheduler.start(lambda: source.pipe(rxo.changes("bid")))
    assert [t for t, _ in values(bids.messages)] == [201, 203]
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, {"conid": 1, "market_data_availability": "RpB"}),
        on_next(202, {"conid": 1, "market_data_availability": "DpB"}),
        on_next(203, {"conid": 1, "market_data_availability": "DpB"}),
    )
    availability = scheduler.start(lambda: source.pipe(rxo.changes("availability")))
    assert [t for t, _ in values(availability.messages)] == [201, 202]
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, Tick(1, 1.0)), on_next(202, Tick(1, 1.0)), on_next(203, Tick(1, 2.0))
    )
    levels = scheduler.start(lambda: source.pipe(rxo.changes("level")))  # any object's attribute
    assert [(t, v.level) for t, v in values(levels.messages)] == [(201, 1.0), (203, 2.0)]


def test_changes_and_latest_refuse_bad_arguments() -> None:
    for bad in (5, "", None):
        with pytest.raises(TypeError, match="field"):
            rxo.changes(bad)  # type: ignore[arg-type]
    for interval in (0, -1, "5", True, None):
        with pytest.raises(ValueError, match="interval"):
            rxo.latest(interval)  # type: ignore[arg-type]
    assert rxo.latest(0.5).interval == 0.5  # under a second is fine


def test_ohlc_takes_the_price_it_is_given() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, {"bid": 5.0}), on_next(202, {"bid": 7.0}), on_completed(203)
    )
    result = scheduler.start(lambda: source.pipe(rxo.ohlc(10.0, scheduler, price=lambda q: q["bid"])))
    assert bars(result.messages) == [(203, 5.0, 7.0, 5.0, 7.0, 2), (203, "|")]


def test_latest_disposed_unsubscribes_from_its_source() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(201, 1), on_next(205, 2), on_next(220, 3))
    result = scheduler.start(lambda: source.pipe(rxo.latest(2.0, scheduler)), disposed=210)
    assert values(result.messages) == [(201, 1), (205, 2)]
    assert source.subscriptions == [Subscription(200, 210)]


class TimerLedger(TestScheduler):
    """A TestScheduler that remembers every relative timer: fired, disposed, or still pending."""

    def __init__(self) -> None:
        super().__init__()
        self.timers: list[dict[str, bool]] = []

    def schedule_relative(self, duetime: Any, action: Any, state: Any = None) -> Any:
        entry = {"fired": False, "disposed": False}
        self.timers.append(entry)

        def run(scheduler: Any, st: Any) -> Any:
            entry["fired"] = True
            return action(scheduler, st)

        inner = super().schedule_relative(duetime, run, state)

        def dispose() -> None:
            entry["disposed"] = True
            inner.dispose()

        return Disposable(dispose)

    def pending(self) -> int:
        return sum(1 for t in self.timers if not t["fired"] and not t["disposed"])


def test_ohlc_leaves_no_timer_behind_however_it_ends() -> None:
    # a tick of the next interval closes the bar at once: its timer (due at the same instant) is
    # disposed, never fired; only the new bar's timer is pending
    scheduler = TimerLedger()
    source = scheduler.create_hot_observable(on_next(201, 1.0), on_next(210, 2.0))
    source.pipe(rxo.ohlc(10.0, scheduler)).subscribe(lambda _: None)
    scheduler.advance_to(210)
    assert [t["fired"] for t in scheduler.timers] == [False, False] and scheduler.pending() == 1
    for event in (on_completed(205), on_error(205, ValueError("x"))):
        scheduler = TimerLedger()
        source = scheduler.create_hot_observable(on_next(201, 1.0), event)
        source.pipe(rxo.ohlc(10.0, scheduler)).subscribe(lambda _: None, lambda _: None)
        scheduler.advance_to(205)
        assert scheduler.pending() == 0, event
    scheduler = TimerLedger()
    source = scheduler.create_hot_observable(on_next(201, 1.0))
    subscription = source.pipe(rxo.ohlc(10.0, scheduler)).subscribe(lambda _: None)
    scheduler.advance_to(202)
    subscription.dispose()
    assert scheduler.pending() == 0


def test_latest_leaves_no_timer_behind_however_it_ends() -> None:
    for event in (on_completed(202), on_error(202, ValueError("x"))):
        scheduler = TimerLedger()
        source = scheduler.create_hot_observable(on_next(201, 1), event)
        source.pipe(rxo.latest(10.0, scheduler)).subscribe(lambda _: None, lambda _: None)
        scheduler.advance_to(202)
        assert scheduler.pending() == 0


def test_quote_book_get_and_changes_of_last() -> None:
    book = QuoteBook()
    assert book.get(1) is None
    quote = book.apply(md(1, 1, _31="2.5"))
    assert book.get(1) == quote and quote.last == 2.5
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, {"conid": 1, "last_price": 1.0}),
        on_next(202, {"conid": 1, "last_price": 1.0}),
        on_next(203, {"conid": 1, "last_price": 1.5}),
    )
    result = scheduler.start(lambda: source.pipe(rxo.changes("last")))
    assert [t for t, _ in values(result.messages)] == [201, 203]


class LateCancel(TimerLedger):
    """A TestScheduler whose timers fire even when disposed: a timer thread that had already taken
    the timer when the operator disposed it."""

    def schedule_relative(self, duetime: Any, action: Any, state: Any = None) -> Any:
        super().schedule_relative(duetime, action, state)
        return Disposable()  # disposing it changes nothing


def test_ohlc_a_timer_disposed_too_late_closes_nothing() -> None:
    # the tick at 210 closes [200, 210) and opens [210, 220); the first bar's timer still fires at
    # 210 (after the tick): the new bar stays open until its own timer, at 220
    scheduler = LateCancel()
    source = scheduler.create_hot_observable(
        on_next(201, 1.0), on_next(210, 2.0), on_next(215, 3.0), on_completed(230)
    )
    result = scheduler.start(lambda: source.pipe(rxo.ohlc(10.0, scheduler)))
    assert bars(result.messages) == [
        (210, 1.0, 1.0, 1.0, 1.0, 1),
        (220, 2.0, 3.0, 2.0, 3.0, 2),
        (230, "|"),
    ]


def test_ohlc_disposed_while_a_tick_is_read_starts_no_bar() -> None:
    # the price function disposes the subscription (as another thread might, at that moment): the
    # tick being read starts no bar and sets no timer
    scheduler = TimerLedger()
    source = scheduler.create_hot_observable(on_next(201, 1.0), on_next(202, 2.0))
    got: list[Any] = []
    subscription: list[Any] = []

    def price(item: float) -> float:
        subscription[0].dispose()
        return item

    subscription.append(source.pipe(rxo.ohlc(10.0, scheduler, price=price)).subscribe(got.append))
    scheduler.advance_to(230)
    assert got == [] and scheduler.timers == []


def test_dedupe_executions_errors_on_an_item_it_cannot_read() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, {"execution_id": "e1", "side": "B"}),
        on_next(202, 42),
        on_next(203, {"execution_id": "e2"}),
    )
    result = scheduler.start(lambda: source.pipe(rxo.dedupe_executions()))
    got = values(result.messages)
    assert [t for t, _ in got] == [201, 202] and str(got[1][1]).startswith("#expected a Message")


def test_market_data_updates_skip_the_data_of_other_topics() -> None:
    scheduler = TestScheduler()
    messages = [
        decode(b'{"topic":"smh+265598","serverId":"7","data":[]}'),  # names a contract, not market data
        decode(b'{"topic":"sbd+DU1+265598","data":[]}'),
        decode(b'{"topic":"smd+265598","_updated":5,"31":"2.5"}'),
    ]
    source = scheduler.create_hot_observable(*(on_next(210 + i, m) for i, m in enumerate(messages)))
    result = scheduler.start(lambda: source.pipe(rxo.market_data_updates()))
    assert [(t, u.conid) for t, u in values(result.messages)] == [(212, 265598)]
