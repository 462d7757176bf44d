"""The measuring harness of the resilience suite: a simulator, a client and a frame ledger.

``Rig`` starts a :class:`~rxibkr.sim.GatewaySimulator` that numbers its frames (``number_frames``:
``"_seq"`` per connection, from 1) and logs what it wrote (``record_sent``), and a real
:class:`~rxibkr.client.core.IbkrWsClient` on it with tiny intervals. A :class:`Ledger` observes every
per-key stream of the client (``observe(key)`` for every :class:`IbkrWsKey`) and keeps each message
with its arrival time, in arrival order.

"Nothing lost" is checked, not assumed (:meth:`Rig.audit`): the client's messages are split
into connections where ``_seq`` starts again at 1, each connection is matched to the simulator's
connection that sent it, and the client must have received exactly the simulator's frames, byte for
byte, in order, each once: a contiguous prefix of what was written to that connection. A gap, a
duplicate, a reordering or a changed frame is a lost frame, and so is anything written to the
connection in use that never arrived, or written before a graceful close (close frame).

What the simulator wrote to a connection after the last frame the client took from it is that
connection's *tail*, and two kinds of tail are not losses of the client:

* ``discarded``: on a connection the client gave up itself (watchdog, authentication reset), what
  arrived after it decided the connection was dead;
* ``reset``: on a connection the server *aborted* (``drop_connections``: a TCP reset when the
  server still had unread bytes), what was in flight: a reset flushes the receiving queues
  (RFC 793, "Reset Processing"), and with TLS the records not yet decrypted go with them. No client
  can read those frames and the gateway does not replay (protocol section 7.11); the tail is
  counted and bounded, not hidden.
"""

from __future__ import annotations

import gc
import re
import threading
import time
import tracemalloc
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from waiting import wait_until

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.client.subscriptions import Subscription
from rxibkr.protocol import IbkrWsKey, Message
from rxibkr.sim import GatewaySimulator

# -- tiny intervals: every wait in the suite is short and bounded ---------------------------------
SIM_OPTIONS: dict[str, Any] = dict(
    heartbeat_interval=0.1,
    md_interval=0.02,
    greeting_delay=0.01,
    pnl_interval=0.05,
    ledger_interval=0.2,
    number_frames=True,
    record_sent=True,
    seed=9,
)
CLIENT_OPTIONS: dict[str, Any] = dict(
    timeout=2.0,
    ping_interval=0.1,
    max_ping_interval=1.0,
    subscription_timeout=0.4,
    subscription_retries=3,
    reconnect_backoff=(0.05, 0.5),
    tic_interval=0.25,
    tickle_interval=0.5,
    md_renewal_interval=None,
)

AAPL, IBM = 265598, 8314

#: The keys to observe (IbkrWsKey.AUTHENTICATION is an alias of AUTHENTICATION_STATUS).
ALL_KEYS: tuple[IbkrWsKey, ...] = tuple(dict.fromkeys(IbkrWsKey))


def standard_channels(account: str) -> list[tuple[str, dict[str, Any] | None]]:
    """One subscription of every solicited channel: what a busy strategy holds."""
    return [
        (f"md+{AAPL}", {"fields": ["31", "84", "86"]}),
        (f"md+{IBM}", {"fields": ["31", "84", "86", "88", "85"]}),
        (f"mh+{AAPL}", {"period": "1d", "bar": "1h", "source": "trades"}),
        (f"bd+{account}+{AAPL}", None),
        ("or", {}),
        ("tr", {}),
        ("pl", {}),
        (f"sd+{account}", {}),
        (f"ld+{account}", {}),
    ]


#: What the simulator's ``active_subscriptions()`` shows for ``standard_channels`` (topic -> count).
STANDARD_SERVER_TOPICS = {"smd": 2, "smh": 1, "sbd": 1, "sor": 1, "str": 1, "spl": 1, "ssd": 1, "sld": 1}


def seq_of(message: Message) -> int | None:
    data = message.data
    if isinstance(data, dict):
        seq = data.get("_seq")
        if type(seq) is int:
            return seq
    return None


@dataclass(frozen=True, slots=True)
class Entry:
    time: float
    key: IbkrWsKey
    message: Message


