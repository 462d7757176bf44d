"""The market-data queue's hand-over to a consumer blocked in ``get(block=True)``.

The reader wakes a waiting consumer once per socket read (not per message): a frame that arrives alone
must still wake it at once, frames that arrive together must all reach it in order, and a transport
that does not batch (the testing kit's) must wake it per frame. Over the simulator (real sockets,
nothing periodic that could wake the consumer by accident: no heartbeats, pings or market-data ticks)
and over the testing kit's fake transport.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from reactivex.testing import TestScheduler
from simclient import running_client
from waiting import wait_until

from rxibkr.client.core import IbkrWsClient
from rxibkr.protocol import IbkrWsKey
from rxibkr.testing import FakeTransport

sim_module = pytest.importorskip("rxibkr.sim")

MD = IbkrWsKey.MARKET_DATA
CONID = 265598


def smd(i: int, conid: int = CONID) -> bytes:
    return orjson.dumps(
        {"topic": f"smd+{conid}", "conid": conid, "_updated": 1_700_000_000_000 + i, "31": str(i)}
    )


def blocked_in_wait(thread: threading.Thread) -> bool:
    """The thread is parked in a condition's wait (the interpreter's view of its stack, read only)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_code.co_filename.endswith("threading.py"):
            return True
        frame = frame.f_back
    return False


class Consumer:
    """A thread draining the MARKET_DATA queue with ``get(block=True, timeout=30)``."""

    def __init__(self, client: IbkrWsClient, count: int) -> None:
        self.accessor = client.new_queue_accessor(MD)
        self.items: list[Any] = []
        self.count = count
        self.thread = threading.Thread(target=self._run, name="test-queue-consumer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while len(self.items) < self.count:
            item = self.accessor.get(block=True, timeout=30)
            if item is None:
                return
            self.items.append(item)

    def lasts(self) -> list[str]:
        return [item[CONID]["last_price"] for item in self.items]


@pytest.fixture
def quiet_sim() -> Iterator[Any]:
    with sim_module.GatewaySimulator(heartbeat_interval=3600, md_interval=3600, greeting_delay=0.01) as sim:
        yield sim


@pytest.fixture
def client(quiet_sim: Any) -> Iterator[IbkrWsClient]:
    with running_client(quiet_sim, timeout=3, ping_interval=3600, max_ping_interval=7200) as c:
        yield c


def test_a_blocked_consumer_is_woken_by_each_frame_that_arrives_alone(
    quiet_sim: Any, client: IbkrWsClient
) -> None:
    consumer = Consumer(client, 3)
    for i in range(3):
        assert wait_until(lambda: blocked_in_wait(consumer.thread), 5)  # waiting for the next item
        assert quiet_sim.send_raw(smd(i)) == 1
        # no other frame follows that could wake it: this one must (within 5 s, not get's 30 s)
        assert wait_until(lambda n=i + 1: len(consumer.items) == n, 5), consumer.items
    assert consumer.lasts() == ["0", "1", "2"]
    consumer.thread.join(5)
    assert not consumer.thread.is_alive()


def test_frames_that_arrive_together_all_reach_the_consumer_in_order(
    quiet_sim: Any, client: IbkrWsClient
) -> None:
    n = 2_000
    consumer = Consumer(client, n)
    assert wait_until(lambda: blocked_in_wait(consumer.thread), 5)
    for i in range(n):  # back to back: most socket reads hold many frames
        quiet_sim.send_raw(smd(i))
    assert wait_until(lambda: len(consumer.items) == n, 20), len(consumer.items)
    assert consumer.lasts() == [str(i) for i in range(n)]
    assert client.new_queue_accessor(MD).get() is None  # nothing left over, nothing twice


def test_a_consumer_is_woken_per_frame_when_the_transport_does_not_batch() -> None:
    scheduler = TestScheduler()
    transport = FakeTransport(scheduler)
    client = IbkrWsClient(url="ws://x.test/v1/api/ws", scheduler=scheduler, transport=transport)
    client.start()
    scheduler.advance_by(0.001)
    consumer = Consumer(client, 2)
    for i in range(2):
        assert wait_until(lambda: blocked_in_wait(consumer.thread), 5)
        transport.receive(smd(i))
        assert wait_until(lambda n=i + 1: len(consumer.items) == n, 5), consumer.items
    assert consumer.lasts() == ["0", "1"]
    client.shutdown()
