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
import logging
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_FIELDS = "31,55,84,85,86,88,7059,87"

_SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class _Stopped(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "instruments",
        nargs="+",
        metavar="INSTRUMENT",
        help="contract ids (265598) or symbols (AAPL) to subscribe",
    )
    parser.add_argument(
        "--url",
        default=None,
        help="gateway WebSocket URL (default: $RXIBKR_WS_URL or wss://localhost:5000/v1/api/ws)",
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument(
        "--cacert", default=None, metavar="PEM", help="CA certificate to verify the gateway with"
    )
    tls.add_argument("--insecure", action="store_true", help="do not verify the gateway's certificate")
    parser.add_argument("--account", default=None, help="account id (default: $RXIBKR_ACCOUNT_ID)")
    parser.add_argument(
        "--fields",
        default=DEFAULT_FIELDS,
        help=f"comma-separated market data field ids (default: {DEFAULT_FIELDS})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop after this many seconds (default: until Ctrl-C, SIGTERM or SIGHUP)",
    )
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
        type=float,
        default=0.5,
        metavar="S",
        help="seconds between flushes of the raw log (default: 0.5)",
    )
    parser.add_argument(
        "--parquet-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between flushes of the Parquet tables (default: 5)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="connect timeout (default: 5)"
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")


@contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the recording like Ctrl-C (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        for sig in _SIGNALS:  # one stop is enough: nothing may interrupt the clean-up
            signal.signal(sig, signal.SIG_IGN)
        raise _Stopped(_SIGNALS.get(signal.Signals(signum), str(signum)))

    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
    from rxibkr.cli.demo import DemoError, resolve_instruments
    from rxibkr.client.core import IbkrWsClient  # imported here: `rxibkr --help` stays fast
    from rxibkr.record import Recorder

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    err = sys.stderr
    for name in ("duration", "flush_interval", "parquet_interval"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            err.write(f"rxibkr record: --{name.replace('_', '-')} must be a positive number of seconds\n")
            return 2
    fields = [f.strip() for f in str(args.fields).split(",") if f.strip()]
    options: dict[str, Any] = {"timeout": args.timeout, "max_connection_attempts": 3}
    if args.url is not None:
        options["url"] = args.url
    if args.insecure:
        options["cacert"] = False
    elif args.cacert is not None:
        options["cacert"] = args.cacert
    if args.account is not None:
        options["account_id"] = args.account
    try:
        client = IbkrWsClient(**options)
    except (TypeError, ValueError) as exc:
        err.write(f"rxibkr record: {exc}\n")
        return 2
    out = args.out or _default_out(args.parquet)
    stopped_by = "duration reached"
    recorder: Recorder | None = None
    delivered: Counter[int] = Counter()
    subscriptions: list[Any] = []
    with _signals_stop():
        try:
            try:
                recorder = Recorder(
                    client,
                    out,
                    flush_interval=args.flush_interval,
                    parquet=args.parquet,
                    parquet_interval=args.parquet_interval,
                )
            except (OSError, ImportError, ValueError) as exc:
                err.write(f"rxibkr record: {exc}\n")
                return 2
            if not client.start():
                err.write(f"rxibkr record: no session confirmed by {client.url}\n")
                return 1
            try:
                instruments = resolve_instruments(
                    args.instruments, client.rest.search if client.rest is not None else None
                )
            except DemoError as exc:
                err.write(f"rxibkr record: {exc}\n")
                return exc.exit_code
            for instrument in instruments:
                conid = instrument.conid

                def count(_update: Any, conid: int = conid) -> None:
                    delivered[conid] += 1

                subscriptions.append(client.market_data(conid, fields).subscribe(count))
            until = "Ctrl-C" if args.duration is None else f"{args.duration:g} s"
            names = " ".join(i.symbol or str(i.conid) for i in instruments)
            where = out + (f" and {args.parquet}" if args.parquet else "")
            err.write(f"rxibkr record: recording {names} to {where} (until {until})\n")
            err.flush()
            threading.Event().wait(args.duration)
        except KeyboardInterrupt:
            stopped_by = "SIGINT"
        except _Stopped as exc:
            stopped_by = exc.name
        finally:
            for subscription in subscriptions:
                subscription.dispose()
            client.shutdown()
            failure: OSError | None = None
            if recorder is not None:
                try:
                    recorder.dispose()
                except OSError as exc:
                    failure = exc
    if recorder is None:
        return 2
    if failure is not None:
        err.write(f"rxibkr record: {failure}\n")
        return 1
    updates = ", ".join(f"{conid}: {n}" for conid, n in sorted(delivered.items()))
    err.write(
        f"rxibkr record: stopped ({stopped_by}); {recorder.frames} frames written to {out}, file closed; "
        f"market data updates delivered: {updates or 'none'}\n"
    )
    err.flush()
    return 0