class Ledger:
    """Every message of every per-key stream of one client, in arrival order, with its time."""

    def __init__(self, client: IbkrWsClient) -> None:
        self.entries: list[Entry] = []
        self._disposables = [client.observe(key).subscribe(self._recorder(key)) for key in ALL_KEYS]

    def _recorder(self, key: IbkrWsKey) -> Callable[[Message], None]:
        entries = self.entries

        def record(message: Message) -> None:
            entries.append(Entry(time.monotonic(), key, message))

        return record

    def dispose(self) -> None:
        for d in self._disposables:
            d.dispose()

    def segments(self) -> list[list[Entry]]:
        """The numbered messages, split per connection (``_seq`` starts again at 1)."""
        out: list[list[Entry]] = []
        for entry in list(self.entries):
            seq = seq_of(entry.message)
            if seq is None:
                continue
            if seq == 1 or not out:
                out.append([])
            out[-1].append(entry)
        return out

    def connections_seen(self) -> int:
        return len(self.segments())

    def since(self, t: float, key: IbkrWsKey | None = None) -> list[Entry]:
        return [e for e in list(self.entries) if e.time >= t and (key is None or e.key is key)]

    def data_since(self, t: float, key: IbkrWsKey) -> int:
        return len(self.since(t, key))


@dataclass
class Audit:
    """The outcome of comparing the client's per-key streams with what the simulator wrote."""

    frames_checked: int = 0  # numbered frames that reached the per-key streams
    lost: int = 0  # gaps, duplicates, reorderings, changed frames, undelivered tails (see module doc)
    discarded: int = 0  # tail of connections the client gave up itself (by design)
    reset: int = 0  # tail of connections the server aborted: flushed by the TCP reset
    resets: int = 0  # connections with a non-empty reset tail
    unread: int = 0  # written to connections that died before the client read anything from them
    connections: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and not self.problems

    def summary(self) -> str:
        parts = [f"{self.frames_checked} frames on {self.connections} connections, {self.lost} lost"]
        if self.reset:
            parts.append(f"{self.reset} in flight at {self.resets} TCP resets")
        if self.discarded:
            parts.append(f"{self.discarded} discarded after a reset by the client")
        return ", ".join(parts)


def _sent_per_connection(sim: GatewaySimulator) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = defaultdict(list)
    for cid, data in sim.sent_frames():
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and type(obj.get("_seq")) is int:
            out[cid].append(bytes(data))
    return dict(out)


def _act_connection_id(segment: list[Entry]) -> int | None:
    """The simulator names the connection in ``act``'s internal session id (``xxxxxxxx.%08x``)."""
    for entry in segment[:5]:
        data = entry.message.data
        if entry.key is IbkrWsKey.ACCOUNT_UPDATES and isinstance(data, dict):
            args = data.get("args")
            sid = args.get("sessionId") if isinstance(args, dict) else None
            if isinstance(sid, str) and "." in sid:
                try:
                    return int(sid.rsplit(".", 1)[1], 16)
                except ValueError:
                    return None
    return None


def _raw_bytes(message: Message) -> bytes:
    raw = message.raw
    return raw if isinstance(raw, bytes) else raw.encode()


