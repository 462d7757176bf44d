"""A typed stream's subscription handle: observers objects or callbacks, dispose, completion, errors
while subscribing; and the wait of a client subscription (its event is created by the first wait)."""

from __future__ import annotations

import threading

from reactivex import Observer

from rxibkr.client.subscriptions import SubscriptionStatus
from rxibkr.streams import operators
from rxibkr.streams.models import MarketDataUpdate, Quote
from tests.streams.support import AAPL, IBM, f, sent, smd, started


class _Recorder(Observer[Quote]):
    def __init__(self) -> None:
        super().__init__()
        self.bids: list[float | None] = []
        self.completed = 0

    def _on_next_core(self, value: Quote) -> None:
        self.bids.append(value.bid)

    def _on_completed_core(self) -> None:
        self.completed += 1


def test_an_observer_object_gets_values_then_one_completion_and_its_share_is_released() -> None:
    client, transport, _ = started()
    recorder = _Recorder()
    client.market_data(AAPL).pipe(operators.snapshots()).subscribe(recorder)
    updates: list[MarketDataUpdate] = []
    client.market_data(AAPL).subscribe(updates.append)
    transport.receive(smd(AAPL, 1, **f(_84="1.5")))
    transport.receive(smd(AAPL, 2, **f(_84="1.6")))
    client.shutdown()
    assert recorder.bids == [1.5, 1.6] and recorder.completed == 1
    assert [u.updated for u in updates] == [1, 2]
    assert not client.subscriptions


def test_dispose_stops_the_values_at_once_is_idempotent_and_the_last_one_unsubscribes() -> None:
    client, transport, scheduler = started()
    first: list[Quote] = []
    second: list[Quote] = []
    a = client.market_data(IBM).pipe(operators.snapshots()).subscribe(first.append)
    b = client.market_data(IBM).pipe(operators.snapshots()).subscribe(second.append)
    transport.receive(smd(IBM, 1, **f(_84="1.5")))
    a.dispose()
    a.dispose()
    transport.receive(smd(IBM, 2, **f(_84="1.6")))
    assert [q.bid for q in first] == [1.5]
    assert [q.bid for q in second] == [1.5, 1.6]
    assert sent(transport, "umd") == []
    b.dispose()
    b.dispose()
    scheduler.advance_by(0.1)
    assert sent(transport, "umd") == [f"umd+{IBM}+{{}}"]
    transport.receive(smd(IBM, 3, **f(_84="1.7")))
    assert [q.bid for q in second] == [1.5, 1.6]


def test_an_observer_raising_in_its_replay_gets_on_error_and_is_not_attached() -> None:
    client, transport, _ = started()
    kept: list[Quote] = []
    client.market_data(AAPL).pipe(operators.snapshots()).subscribe(kept.append)
    transport.receive(smd(AAPL, 1, **f(_84="1.5")))
    errors: list[Exception] = []
    calls: list[Quote] = []

    def boom(quote: Quote) -> None:
        calls.append(quote)
        raise RuntimeError("observer bug")

    client.market_data(AAPL).pipe(operators.snapshots()).subscribe(boom, errors.append)
    assert [str(e) for e in errors] == ["observer bug"] and len(calls) == 1  # the replay
    transport.receive(smd(AAPL, 2, **f(_84="1.6")))
    assert len(calls) == 1  # not attached
    assert [q.bid for q in kept] == [1.5, 1.6]


def test_wait_blocks_until_the_confirmation_and_returns_at_once_when_settled() -> None:
    client, transport, scheduler = started()
    sub = client.subscribe(f"md+{AAPL}", wait=False)
    assert sub.status is SubscriptionStatus.PENDING
    assert sub.wait(0.01) is False  # nothing confirmed it yet: the timeout passes
    results: list[bool] = []
    waiting = threading.Thread(target=lambda: results.append(sub.wait(30.0)))
    waiting.start()
    transport.receive(smd(AAPL, 1, **f(_84="1.5")))  # the first data confirms it
    scheduler.advance_by(0.01)
    waiting.join(30.0)
    assert results == [True] and sub.status is SubscriptionStatus.ACTIVE
    assert sub.wait(0) is True and sub.server.wait(0) is True
    sub.dispose()
    assert sub.wait(0) is False
