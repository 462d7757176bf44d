"""The resilience behaviour in virtual time: exact timings of backoff, watchdogs, auth polling,
retries and renewal, with a real client, a scripted gateway (``FakeTransport``) and a TestScheduler.

Where the integration scenarios prove the behaviour over real sockets within bounds, these pin the
schedule itself, to the virtual millisecond.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from reactivex.testing import TestScheduler

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.client.subscriptions import SubscriptionStatus
from rxibkr.testing import FakeTransport, frames, scheduler_seconds


class FakeRest:
    """The two REST calls the socket needs: tickle (the session id) and auth status."""

    def __init__(self) -> None:
        self.authenticated = True
        self.polls: list[float] = []
        self.scheduler: TestScheduler | None = None

    def tickle(self) -> dict[str, Any]:
        return {"session": "0123456789abcdef0123456789abcdef", "iserver": {"authStatus": {}}}

    def auth_status(self) -> dict[str, Any]:
        assert self.scheduler is not None
        self.polls.append(round(scheduler_seconds(self.scheduler), 6))
        return {"authenticated": self.authenticated, "connected": True, "competing": False}


class Rig:
    def __init__(self, rest: FakeRest | None = None, **kwargs: Any) -> None:
        self.scheduler = TestScheduler()
        self.transport = FakeTransport(
            self.scheduler,
            refuse=kwargs.pop("refuse", 0),
            refusal=kwargs.pop("refusal", None),
            heartbeat_interval=kwargs.pop("heartbeat_interval", 1.0),
            cookies=rest is not None,
        )
        if rest is not None:
            rest.scheduler = self.scheduler
        options: dict[str, Any] = dict(
            url="ws://gateway.test/v1/api/ws",
            ping_interval=1.0,
            max_ping_interval=3.0,
            timeout=5.0,
            subscription_retries=3,
            subscription_timeout=2.0,
            reconnect_backoff=(1.0, 8.0),
            reconnect_jitter=False,
            tic_interval=60.0,
            tickle_interval=None,
            md_renewal_interval=None,
        )
        options.update(kwargs)
        self.client = IbkrWsClient(rest, scheduler=self.scheduler, transport=self.transport, **options)
        self.errors: list[tuple[float, ErrorEvent]] = []
        self.states: list[tuple[float, ConnectionState]] = []
        self.client.errors.subscribe(lambda e: self.errors.append((self.now, e)))
        self.client.state.subscribe(lambda s: self.states.append((self.now, s)))

    @property
    def now(self) -> float:
        return round(scheduler_seconds(self.scheduler), 6)

    def start(self) -> Rig:
        self.client.start()
        self.scheduler.advance_by(0.001)
        return self

    def error_times(self, kind: ErrorKind) -> list[float]:
        return [t for t, e in self.errors if e.kind is kind]

    def sent(self, prefix: str, connection: int | None = None) -> list[tuple[float, int]]:
        return [
            (round(f.time, 6), f.connection)
            for f in self.transport.sent
            if f.text.startswith(prefix) and (connection is None or f.connection == connection)
        ]


def test_connect_backoff_doubles_up_to_the_cap() -> None:
    rig = Rig(refuse=6, refusal=TimeoutError("timed out")).start()  # failures worth retrying
    rig.scheduler.advance_by(60.0)
    assert rig.client.ready
    refused = rig.error_times(ErrorKind.CONNECTION_ERROR)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(refused)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 8.0]  # 1, 2, 4, then capped at 8
    assert len(rig.transport.connections) == 7


def test_reconnect_after_a_drop_is_immediate_then_backs_off_while_refused() -> None:
    rig = Rig().start()
    sub = rig.client.subscribe("md+265598", {"fields": ["31"]})
    rig.transport.receive(frames.smd(265598, last=1.0))
    rig.scheduler.advance_to(10.0)
    rig.transport.refuse = 3
    rig.transport.close(1000)  # maintenance: close 1000, then refused
    rig.scheduler.advance_to(19.0)
    attempts = [t for t, e in rig.errors if e.kind in (ErrorKind.CONNECTION_LOST, ErrorKind.CONNECTION_ERROR)]
    assert attempts == [10.0, 11.0, 12.0, 14.0]  # lost; first retry after 1 s; refused at 11, 12, 14
    assert rig.client.ready and sub.status is SubscriptionStatus.PENDING
    assert rig.sent("smd", rig.transport.current.id) == [(18.0, 5)]  # resubscribed on the new session
    rig.transport.receive(frames.smd(265598, last=1.1))
    assert sub.active


def test_heartbeat_watchdog_fires_exactly_max_ping_interval_after_the_last_heartbeat() -> None:
    rig = Rig().start()
    rig.scheduler.advance_to(5.5)
    rig.transport.heartbeats = False  # the last heartbeat came at 5.0
    rig.scheduler.advance_to(8.5)
    assert rig.error_times(ErrorKind.WATCHDOG) == [8.0]
    assert any("heartbeat" in e.message for _, e in rig.errors)
    assert len(rig.transport.connections) == 2 and rig.client.ready  # reset, reconnected at once


def test_ping_watchdog_fires_exactly_max_ping_interval_after_the_last_pong() -> None:
    rig = Rig().start()
    rig.scheduler.advance_to(4.5)
    rig.transport.auto_pong = False  # the last pong answered the ping at 4.0
    rig.scheduler.advance_to(7.5)
    assert rig.error_times(ErrorKind.WATCHDOG) == [7.0]
    assert any("pong" in e.message for _, e in rig.errors)
    assert len(rig.transport.connections) == 2


def test_auth_loss_polls_rest_with_backoff_then_resets_and_resubscribes() -> None:
    rest = FakeRest()
    rig = Rig(rest).start()
    sub = rig.client.subscribe("md+265598", {"fields": ["31"]})
    rig.transport.receive(frames.smd(265598, last=1.0))
    rig.scheduler.advance_to(10.0)
    rest.authenticated = False
    rig.transport.receive(frames.sts(authenticated=False))
    assert rig.client.state.value is ConnectionState.UNAUTHENTICATED
    assert sub.status is SubscriptionStatus.PENDING
    rig.scheduler.advance_to(30.0)
    assert rest.polls == [11.0, 13.0, 17.0, 25.0]  # backoff 1, 2, 4, 8
    assert rig.sent("smd") == [(0.001, 1)]  # nothing re-sent while unauthenticated
    rest.authenticated = True  # silently: the socket says nothing
    rig.scheduler.advance_to(34.0)
    assert rest.polls[-1] == 33.0
    assert len(rig.transport.connections) == 2 and rig.client.ready
    assert rig.sent("smd") == [(0.001, 1), (33.0, 2)]
    rig.transport.receive(frames.smd(265598, last=1.1))
    assert sub.active
    assert [s for _, s in rig.states][-3:] == [
        ConnectionState.RECONNECTING,
        ConnectionState.OPEN,
        ConnectionState.AUTHENTICATED,
    ]


def test_an_unconfirmed_subscription_fails_loudly_then_is_retried_after_a_reconnect() -> None:
    rig = Rig().start()
    sub = rig.client.subscribe("sd+DU1234567", {}, wait=False)
    rig.scheduler.advance_to(10.0)
    assert [t for t, _ in rig.sent("ssd")] == [0.001, 2.001, 4.001]
    assert sub.status is SubscriptionStatus.FAILED and not sub
    assert rig.error_times(ErrorKind.SUBSCRIPTION_FAILED) == [6.001]
    rig.transport.drop()
    rig.scheduler.advance_to(20.0)
    assert [t for t, _ in rig.sent("ssd")][3:] == [11.0, 13.0, 15.0]  # retried on the new session
    assert rig.error_times(ErrorKind.SUBSCRIPTION_FAILED) == [6.001, 17.0]  # and reported again
    rig.transport.drop()
    rig.scheduler.advance_to(22.0)
    rig.transport.receive(frames.ssd("DU1234567", {"NetLiquidation": 1.0}))
    assert sub.active


def test_smd_is_renewed_every_interval_while_active() -> None:
    rig = Rig(md_renewal_interval=540.0, heartbeat_interval=10.0, max_ping_interval=20.0).start()
    rig.client.subscribe("md+265598", {"fields": ["31"]})
    other = rig.client.subscribe("md+8314", {"fields": ["31"]}, wait=False)  # never confirmed
    rig.transport.receive(frames.smd(265598, last=1.0))
    rig.scheduler.advance_to(1700.0)
    assert [t for t, _ in rig.sent("smd+265598")] == [0.001, 540.0, 1080.0, 1620.0]
    assert other.status is SubscriptionStatus.FAILED
    assert [t for t, _ in rig.sent("smd+8314")] == [0.001, 2.001, 4.001]  # a failed one is not renewed


def test_a_storm_of_drops_leaves_one_of_each_timer_and_subscription() -> None:
    rng = random.Random(7)
    rig = Rig(tic_interval=5.0, md_renewal_interval=7.0).start()
    channels = {"md+265598": {"fields": ["31"]}, "pl": {}, "tr": {}, "or": {}}
    subs = [rig.client.subscribe(ch, data) for ch, data in channels.items()]
    for _ in range(100):
        rig.scheduler.advance_by(rng.choice([0.0, 0.0005, 0.002, 0.3, 1.5]))
        rig.transport.drop()
    rig.scheduler.advance_by(1.0)  # first retry of the last drop
    current = rig.transport.current.id
    assert rig.client.ready
    rig.transport.receive(frames.smd(265598, last=1.0))
    rig.transport.receive(frames.str_())
    rig.transport.receive(frames.spl())
    assert all(s.active for s in subs)
    texts = rig.transport.texts(current)
    assert sorted(texts) == sorted(['smd+265598+{"fields": ["31"]}', "spl+{}", "str+{}", "sor+{}"])
    start = rig.now
    rig.scheduler.advance_by(70.0)
    texts = rig.transport.texts(current)
    assert len([t for t in texts if t == "tic"]) == 14  # one tic timer, not one per connection
    assert len([t for t in texts if t.startswith("smd")]) == 1 + 10  # one renewal timer
    assert rig.transport.current.id == current and rig.now == pytest.approx(start + 70.0)
    assert rig.client.subscriptions.keys() == channels.keys()
    # one live timer of each kind, whatever the storm left behind (the driver's table of timers)
    assert sorted(rig.client._driver._timers) == [
        "heartbeat_watch",
        "ping!",
        "pong_watch",
        "renew!",
        "tic!",
    ]
