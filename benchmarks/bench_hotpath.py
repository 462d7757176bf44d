"""Micro-benchmark of the hot path, in process (no socket, no threads): ns per frame of each stage.

    python -m benchmarks.bench_hotpath [--quick]

The socket rows of ``benchmarks.run`` move by 10-20% on a shared 2-core machine; these are the best
of several repeats of a tight loop over the firehose's ``smd`` payloads, as ``timeit`` does:

* ``loads``: ``orjson.loads`` alone (the part of the limit a client cannot avoid);
* ``decode``: ``rxibkr.protocol.decode``;
* ``observe``: the reader's ``on_frame`` delivering to one ``observe(MARKET_DATA)`` observer;
* ``typed``: ``on_frame`` delivering to ``market_data(c).pipe(snapshots())``, the observer reading
  bid, ask and last;
* ``queue``: ``on_frame`` putting into a queue accessor, drained by ``get()`` on the same thread.
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

import orjson

from benchmarks import firehose as fh
from rxibkr.client.core import IbkrWsClient
from rxibkr.protocol import IbkrWsKey, decode
from rxibkr.streams import operators


class _Tickle:
    def tickle(self) -> dict[str, str]:
        return {"session": "bench"}


def _reader(client: IbkrWsClient) -> Any:
    reader = client._new_reader(1)  # the current connection's reader: on_frame delivers
    reader.first_data = False
    return reader


def measure(loops: int = 100, repeats: int = 11) -> dict[str, float]:
    frames = [f[4:] for f in fh.smd_frames(1000)]  # payloads (the 4-byte header stripped)
    calls = len(frames) * loops
    clients: list[IbkrWsClient] = []
    count = [0]

    def counted(_value: Any) -> None:
        count[0] += 1

    def new_client() -> tuple[IbkrWsClient, Any]:
        client = IbkrWsClient(ibkr_client=_Tickle(), url="ws://127.0.0.1:9/v1/api/ws")
        clients.append(client)
        return client, _reader(client)

    c_observe, r_observe = new_client()
    c_observe.observe(IbkrWsKey.MARKET_DATA).subscribe(counted)

    c_typed, r_typed = new_client()

    def read(quote: Any) -> None:
        counted((quote.bid, quote.ask, quote.last))

    c_typed.market_data(fh.CONID).pipe(operators.snapshots()).subscribe(read)

    c_queue, r_queue = new_client()
    accessor = c_queue.new_queue_accessor(IbkrWsKey.MARKET_DATA)
    get = accessor.get

    def queue_frame(connection: object, frame: bytes) -> None:
        r_queue.on_frame(connection, frame)
        counted(get(False))

    connection = object()
    loads = orjson.loads
    variants: dict[str, Callable[..., Any]] = {
        "loads": lambda _c, f: loads(f),
        "decode": lambda _c, f: decode(f),
        "observe": r_observe.on_frame,
        "typed": r_typed.on_frame,
        "queue": queue_frame,
    }

    def run(fn: Callable[..., Any]) -> float:
        gc.collect()
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            for frame in frames:
                fn(connection, frame)
        return (time.perf_counter_ns() - t0) / calls

    best = dict.fromkeys(variants, float("inf"))
    try:
        for fn in variants.values():
            run(fn)  # warm caches (the duplicate check, the parsed-value memo)
        for _ in range(repeats):
            for name, fn in variants.items():
                best[name] = min(best[name], run(fn))
    finally:
        for client in clients:
            client._reader = None
            client.shutdown()
    return best


def subscription_memory(n: int = 1000) -> dict[str, float]:
    """Python heap (tracemalloc) per subscription, in KiB, over ``n`` conids: ``typed`` is
    ``market_data(c).pipe(snapshots())`` with its state after two frames of each conid, ``plain``
    is ``client.subscribe("md+c", needs_confirmation=False)``."""
    import tracemalloc

    frames = [f[4:] for f in fh.multi_conid_frames(n)]
    results: dict[str, float] = {}
    for kind in ("typed", "plain"):
        client = IbkrWsClient(ibkr_client=_Tickle(), url="ws://127.0.0.1:9/v1/api/ws")
        reader = _reader(client)
        keep: list[Any] = []

        def read(quote: Any) -> None:
            return None

        try:
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for conid in range(fh.CONID, fh.CONID + n):
                if kind == "typed":
                    keep.append(client.market_data(conid).pipe(operators.snapshots()).subscribe(read))
                else:
                    keep.append(client.subscribe(f"md+{conid}", needs_confirmation=False))
            if kind == "typed":
                for frame in frames[: 2 * n]:
                    reader.on_frame(None, frame)
            gc.collect()
            results[kind] = (tracemalloc.get_traced_memory()[0] - before) / n / 1024
        finally:
            tracemalloc.stop()
            client._reader = None
            client.shutdown()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_hotpath", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    results = measure(loops=10 if args.quick else 50, repeats=3 if args.quick else 9)
    for name, ns in results.items():
        print(f"{name:<10} {ns:8.0f} ns/frame  (+{ns - results['loads']:.0f} over loads)")
    for kind, kib in subscription_memory(100 if args.quick else 1000).items():
        print(f"{kind:<10} {kib:8.2f} KiB per subscription (Python heap)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
