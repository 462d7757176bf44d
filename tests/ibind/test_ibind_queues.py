"""IbindQueues on its own: bounds, drop counting and reports, blocking gets, custom controllers, cost."""

from __future__ import annotations

import gc
import json
import threading
import time
import tracemalloc
from typing import Any

import pytest
from ibind.base.queue_controller import QueueController as IbindQueueController
from ibind_harness import RxSide, exact

from rxibkr.client.queues import (
    DEFAULT_IDLE_MAXSIZE,
    DEFAULT_MAXSIZE,
    IbindQueues,
    QueueAccessor,
    QueueController,
    queued_keys,
)
from rxibkr.protocol import IbkrWsKey, Message, decode
from rxibkr.testing import frames as f

MD = IbkrWsKey.MARKET_DATA


def md(i: int) -> Message:
    return decode(json.dumps(f.smd(265598, last=100 + i)).encode())


def last(item: Any) -> str:
    return str(item[265598]["last_price"])


def test_a_full_queue_drops_the_oldest_counts_and_reports_at_powers_of_ten() -> None:
    rx = RxSide(maxsize=5)
    assert rx.queues.empty(MD)  # read once: the queue has its full bound, and reports
    for i in range(120):
        rx.queues.put(md(i))
    assert rx.queues.qsize(MD) == 5
    assert rx.queues.dropped(MD) == 115
    assert [last(rx.queues.get(MD)) for _ in range(5)] == ["215", "216", "217", "218", "219"]
    assert [kind for kind, _ in rx.reports] == ["QUEUE_OVERFLOW"] * 3  # the 1st, 10th and 100th drop
    assert "MARKET_DATA queue full (5 unread items)" in rx.reports[0][1]
    assert rx.reports[-1][1].endswith("100 dropped so far")
    assert rx.queues.dropped(IbkrWsKey.ORDERS) == 0


def test_a_queue_nobody_reads_keeps_1000_quietly_and_reports_its_drops_when_first_read() -> None:
    rx = RxSide()
    assert (rx.queues.maxsize, rx.queues.idle_maxsize) == (DEFAULT_MAXSIZE, DEFAULT_IDLE_MAXSIZE)
    for i in range(2_500):  # an Observable-only program: nobody reads the queues
        rx.queues.put(md(i))
    assert rx.queues.qsize(MD) == 1_000 and rx.queues.dropped(MD) == 1_500
    assert rx.reports == []  # no noise for a queue nobody uses
    accessor = rx.queues.new_queue_accessor(MD)  # first read: one report, then the full bound
    assert rx.reports == [
        ("QUEUE_OVERFLOW", "MARKET_DATA queue dropped its 1500 oldest items before it was first read "
         "(a queue nobody reads keeps the newest 1000)")
    ]  # fmt: skip
    assert last(accessor.get()) == "1600"
    for i in range(9_500):
        rx.queues.put(md(i))
    assert rx.queues.qsize(MD) == 10_000 and rx.queues.dropped(MD) == 1_500 + 499
    assert len(rx.reports) == 1  # the next report comes at the 10 000th drop


def test_the_default_bound_and_an_unbounded_queue_that_reports_its_backlog() -> None:
    assert RxSide().queues.maxsize == DEFAULT_MAXSIZE == 10_000
    rx = RxSide(maxsize=None, idle_maxsize=None)
    message = md(0)
    for _ in range(10_001):
        rx.queues.put(message)
    assert rx.queues.qsize(MD) == 10_001 and rx.queues.dropped(MD) == 0
    assert len(rx.reports) == 1 and "holds 10000 unread items" in rx.reports[0][1]


def test_a_queue_nobody_reads_stays_within_its_bound_in_memory() -> None:
    frames = [md(i) for i in range(200)]
    rx = RxSide(maxsize=100)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(50):
            for message in frames:
                rx.queues.put(message)
        size, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rx.queues.qsize(MD) == 100 and rx.queues.dropped(MD) == 9_900
    assert size < 64 * 1024  # the deque of at most 100 references, not 10 000 items


def test_a_report_sink_that_raises_does_not_break_put() -> None:
    def sink(kind: str, text: str) -> None:
        raise RuntimeError("sink")

    queues = IbindQueues(QueueController, queued_keys(None), sink, maxsize=1)
    assert queues.empty(MD)
    queues.put(md(1))
    queues.put(md(2))
    assert last(queues.get(MD)) == "102"


