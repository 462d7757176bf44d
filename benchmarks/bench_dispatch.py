"""Micro-benchmark: ``IbkrWsClient.on_frame`` alone (no socket, no threads), unpatched and with the
``dispatch`` prototype, on the firehose's ``smd`` frames, with one ``observe(MARKET_DATA)`` observer.

    python -m benchmarks.bench_dispatch [--quick]

The socket rows of ``benchmarks.run`` cannot resolve a few hundred nanoseconds on a shared machine;
this can: best of several repeats of a tight loop, as ``timeit`` does.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import firehose as fh
from rxibkr.client.core import IbkrWsClient
from rxibkr.protocol import IbkrWsKey, decode


class _Tickle:
    def tickle(self) -> dict[str, str]:
        return {"session": "bench"}


def _client() -> tuple[IbkrWsClient, Any]:
    client = IbkrWsClient(ibkr_client=_Tickle(), url="ws://127.0.0.1:9/v1/api/ws")
    reader = client._new_reader(1)  # the current connection's reader: on_frame delivers
    reader.first_data = False
    connection = object()
    count = [0]

    def on_next(_message: Any) -> None:
        count[0] += 1

    client.observe(IbkrWsKey.MARKET_DATA).subscribe(on_next)
    return client, (reader, connection)


def measure(loops: int = 100, repeats: int = 15) -> dict[str, float]:
    """ns per frame, best of ``repeats`` (variants interleaved): ``decode`` alone and the reader's
    ``on_frame`` (decode and delivery to one ``observe(MARKET_DATA)`` observer)."""
    frames = [f[4:] for f in fh.smd_frames(1000)]  # payloads (the 4-byte header stripped)
    calls = len(frames) * loops
    base_client, (reader, base_connection) = _client()
    variants: dict[str, tuple[Callable[..., Any], object | None]] = {
        "decode": (decode, None),
        "on_frame": (reader.on_frame, base_connection),
    }

    def run(fn: Callable[..., Any], connection: object | None) -> float:
        gc.collect()
        t0 = time.perf_counter_ns()
        if connection is None:
            for _ in range(loops):
                for frame in frames:
                    fn(frame)
        else:
            for _ in range(loops):
                for frame in frames:
                    fn(connection, frame)
        return (time.perf_counter_ns() - t0) / calls

    best = dict.fromkeys(variants, float("inf"))
    try:
        for _ in range(repeats):
            for name, (fn, connection) in variants.items():
                best[name] = min(best[name], run(fn, connection))
    finally:
        base_client._reader = None
        base_client.shutdown()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_dispatch", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    results = measure(loops=10 if args.quick else 100, repeats=3 if args.quick else 15)
    base = results["on_frame"]
    for name, ns in results.items():
        print(f"{name:<20} {ns:8.0f} ns/frame  {ns / base:5.2f}x on_frame")
    print(f"on_frame adds {base - results['decode']:.0f} ns/frame to decode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
