"""``rxibkr record``: connect to a gateway, subscribe market data for some instruments, record the session.

    rxibkr record --url wss://localhost:5000/v1/api/ws --cacert gateway-ca.pem --duration 60 \\
        --out session.jsonl.zst AAPL MSFT 8314
    rxibkr record --parquet out/ --duration 10 AAPL MSFT

Instruments are conids or symbols (looked up like ``rxibkr demo`` does, through the REST secdef search).
The raw log is the versioned JSON Lines format of :mod:`rxibkr.record.format` (zstandard-compressed when
the name ends in ``.zst``; session ids redacted); replay it with ``rxibkr replay FILE``. ``--parquet DIR``
writes typed tables while recording (and, without ``--out``, the raw log to ``DIR/raw/``).

Stops after ``--duration``, or on Ctrl-C, SIGTERM or SIGHUP: everything received is written, the files
closed, and one line on stderr says so. A killed recorder (SIGKILL) loses at most the last
``--flush-interval`` seconds of the raw log and ``--parquet-interval`` seconds of the tables.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rxibkr.cli import signals
from rxibkr.cli.options import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_duration,
    add_gateway,
    add_instruments,
    add_logging,
    client_instruments,
    connect,
    flush_logs,
    make_client,
    positive_float,
    setup_logging,
)

DEFAULT_FIELDS = "31,55,84,85,86,88,7059,87"


def configure(parser: argparse.ArgumentParser) -> None:
    add_instruments(parser, required=True)
    parser.add_argument(
        "--fields",
        default=DEFAULT_FIELDS,
        metavar="IDS",
        help=f"comma-separated market data field ids (default: {DEFAULT_FIELDS})",
    )
    add_duration(parser, "stop")
    parser.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="raw log to append to, .jsonl or .jsonl.zst (default: rxibkr-<UTC time>.jsonl, or "
        "DIR/raw/rxibkr-<UTC time>.jsonl.zst with --parquet DIR)",
    )
    parser.add_argument(
        "--parquet",
        default=None,
        metavar="DIR",
        help="also write typed Parquet tables to DIR while recording",
    )
    parser.add_argument(
        "--flush-interval",
        type=positive_float,
        default=0.5,
        metavar="SECONDS",
        help="seconds between flushes of the raw log (default: 0.5)",
    )
    parser.add_argument(
        "--parquet-interval",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between flushes of the Parquet tables (default: 5)",
    )
    add_gateway(parser)
    add_logging(parser)


def _default_out(parquet: str | None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    if parquet is None:
        return f"rxibkr-{stamp}.jsonl"
    try:
        import zstandard  # noqa: F401
    except ImportError:
        suffix = ".jsonl"
    else:
        suffix = ".jsonl.zst"
    raw = Path(parquet) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    return str(raw / f"rxibkr-{stamp}{suffix}")


def run(args: argparse.Namespace) -> int:
    from rxibkr.record import Recorder

    setup_logging(args)
    err = sys.stderr
    fields = [f.strip() for f in str(args.fields).split(",") if f.strip()]
    if not fields or not all(f.isdigit() for f in fields):
        raise CliError(f"--fields: expected comma-separated field ids, got {args.fields!r}", EXIT_USAGE)
    out = args.out or _default_out(args.parquet)
    stopped_by = "duration reached"
    stop: signals.Stopped | None = None
    client: Any = None
    recorder: Recorder | None = None
    delivered: Counter[int] = Counter()
    subscriptions: list[Any] = []
    failure: OSError | None = None
    try:
        try:
            with signals.deferred():
                client = make_client(args)
            try:
                with signals.deferred():
                    recorder = Recorder(
                        client,
                        out,
                        flush_interval=args.flush_interval,
                        parquet=args.parquet,
                        parquet_interval=args.parquet_interval,
                    )
            except (OSError, ImportError, ValueError) as exc:
                raise CliError(str(exc), EXIT_USAGE) from None
            connect(client, "rxibkr record")
            instruments = client_instruments(client, args.instruments)
            for instrument in instruments:
                conid = instrument.conid

                def count(_update: Any, conid: int = conid) -> None:
                    delivered[conid] += 1

                subscriptions.append(client.market_data(conid, fields).subscribe(count))
            until = "Ctrl-C" if args.duration is None else f"{args.duration:g} s"
            names = " ".join(i.label for i in instruments)
            where = out + (f" and {args.parquet}" if args.parquet else "")
            err.write(f"rxibkr record: recording {names} to {where} (until {until})\n")
            err.flush()
            threading.Event().wait(args.duration)
        except KeyboardInterrupt as exc:
            stop = exc if isinstance(exc, signals.Stopped) else signals.Stopped("SIGINT")
            stopped_by = stop.name
    finally:
        signals.stopping()  # from here on a signal is noted, not raised: the files close whole
        for subscription in subscriptions:
            subscription.dispose()
        if client is not None:
            client.shutdown()  # first: the close is recorded too
        if recorder is not None:
            try:
                recorder.dispose()
            except OSError as exc:
                failure = exc
    if recorder is None:
        return EXIT_USAGE
    if failure is not None:
        err.write(f"rxibkr record: {failure}\n")
        return EXIT_FAILURE
    flush_logs()
    updates = ", ".join(f"{conid}: {n}" for conid, n in sorted(delivered.items()))
    err.write(
        f"rxibkr record: stopped ({stopped_by}); {recorder.frames} frames written to {out}, file closed; "
        f"market data updates delivered: {updates or 'none'}\n"
    )
    err.flush()
    return EXIT_OK if stop is None else stop.exit_code
