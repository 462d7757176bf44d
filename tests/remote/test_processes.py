"""The issue's acceptance with real processes: the simulator as gateway, ``rxibkr serve`` in its own
process, consumer processes, a real redis-server. Short lease TTLs keep every wait short."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.remote.harness import Proc, start_consumer, start_serve, wait_until
from tests.remote.redis_server import RedisServer

sim_module = pytest.importorskip("rxibkr.sim")

TTL = 2.0  # short, yet long enough that a loaded CI machine does not let a live lease expire
AAPL = 265598


@pytest.fixture
def sim() -> Iterator[Any]:
    with sim_module.GatewaySimulator(heartbeat_interval=0.5, md_interval=0.05, greeting_delay=0.01) as s:
        yield s


def smd_targets(sim: Any) -> list[str]:
    """The conids with an ``smd`` subscription at the gateway, over every connection."""
    return [t for topics in sim.active_subscriptions().values() for t in topics.get("smd", [])]


def md_count(proc: Proc) -> int:
    return len(proc.events("md"))


def test_two_consumer_processes_share_one_gateway_subscription(redis_server: RedisServer, sim: Any) -> None:
    serve = start_serve(redis_server.url, sim, TTL)
    a = start_consumer(redis_server.url, TTL, AAPL)
    b = start_consumer(redis_server.url, TTL, AAPL)
    try:
        assert wait_until(lambda: md_count(a) >= 5 and md_count(b) >= 5, 20), a.describe() + b.describe()
        assert smd_targets(sim) == [str(AAPL)]  # one smd for both consumers
        subscribes = [t for _c, t in sim.received_frames() if t.startswith(f"smd+{AAPL}")]
        assert len(subscribes) == 1, subscribes
        # every quote carries the full set of fields known so far at first (snapshot or first frame)
        assert a.events("md")[0]["fields"] > 5 and b.events("md")[0]["fields"] > 5

        a.kill()  # crashed: no goodbye, its lease expires
        seen = md_count(b)
        assert wait_until(lambda: md_count(b) >= seen + 10, 10), b.describe()
        assert smd_targets(sim) == [str(AAPL)]

        b.kill()
        assert wait_until(lambda: smd_targets(sim) == [], TTL * 4), sim.active_subscriptions()
        assert any(t == f"umd+{AAPL}+{{}}" or t.startswith(f"umd+{AAPL}") for _c, t in sim.received_frames())
    finally:
        for proc in (a, b):
            proc.kill()
        assert serve.terminate() == 0, serve.describe()


def test_late_joiner_process_gets_the_full_snapshot_at_once(redis_server: RedisServer, sim: Any) -> None:
    serve = start_serve(redis_server.url, sim, TTL)
    first = start_consumer(redis_server.url, TTL, AAPL)
    late: Proc | None = None
    try:
        assert wait_until(lambda: md_count(first) >= 20, 20), first.describe()
        # the gateway sends every field once, then only the changes
        deltas = [e["fields"] for e in first.events("md")[5:]]
        assert min(deltas) < first.events("md")[0]["fields"]
        late = start_consumer(redis_server.url, TTL, AAPL)
        assert wait_until(lambda: md_count(late) >= 1, 20), late.describe()
        assert late.events("md")[0]["fields"] >= first.events("md")[0]["fields"]
        assert len([t for _c, t in sim.received_frames() if t.startswith(f"smd+{AAPL}")]) == 1
    finally:
        first.kill()
        if late is not None:
            late.kill()
        assert serve.terminate() == 0, serve.describe()


def test_serve_killed_and_started_again_restores_subscriptions_from_leases(
    redis_server: RedisServer, sim: Any
) -> None:
    serve = start_serve(redis_server.url, sim, TTL)
    consumer = start_consumer(redis_server.url, TTL, AAPL)
    try:
        assert wait_until(lambda: md_count(consumer) >= 5, 20), consumer.describe()
        serve.kill()
        # the consumer sees serve go (its alive key expires) ...
        assert wait_until(lambda: consumer.events("state")[-1]["v"] == "reconnecting", TTL * 5), (
            consumer.describe()
        )
        assert wait_until(lambda: smd_targets(sim) == [], 5)  # the gateway dropped the dead socket's smd
        seen = md_count(consumer)
        serve = start_serve(redis_server.url, sim, TTL)
        # ... and come back; its subscription is restored from its lease, quotes flow again
        assert wait_until(lambda: consumer.events("state")[-1]["v"] == "authenticated", 20), (
            consumer.describe()
        )
        assert wait_until(lambda: md_count(consumer) >= seen + 5, 20), consumer.describe()
        assert smd_targets(sim) == [str(AAPL)]
        assert not consumer.events("error"), consumer.events("error")  # a new epoch is no gap
    finally:
        consumer.kill()
        assert serve.terminate() == 0, serve.describe()


def test_sigterm_releases_every_gateway_subscription(redis_server: RedisServer, sim: Any) -> None:
    serve = start_serve(redis_server.url, sim, TTL)
    consumer = start_consumer(redis_server.url, TTL, AAPL, 8314)
    try:
        assert wait_until(lambda: len({e["conid"] for e in consumer.events("md")}) == 2, 20), (
            consumer.describe()
        )
        assert sorted(smd_targets(sim)) == ["265598", "8314"]
        assert serve.terminate() == 0, serve.describe()
        assert smd_targets(sim) == []
        assert wait_until(lambda: consumer.events("state")[-1]["v"] == "stopped", 5), consumer.describe()
    finally:
        consumer.kill()
        serve.kill()
