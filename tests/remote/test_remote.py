"""serve and RemoteClient in one process (faster to set up), against the simulator and a real Redis:
order and loss, Redis faults, reference counts across consumers, the typed streams unchanged."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_py

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.protocol import IbkrWsKey, Message
from rxibkr.remote import MessageGap, RemoteClient, Server, merge_data
from rxibkr.streams.models import MarketDataUpdate, OrderUpdate
from tests.remote.harness import wait_until
from tests.remote.redis_server import RedisServer

sim_module = pytest.importorskip("rxibkr.sim")

TTL = 1.0
AAPL = 265598


@pytest.fixture
def sim() -> Iterator[Any]:
    with sim_module.GatewaySimulator(
        heartbeat_interval=0.5, md_interval=0.02, greeting_delay=0.01, number_frames=True
    ) as s:
        yield s


@pytest.fixture
def gateway(sim: Any) -> Iterator[IbkrWsClient]:
    client = IbkrWsClient(
        url=sim.ws_url, cacert=sim.cacert, account_id=sim.account, timeout=3, reconnect_backoff=(0.05, 0.5)
    )
    assert client.start()
    yield client
    client.shutdown()


@pytest.fixture
def server(redis_server: RedisServer, gateway: IbkrWsClient) -> Iterator[Server]:
    with Server(gateway, redis_server.url, lease_ttl=TTL) as s:
        yield s


@pytest.fixture
def consumers(redis_server: RedisServer) -> Iterator[list[RemoteClient]]:
    made: list[RemoteClient] = []
    yield made
    for client in made:
        client.shutdown()


def consumer(consumers: list[RemoteClient], url: str, **kwargs: Any) -> RemoteClient:
    kwargs.setdefault("lease_ttl", TTL)
    client = RemoteClient(url, **kwargs)
    consumers.append(client)
    return client


def smd_targets(sim: Any) -> list[str]:
    return sorted(t for topics in sim.active_subscriptions().values() for t in topics.get("smd", []))


class Recorder:
    """Market-data messages (their ``_seq``: the simulator numbers every frame it sends) and errors."""

    def __init__(self, client: RemoteClient, conid: int = AAPL) -> None:
        self.seqs: list[int] = []
        self.errors: list[ErrorEvent] = []
        self.lock = threading.Lock()
        client.errors.subscribe(self.errors.append)
        client.observe(IbkrWsKey.MARKET_DATA).subscribe(self.on_message)
        self.handle = client.subscribe(f"md+{conid}", {"fields": ["31", "84", "86"]}, wait=False)

    def on_message(self, message: Message) -> None:
        seq = (message.data or {}).get("_seq")
        if isinstance(seq, int):
            with self.lock:
                self.seqs.append(seq)

    def gaps(self) -> list[MessageGap]:
        return [e.payload for e in self.errors if isinstance(e.payload, MessageGap)]


def test_merge_data_unions_what_consumers_ask_for() -> None:
    assert merge_data("md+1", [{"fields": ["31"]}, {"fields": ["31", "84"]}]) == {"fields": ["31", "84"]}
    assert merge_data("md+1", [{"fields": ["31"]}, {"fields": ["31"]}]) == {"fields": ["31"]}
    assert merge_data("tr", [{"days": 2}, {"days": 5, "realtimeUpdatesOnly": True}]) == {"days": 5}
    assert merge_data("tr", [{"realtimeUpdatesOnly": True}, {"realtimeUpdatesOnly": True, "days": 1}]) == {
        "realtimeUpdatesOnly": True,
        "days": 1,
    }
    assert merge_data("sd+A", [{"keys": ["a"]}, {"keys": ["b"], "fields": ["x"]}]) == {"keys": ["a", "b"]}


def test_fields_are_unioned_and_reference_counted_across_consumers(
    redis_server: RedisServer, sim: Any, server: Server, consumers: list[RemoteClient]
) -> None:
    a = consumer(consumers, redis_server.url)
    b = consumer(consumers, redis_server.url)
    got_a: list[MarketDataUpdate] = []
    got_b: list[MarketDataUpdate] = []
    da = a.market_data(AAPL, ["31"]).subscribe(got_a.append)
    db = b.market_data(AAPL, ["84", "86"]).subscribe(got_b.append)
    assert wait_until(lambda: server.channels() == {f"md+{AAPL}": 2}, 5)
    fields = '{"fields": ["31", "84", "86"]}'
    assert wait_until(lambda: any(t == f"smd+{AAPL}+{fields}" for _c, t in sim.received_frames()), 5)
    assert wait_until(lambda: len(got_a) > 3 and len(got_b) > 3, 10)
    da.dispose()
    assert wait_until(lambda: server.channels() == {f"md+{AAPL}": 1}, 5)
    assert smd_targets(sim) == [str(AAPL)]
    db.dispose()
    assert wait_until(lambda: smd_targets(sim) == [], 5)  # released at once, not after the TTL
    assert server.channels() == {}


def test_in_order_exactly_once_and_resume_after_the_connection_drops(
    redis_server: RedisServer, sim: Any, server: Server, consumers: list[RemoteClient]
) -> None:
    steady = Recorder(consumer(consumers, redis_server.url))
    victim_client = consumer(consumers, redis_server.url)
    victim = Recorder(victim_client)
    assert wait_until(lambda: len(steady.seqs) > 20 and len(victim.seqs) > 20, 10)
    admin = redis_py.Redis.from_url(redis_server.url)
    killed = 0
    for entry in admin.client_list():
        if entry.get("name", "").endswith(f"{victim_client.id}-reader"):
            admin.client_kill_filter(_id=entry["id"])
            killed += 1
    assert killed >= 1  # the blocking XREAD connection among them
    mark = len(steady.seqs)
    assert wait_until(lambda: len(steady.seqs) > mark + 30, 10)
    assert wait_until(lambda: victim.seqs[-1:] == steady.seqs[-1:] and len(victim.seqs) > mark + 30, 10)
    with steady.lock, victim.lock:
        start = victim.seqs[0]
        steady_tail = [s for s in steady.seqs if s >= start]
        n = min(len(steady_tail), len(victim.seqs))
        assert victim.seqs[:n] == steady_tail[:n]  # no gap, no duplicate, in order
        assert victim.seqs == sorted(set(victim.seqs))
    assert victim.gaps() == [] and steady.gaps() == []


def test_a_trimmed_stream_is_reported_as_a_gap(
    redis_server: RedisServer, sim: Any, gateway: IbkrWsClient, consumers: list[RemoteClient]
) -> None:
    redis_py.Redis.from_url(redis_server.url).config_set("stream-node-max-entries", 5)
    with Server(gateway, redis_server.url, lease_ttl=TTL, maxlen=5):
        client = consumer(consumers, redis_server.url)
        release = threading.Event()
        blocked = threading.Event()
        seqs: list[int] = []
        gaps: list[MessageGap] = []
        client.errors.subscribe(
            lambda e: gaps.append(e.payload) if isinstance(e.payload, MessageGap) else None
        )

        def slow(message: Message) -> None:
            seqs.append((message.data or {}).get("_seq", 0))
            if len(seqs) == 3:
                blocked.set()
                release.wait(10)  # the reader stalls while serve goes on publishing

        client.observe(IbkrWsKey.MARKET_DATA).subscribe(slow)
        client.subscribe(f"md+{AAPL}", {"fields": ["31"]}, wait=False)
        assert blocked.wait(10)
        before = gateway.observe(IbkrWsKey.MARKET_DATA)
        count = [0]
        tap = before.subscribe(lambda _m: count.__setitem__(0, count[0] + 1))
        assert wait_until(lambda: count[0] > 40, 10)
        tap.dispose()
        release.set()
        assert wait_until(lambda: sum(g.count for g in gaps) > 0, 10)
        assert wait_until(lambda: len(seqs) > 10, 10)
        assert seqs == sorted(set(seqs))  # what did arrive is in order, once


def test_redis_restart_consumers_and_serve_reconnect_and_restore(
    redis_server: RedisServer, sim: Any, server: Server, consumers: list[RemoteClient]
) -> None:
    client = consumer(consumers, redis_server.url)
    rec = Recorder(client)
    states: list[ConnectionState] = []
    client.state.subscribe(states.append)
    assert wait_until(lambda: len(rec.seqs) > 10, 10)
    redis_server.restart()  # every key is lost: leases, streams, snapshots
    assert wait_until(lambda: ConnectionState.RECONNECTING in states, 5)
    mark = len(rec.seqs)
    assert wait_until(lambda: len(rec.seqs) > mark + 20, 15), (states, rec.errors)
    assert states[-1] is ConnectionState.AUTHENTICATED
    # the lease was written again and the gateway subscription kept: still one smd
    assert wait_until(lambda: server.channels() == {f"md+{AAPL}": 1}, 5)
    assert smd_targets(sim) == [str(AAPL)]
    with rec.lock:
        assert rec.seqs == sorted(set(rec.seqs))  # nothing duplicated
    # a late joiner after the restart still gets a full snapshot (serve wrote it again)
    late = consumer(consumers, redis_server.url)
    first: list[MarketDataUpdate] = []
    late.market_data(AAPL, ["31", "84", "86"]).subscribe(first.append)
    assert wait_until(lambda: len(first) > 0, 5)
    assert {"31", "84", "86"} <= set(first[0].data)


def test_typed_streams_run_unchanged_over_a_remote_client(
    redis_server: RedisServer, sim: Any, server: Server, consumers: list[RemoteClient]
) -> None:
    client = consumer(consumers, redis_server.url)
    assert wait_until(lambda: client.account_id == sim.account, 5)
    orders: list[OrderUpdate] = []
    client.orders().subscribe(orders.append)
    assert wait_until(lambda: "or" in server.channels(), 5)
    assert wait_until(lambda: client.subscriptions["or"].active, 5)
    order_id = sim.place_order(conid=AAPL, side="BUY", quantity=10, order_type="LMT", price=1.0)
    assert wait_until(lambda: any(str(o.order_id) == str(order_id) for o in orders), 10), orders
    # a second consumer joining later gets the orders retained so far
    later = consumer(consumers, redis_server.url)
    replayed: list[OrderUpdate] = []
    later.orders().subscribe(replayed.append)
    assert wait_until(lambda: any(str(o.order_id) == str(order_id) for o in replayed), 10)


def test_errors_channels_and_a_clean_shutdown_releases_at_once(
    redis_server: RedisServer, sim: Any, server: Server, consumers: list[RemoteClient]
) -> None:
    client = consumer(consumers, redis_server.url, lease_ttl=60.0)  # expiry cannot be what releases
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)
    messages: list[Message] = []
    client.channel(f"md+{AAPL}", {"fields": ["31"]}).subscribe(messages.append)
    assert wait_until(lambda: len(messages) > 3, 10)
    assert {m.topic for m in messages} == {f"smd+{AAPL}"}
    assert client.subscriptions[f"md+{AAPL}"].active
    sim.send_raw(b"not json at all")  # the gateway client reports it; serve relays it
    assert wait_until(lambda: any(e.kind is ErrorKind.MALFORMED_FRAME for e in errors), 5), errors
    client.shutdown()
    assert wait_until(lambda: server.channels() == {} and smd_targets(sim) == [], 5)
    assert client.state.value is ConnectionState.STOPPED


def test_a_request_written_while_serve_starts_is_served(
    redis_server: RedisServer, sim: Any, gateway: IbkrWsClient, consumers: list[RemoteClient]
) -> None:
    """A consumer's lease and request land after serve started but before its requests reader looked
    at the stream (a loaded machine): serve must still read that lease. A long TTL: no renewal helps."""
    go = threading.Event()
    server = Server(gateway, redis_server.url, lease_ttl=60.0)
    start_reader = server._start_requests_reader

    def gated() -> None:  # the reader thread is late, as on a starved machine
        threading.Thread(target=lambda: (go.wait(10), start_reader()), daemon=True).start()

    server._start_requests_reader = gated  # type: ignore[method-assign]
    with server:
        client = consumer(consumers, redis_server.url, lease_ttl=60.0)
        messages: list[Message] = []
        client.channel(f"md+{AAPL}", {"fields": ["31"]}).subscribe(messages.append)
        redis = redis_py.Redis.from_url(redis_server.url)
        assert wait_until(lambda: redis.hexists(client.layout.lease(client.id), f"md+{AAPL}"), 10)
        server._start_requests_reader = start_reader  # type: ignore[method-assign]
        go.set()
        assert wait_until(lambda: server.channels() == {f"md+{AAPL}": 1}, 10)
        assert wait_until(lambda: len(messages) > 3, 10)


def test_subscribing_while_redis_is_away_takes_effect_when_it_is_back(
    redis_server: RedisServer, sim: Any, server: Server, consumers: list[RemoteClient]
) -> None:
    client = consumer(consumers, redis_server.url)
    states: list[ConnectionState] = []
    client.state.subscribe(states.append)
    assert wait_until(lambda: client.ready, 5)
    redis_server.stop()
    assert wait_until(lambda: states[-1] is ConnectionState.RECONNECTING, 10), states
    got: list[MarketDataUpdate] = []
    client.market_data(AAPL).subscribe(got.append)
    redis_server.start()
    assert wait_until(lambda: len(got) > 3, 15), (states, got)
    assert wait_until(lambda: client.ready, 5)
    assert smd_targets(sim) == [str(AAPL)]


def test_a_consumer_started_before_serve_learns_the_account(
    redis_server: RedisServer, gateway: IbkrWsClient, consumers: list[RemoteClient]
) -> None:
    client = consumer(consumers, redis_server.url)  # reads Redis first: no serve, no account yet
    redis = redis_py.Redis.from_url(redis_server.url)
    # its first lease is written once it has read what Redis holds (its initial read)
    assert wait_until(lambda: redis.sismember(client.layout.consumers, client.id), 10)
    assert client.account_id is None
    with Server(gateway, redis_server.url, lease_ttl=TTL):
        assert wait_until(lambda: client.account_id == gateway.account_id, 10)
