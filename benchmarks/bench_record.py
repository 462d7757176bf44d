"""Recording benchmark: a sustained 10k msg/s stream recorded without falling behind, and bytes/message.

    python -m benchmarks.bench_record                 # 10,000 msg/s for 5 s, each format
    python -m benchmarks.bench_record --rate 10000 --seconds 3 --json out.json

The firehose (benchmarks/firehose.py, its own process) sends realistic ``smd`` frames at ``--rate``
frames/s (``mode=paced``); a client records them with :class:`rxibkr.record.Recorder`, once per
format: raw JSON Lines, raw ``.zst``, and ``.zst`` + live Parquet tables. While the stream runs the
writer's queue depth is sampled every 50 ms (the benchmark polls; the library does not): it must
stay bounded (the writer keeps up) and drain once the stream ends. Reported per format: messages
recorded, the deepest queue, the time the writer needed after the last frame to be done, CPU
seconds of the whole process, and bytes per message on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import firehose as fh
from benchmarks.harness import connected_client
from rxibkr.protocol import IbkrWsKey
from rxibkr.record import Recorder

FORMATS = ("jsonl", "zst", "zst+parquet")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_format(
    firehose: fh.FirehoseProcess, fmt: str, rate: int, seconds: float, directory: Path
) -> dict[str, Any]:
    n = int(rate * seconds)
    raw = directory / (f"{fmt}.jsonl" if fmt == "jsonl" else f"{fmt}.jsonl.zst")
    parquet = directory / f"{fmt}-parquet" if "parquet" in fmt else None
    url = firehose.url(mode="paced", n=n, rate=rate, hb=5)
    depths: list[int] = []
    with connected_client(url) as client:
        recorder = Recorder(client, raw, parquet=parquet)
        market_data = [0]  # the stream's frames received (recorder.frames counts every frame)

        def count(_: Any) -> None:
            market_data[0] += 1

        client.observe(IbkrWsKey.MARKET_DATA).subscribe(count)
        cpu0 = time.process_time()
        client.subscribe("md+265598", {"fields": ["31", "84", "86", "85", "88", "83"]}, wait=False)
        start = time.monotonic()
        deadline = start + seconds * 3 + 10
        done = threading.Event()
        while time.monotonic() < deadline:
            depths.append(recorder.queue_depth)
            if market_data[0] >= n and recorder.queue_depth == 0:
                break
            done.wait(0.05)
        stream_end = start + seconds
        drained_after = max(0.0, time.monotonic() - stream_end)
        recorder.dispose()
        cpu = time.process_time() - cpu0
    frames = recorder.frames
    bytes_raw = _size(raw)
    result: dict[str, Any] = {
        "format": fmt,
        "messages": frames,
        "expected": n,
        "max_queue_depth": max(depths) if depths else 0,
        "max_queue_depth_writer": recorder.max_queue_depth,
        "drained_after_s": round(drained_after, 3),
        "cpu_s": round(cpu, 3),
        "cpu_us_per_msg": round(cpu / max(frames, 1) * 1e6, 2),
        "raw_bytes_per_msg": round(bytes_raw / max(frames, 1), 1),
    }
    if parquet is not None:
        import rxibkr.record as r

        rows = len(r.read(parquet, "quotes"))
        result["parquet_rows"] = rows
        result["parquet_bytes_per_row"] = round(_size(parquet) / max(rows, 1), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=10_000, help="frames per second (default: 10000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per format (default: 5)")
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated, of {FORMATS}")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    results = []
    directory = Path(tempfile.mkdtemp(prefix="rxibkr-bench-record-"))
    try:
        with fh.FirehoseProcess(lifetime=600) as firehose:
            for fmt in formats:
                result = run_format(firehose, fmt, args.rate, args.seconds, directory)
                results.append(result)
                print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print()
    print(f"recording {args.rate} msg/s for {args.seconds:g} s (pid {os.getpid()})")
    print(
        "| format | messages | max queue | drained after | CPU µs/msg | bytes/msg raw | bytes/row parquet |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['format']} | {r['messages']}/{r['expected']} | {r['max_queue_depth']} "
            f"| {r['drained_after_s']} s | {r['cpu_us_per_msg']} | {r['raw_bytes_per_msg']} "
            f"| {r.get('parquet_bytes_per_row', '-')} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    ok = all(r["messages"] >= r["expected"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
