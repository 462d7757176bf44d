"""rxibkr against Python's physical limit and its peers, in one run.

    python -m benchmarks.run [--quick] [--rows ROWS] [--json FILE]
    python benchmarks/run.py  ...

Starts a loopback firehose in a child process (``benchmarks/firehose.py``), checks that it writes
faster than any client can read, then measures on the same frames:

1. the limit: a raw socket, an own frame parser and ``orjson.loads`` (the reference, ratio 1.00);
   P1-P6, the peers: picows, aiohttp, websockets, websocket-client, IBind 0.1.14 and 0.2.2
   (``benchmarks/peers.py``);
2. ``client.frames``; 3. ``client.observe(MARKET_DATA)``;
4. ``client.market_data(conid).pipe(operators.snapshots())``, the observer reading bid, ask, last;
   4b. the same with 1,000 conids at once (one typed stream each, the burst cycling over them);
   3p, 4p. rows 3 and 4 on the pure-Python reader (``RXIBKR_PURE_PYTHON=1``: no C accelerator);
5. ``new_queue_accessor(MARKET_DATA)`` drained by another thread;
6. latency from the server's send to ``on_next`` at 1,000 and 10,000 messages/s (both paths);
7. RSS growth over a long burst through ``observe(MARKET_DATA)``, and subscription churn.

Throughput rows are the median of ``--reps`` repetitions (rows interleaved, a fresh connection each),
each consumer counting its deliveries. No thresholds are enforced: the targets are printed next to
the numbers, on CPU us per message (wall-clock rates on a shared machine are noise).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import firehose as fh
from benchmarks import harness as h
from benchmarks import peers
from benchmarks.prototypes import PROTOTYPES

THROUGHPUT_ROWS: dict[str, tuple[str, str]] = {
    # name: (number, label)
    "ceiling": ("1", "limit: raw socket + own framing + orjson.loads"),
    **{name: (f"P{i}", label) for i, (name, (label, _)) in enumerate(peers.PEERS.items(), 1)},
    "frames": ("2", "client.frames"),
    "observe": ("3", "client.observe(MARKET_DATA)"),
    "snapshots": ("4", "market_data(c).pipe(snapshots()), reading bid/ask/last"),
    "conids": ("4b", "the same over 1,000 conids"),
    "observe-py": ("3p", "row 3 on the pure-Python reader (RXIBKR_PURE_PYTHON=1)"),
    "snapshots-py": ("4p", "row 4 on the pure-Python reader"),
    "queue": ("5", "new_queue_accessor(MARKET_DATA), other thread"),
}
PEER_ROWS = tuple(peers.PEERS)
QUICK_PEERS = ("picows", "aiohttp", "websockets", "websocket-client")
"""The peers of quick mode (IBind's clients start slowly in their child processes)."""
ALL_ROWS = (
    "ceiling",
    *PEER_ROWS,
    "frames",
    "observe",
    "snapshots",
    "conids",
    "observe-py",
    "snapshots-py",
    "queue",
    "latency",
    "memory",
    "churn",
)
OPTIONAL_ROWS = ("tls",)
"""Rows run only when asked for (``--rows 8`` or ``--rows tls``)."""
ROW_NUMBERS = {
    "1": ("ceiling",),
    "limit": ("ceiling",),
    "P": PEER_ROWS,
    "peers": PEER_ROWS,
    "2": ("frames",),
    "3": ("observe",),
    "4": ("snapshots",),
    "4b": ("conids",),
    "3p": ("observe-py",),
    "4p": ("snapshots-py",),
    "5": ("queue",),
    "6": ("latency",),
    "7": ("memory", "churn"),
    "8": ("tls",),
}
TARGETS = {"observe": 0.8, "snapshots": 0.5}
"""Minimum ratio to the limit, on CPU us per message."""
CPU_TARGETS_US = {"queue": 2.5}
"""Maximum CPU us per message."""
CONIDS = 1000
CONIDS_CPU_TARGET = 1.3
"""Row 4b: CPU us per message at 1,000 conids within 1.3x of row 4's (one conid)."""
LATENCY_TARGETS_MS = {1000: 0.5, 10000: 0.5}
MEMORY_TARGET_MB = 10.0


@dataclass
class Settings:
    frames: int
    warm: int
    reps: int
    latency_seconds: dict[int, float]
    memory_frames: int
    memory_sample_every: int
    churn_seconds: float
    quick: bool

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(20_000, 4_000, 1, {1000: 0.5, 10000: 0.2}, 100_000, 10_000, 0.3, True)
        return cls(200_000, 20_000, 3, {1000: 10.0, 10000: 5.0}, 5_000_000, 100_000, 2.0, False)


@dataclass
class Results:
    settings: Settings
    environment: dict[str, Any]
    server_write_rate: float | None = None
    throughput: dict[str, h.Throughput] = field(default_factory=dict)
    reference: dict[str, h.Throughput] = field(default_factory=dict)
    latency: list[h.Latency] = field(default_factory=list)
    memory: h.Memory | None = None
    churn: h.Churn | None = None
    tls: dict[str, h.Throughput] = field(default_factory=dict)
    tls_write_rate: float | None = None
    tls_error: str | None = None
    streams: str | None = None
    seconds: float = 0.0
    load_end: float = 0.0

    def to_json(self) -> dict[str, Any]:
        ceiling = self.throughput.get("ceiling")
        base = ceiling.rate if ceiling is not None else None
        rows: dict[str, Any] = {}
        for name, row in self.throughput.items():
            entry = h.as_dict(row)
            entry["ratio"] = row.rate / base if row.rate and base else None
            entry["cpu_ratio"] = (
                ceiling.cpu_us / row.cpu_us if ceiling is not None and ceiling.cpu_us and row.cpu_us else None
            )
            rows[name] = entry
        conids, single = self.throughput.get("conids"), self.throughput.get("snapshots")
        if "conids" in rows:
            rows["conids"]["cpu_vs_snapshots"] = (
                conids.cpu_us / single.cpu_us
                if conids is not None and single is not None and conids.cpu_us and single.cpu_us
                else None
            )
        return {
            "settings": h.as_dict(self.settings),
            "environment": self.environment,
            "server_write_rate": self.server_write_rate,
            "throughput": rows,
            "reference": {k: h.as_dict(v) for k, v in self.reference.items()},
            "latency": [h.as_dict(x) for x in self.latency],
            "memory": h.as_dict(self.memory) if self.memory else None,
            "churn": h.as_dict(self.churn) if self.churn else None,
            "tls": {k: h.as_dict(v) for k, v in self.tls.items()} or None,
            "tls_write_rate": self.tls_write_rate,
            "streams": self.streams or "available",
            "seconds": self.seconds,
            "load_end": self.load_end,
        }


# ---------------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------------
def parse_rows(text: str | None) -> list[str]:
    if not text:
        return list(ALL_ROWS)
    rows: list[str] = []
    items: list[str] = []
    for item in text.replace(" ", "").split(","):
        first, dash, last = item.partition("-")
        if dash and first.isdigit() and last.isdigit():
            items.extend(str(i) for i in range(int(first), int(last) + 1))
        else:
            items.append(item)
    for item in items:
        names = ROW_NUMBERS.get(item, (item,))
        for name in names:
            if name not in ALL_ROWS + OPTIONAL_ROWS:
                known = ", ".join(ALL_ROWS + OPTIONAL_ROWS)
                raise SystemExit(f"--rows: unknown row {item!r}; use 1-8, 4b or {known}")
            if name not in rows:
                rows.append(name)
    return rows


def _attempt(fn: Callable[[], Any]) -> tuple[Any, str | None]:
    try:
        return fn(), None
    except Exception as exc:  # a failed row is reported in the table, the run goes on
        return None, f"{type(exc).__name__}: {exc}"


Measure = Callable[[fh.FirehoseProcess, int, int], h.Sample]


def _show(sample: h.Sample) -> str:
    return f"{sample.rate:,.0f} msg/s, {sample.cpu_us:.2f} CPU us/msg"


@contextlib.contextmanager
def _reader(pure_python: bool) -> Iterator[None]:
    """The client's reader without its C accelerator (``RXIBKR_PURE_PYTHON=1``), or as installed."""
    saved = os.environ.get("RXIBKR_PURE_PYTHON")
    if pure_python:
        os.environ["RXIBKR_PURE_PYTHON"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("RXIBKR_PURE_PYTHON", None)
        else:
            os.environ["RXIBKR_PURE_PYTHON"] = saved


def _client_measure(row: str, prototype: str | None) -> Measure:
    base = row.removesuffix("-py")

    def measure(firehose: fh.FirehoseProcess, warm: int, n: int) -> h.Sample:
        with _reader(row.endswith("-py")):
            if prototype is None:
                return h.client_row(firehose, base, warm, n, conids=CONIDS)
            with PROTOTYPES[prototype].apply():
                return h.client_row(firehose, base, warm, n, conids=CONIDS)

    return measure


def _plan(
    throughput: Sequence[str], prototypes: Sequence[str], streams_missing: str | None
) -> list[tuple[str, Measure | None]]:
    """(key, measurement) per throughput row, each client row followed by its prototype variants."""
    plan: list[tuple[str, Measure | None]] = []
    for name in throughput:
        if name == "ceiling":
            plan.append((name, peers.limit))
            continue
        if name in peers.PEERS:
            plan.append((name, peers.PEERS[name][1]))
            continue
        for prototype in (None, *prototypes):
            key = name if prototype is None else f"{name}+{prototype}"
            missing = name in ("snapshots", "snapshots-py", "conids") and streams_missing is not None
            plan.append((key, None if missing else _client_measure(name, prototype)))
    return plan


def _latency(firehose: fh.FirehoseProcess, rate: int, warm: int, n: int, variant: str) -> h.Latency:
    if variant == "ceiling":
        return h.ceiling_latency(firehose, rate, warm, n)
    if variant in ("client", "typed"):
        return h.latency(firehose, rate, warm, n, variant)
    with PROTOTYPES[variant].apply():
        return h.latency(firehose, rate, warm, n, variant)


def run(
    rows: Sequence[str],
    settings: Settings,
    log: Callable[[str], None] = print,
    prototypes: Sequence[str] = (),
) -> Results:
    started = time.perf_counter()
    results = Results(settings, h.environment())
    streams_missing = h.streams_available()
    results.streams = streams_missing
    throughput = [r for r in THROUGHPUT_ROWS if r in rows]
    if throughput and "ceiling" not in throughput:
        throughput.insert(0, "ceiling")  # the ratios need it, from the same run
    lifetime = 120.0 if settings.quick else 1800.0
    with fh.FirehoseProcess(lifetime=lifetime) as firehose:
        if throughput:
            results.server_write_rate, error = _attempt(
                lambda: h.server_write_rate(firehose, settings.warm + settings.frames)
            )
            if error:
                log(f"server write rate: {error}")
            plan = _plan(throughput, prototypes, streams_missing)
            for key, _ in plan:
                results.throughput[key] = h.Throughput()
            for rep in range(settings.reps):
                for key, measure in plan:
                    if measure is None:
                        results.throughput[key].error = "n/a (streams not available)"
                        continue
                    gc.collect()
                    sample, error = peers.timed(lambda: measure(firehose, settings.warm, settings.frames))  # noqa: B023
                    results.throughput[key].add(sample, error)
                    log(
                        f"  rep {rep + 1}/{settings.reps} {key}: " + (_show(sample) if sample else f"{error}")
                    )
        if "latency" in rows:
            for rate, seconds in settings.latency_seconds.items():
                n = int(rate * seconds)
                warm = max(100, n // 10)
                for variant in ("ceiling", "client", "typed", *prototypes):
                    gc.collect()
                    result, error = _attempt(lambda: _latency(firehose, rate, warm, n, variant))  # noqa: B023
                    results.latency.append(
                        result if result is not None else h.Latency(rate, variant, error=error)
                    )
                    log(f"  latency at {rate:,}/s ({variant}) done")
        if "memory" in rows:
            result, error = _attempt(
                lambda: h.memory(firehose, settings.memory_frames, settings.memory_sample_every)
            )
            results.memory = result if result is not None else h.Memory(settings.memory_frames, error=error)
            log("  memory done")
        if "churn" in rows:
            timeout = 0.2 if settings.quick else 2.0
            result, error = _attempt(lambda: h.churn(firehose, settings.churn_seconds, timeout))
            results.churn = result if result is not None else h.Churn(error=error)
            log("  churn done")
    if "tls" in rows:
        _run_tls(results, settings, log, prototypes, lifetime)
    results.seconds = time.perf_counter() - started
    results.load_end = h.load_average()
    return results


def _run_tls(
    results: Results,
    settings: Settings,
    log: Callable[[str], None],
    prototypes: Sequence[str],
    lifetime: float,
) -> None:
    """Row 8: the ceiling and ``observe`` over wss (a throwaway CA, the firehose serving TLS)."""
    with tempfile.TemporaryDirectory(prefix="rxibkr-bench-") as directory:
        files, error = _attempt(lambda: h.tls_files(directory))
        if files is None:
            results.tls_error = error or "n/a (needs trustme or the openssl command)"
            return
        total = settings.warm + settings.frames
        with fh.FirehoseProcess(lifetime=lifetime, tls=(files.cert, files.key)) as firehose:
            results.tls_write_rate, error = _attempt(lambda: h.server_write_rate(firehose, total, files.ca))
            if error:
                log(f"TLS server write rate: {error}")
            keys = ["ceiling", "observe", *(f"observe+{p}" for p in prototypes)]
            for key in keys:
                results.tls[key] = h.Throughput()
            for rep in range(settings.reps):
                for key in keys:
                    gc.collect()
                    _, _, prototype = key.partition("+")

                    def measure() -> h.Sample:
                        if key == "ceiling":  # noqa: B023
                            return h.ceiling(firehose, settings.warm, settings.frames, ca=files.ca)
                        if not prototype:  # noqa: B023
                            return h.client_row(firehose, "observe", settings.warm, settings.frames, files.ca)
                        with PROTOTYPES[prototype].apply():  # noqa: B023
                            return h.client_row(firehose, "observe", settings.warm, settings.frames, files.ca)

                    sample, error = _attempt(measure)
                    results.tls[key].add(sample, error)
                    log(
                        f"  rep {rep + 1}/{settings.reps} tls {key}: "
                        + (_show(sample) if sample else f"{error}")
                    )


# ---------------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------------
def _num(value: float | None, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def _throughput_line(
    number: str,
    label: str,
    row: h.Throughput,
    ceiling: h.Throughput | None,
    target: float | None,
    cpu_target: float | None = None,
) -> str:
    if row.rate is None:
        return f"{number:>2}  {label:<56} {row.error or '-'}"
    ratio = row.rate / ceiling.rate if ceiling is not None and ceiling.rate else None
    cpu_ratio = ceiling.cpu_us / row.cpu_us if ceiling is not None and ceiling.cpu_us and row.cpu_us else None
    verdict = ""
    if target is not None and cpu_ratio is not None:
        verdict = f">= {target:.1f}x {_verdict(cpu_ratio >= target)}"
    if cpu_target is not None and row.cpu_us is not None:
        verdict = f"<= {cpu_target:g} us {_verdict(row.cpu_us <= cpu_target)}"
    return (
        f"{number:>2}  {label:<56} {_num(row.rate):>10} {_num(ratio, '.2f'):>7} "
        f"{_num(row.cpu_us, '.2f'):>11} {_num(cpu_ratio, '.2f'):>8}  {verdict}"
    )


def format_table(results: Results) -> str:
    s = results.settings
    env = results.environment
    lines: list[str] = []
    mode = "quick" if s.quick else "full"
    reps = f"median of {s.reps}" if s.reps > 1 else "1 repetition"
    lines.append(
        f"rxibkr benchmark ({mode}): {s.frames:,} smd frames after {s.warm:,} warm-up, {reps}; "
        f"python {env['python']}, websocket-client {env['websocket-client']}, reactivex "
        f"{env['reactivex']}, orjson {env['orjson']}, {env['cpus']} CPUs"
    )
    load = results.environment.get("load")
    if load:
        line = f"load average at start {load[0]:.2f}, at end {results.load_end:.2f} on {env['cpus']} CPUs"
        if max(load[0], results.load_end) > 0.5 * (env["cpus"] or 1):
            line += ": the machine is busy, wall-clock rates are noisy (CPU us/msg is steadier)"
        lines.append(line)
    ceiling = results.throughput.get("ceiling")
    base = ceiling.rate if ceiling is not None else None
    if results.server_write_rate is not None:
        line = f"firehose write rate (raw-socket reader): {results.server_write_rate:,.0f} frames/s"
        if base:
            factor = results.server_write_rate / base
            verdict = "the server is not the bottleneck" if factor > 2 else "WARNING: the server is slow"
            line += f" = {factor:,.1f}x the limit: {verdict}"
        lines.append(line)
    lines.append("")
    if results.throughput:
        lines.append(
            f"{'#':>2}  {'row':<56} {'msg/s':>10} {'x limit':>7} {'CPU us/msg':>11} {'x limit':>8}  target"
        )
        for key, row in results.throughput.items():
            name, _, prototype = key.partition("+")
            number, label = THROUGHPUT_ROWS[name]
            if name == "snapshots" and results.streams is None and h.streams_api() != "client.market_data":
                label = "streams_of(client).market_data(c).pipe(snapshots())"
            if name == "conids":
                label = f"the same over {CONIDS:,} conids"
            if prototype:
                number, label = number + "+", f"  [prototype {prototype}]"
            line = _throughput_line(number, label, row, ceiling, TARGETS.get(name), CPU_TARGETS_US.get(name))
            single = results.throughput.get("snapshots" + (f"+{prototype}" if prototype else ""))
            if name == "conids" and row.cpu_us and single is not None and single.cpu_us:
                factor = row.cpu_us / single.cpu_us
                line += (
                    f"CPU {factor:.2f}x row 4, <= {CONIDS_CPU_TARGET:g}x "
                    f"{_verdict(factor <= CONIDS_CPU_TARGET)}"
                )
            lines.append(line)
    if results.latency:
        lines.append(f"{'6':>2}  {'latency server send -> on_next, ms':<56} {'p50':>8} {'p99':>8} {'max':>8}")
        for lat in results.latency:
            what = {
                "ceiling": "(ref) websocket-client recv() loop",
                "client": "observe(MARKET_DATA)",
                "typed": "market_data(c).pipe(snapshots())",
            }.get(lat.variant, f"[prototype {lat.variant}]")
            label = f"  {lat.rate:,}/s {what}"
            if lat.p99 is None:
                lines.append(f"{'':>2}  {label:<56} {lat.error or '-'}")
                continue
            target = LATENCY_TARGETS_MS.get(lat.rate) if lat.variant != "ceiling" else None
            verdict = f"p99 <= {target:g} ms {_verdict(lat.p99 <= target)}" if target else ""
            if lat.error:
                verdict += f" ({lat.error})"
            lines.append(
                f"{'':>2}  {label:<56} {lat.p50:>8.3f} {lat.p99:>8.3f} {_num(lat.max, '.3f'):>8}  {verdict}"
            )
    if results.memory is not None:
        m = results.memory
        label = f"RSS growth over {m.frames:,} frames via observe"
        if m.growth_mb is None:
            lines.append(f"{'7':>2}  {label:<56} {m.error or '-'}")
        else:
            verdict = f"< {MEMORY_TARGET_MB:g} MB {_verdict(m.growth_mb < MEMORY_TARGET_MB)}"
            lines.append(
                f"{'7':>2}  {label:<56} {m.growth_mb:>+9.1f} MB  {verdict} (baseline "
                f"{_num(m.baseline_mb, '.1f')} MB, peak {_num(m.peak_growth_mb, '+.1f')} MB, "
                f"{_num(m.rate)} msg/s)"
            )
    if results.churn is not None:
        c = results.churn
        number = "" if results.memory is not None else "7"
        if c.channel_rate is None or c.subscribe_rate is None:
            lines.append(f"{number:>2}  {'subscription churn':<56} {c.error or '-'}")
        else:
            label = "churn: channel(md+N).subscribe().dispose()"
            lines.append(f"{number:>2}  {label:<56} {c.channel_rate:>10,.0f} cycles/s")
            lines.append(
                f"{'':>2}  {'churn: subscribe(md+N, no confirm).dispose()':<56} "
                f"{c.subscribe_rate:>10,.0f} cycles/s"
            )
            lines.append(
                f"{'':>2}  {'  after ' + format(c.cycles, ',') + ' cycles':<56} "
                f"RSS {_num(c.rss_growth_mb, '+.1f')} MB, Python heap {_num(c.heap_growth_kb, '+.1f')} kB "
                f"over another pass, {c.leftover_subscriptions} subscriptions left"
            )
    if results.tls or results.tls_error:
        if results.tls_error:
            lines.append(f"{'8':>2}  {'wss (TLS)':<56} {results.tls_error}")
        else:
            tls_ceiling = results.tls.get("ceiling")
            for key, row in results.tls.items():
                _, _, prototype = key.partition("+")
                if key == "ceiling":
                    number, label = "8", "wss: websocket-client recv() + orjson.loads"
                elif not prototype:
                    number, label = "", "wss: client.observe(MARKET_DATA)"
                else:
                    number, label = "8+", f"  [prototype {prototype}]"
                lines.append(_throughput_line(number, label, row, tls_ceiling, None))
            if results.tls_write_rate is not None:
                label = "  TLS firehose write rate (raw TLS reader)"
                lines.append(f"{'':>2}  {label:<56} {results.tls_write_rate:>10,.0f}")
    lines.append("")
    lines.append(f"({results.seconds:.1f} s)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small numbers (the test suite runs this)")
    parser.add_argument(
        "--rows",
        help="comma-separated rows, by number (1-8 and 4b, ranges allowed) or name "
        f"({', '.join(ALL_ROWS)}, and "
        "tls: the ceiling and observe() over wss, only when asked for); default 1-7",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--frames", type=int, help="frames per throughput repetition (after warm-up)")
    parser.add_argument("--reps", type=int, help="repetitions of each throughput row")
    parser.add_argument("--memory-frames", type=int, help="frames through observe() for the RSS row")
    parser.add_argument(
        "--prototype",
        help="comma-separated hot-path prototypes to measure next to the client rows: "
        + ", ".join(f"{p.name} ({p.description})" for p in PROTOTYPES.values()),
    )
    parser.add_argument("-q", "--silent", action="store_true", help="print only the table")
    args = parser.parse_args(argv)
    settings = Settings.make(args.quick)
    if args.frames:
        settings.frames = args.frames
        settings.warm = max(1000, args.frames // 10)
    if args.reps:
        settings.reps = args.reps
    if args.memory_frames:
        settings.memory_frames = args.memory_frames
    rows = parse_rows(args.rows)
    if args.rows is None and settings.quick:
        rows = [r for r in rows if r not in PEER_ROWS or r in QUICK_PEERS]
    prototypes = [p for p in (args.prototype or "").replace(" ", "").split(",") if p]
    for prototype in prototypes:
        if prototype not in PROTOTYPES:
            raise SystemExit(f"--prototype: unknown {prototype!r}; use {', '.join(PROTOTYPES)}")

    def log(text: str) -> None:
        if not args.silent:
            print(text, file=sys.stderr, flush=True)

    results = run(rows, settings, log, prototypes)
    print(format_table(results), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results.to_json(), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
