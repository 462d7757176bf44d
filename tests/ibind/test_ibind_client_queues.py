"""The four findings of issue 13 through the client itself (virtual time, a scripted gateway).

tests/ibind/test_ibind_queue_items.py proves them on IbindQueues; these check that the client is wired
to it: every frame reaches the queues, from construction, with IBind's shapes and a bound.
"""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any

import pytest
from ibind_harness import IbindSide, exact
from reactivex.testing import TestScheduler

from rxibkr import IbkrWsClient, IbkrWsKey
from rxibkr.client.events import ConnectionState, ErrorEvent
from rxibkr.testing import FakeTransport
from rxibkr.testing import frames as f

pytestmark = [
    pytest.mark.filterwarnings("ignore:rxibkr. TLS certificate verification is disabled"),
]


def started(**kwargs: Any) -> tuple[IbkrWsClient, FakeTransport]:
    scheduler = TestScheduler()
    transport = FakeTransport(scheduler)
    client = IbkrWsClient(
        url="wss://gateway.test/v1/api/ws",
        cacert=False,
        scheduler=scheduler,
        transport=transport,
        unsolicited_channels_to_be_queued=[IbkrWsKey.AUTHENTICATION_STATUS],
        **kwargs,
    )
    client.start()
    scheduler.advance_by(0.001)
    assert client.state.value is ConnectionState.AUTHENTICATED
    return client, transport


def test_items_are_ibinds_and_wait_for_the_first_accessor() -> None:
    client, transport = started()
    received = [
        f.smd(265598, {"74": "150.2", "6119": "q0", "7293": "300"}, last=271.5),
        f.sor(f.order(1)),
        f.spl(),
        f.blt(f.bulletin(1, "closed")),
        f.sts(),
    ]
    ibind = IbindSide([IbkrWsKey.AUTHENTICATION_STATUS])
    expected: dict[str, list[Any]] = {}
    for frame in received:
        transport.receive(frame)
        for name, items in ibind.feed(json.dumps(frame)).items():
            expected.setdefault(name, []).extend(items)
    for name, items in expected.items():  # no accessor existed before these gets (finding 2)
        key = IbkrWsKey[name]
        got = []
        while not client.empty(key):
            got.append(client.get(key))
        if key is IbkrWsKey.AUTHENTICATION_STATUS:  # the session's own sts frames came first
            got = got[len(got) - len(items) :]
        assert exact(got) == exact(items), name  # finding 1: IBind's shapes
    row = expected["MARKET_DATA"][0][265598]
    assert row["avg_price"] == "150.2" and "server_id" not in row


def test_accessors_share_one_queue_and_cost_nothing() -> None:
    client, transport = started()
    for i in range(1000):
        transport.receive(f.smd(265598, last=100 + i))
    accessors = [client.new_queue_accessor(IbkrWsKey.MARKET_DATA) for _ in range(200)]
    refs = [weakref.ref(a) for a in accessors]
    assert accessors[0].qsize() == 1000  # one queue of 1000 items, not 200 copies (finding 3)
    del accessors
    gc.collect()
    assert all(r() is None for r in refs)
    assert client.get(IbkrWsKey.MARKET_DATA)[265598]["last_price"] == "100"


def test_an_unread_queue_is_bounded_quietly_until_it_is_read() -> None:
    client, transport = started()
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)
    for i in range(1_050):  # nobody reads: an Observable-only program
        transport.receive(f.smd(265598, last=i))
    assert [e for e in errors if e.kind.name == "QUEUE_OVERFLOW"] == []
    accessor = client.new_queue_accessor(IbkrWsKey.MARKET_DATA)
    overflow = [e for e in errors if e.kind.name == "QUEUE_OVERFLOW"]
    assert len(overflow) == 1 and "dropped its 50 oldest items" in overflow[0].message
    assert accessor.qsize() == 1_000 and accessor.get()[265598]["last_price"] == "50"
