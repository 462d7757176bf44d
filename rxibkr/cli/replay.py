"""``rxibkr replay``: replay a recording through a real client and print what its streams see.

rxibkr replay session.jsonl              # as fast as possible, one line per decoded message
rxibkr replay session.jsonl --speed 1    # in real time
rxibkr replay session.jsonl --summary    # counts per topic instead of the messages
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from typing import TextIO

import orjson

from rxibkr.cli import signals
from rxibkr.cli.options import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_USAGE,
    add_logging,
    positive_float,
    setup_logging,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", help="a recording, .jsonl or .jsonl.zst (rxibkr record, client.record)"
    )
    parser.add_argument(
        "--speed",
        type=positive_float,
        default=None,
        metavar="X",
        help="1 = real time, 10 = ten times faster (default: as fast as possible)",
    )
    parser.add_argument("--summary", action="store_true", help="print a summary instead of every message")
    parser.add_argument(
        "--synthesize-greeting",
        action="store_true",
        help="give recorded connections that have data but no session confirmation a synthetic one "
        "(old recordings that began mid-session)",
    )
    add_logging(parser)


def run(args: argparse.Namespace) -> int:
    from reactivex import merge

    from rxibkr.client.core import IbkrWsClient
    from rxibkr.protocol import IbkrWsKey, Message
    from rxibkr.record import Recording, ReplayTransport

    setup_logging(args)
    out: TextIO = sys.stdout
    try:
        recording = Recording.load(args.file)
    except (OSError, ValueError, ImportError) as exc:
        sys.stderr.write(f"rxibkr replay: {args.file}: {exc}\n")
        return EXIT_USAGE
    if not recording.connections:
        sys.stderr.write(f"rxibkr replay: {args.file}: the recording is empty\n")
        return EXIT_FAILURE
    transport = ReplayTransport(recording, speed=args.speed, synthesize_greeting=args.synthesize_greeting)
    client = IbkrWsClient(url="ws://replay.invalid/v1/api/ws", transport=transport, log_raw_messages=False)
    counts: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()
    done = threading.Event()  # the replay finished, or stdout was closed
    closed: list[OSError] = []
    started = time.monotonic()

    def show(message: Message) -> None:
        key = message.key.name if message.key is not None else "-"
        topic = message.topic or "-"
        with lock:
            counts[(key, topic)] += 1
            if args.summary or closed:
                return
            body = orjson.dumps(message.data).decode() if message.data is not None else repr(message.raw)
            error = f"  [{message.kind.value}: {message.error}]" if message.error else ""
            try:
                out.write(f"{time.monotonic() - started:9.3f}  {key:<22} {topic:<20} {body}{error}\n")
            except OSError as exc:  # | head: the reader stopped reading; so do we, quietly
                if not signals.is_broken_pipe(exc):
                    raise
                closed.append(exc)
                done.set()

    budget = None if args.speed is None else recording.duration / args.speed + 30.0

    def wait_replay() -> None:
        transport.wait(budget)
        done.set()

    subscription = merge(*(client.observe(key) for key in IbkrWsKey)).subscribe(show)
    try:
        client.start()
        threading.Thread(target=wait_replay, name="replay-wait", daemon=True).start()
        done.wait()
    except KeyboardInterrupt as exc:
        return signals.exit_code_of(exc)
    finally:
        signals.stopping()
        client.shutdown()
        subscription.dispose()
    if closed:
        signals.silence_stdout()
        return EXIT_PIPE
    if args.summary:
        _summary(out, recording, transport, counts)
    out.flush()
    return EXIT_OK


def _summary(out: TextIO, recording: object, transport: object, counts: Counter[tuple[str, str]]) -> None:
    from rxibkr.record import Recording, ReplayTransport

    assert isinstance(recording, Recording) and isinstance(transport, ReplayTransport)
    opened = [c for c in recording.connections if c.opened]
    failed = len(recording.connections) - len(opened)
    out.write(
        f"recording: {len(opened)} connection(s), {failed} failed attempt(s), {recording.duration:.3f} s\n"
    )
    out.write(
        f"frames: {sum(1 for _ in recording.frames('in'))} in, "
        f"{sum(1 for _ in recording.frames('out'))} out (recorded)\n"
    )
    if transport.synthesized:
        out.write(f"greeting synthesised for connection(s) {transport.synthesized}\n")
    out.write(f"messages seen by the client: {sum(counts.values())}\n")
    for (key, topic), n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        out.write(f"  {n:8d}  {key:<22} {topic}\n")
    out.write(f"frames the client sent during replay: {len(transport.sent)}\n")
    if transport.forced_closes:
        out.write(f"client closes the replay had to force: {transport.forced_closes}\n")
