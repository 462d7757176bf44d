"""The client's reader puts market data on the IBind queue itself (its inlined put: the frame's dict,
no Message when nobody observes, a full unread queue dropping silently). Differential: every item the
client's queues hand out, frame by frame over the testing kit's transport, is exactly the item
IbindQueues.put gives for the same frames (and IbindQueues.put is IBind's, test_ibind_queue_items.py),
with and without an observer, read as they come or after the unread bound was passed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ibind_harness import UNSOLICITED, Items, RxSide, exact
from reactivex.testing import TestScheduler
from test_ibind_queue_items import any_frames, md_frames

from rxibkr import IbkrWsClient, IbkrWsKey
from rxibkr.client.events import ConnectionState
from rxibkr.protocol import Message, decode
from rxibkr.testing import FakeTransport

MD = IbkrWsKey.MARKET_DATA


class ClientSide:
    """A client over the testing kit's transport, every unsolicited key queued, like RxSide."""

    def __init__(self, observe: bool, **kwargs: Any) -> None:
        scheduler = TestScheduler()
        self.transport = FakeTransport(scheduler)
        self.client = IbkrWsClient(
            url="ws://gateway.test/v1/api/ws",
            scheduler=scheduler,
            transport=self.transport,
            unsolicited_channels_to_be_queued=UNSOLICITED,
            **kwargs,
        )
        self.seen: list[Message] = []
        if observe:
            self.client.observe(MD).subscribe(self.seen.append)
        self.client.start()
        scheduler.advance_by(0.001)
        assert self.client.state.value is ConnectionState.AUTHENTICATED
        self.keys = [key for key in IbkrWsKey if key.solicited or key in UNSOLICITED]
        # what the kit's greeting put on the queues (system, sts); MARKET_DATA stays unread
        self.greeting = self.drain([key for key in self.keys if key is not MD])

    def feed(self, frame: str) -> Items:
        self.transport.receive(frame.encode())
        return self.drain()

    def drain(self, keys: list[IbkrWsKey] | None = None) -> Items:
        out: Items = {}
        for key in self.keys if keys is None else keys:
            while not self.client.empty(key):
                out.setdefault(key.name, []).append(self.client.get(key))
        return out

    def shutdown(self) -> None:
        self.client.shutdown()


def same_items(frames: list[str], observe: bool) -> None:
    client, rx = ClientSide(observe), RxSide()
    try:
        for frame in frames:
            assert exact(client.feed(frame)) == exact(rx.feed(frame)), frame
    finally:
        client.shutdown()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(md_frames(), min_size=1, max_size=6), st.booleans())
def test_market_data_items_through_the_reader_are_ibind_queues(frames: list[str], observe: bool) -> None:
    same_items(frames, observe)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_frames(), min_size=1, max_size=6), st.booleans())
def test_any_frames_through_the_reader_are_ibind_queues(frames: list[str], observe: bool) -> None:
    same_items(frames, observe)


@pytest.mark.parametrize("observe", [False, True])
def test_an_unread_queue_past_its_bound_through_the_reader(observe: bool) -> None:
    """1,500 frames, int and str conids mixed (the reader's own put and IbindQueues.put), before
    the first read: the newest 1,000 in order, the 500 drops reported once at the first read."""
    frames = [
        orjson.dumps(
            {"topic": "smd+1", "conid": 1 if i % 7 else "1", "_updated": i, "31": str(i), "6008": 1}
        ).decode()
        for i in range(1_500)
    ]
    reports: list[str] = []
    client = ClientSide(observe)
    client.client.errors.subscribe(lambda event: reports.append(event.message))
    rx = RxSide()
    try:
        for frame in frames:
            client.transport.receive(frame.encode())
            rx.queues.put(decode(frame.encode()))
        assert not client.client.empty(MD)  # the first read
        assert [r for r in reports if "dropped its 500 oldest" in r], reports
        assert exact(client.drain()) == exact(rx.drain())
        assert len(client.seen) == (1_500 if observe else 0)
    finally:
        client.shutdown()