class Rig:
    """A simulator plus a client wired to it, and the instruments to measure them."""

    def __init__(
        self,
        sim_options: dict[str, Any] | None = None,
        client_options: dict[str, Any] | None = None,
        *,
        start: bool = True,
    ) -> None:
        self.sim = GatewaySimulator(**{**SIM_OPTIONS, **(sim_options or {})}).start()
        self.client_options = {
            **CLIENT_OPTIONS,
            "url": self.sim.ws_url,
            "cacert": self.sim.cacert,
            "account_id": self.sim.account,
            **(client_options or {}),
        }
        self.client = IbkrWsClient(**self.client_options)
        self.ledger = Ledger(self.client)
        self.errors: list[tuple[float, ErrorEvent]] = []
        self.states: list[tuple[float, ConnectionState]] = []
        self.client.errors.subscribe(lambda e: self.errors.append((time.monotonic(), e)))
        self.client.state.subscribe(lambda s: self.states.append((time.monotonic(), s)))
        self.subs: list[Subscription] = []
        #: simulator connection ids the client gave up itself (their tail is "discarded", not lost)
        self.client_abandoned: set[int] = set()
        #: simulator connection ids the server closed with a close frame (their tail would be lost)
        self.graceful: set[int] = set()
        self.reset_details: list[str] = []
        if start and not self.client.start():
            self.close()
            raise AssertionError("the client did not start against the simulator")

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.client.shutdown()
        finally:
            self.sim.stop()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- subscriptions ------------------------------------------------------------------------------
    def subscribe_standard(self) -> list[Subscription]:
        self.subs = [self.client.subscribe(ch, data) for ch, data in standard_channels(self.sim.account)]
        if not self.all_active():
            raise AssertionError(f"subscriptions not confirmed: {self.subs}")
        return self.subs

    def all_active(self) -> bool:
        return self.client.ready and all(s.active for s in self.subs)

    def server_topics(self) -> Counter[str]:
        """Topic -> number of targets, over every connection the simulator has open."""
        counts: Counter[str] = Counter()
        for topics in self.sim.active_subscriptions().values():
            for topic, targets in topics.items():
                counts[topic] += len(targets)
        return counts

    # -- waiting and timing ---------------------------------------------------------------------------
    def current_connection(self) -> int:
        """The number of connection segments the ledger has seen so far."""
        return self.ledger.connections_seen()

    def current_sim_connection(self) -> int | None:
        """The simulator's id of the connection the client is reading (from its ``act`` frame)."""
        segments = self.ledger.segments()
        return _act_connection_id(segments[-1]) if segments else None

    def abandoned(self, cid: int | None) -> None:
        """Note that the client gave connection ``cid`` up itself (watchdog, auth reset): what the
        simulator wrote to it after that is discarded by design, not lost."""
        if cid is not None:
            self.client_abandoned.add(cid)

    def wait_recovered(self, after_cid: int, timeout: float) -> float | None:
        """Wait until the client reads a simulator connection newer than ``after_cid`` with every
        subscription active and market data flowing on it; the monotonic time that happened, or None."""
        found: list[float] = []

        def recovered() -> bool:
            segments = self.ledger.segments()
            if not segments or not self.all_active():
                return False
            segment = segments[-1]
            cid = _act_connection_id(segment)
            if cid is None or cid <= after_cid:
                return False
            if self.subs and not any(e.key is IbkrWsKey.MARKET_DATA for e in segment):
                return False
            found.append(time.monotonic())
            return True

        return found[-1] if wait_until(recovered, timeout) else None

    def mark_graceful(self) -> None:
        """The server is about to close every open connection with a close frame: nothing written
        before may go missing."""
        self.graceful.update(self.sim.active_subscriptions())

    def first_error(self, kind: ErrorKind, after: float, text: str = "") -> float | None:
        for t, e in list(self.errors):
            if t >= after and e.kind is kind and text in e.message:
                return t
        return None

    def wait_error(self, kind: ErrorKind, after: float, timeout: float, text: str = "") -> float | None:
        if wait_until(lambda: self.first_error(kind, after, text) is not None, timeout):
            return self.first_error(kind, after, text)
        return None

    def errors_of(self, kind: ErrorKind, after: float = 0.0) -> list[ErrorEvent]:
        return [e for t, e in list(self.errors) if t >= after and e.kind is kind]

    def states_since(self, t: float) -> list[ConnectionState]:
        return [s for ts, s in list(self.states) if ts >= t]

    # -- the audit ----------------------------------------------------------------------------------
    def audit(self, catch_up: float = 3.0) -> Audit:
        """Compare every per-key stream with what the simulator wrote (see the module docstring)."""
        sent = _sent_per_connection(self.sim)
        live = set(self.sim.active_subscriptions())  # connection ids still open on the server

        def caught_up() -> bool:
            segments = self.ledger.segments()
            if not segments:
                return False
            cid = _act_connection_id(segments[-1])
            if cid is None or cid not in sent:
                return True
            return len(segments[-1]) >= len(sent[cid])

        wait_until(caught_up, catch_up)
        result = Audit()
        segments = self.ledger.segments()
        result.connections = len(segments)
        last_cid = 0
        matched: set[int] = set()
        for index, segment in enumerate(segments):
            seqs = [seq_of(e.message) for e in segment]
            result.frames_checked += len(seqs)
            expected = list(range(1, len(seqs) + 1))
            if seqs != expected:
                bad = sum(1 for a, b in zip(seqs, expected, strict=False) if a != b)
                result.lost += max(1, bad)
                result.problems.append(f"connection #{index + 1}: _seq not contiguous from 1: {seqs[:40]}...")
            cid = _act_connection_id(segment)
            if cid is None:  # the greeting was cut short: match on content, first candidate after the last
                first = _raw_bytes(segment[0].message)
                cid = next(
                    (c for c in sorted(sent) if c > last_cid and sent[c][:1] == [first]),
                    None,
                )
            if cid is None or cid not in sent:
                result.problems.append(f"connection #{index + 1}: no matching simulator connection")
                continue
            last_cid = cid
            written = sent[cid]
            got = [_raw_bytes(e.message) for e in segment]
            common = min(len(got), len(written))
            mismatches = sum(1 for a, b in zip(got[:common], written[:common], strict=True) if a != b)
            if mismatches:
                result.lost += mismatches
                result.problems.append(
                    f"sim connection {cid}: {mismatches} frames differ from what was written"
                )
            tail = len(written) - len(got)
            if tail > 0:
                missing = [orjson.loads(b) for b in written[len(got) :]]
                what = ", ".join(f"#{m.get('_seq')} {m.get('topic', sorted(m)[:2])}" for m in missing[:5])
                if cid in self.client_abandoned:
                    result.discarded += tail
                elif cid in live or cid in self.graceful:
                    result.lost += tail
                    result.problems.append(
                        f"sim connection {cid}: {tail} written frames not delivered: {what}"
                    )
                else:
                    result.reset += tail
                    result.resets += 1
                    self.reset_details.append(f"sim connection {cid}: {what}")
            matched.add(cid)
        for cid in sorted(set(sent) - matched):
            # the client never read from this connection (it went away during the handshake)
            if cid in self.client_abandoned:
                result.discarded += len(sent[cid])
            else:
                result.unread += len(sent[cid])
        return result


