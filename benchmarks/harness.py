"""The measurements of ``python -m benchmarks.run``: one function per row of the table.

Every throughput row reads the same firehose burst (``warm`` + ``n`` pre-encoded ``smd`` frames of
one conid) over a fresh connection, and counts in the subscriber: the clock starts when the
subscriber has seen ``warm`` frames (the pipeline is full by then) and stops when it has seen all
of them. The rows that use the client trigger the burst the way a strategy would, by subscribing to
``md+<conid>``; the ceiling row sends the same ``smd+...`` payload itself.

Needs only the package's runtime dependencies and the standard library.
"""

from __future__ import annotations

import gc
import importlib
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import orjson
import websocket

from benchmarks import firehose as fh
from rxibkr.client.core import IbkrWsClient
from rxibkr.protocol import IbkrWsKey

CONID = fh.CONID
MARKET_DATA = IbkrWsKey.MARKET_DATA
HEARTBEAT_SECONDS = 5
"""The firehose's heartbeat period: the client's heartbeat watchdog resets after 20 s of silence."""


# ---------------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One repetition of a throughput row."""

    rate: float
    """Messages per second (wall clock)."""
    cpu_us: float
    """Process CPU time per message, in microseconds."""


@dataclass
class Throughput:
    """One throughput row: the medians of its repetitions."""

    rate: float | None = None
    cpu_us: float | None = None
    runs: list[float] = field(default_factory=list)
    cpu_runs: list[float] = field(default_factory=list)
    error: str | None = None

    def add(self, sample: Sample | None, error: str | None = None) -> None:
        if sample is not None:
            self.runs.append(sample.rate)
            self.cpu_runs.append(sample.cpu_us)
            self.rate = statistics.median(self.runs)
            self.cpu_us = statistics.median(self.cpu_runs)
        elif error is not None:
            self.error = error


@dataclass
class Latency:
    """Server send -> ``on_next``, in milliseconds, over ``samples`` frames at ``rate`` frames/s."""

    rate: int
    variant: str = "client"
    """``client`` (``observe(MARKET_DATA)``), ``ceiling`` (bare ``recv()`` loop) or a prototype."""
    samples: int = 0
    p50: float | None = None
    p99: float | None = None
    max: float | None = None
    error: str | None = None


@dataclass
class Memory:
    """RSS over a long burst through ``observe(MARKET_DATA)``, in MB (10**6 bytes)."""

    frames: int
    baseline_mb: float | None = None
    growth_mb: float | None = None
    peak_growth_mb: float | None = None
    rate: float | None = None
    error: str | None = None


@dataclass
class Churn:
    """Subscribe/dispose cycles per second, and what they leave behind."""

    channel_rate: float | None = None
    subscribe_rate: float | None = None
    cycles: int = 0
    rss_growth_mb: float | None = None
    heap_growth_kb: float | None = None
    """Python heap (tracemalloc) growth over one more pass of both kinds: a leak shows here."""
    leftover_subscriptions: int | None = None
    error: str | None = None


