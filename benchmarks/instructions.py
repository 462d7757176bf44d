"""Instructions per frame of each hot-path stage, counted by valgrind (deterministic, unlike time on
a shared machine).

    python -m benchmarks.instructions [loads observe observe_noq typed typed1000 queue]

Each variant runs the reader's ``on_frame`` in process (no socket) over the firehose's ``smd``
payloads, twice under ``valgrind --tool=callgrind`` (0 and 20,000 frames); the difference divided by
20,000 is printed (with ``PYTHONHASHSEED=0``: string hashes, and so dict probing, are the same in
every run). Needs the ``valgrind`` command (Debian: ``apt-get install valgrind``). About 30 s
per variant. ``python -m benchmarks.instructions --run VARIANT N`` is the measured program itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = ("loads", "observe", "observe_noq", "typed", "typed1000", "queue")
FRAMES = 20_000


def run(variant: str, n: int) -> None:
    """The measured program: build a client for ``variant``, warm up, then ``n`` frames."""
    import orjson

    from benchmarks import firehose as fh
    from benchmarks.bench_hotpath import _reader, _Tickle
    from rxibkr.client.core import IbkrWsClient
    from rxibkr.protocol import IbkrWsKey
    from rxibkr.streams import operators

    frames = [f[4:] for f in fh.smd_frames(1000)]
    client = IbkrWsClient(ibkr_client=_Tickle(), url="ws://127.0.0.1:9/v1/api/ws")
    reader = _reader(client)
    seen = [0]

    def count(_: Any) -> None:
        seen[0] += 1

    def read(quote: Any) -> None:
        count((quote.bid, quote.ask, quote.last))

    fn = reader.on_frame
    if variant in ("observe", "observe_noq"):
        client.observe(IbkrWsKey.MARKET_DATA).subscribe(count)
        if variant == "observe_noq":  # what the IBind queue's put costs (the reader's inlined one too)
            client._queues_put = lambda message: None  # type: ignore[method-assign]
            client._md_queue = None
    elif variant == "typed":
        client.market_data(fh.CONID).pipe(operators.snapshots()).subscribe(read)
    elif variant == "typed1000":
        frames = [f[4:] for f in fh.multi_conid_frames(1000)]
        for conid in range(fh.CONID, fh.CONID + 1000):
            client.market_data(conid).pipe(operators.snapshots()).subscribe(read)
    elif variant == "queue":
        get = client.new_queue_accessor(IbkrWsKey.MARKET_DATA).get

        def fn(connection: Any, frame: bytes) -> None:
            reader.on_frame(connection, frame)
            count(get(False))

    elif variant == "loads":
        loads = orjson.loads

        def fn(connection: Any, frame: bytes) -> None:
            count(loads(frame))

    else:
        raise SystemExit(f"unknown variant {variant!r}; use {', '.join(VARIANTS)}")
    connection = object()
    for frame in frames:  # warm-up: memo caches, learned topics
        fn(connection, frame)
    for i in range(n):
        fn(connection, frames[i % len(frames)])
    client._reader = None
    client.shutdown()


def count_instructions(variant: str) -> int:
    """Instructions per frame of ``variant`` (two valgrind runs)."""
    totals = []
    for n in (0, FRAMES):
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
             "benchmarks.instructions", "--run", variant, str(n)],
            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=600,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # dict probing varies with the hash seed: ±200
        )  # fmt: skip
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(f"valgrind: {done.stderr[-500:]}")
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) // FRAMES


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--run"]:
        run(args[1], int(args[2]))
        return 0
    if shutil.which("valgrind") is None:
        print("needs the valgrind command (apt-get install valgrind)", file=sys.stderr)
        return 1
    for variant in args or ("loads", "observe", "typed", "queue"):
        print(f"{variant:<12} {count_instructions(variant):>8,} instructions/frame", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
