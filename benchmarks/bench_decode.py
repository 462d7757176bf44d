"""Benchmark: ``rxibkr.protocol.decode`` against bare ``orjson.loads`` on a typical ``smd`` frame.

Run ``python benchmarks/bench_decode.py [--quick]``. Plain timeit loops over a list of distinct frames
(binary, as the gateway sends them); the best of several repeats is reported, as frames per second,
with the ratio decode / loads (the target is >= 0.7). Also times a few other frame shapes.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import timeit
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from rxibkr.protocol import decode

SMD_FRAME = (
    b'{"server_id":"q1","conidEx":"265598","conid":265598,"_updated":1777552110061,"6119":"q1",'
    b'"31":"271.67","84":"271.55","86":"271.66","83":0.56,"topic":"smd+265598"}'
)
"""The typical ``smd`` frame of the brief (protocol README section 3.1)."""

OTHER_FRAMES: dict[str, bytes] = {
    "system hb": b'{"topic":"system","hb":1777415611502}',
    "sor": (
        b'{"topic":"sor","args":[{"acct":"DU1234567","orderId":352055828,"status":"Submitted",'
        b'"bgColor":"#000000","fgColor":"#00F000"}]}'
    ),
    "malformed": b'{ "31": "382.89", "83": 0.04, "topic": "smd+265598", }',
}


def _frames(template: bytes, count: int) -> list[bytes]:
    """``count`` distinct copies (different timestamps), as a socket would deliver them."""
    return [template.replace(b"1777552110061", str(1777552110061 + i).encode()) for i in range(count)]


def _rate(
    func: Callable[[Any], Any], frames: Sequence[bytes], repeat: int, number: int, with_gc: bool = False
) -> float:
    """Best frames/s over ``repeat`` runs of ``number`` passes over ``frames``."""

    def run() -> None:
        for frame in frames:
            func(frame)

    timer = timeit.Timer(run, setup="gc.enable()" if with_gc else "pass", globals={"gc": gc})
    best = min(timer.repeat(repeat=repeat, number=number))
    return len(frames) * number / best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--repeat", type=int, default=None, help="timeit repeats (best is kept)")
    parser.add_argument("--number", type=int, default=None, help="passes over 1000 frames per repeat")
    parser.add_argument("--gc", action="store_true", help="keep the garbage collector on while timing")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 9)
    number = args.number or (20 if args.quick else 200)

    loads = orjson.loads
    frames = _frames(SMD_FRAME, 1000)
    decode(frames[0])  # warm up (the topic table learns 'smd+265598')
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"{python}, orjson {orjson.__version__}")
    print(f"frame: {len(SMD_FRAME)} bytes smd x {len(frames)} distinct; gc while timing: {args.gc}")
    # interleave the two measurements so that machine noise hits both alike
    loads_rate = decode_rate = 0.0
    for _ in range(3 if not args.quick else 1):
        loads_rate = max(loads_rate, _rate(loads, frames, repeat, number, args.gc))
        decode_rate = max(decode_rate, _rate(decode, frames, repeat, number, args.gc))
    ratio = decode_rate / loads_rate
    print(f"orjson.loads        {loads_rate:12,.0f} frames/s")
    print(f"decode (smd)        {decode_rate:12,.0f} frames/s")
    print(f"ratio decode/loads  {ratio:12.2f}   (target >= 0.70)")
    for name, template in OTHER_FRAMES.items():
        others = [template] * 1000
        other_loads = _rate(_safe_loads, others, repeat, max(1, number // 4), args.gc)
        other_decode = _rate(decode, others, repeat, max(1, number // 4), args.gc)
        ratio = other_decode / other_loads
        print(f"{name:<19} loads {other_loads:10,.0f}/s  decode {other_decode:10,.0f}/s  ratio {ratio:.2f}")
    return 0


def _safe_loads(frame: bytes) -> Any:
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None


if __name__ == "__main__":
    sys.exit(main())