def as_dict(value: Any) -> Any:
    return asdict(value)


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def rss_bytes() -> int | None:
    """Resident set size of this process (Linux: /proc/self/status), None where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _Tickle:
    """The REST session stand-in: the client only needs ``tickle()`` for its session cookie."""

    def tickle(self) -> dict[str, str]:
        return {"session": "bench"}


@contextmanager
def connected_client(url: str, **options: Any) -> Iterator[IbkrWsClient]:
    """A started client (greeting received), shut down on exit."""
    client = IbkrWsClient(ibkr_client=_Tickle(), url=url, max_connection_attempts=2, **options)
    try:
        if not client.start():
            raise RuntimeError(f"the client did not get the greeting from {url}")
        time.sleep(0.05)  # let the rest of the greeting pass before counting
        yield client
    finally:
        client.shutdown()


class Counter:
    """Counts in the subscriber; notes the time at the ``warm``-th and the ``total``-th message.

    Wall time gives the rate; process CPU time (``time.process_time``) gives CPU microseconds per
    message, which other processes competing for the cores disturb much less.
    """

    def __init__(self, warm: int, total: int) -> None:
        self.warm = warm
        self.total = total
        self.t0 = self.t1 = self.c0 = self.c1 = 0.0
        self.done = threading.Event()
        self.on_next = self._make_on_next()

    def _make_on_next(self) -> Callable[[Any], None]:
        warm, total, clock, cpu = self.warm, self.total, time.perf_counter, time.process_time
        count = 0

        def on_next(_value: Any) -> None:
            nonlocal count
            count += 1
            if count == warm:
                self.t0 = clock()
                self.c0 = cpu()
            elif count == total:
                self.t1 = clock()
                self.c1 = cpu()
                self.done.set()

        def seen() -> int:
            return count

        self.seen = seen
        return on_next

    def wait(self, timeout: float) -> Sample:
        """The rate over the timed frames; raises TimeoutError with what was seen."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"saw {self.seen():,} of {self.total:,} frames in {timeout:.0f} s")
        n = self.total - self.warm
        return Sample(n / (self.t1 - self.t0), (self.c1 - self.c0) / n * 1e6)


def _timeout(total: int) -> float:
    return max(20.0, total / 2000)


def burst_url(firehose: fh.FirehoseProcess, total: int, hb: int = HEARTBEAT_SECONDS, conids: int = 1) -> str:
    if conids > 1:
        return firehose.url(mode="burst", n=total, hb=hb, conid=CONID, conids=conids)
    return firehose.url(mode="burst", n=total, hb=hb, conid=CONID)


# ---------------------------------------------------------------------------------------------------
# TLS material (the wss rows only)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsFiles:
    """A certificate for 127.0.0.1 (chain and key, for the firehose) and the CA that signed it."""

    cert: str
    key: str
    ca: str


def tls_files(directory: str) -> TlsFiles | None:
    """Make a throwaway CA and certificate in ``directory``: with trustme when installed (the
    ``sim``/``dev`` extras), else with the ``openssl`` command; None when neither is there."""
    cert, key, ca = (os.path.join(directory, name) for name in ("cert.pem", "key.pem", "ca.pem"))
    try:
        trustme = importlib.import_module("trustme")
    except ImportError:
        trustme = None
    if trustme is not None:
        authority = trustme.CA()
        issued = authority.issue_cert(fh.HOST)
        issued.cert_chain_pems[0].write_to_path(cert)
        issued.private_key_pem.write_to_path(key)
        authority.cert_pem.write_to_path(ca)
        return TlsFiles(cert, key, ca)
    if shutil.which("openssl") is None:
        return None
    command = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", key, "-out", cert, "-subj", f"/CN={fh.HOST}",
        "-addext", f"subjectAltName=IP:{fh.HOST}", "-addext", "basicConstraints=critical,CA:TRUE",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=60)
    if done.returncode != 0:
        return None
    shutil.copyfile(cert, ca)  # self-signed: its own CA
    return TlsFiles(cert, key, ca)


