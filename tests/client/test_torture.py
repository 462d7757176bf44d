"""A concurrency torture test of the client over real sockets (issue 12's acceptance).

Eight threads randomly subscribe, dispose, unsubscribe and modify (the seed API) and open and
dispose typed streams, while observers raise or call back into the client (subscribe, dispose,
hard_reset) from the reader, REST and control threads, the simulator drops every connection six
times and pauses its heartbeats once long enough for the watchdog to reset the connection.

Checked:

* no deadlock: every thread and every blocking call is joined with a bound; a timeout dumps the
  stacks of all threads and fails;
* no observer is ever called twice at once (``OverlapProbe`` on every observer);
* after quiescence, on a fresh connection, the gateway holds exactly the subscriptions the client
  still wants (``client.subscriptions``), each sent once on that connection and nothing else;
* no thread of the client is left after ``shutdown()``.

* the gateway serves every market-data conid with at least the union of the fields of its live
  requesters (typed streams and ``subscribe()`` handles; ``md`` channels are only disposed, never
  ``unsubscribe()``d or modified, whose seed semantics would remove every requester at once).

Random choices come from ``random.Random`` with fixed seeds (per worker thread); the interleaving
of threads is the operating system's, so each run differs a little, but every check holds for
any interleaving. About 12 s (10 s of storm).

Before the client core's rewrite (fb8d23d) it failed every run, on two findings of issue 12: the
slow observer of ``observe(MARKET_DATA)`` was called by the new connection's reader while the old
one was still inside it (2 calls at once), and every ``md`` conid was served with only the fields of
whoever subscribed last (e.g. ``['84']`` where the live requesters wanted 7 fields). With slow
observers and differing field lists taken out, the rest (gateway == client after quiescence, each
sent once on the final connection, no thread left) passed, so those checks are not false alarms.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.client.subscriptions import Subscription
from rxibkr.protocol import IbkrWsKey
from rxibkr.sim import GatewaySimulator

from .support import (
    Call,
    OverlapProbe,
    assert_no_thread_left,
    bounded,
    dump_threads,
    gateway_channels,
    gateway_md_fields,
    quietly_bounded,
    wait_until,
)

SEED = 20260512
WORKERS = 8
RUN_SECONDS = 10.0
DROPS_AT = (1.0, 2.2, 5.2, 6.4, 7.6, 8.8)  # seconds into the run: six connection drops
HEARTBEAT_PAUSE_AT, HEARTBEAT_PAUSE = 3.4, 1.2  # > max_ping_interval: one watchdog reset
CONIDS = (265598, 8314, 272093, 3691937, 756733, 4815747)
FIELD_POOL = ("31", "84", "86", "85", "88", "7059", "87")
HARD_RESETS_BY_OBSERVERS = 2
SLOW_CALLS = 2  # observer calls that take longer than max_ping_interval: the watchdog resets
SLOW_SECONDS = 0.8


@dataclass
class Shared:
    """What the workers and the observers share (every list append is atomic in CPython)."""

    client: IbkrWsClient
    account: str
    probes: list[OverlapProbe] = field(default_factory=list)
    observer_handles: list[Subscription] = field(default_factory=list)
    hard_resets: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    quiet: threading.Event = field(default_factory=threading.Event)  # observers stop calling back
    slow_calls: list[float] = field(default_factory=list)
    #: live market-data requesters: (handle or disposable, conid, fields), for the union check
    md_requesters: list[tuple[Any, int, tuple[str, ...]]] = field(default_factory=list)
    disposed: set[int] = field(default_factory=set)  # id() of disposed handles and disposables

    def dispose(self, item: Any) -> None:
        with self.lock:
            self.disposed.add(id(item))
        item.dispose()

    def wanted_md_fields(self) -> dict[str, set[str]]:
        """Per md channel, the union of the fields of its live requesters (handles and streams)."""
        out: dict[str, set[str]] = {}
        for item, conid, fields in self.md_requesters:
            if id(item) not in self.disposed:
                out.setdefault(f"md+{conid}", set()).update(fields)
        return out

    def channels(self) -> list[tuple[str, dict[str, Any] | None]]:
        acct = self.account
        return [
            *((f"md+{c}", None) for c in CONIDS),
            ("pl", {}),
            ("tr", {}),
            (f"sd+{acct}", {}),
            (f"ld+{acct}", {}),
            ("or", {}),
        ]

    def count(self, op: str) -> None:
        with self.lock:
            self.ops[op] += 1


def md_data(rng: random.Random) -> dict[str, Any]:
    return {"fields": rng.sample(FIELD_POOL, rng.randint(1, 3))}


def make_observer(shared: Shared, rng: random.Random, where: str) -> Callable[[Any], None]:
    """An observer that counts, raises now and then, or calls back into the client (within a budget)."""
    kind = rng.choice(("plain", "raises", "calls-back", "calls-back", "slow"))
    probe = OverlapProbe(f"{where} ({kind})")
    shared.probes.append(probe)
    orng = random.Random(rng.random())
    budget = [6]
    client = shared.client

    def on_next(_value: Any) -> None:
        if kind == "raises" and probe.calls % 7 == 0:
            raise RuntimeError(f"observer of {where} raises on purpose")
        if kind == "slow" and probe.calls > 3 and not shared.quiet.is_set():
            with shared.lock:
                slow = len(shared.slow_calls) < SLOW_CALLS
                if slow:
                    shared.slow_calls.append(time.monotonic())
            if slow:
                time.sleep(SLOW_SECONDS)  # the observer's own slow work, not synchronisation
            return
        if kind != "calls-back" or budget[0] <= 0 or shared.quiet.is_set() or orng.random() > 0.2:
            return
        budget[0] -= 1
        action = orng.random()
        try:
            if action < 0.45:
                channel, data = orng.choice(shared.channels())
                if channel.startswith("md+"):
                    data = md_data(orng)
                handle = client.subscribe(channel, data)
                shared.observer_handles.append(handle)
                if channel.startswith("md+") and data is not None:
                    shared.md_requesters.append((handle, int(channel[3:]), tuple(data["fields"])))
                shared.count("observer subscribe")
            elif action < 0.9:
                if shared.observer_handles:
                    shared.dispose(shared.observer_handles.pop(orng.randrange(len(shared.observer_handles))))
                    shared.count("observer dispose")
            elif len(shared.hard_resets) < HARD_RESETS_BY_OBSERVERS:
                shared.hard_resets.append(time.monotonic())
                client.hard_reset(restart=True)
                shared.count("observer hard_reset")
        except (IndexError, KeyError):
            pass  # another thread took the handle first
        except Exception as exc:
            shared.failures.append(f"observer of {where}: {exc!r}")
            raise

    return probe.wrap(on_next)


def worker(shared: Shared, index: int, stop: threading.Event) -> None:
    rng = random.Random(SEED * 100 + index)
    client = shared.client
    handles: list[Subscription] = []
    typed: list[Any] = []
    raw: list[Any] = []
    while not stop.is_set():
        op = rng.random()
        channel, data = rng.choice(shared.channels())
        if channel.startswith("md+"):
            data = md_data(rng)
        try:
            if op < 0.28:
                handle = client.subscribe(channel, data, wait=rng.random() < 0.3)
                handles.append(handle)
                if channel.startswith("md+") and data is not None:
                    shared.md_requesters.append((handle, int(channel[3:]), tuple(data["fields"])))
                shared.count("subscribe")
            elif op < 0.50:
                if handles:
                    shared.dispose(handles.pop(rng.randrange(len(handles))))
                    shared.count("dispose")
            elif op < 0.56:
                if not channel.startswith("md+"):  # md is shared with typed streams: dispose only
                    client.unsubscribe(channel, data)
                    shared.count("unsubscribe")
            elif op < 0.64:
                if channel.startswith("md+"):
                    shared.count("modify md skipped")
                    continue
                try:
                    client.modify_subscription(channel, data=data)
                    shared.count("modify")
                except KeyError:
                    shared.count("modify unknown")
            elif op < 0.78:
                conid = rng.choice(CONIDS)
                fields = rng.sample(FIELD_POOL, rng.randint(1, 3))
                stream = client.market_data(conid, fields)
                disposable = stream.subscribe(make_observer(shared, rng, f"market_data({conid})"))
                typed.append(disposable)
                shared.md_requesters.append((disposable, conid, tuple(fields)))
                shared.count("typed subscribe")
            elif op < 0.80:
                typed.append(client.orders().subscribe(make_observer(shared, rng, "orders()")))
                shared.count("typed orders")
            elif op < 0.92:
                if typed:
                    shared.dispose(typed.pop(rng.randrange(len(typed))))
                    shared.count("typed dispose")
            elif op < 0.96:
                key = rng.choice((IbkrWsKey.MARKET_DATA, IbkrWsKey.PNL, IbkrWsKey.ACCOUNT_LEDGER))
                raw.append(client.observe(key).subscribe(make_observer(shared, rng, f"observe({key.name})")))
                shared.count("observe")
            elif raw:
                raw.pop(rng.randrange(len(raw))).dispose()
                shared.count("observe dispose")
        except Exception as exc:  # a client call must not fail (TimeoutError is a blocked control loop)
            if "raises on purpose" not in str(exc):  # a late observer's replay may raise into subscribe()
                shared.failures.append(f"worker {index}: {exc!r}")
        stop.wait(rng.uniform(0.002, 0.03))  # pacing


def faults(sim: GatewaySimulator, began: float, stop: threading.Event, log: list[str]) -> None:
    plan: list[tuple[float, str]] = [(t, "drop") for t in DROPS_AT] + [(HEARTBEAT_PAUSE_AT, "pause")]
    for at, what in sorted(plan):
        if stop.wait(max(0.0, began + at - time.monotonic())):
            return
        if what == "drop":
            wait_until(lambda: sim.connection_count > 0, 2.0)  # a reconnect may be under way
            log.append(f"{time.monotonic() - began:.1f}s drop ({sim.drop_connections()} connections)")
        else:
            sim.pause_heartbeats(HEARTBEAT_PAUSE)
            log.append(f"{time.monotonic() - began:.1f}s heartbeats paused for {HEARTBEAT_PAUSE} s")


def order_flow(sim: GatewaySimulator, stop: threading.Event) -> None:
    """Orders come and go (sor frames; the orders streams' REST snapshots have something in them)."""
    rng = random.Random(SEED + 7)
    working: list[int] = []
    while not stop.wait(rng.uniform(0.1, 0.3)):
        working.append(sim.place_order(rng.choice(CONIDS), "BUY", rng.randint(1, 5), "LMT", price=1.0))
        if len(working) > 3:
            sim.cancel_order(working.pop(0))


def subscribe_commands(sim: GatewaySimulator, connection: int) -> Counter[str]:
    """The client-side channel of every subscribe/unsubscribe command on one connection."""
    names = {"smd": "md", "sor": "or", "str": "tr", "spl": "pl", "ssd": "sd", "sld": "ld", "smh": "mh"}
    out: Counter[str] = Counter()
    for cid, text in sim.received_frames(dropped=False):
        if cid != connection:
            continue
        head = text.split("+", 2)
        topic = head[0].strip("{}")
        if topic in names:
            target = head[1] if len(head) > 1 and not head[1].startswith("{") else ""
            out[f"{names[topic]}+{target}" if target else names[topic]] += 1
        elif topic[:1] == "u" and topic[1:] in {"md", "or", "tr", "pl", "sd", "ld", "mh"}:
            out["unsubscribe " + text] += 1
    return out


def quiescent_problems(
    client: IbkrWsClient, sim: GatewaySimulator, shared: Shared
) -> tuple[list[str], int | None]:
    """Drop the connection, let the client reconnect and check what the new connection carries.

    Returns the problems and the connection checked."""
    problems: list[str] = []
    wanted: set[str] = set()
    if not wait_until(lambda: client.ready, 5.0):
        return [f"not ready after the run: {client.state.value}"], None
    last = sim.total_connections
    sim.drop_connections()
    if not wait_until(lambda: sim.total_connections > last and client.ready, 5.0):
        return [f"no reconnect after the final drop: {client.state.value}"], None

    def settled() -> bool:
        nonlocal wanted
        wanted = set(client.subscriptions)
        held = gateway_channels(sim)
        return bool(held) and held.get(max(held), set()) == wanted

    if not wait_until(settled, 5.0):
        held = gateway_channels(sim)
        newest = held.get(max(held), set()) if held else set()
        problems.append(
            f"the gateway holds {sorted(newest)}, the client wants {sorted(wanted)}: "
            f"missing {sorted(wanted - newest)}, extra {sorted(newest - wanted)}"
        )
    connection = max(cid for cid, _ in sim.received_frames())
    sent = subscribe_commands(sim, connection)
    if sent != Counter(dict.fromkeys(wanted, 1)):
        frames = [f.text for f in sim.received_log() if f.connection_id == connection]
        problems.append(
            f"on the final connection {dict(sent)}, wanted once each {sorted(wanted)}; frames {frames[:40]}"
        )
    md_wanted = shared.wanted_md_fields()
    md_client = {c for c in wanted if c.startswith("md+")}
    if md_client != set(md_wanted):
        problems.append(
            f"md channels the client wants {sorted(md_client)}, "
            f"md channels with live requesters {sorted(md_wanted)}"
        )
    for channel, fields in sorted(md_wanted.items()):
        held_fields = gateway_md_fields(sim, int(channel[3:]))
        if not fields <= held_fields:
            problems.append(
                f"{channel}: the gateway serves fields {sorted(held_fields)}, the live requesters "
                f"want {sorted(fields)}"
            )
    return problems, connection


def test_torture() -> None:
    sim = GatewaySimulator(
        heartbeat_interval=0.1, md_interval=0.05, greeting_delay=0.01, pnl_interval=0.1, ledger_interval=0.3
    ).start()
    before = threading.enumerate()
    client = IbkrWsClient(
        url=sim.ws_url,
        cacert=sim.cacert or False,
        account_id=sim.account,
        timeout=2.0,
        ping_interval=0.1,
        max_ping_interval=0.5,
        subscription_timeout=1.0,
        subscription_retries=3,
        reconnect_backoff=(0.05, 0.2),
        tic_interval=None,
        tickle_interval=None,
        md_renewal_interval=None,  # no renewals: every smd on the final connection is a (re)subscribe
    )
    shut_down = False
    try:
        errors: list[ErrorEvent] = []
        client.errors.subscribe(errors.append)
        shared = Shared(client, sim.account)
        rng = random.Random(SEED)
        # a state observer on the control thread that subscribes back on every AUTHENTICATED
        state_probe = OverlapProbe("state observer")
        shared.probes.append(state_probe)

        def on_state(state: ConnectionState) -> None:
            if (
                state is ConnectionState.AUTHENTICATED
                and len(shared.observer_handles) < 40
                and not shared.quiet.is_set()
            ):
                try:
                    shared.observer_handles.append(client.subscribe("pl", {}))
                except Exception as exc:
                    shared.failures.append(f"state observer: {exc!r}")

        client.state.subscribe(state_probe.wrap(on_state))
        client.observe(IbkrWsKey.MARKET_DATA).subscribe(make_observer(shared, rng, "observe(MARKET_DATA)"))
        for conid in CONIDS[:2]:
            sim.place_order(conid, "BUY", 1, "LMT", price=1.0)  # resting: in every REST snapshot
        assert bounded(client.start, 6.0, "start()") is True

        stop = threading.Event()
        began = time.monotonic()
        fault_log: list[str] = []
        threads = [
            threading.Thread(target=worker, args=(shared, i, stop), name=f"test-worker-{i}", daemon=True)
            for i in range(WORKERS)
        ]
        fault_thread = threading.Thread(
            target=faults, args=(sim, began, stop, fault_log), name="test-faults", daemon=True
        )
        threads.append(threading.Thread(target=order_flow, args=(sim, stop), name="test-orders", daemon=True))
        for t in (*threads, fault_thread):
            t.start()
        stop.wait(RUN_SECONDS)
        stop.set()
        shared.quiet.set()
        deadline = time.monotonic() + 15.0
        for t in (*threads, fault_thread):
            t.join(max(0.0, deadline - time.monotonic()))
        blocked = [t.name for t in (*threads, fault_thread) if t.is_alive()]
        if blocked:
            dump_threads(f"threads blocked after the run: {blocked}")
            raise AssertionError(f"deadlock: {blocked} still running 15 s after the stop (stacks dumped)")
        sim.resume_heartbeats()
        ran = time.monotonic() - began

        problems: list[str] = [f"client call failed: {f}" for f in shared.failures[:10]]
        drops = sum(1 for line in fault_log if "drop (0 " not in line and "drop" in line)
        if drops < 5 or not any("paused" in line for line in fault_log):
            problems.append(f"faults not all injected: {fault_log}")
        if not any(e.kind is ErrorKind.WATCHDOG for e in errors):
            problems.append("the heartbeat pause reset nothing (no WATCHDOG error)")
        if sim.total_connections < len(DROPS_AT) + 2:
            problems.append(f"only {sim.total_connections} connections for {len(DROPS_AT)} drops")
        overlapping = [(p.name, p.max_active) for p in shared.probes if p.max_active > 1]
        if overlapping:
            problems.append(f"observers called concurrently (name, max calls at once): {overlapping}")
        calls = sum(p.calls for p in shared.probes)
        if calls < 100:
            problems.append(f"only {calls} observer calls")

        # quiescence: a fresh connection carries exactly what the client still wants, each once.
        # A check is valid only on a calm connection: under CPU load a late pong can still reset the
        # connection (max_ping_interval 0.5 s) or a late first frame make the client re-send an
        # unconfirmed subscription (subscription_timeout), both correct behaviour. So a check that
        # another connection overtook, or that saw a WATCHDOG error, is taken again on a new
        # connection (up to 3 times); a wrong registry fails every attempt.
        final: list[str] = []
        for _attempt in range(3):
            resets = sum(1 for e in errors if e.kind is ErrorKind.WATCHDOG)
            final, connection = quiescent_problems(client, sim, shared)
            overtaken = bool(sim.received_frames()) and max(c for c, _ in sim.received_frames()) != connection
            if not final or (not overtaken and sum(e.kind is ErrorKind.WATCHDOG for e in errors) == resets):
                break
        problems.extend(final)

        shutdown = Call(client.shutdown, "shutdown()")
        if not shutdown.join(10.0, fail=False):
            dump_threads("shutdown() blocked")
            problems.append("shutdown() did not return within 10 s")
        else:
            shut_down = True
            try:
                assert_no_thread_left(before, 5.0)
            except AssertionError as exc:
                problems.append(str(exc))
        print(
            f"\ntorture: {ran:.1f} s, {sim.total_connections} connections, ops {dict(shared.ops)}, "
            f"{calls} observer calls, {len(errors)} error events; faults: {fault_log}"
        )
        assert not problems, "\n".join(problems)
    finally:
        if not shut_down:
            Call(client.shutdown, "teardown").join(5.0, fail=False)
        quietly_bounded(sim.stop, 10.0)