# -- threads and memory ---------------------------------------------------------------------------------
def client_threads() -> set[threading.Thread]:
    """Threads a client may own: its readers, its REST worker, its control scheduler."""
    return {
        t
        for t in threading.enumerate()
        if t.is_alive() and t is not threading.main_thread() and t.name != "rxibkr-sim"
    }


def thread_kinds() -> Counter[str]:
    """The client-owned threads by kind (``rxibkr-reader-N`` -> ``rxibkr-reader-#``)."""
    return Counter(re.sub(r"\d+", "#", t.name) for t in client_threads())


def leak_counts() -> Counter[str]:
    """Live objects of the client's own types and of its libraries (reactivex, websocket-client, ssl)."""
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        module = cls.__dict__.get("__module__")
        module = module if isinstance(module, str) else ""
        if module.startswith("rxibkr.sim"):
            continue
        if module.startswith(("rxibkr", "reactivex", "websocket")) or cls.__name__ in ("SSLSocket", "socket"):
            counts[f"{module}.{cls.__qualname__}"] += 1
    return counts


def key_observers(client: IbkrWsClient) -> dict[str, int]:
    """How many observers each per-key subject has (watchdogs subscribe to SYSTEM per session)."""
    return {key.name: len(client.observe(key)._observers) for key in ALL_KEYS}  # type: ignore[attr-defined]


_NOT_THE_CLIENT = ("*/rxibkr/sim/*", "*/aiohttp/*", "*/asyncio/*", "*/tests/resilience/*", "*/tracemalloc.py")


def client_memory() -> int:
    """Bytes allocated since ``tracemalloc.start()`` and still alive, leaving out what the simulator,
    the event loop and the test rig allocated (by the allocating frame's file)."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, pattern) for pattern in _NOT_THE_CLIENT]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


@contextmanager
def quiet_insecure_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