# ---------------------------------------------------------------------------------------------------
# the server's write rate and the ceiling
# ---------------------------------------------------------------------------------------------------
def server_write_rate(firehose: fh.FirehoseProcess, total: int, ca: str | None = None) -> float:
    """Frames/s the firehose writes, read by a trivial raw-socket reader (no framing, no parsing);
    through TLS when ``ca`` is given (the firehose then serves wss)."""
    expected = fh.greeting_size() + fh.burst_size(total)
    raw = socket.create_connection((fh.HOST, firehose.port), timeout=30)
    sock: socket.socket = raw
    if ca is not None:
        sock = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname=fh.HOST)
    with sock:
        sock.sendall(
            f"GET {fh.PATH}?mode=burst&n={total}&hb=0 HTTP/1.1\r\nHost: {fh.HOST}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("the firehose closed during the handshake")
            head += chunk
        got = len(head.split(b"\r\n\r\n", 1)[1])
        buffer = bytearray(1 << 20)
        t0 = time.perf_counter()
        sock.sendall(fh.encode_client_frame(f"smd+{CONID}+{{}}".encode()))
        while got < expected:
            n = sock.recv_into(buffer)
            if not n:
                raise ConnectionError("the firehose closed during the burst")
            got += n
        return total / (time.perf_counter() - t0)


def ceiling(
    firehose: fh.FirehoseProcess, warm: int, n: int, primitive: str = "recv", ca: str | None = None
) -> Sample:
    """websocket-client alone: a bare ``recv()`` loop (or ``recv_data_frame``) + ``orjson.loads``.

    ``primitive="framing"``: no websocket-client frame parsing at all, the reference loop of the
    ``framing`` prototype (``benchmarks/prototypes.py``) with ``orjson.loads`` as its listener.
    """
    total = warm + n
    sslopt = {"context": ssl.create_default_context(cafile=ca)} if ca is not None else None
    ws = websocket.create_connection(
        burst_url(firehose, total), skip_utf8_validation=True, timeout=30, sslopt=sslopt
    )
    ws.settimeout(None)  # blocking reads, as rxibkr's reader does (a timeout adds a poll() per read)
    try:
        for _ in fh.GREETING:
            ws.recv()
        loads = orjson.loads
        clock = time.perf_counter
        cpu = time.process_time
        ws.send(f"smd+{CONID}+{{}}")
        t0 = c0 = 0.0
        if primitive == "framing":
            return _framing_ceiling(ws, warm, n)
        if primitive == "recv":
            recv = ws.recv
            for _ in range(warm):
                loads(recv())
            t0, c0 = clock(), cpu()
            for _ in range(n):
                loads(recv())
        else:  # the primitive rxibkr's reader loop calls
            recv_frame = ws.recv_data_frame
            for _ in range(warm):
                loads(recv_frame(True)[1].data)
            t0, c0 = clock(), cpu()
            for _ in range(n):
                loads(recv_frame(True)[1].data)
        t1, c1 = clock(), cpu()
        return Sample(n / (t1 - t0), (c1 - c0) / n * 1e6)
    finally:
        ws.close(timeout=1)


class _Enough(Exception):
    pass


def _framing_ceiling(ws: websocket.WebSocket, warm: int, n: int) -> Sample:
    from benchmarks.prototypes import framing_read_loop

    counter = Counter(warm, warm + n)
    count, loads = counter.on_next, orjson.loads

    class Sink:
        def on_frame(self, _connection: object, data: bytes | str) -> None:
            count(loads(data))
            if counter.done.is_set():
                raise _Enough

        def on_pong(self, _connection: object) -> None:
            return None

    shim = type("Shim", (), {"listener": Sink()})()
    try:
        framing_read_loop(shim, ws)
    except _Enough:
        pass
    return counter.wait(0)


# ---------------------------------------------------------------------------------------------------
# client rows
# ---------------------------------------------------------------------------------------------------
def _operators() -> Any:
    return importlib.import_module("rxibkr.streams.operators")


def _market_data(client: IbkrWsClient) -> Callable[[int], Any] | None:
    """``client.market_data``, or ``streams_of(client).market_data`` while the client has no delegate."""
    method = getattr(client, "market_data", None)
    if callable(method):
        return cast(Callable[[int], Any], method)
    try:
        streams = importlib.import_module("rxibkr.streams.hubs")
    except ImportError:
        return None
    streams_of = getattr(streams, "streams_of", None)
    return cast(Callable[[int], Any], streams_of(client).market_data) if callable(streams_of) else None


def streams_api() -> str:
    """How row 4 reaches the typed stream: ``client.market_data`` or ``streams_of(client).market_data``."""
    if callable(getattr(IbkrWsClient, "market_data", None)):
        return "client.market_data"
    return "streams_of(client).market_data"


def streams_available() -> str | None:
    """None when a typed ``market_data`` stream and ``operators.snapshots`` exist; else why not."""
    try:
        operators = _operators()
    except ImportError as exc:
        return f"rxibkr.streams.operators: {exc}"
    if not callable(getattr(operators, "snapshots", None)):
        return "rxibkr.streams.operators.snapshots missing"
    if not callable(getattr(IbkrWsClient, "market_data", None)):
        try:
            streams = importlib.import_module("rxibkr.streams.hubs")
        except ImportError as exc:
            return f"rxibkr.streams.hubs: {exc}"
        if not callable(getattr(streams, "streams_of", None)):
            return "neither IbkrWsClient.market_data nor rxibkr.streams.hubs.streams_of"
    return None


def _reading(count: Callable[[Any], None]) -> Callable[[Any], None]:
    """An observer of quotes that reads bid, ask and last (what a strategy does), then counts."""

    def on_next(quote: Any) -> None:
        count((quote.bid, quote.ask, quote.last))

    return on_next


def client_row(
    firehose: fh.FirehoseProcess, row: str, warm: int, n: int, ca: str | None = None, conids: int = 1000
) -> Sample:
    """One repetition of a client throughput row: ``frames``, ``observe``, ``snapshots``, ``queue``
    or ``conids`` (``snapshots`` over ``conids`` conids at once) (over wss, verified against ``ca``,
    when ``ca`` is given)."""
    total = warm + n
    counter = Counter(warm, total)
    options: dict[str, Any] = {"cacert": ca} if ca is not None else {}
    spread = conids if row == "conids" else 1
    with connected_client(burst_url(firehose, total, conids=spread), **options) as client:
        keep: list[Any] = []
        if row == "conids":
            # one typed stream per conid, all counted together; the burst starts once the firehose
            # has an smd of every conid, and cycles over them (frame i is of conid CONID + i % conids)
            market_data = _market_data(client)
            if market_data is None:
                raise RuntimeError("no typed market_data stream")
            snapshots = _operators().snapshots
            read = _reading(counter.on_next)
            for conid in range(CONID, CONID + conids):
                keep.append(market_data(conid).pipe(snapshots()).subscribe(read))
        elif row == "frames":
            keep.append(client.frames.subscribe(counter.on_next))
        elif row == "observe":
            keep.append(client.observe(MARKET_DATA).subscribe(counter.on_next))
        elif row == "snapshots":
            # subscribing sends smd+<conid>: that starts the burst
            market_data = _market_data(client)
            if market_data is None:
                raise RuntimeError("no typed market_data stream")
            stream = market_data(CONID).pipe(_operators().snapshots())
            keep.append(stream.subscribe(_reading(counter.on_next)))
        elif row == "queue":
            accessor = client.new_queue_accessor(MARKET_DATA)

            def consume() -> None:
                get = accessor.get
                on_next = counter.on_next
                deadline = time.monotonic() + _timeout(total)
                while not counter.done.is_set() and time.monotonic() < deadline:
                    item = get(True, 1.0)
                    if item is not None:
                        on_next(item)

            consumer = threading.Thread(target=consume, name="bench-queue-consumer", daemon=True)
            consumer.start()
            keep.append(consumer)
        else:
            raise ValueError(f"unknown row {row!r}")
        if row not in ("snapshots", "conids"):
            keep.append(client.subscribe(f"md+{CONID}", needs_confirmation=False))
        return counter.wait(_timeout(total))


# ---------------------------------------------------------------------------------------------------
# latency
# ---------------------------------------------------------------------------------------------------
def _percentiles(result: Latency, delays: list[int], warm: int) -> Latency:
    timed = sorted(delays[warm:])
    if timed:
        result.samples = len(timed)
        result.p50 = timed[len(timed) // 2] / 1e6
        result.p99 = timed[min(len(timed) - 1, int(len(timed) * 0.99))] / 1e6
        result.max = timed[-1] / 1e6
    return result


def _paced_url(firehose: fh.FirehoseProcess, rate: int, total: int) -> str:
    return firehose.url(mode="paced", n=total, rate=rate, hb=HEARTBEAT_SECONDS, conid=CONID)


def latency(firehose: fh.FirehoseProcess, rate: int, warm: int, n: int, variant: str = "client") -> Latency:
    """Paced frames stamped with ``time.time_ns()`` at send; the observer of ``observe(MARKET_DATA)``
    (``variant="typed"``: of ``market_data(conid).pipe(snapshots())``, reading bid, ask and last)
    takes ``time.time_ns()`` first thing (same machine, same clock). The first ``warm`` are dropped."""
    total = warm + n
    result = Latency(rate=rate, variant=variant)
    delays: list[int] = []
    done = threading.Event()
    now = time.time_ns

    def on_next(message: Any) -> None:
        t = now()
        delays.append(t - message.data["_sent"])
        if len(delays) >= total:
            done.set()

    def on_quote(quote: Any) -> None:
        t = now()
        quote.bid, quote.ask, quote.last  # noqa: B018  # what a strategy reads
        delays.append(t - quote.data["_sent"])
        if len(delays) >= total:
            done.set()

    with connected_client(_paced_url(firehose, rate, total)) as client:
        if variant == "typed":
            market_data = _market_data(client)
            if market_data is None:
                raise RuntimeError("no typed market_data stream")
            sub = market_data(CONID).pipe(_operators().snapshots()).subscribe(on_quote)
        else:
            sub = client.observe(MARKET_DATA).subscribe(on_next)
            client.subscribe(f"md+{CONID}", needs_confirmation=False)
        if not done.wait(total / rate * 2 + 10):
            result.error = f"saw {len(delays):,} of {total:,} frames"
        sub.dispose()
    return _percentiles(result, delays, warm)


def ceiling_latency(firehose: fh.FirehoseProcess, rate: int, warm: int, n: int) -> Latency:
    """The same paced frames read by a bare websocket-client ``recv()`` loop + ``orjson.loads``."""
    total = warm + n
    result = Latency(rate=rate, variant="ceiling")
    delays: list[int] = []
    ws = websocket.create_connection(_paced_url(firehose, rate, total), skip_utf8_validation=True, timeout=30)
    try:
        for _ in fh.GREETING:
            ws.recv()
        ws.settimeout(total / rate * 2 + 10)
        ws.send(f"smd+{CONID}+{{}}")
        recv, loads, now = ws.recv, orjson.loads, time.time_ns
        while len(delays) < total:
            data = loads(recv())
            t = now()
            sent = data.get("_sent")
            if sent is not None:
                delays.append(t - sent)
    except websocket.WebSocketTimeoutException:
        result.error = f"saw {len(delays):,} of {total:,} frames"
    finally:
        ws.close(timeout=1)
    return _percentiles(result, delays, warm)


# ---------------------------------------------------------------------------------------------------
# memory and churn
# ---------------------------------------------------------------------------------------------------
def memory(firehose: fh.FirehoseProcess, frames: int, sample_every: int) -> Memory:
    """RSS growth while ``frames`` frames pass through ``observe(MARKET_DATA)``.

    The baseline is taken after the first 5% (allocator pools and caches warm); the growth is the
    RSS at the end minus the baseline, the peak growth the largest sample minus the baseline.
    """
    result = Memory(frames=frames)
    if rss_bytes() is None:
        result.error = "no /proc/self/status"
        return result
    warm = max(sample_every, frames // 20)
    samples: list[int] = []
    counter = Counter(warm, frames)
    count_frame = counter.on_next
    seen = counter.seen

    def on_next(message: Any) -> None:
        count_frame(message)
        if seen() % sample_every == 0:
            rss = rss_bytes()
            if rss is not None:
                samples.append(rss)

    gc.collect()
    with connected_client(burst_url(firehose, frames)) as client:
        client.observe(MARKET_DATA).subscribe(on_next)
        client.subscribe(f"md+{CONID}", needs_confirmation=False)
        try:
            result.rate = counter.wait(max(60.0, frames / 2000)).rate
        except TimeoutError as exc:
            result.error = str(exc)
        first = warm // sample_every - 1
        if len(samples) > first + 1:
            baseline = samples[first]
            result.baseline_mb = baseline / 1e6
            result.growth_mb = (samples[-1] - baseline) / 1e6
            result.peak_growth_mb = (max(samples[first:]) - baseline) / 1e6
    return result


def churn(firehose: fh.FirehoseProcess, seconds: float, subscription_timeout: float = 2.0) -> Churn:
    """Subscribe/dispose cycles per second: ``channel('md+N').subscribe(...).dispose()``, then
    ``subscribe('md+N', needs_confirmation=False).dispose()``, over 200 distinct conids, each for
    ``seconds``; a cycle is counted done when the client has dropped its subscription (disposal is
    asynchronous, on the control thread).

    Memory: ``channel()`` subscriptions wait for a confirmation, so each schedules a retry timer;
    a disposed timer stays in the control scheduler's queue until it comes due, holding its
    subscription. So the RSS is compared after a warm-up pass and after the measured pass, each
    time once every timer of the pass has come due: growth between the two is what stays.
    """
    result = Churn()

    def noop(_: Any) -> None:
        return None

    def settle(client: IbkrWsClient) -> None:
        deadline = time.monotonic() + 10
        while client.subscriptions and time.monotonic() < deadline:
            time.sleep(0.001)

    def one_pass(client: IbkrWsClient) -> tuple[float, float, int]:
        rates: list[float] = []
        cycles = 0
        for kind in ("channel", "subscribe"):
            count = 0
            t0 = time.perf_counter()
            end = t0 + seconds
            while time.perf_counter() < end:
                for i in range(100):
                    channel = f"md+{1000 + (count + i) % 200}"
                    if kind == "channel":
                        client.channel(channel).subscribe(noop).dispose()
                    else:
                        client.subscribe(channel, needs_confirmation=False).dispose()
                count += 100
            settle(client)
            rates.append(count / (time.perf_counter() - t0))
            cycles += count
        return rates[0], rates[1], cycles

    def quiet_rss() -> int | None:
        time.sleep(subscription_timeout + 0.3)  # every retry timer of the pass has come due
        gc.collect()
        return rss_bytes()

    url = firehose.url(mode="idle", hb=HEARTBEAT_SECONDS)
    with connected_client(url, subscription_timeout=subscription_timeout) as client:
        one_pass(client)  # warm-up
        rss0 = quiet_rss()
        result.channel_rate, result.subscribe_rate, result.cycles = one_pass(client)
        rss1 = quiet_rss()
        result.leftover_subscriptions = len(client.subscriptions)
        if rss0 is not None and rss1 is not None:
            result.rss_growth_mb = (rss1 - rss0) / 1e6
        # RSS keeps the allocator's high-water mark; the Python heap tells a leak from that
        tracemalloc.start()
        try:
            one_pass(client)
            quiet_rss()
            heap0 = tracemalloc.get_traced_memory()[0]
            one_pass(client)
            quiet_rss()
            result.heap_growth_kb = (tracemalloc.get_traced_memory()[0] - heap0) / 1e3
        finally:
            tracemalloc.stop()
    return result


def load_average() -> float:
    """The 1-minute load average (0 where unknown): other processes competing for the cores."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def environment() -> dict[str, Any]:
    import platform

    import reactivex

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "websocket-client": websocket.__version__,
        "reactivex": getattr(reactivex, "__version__", "?"),
        "orjson": orjson.__version__,
        "load": [load_average()],
    }
