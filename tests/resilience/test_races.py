"""Races between a reconnect and work still in flight from the connection before it."""

from __future__ import annotations

import threading
import time
from typing import Any

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState
from rxibkr.client.subscriptions import SubscriptionStatus
from rxibkr.io.rest import IbkrSession

from .harness import Rig, wait_until


class SlowLiveOrders(IbkrSession):
    """A gateway whose live-orders calls (the pre-flight of ``sor``) hold until ``release`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.started = 0
        self.calls = 0

    def live_orders(self, **kwargs: Any) -> dict[str, Any]:
        self.started += 1
        assert self.release.wait(10), "the test never released the pre-flight"
        try:
            return super().live_orders(**kwargs)
        finally:
            self.calls += 1


def test_a_reconnect_during_the_orders_preflight_sends_sor_once_on_the_new_connection() -> None:
    with Rig(start=False) as rig:
        rest = SlowLiveOrders(rig.sim.rest_url, cacert=rig.sim.cacert or False)
        client = IbkrWsClient(rest, **rig.client_options)
        try:
            assert client.start()
            orders = client.subscribe("or", {}, wait=False)
            assert wait_until(lambda: rest.started >= 1, 3.0)  # pre-flight running on connection 1
            first = rig.sim.total_connections
            rig.sim.drop_connections()
            assert wait_until(lambda: client.ready and rig.sim.total_connections > first, 3.0)
            rest.release.set()
            # both pre-flights (the stale one of connection 1, the one of connection 2) complete
            assert wait_until(lambda: rest.calls == 4, 5.0)
            assert wait_until(lambda: orders.status is SubscriptionStatus.ACTIVE, 3.0)
            # a barrier instead of a pause: a confirmed subscription made after every pre-flight
            # answer went through the same control loop, so a stray sor would have been sent by now
            assert client.subscribe("pl", {})
            sent = [(cid, text) for cid, text in rig.sim.received_frames() if text.startswith("sor")]
            assert sent == [(rig.sim.total_connections, "sor+{}")]
            assert rig.sim.active_subscriptions()[rig.sim.total_connections] == {"sor": [""], "spl": [""]}
        finally:
            client.shutdown()


def test_start_while_the_gateway_is_unauthenticated_waits_for_rest_then_subscribes() -> None:
    with Rig(start=False) as rig:
        rig.sim.set_authenticated(False)  # the gateway greets with sts authenticated:false only
        client = IbkrWsClient(**{**rig.client_options, "max_connection_attempts": 3})
        states: list[ConnectionState] = []
        client.state.subscribe(states.append)
        try:
            sub = client.subscribe("md+265598", {"fields": ["31"]}, wait=False)
            restored: list[float] = []

            def log_in() -> None:  # the user logs in once the client is waiting for it
                if wait_until(lambda: ConnectionState.UNAUTHENTICATED in states, 10.0):
                    rig.sim.set_authenticated(True)
                    restored.append(time.monotonic())

            login = threading.Thread(target=log_in, daemon=True)
            login.start()
            assert client.start() is True  # within timeout x attempts, once REST says authenticated
            done = time.monotonic()
            login.join(10)
            assert restored and done - restored[0] < 1.5  # REST polled promptly after the login
            assert wait_until(lambda: sub.active, 3.0)
            assert ConnectionState.UNAUTHENTICATED in states
            assert states[-1] is ConnectionState.AUTHENTICATED
        finally:
            client.shutdown()