def test_blocking_get_wakes_on_put_from_another_thread() -> None:
    rx = RxSide()
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(rx.queues.get(MD, block=True, timeout=10)))
    reader.start()
    deadline = time.monotonic() + 5
    while rx.queues._queues[MD].waiters == 0 and time.monotonic() < deadline:  # the reader is waiting
        time.sleep(0.001)
    rx.queues.put(md(7))
    reader.join(5)
    assert not reader.is_alive() and last(got[0]) == "107"


def test_get_semantics_of_queue_get() -> None:
    rx = RxSide()
    started = time.monotonic()
    assert rx.queues.get(MD, block=True, timeout=0.05) is None
    assert time.monotonic() - started >= 0.05
    assert rx.queues.get(MD) is None and rx.queues.empty(MD)
    with pytest.raises(ValueError, match="non-negative"):
        rx.queues.get(MD, block=True, timeout=-1)
    rx.queues.put(md(1))
    assert last(rx.queues.get(MD, block=True)) == "101"


def test_many_consumers_take_each_item_once() -> None:
    rx = RxSide()
    accessors = [rx.queues.new_queue_accessor(MD) for _ in range(4)]
    taken: list[Any] = []
    lock = threading.Lock()

    def consume(accessor: QueueAccessor[IbkrWsKey]) -> None:
        while True:
            item = accessor.get(block=True, timeout=0.5)
            if item is None:
                return
            with lock:
                taken.append(last(item))

    threads = [threading.Thread(target=consume, args=(a,)) for a in accessors]
    for t in threads:
        t.start()
    for i in range(2000):
        rx.queues.put(md(i))
    for t in threads:
        t.join(10)
    assert sorted(taken, key=float) == [str(100 + i) for i in range(2000)]


def test_arguments_are_checked() -> None:
    queues = RxSide().queues
    with pytest.raises(TypeError, match="key"):
        queues.new_queue_accessor("md")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsolicited_channels_to_be_queued"):
        RxSide([]).queues.get(IbkrWsKey.ERROR)
    with pytest.raises(TypeError, match="unsolicited_channels_to_be_queued"):
        queued_keys(["sts"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="maxsize"):
        IbindQueues(QueueController, queued_keys(None), None, maxsize=0)


def test_ibinds_own_queue_controller_class_gets_the_same_items() -> None:
    frames = [json.dumps(fr) for fr in (f.smd(265598, last=1.5), f.sor(f.order(1)), f.sts(), f.hb())]
    ours, theirs = RxSide(), RxSide(QueueControllerClass=IbindQueueController)
    for frame in frames:
        a, b = ours.feed(frame), theirs.feed(frame)
        assert exact(a) == exact(b)
    accessor = theirs.queues.new_queue_accessor(MD)
    assert type(accessor).__module__ == "ibind.base.queue_controller"
    assert theirs.queues.maxsize is None


def test_the_controller_alone_is_ibinds_api() -> None:
    controller = QueueController[IbkrWsKey]()
    controller.register_queues(IbkrWsKey.ORDERS)
    controller.put_to_queue(IbkrWsKey.ORDERS, {"x": 1})
    accessor = controller.new_queue_accessor(IbkrWsKey.ORDERS)
    assert str(accessor) == "QueueAccessor(key=IbkrWsKey.ORDERS, size=1)"
    assert accessor.key is IbkrWsKey.ORDERS and accessor.get() == {"x": 1} and accessor.get() is None
    with pytest.raises(AttributeError, match="Invalid queue key"):
        controller.new_queue_accessor(IbkrWsKey.PNL)


def test_put_cost_per_message() -> None:
    """The hot path: ns per put for market data (printed; bounded loosely for a shared CI machine)."""
    messages = [md(i) for i in range(1000)]
    results = {}
    for name, maxsize in (("bounded, filling", 1_000_000), ("bounded, full: dropping", 100)):
        queues = IbindQueues(QueueController, queued_keys(None), None, maxsize=maxsize)
        put = queues.put
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for message in messages:
                put(message)
            best = min(best, (time.perf_counter() - started) / len(messages))
        results[name] = best * 1e9
    print({name: f"{ns:.0f} ns/put" for name, ns in results.items()})
    assert all(ns < 5_000 for ns in results.values()), results
