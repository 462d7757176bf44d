"""``rxibkr record``: connect to a gateway, subscribe market data for some conids, record the session.

    rxibkr record --url wss://localhost:5000/v1/api/ws --cacert gateway-ca.pem --duration 60 \\
        --out session.jsonl 265598 8314

The file is the JSON Lines format of :mod:`rxibkr.record.recording` (session ids redacted); replay it with
``rxibkr replay session.jsonl`` or ``IbkrWsClient(transport=ReplayTransport("session.jsonl"))``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from typing import Any

DEFAULT_FIELDS = "31,84,86,85,88,7059"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("conids", nargs="+", type=int, metavar="CONID", help="contract ids to subscribe")
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
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="JSON Lines file to append to (default: rxibkr-<UTC time>.jsonl)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="connect timeout (default: 5)"
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")


def run(args: argparse.Namespace) -> int:
    from rxibkr.client.core import IbkrWsClient  # imported here: `rxibkr --help` stays fast

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.duration is not None and not args.duration > 0:
        sys.stderr.write("rxibkr record: --duration must be a positive number of seconds\n")
        return 2
    fields = [f.strip() for f in str(args.fields).split(",") if f.strip()]
    out = args.out or time.strftime("rxibkr-%Y%m%d-%H%M%S.jsonl", time.gmtime())
    options: dict[str, Any] = {"timeout": args.timeout}
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
        sys.stderr.write(f"rxibkr record: {exc}\n")
        return 2
    recorder = client.record(out)
    try:
        if not client.start():
            sys.stderr.write(f"rxibkr record: no session confirmed by {client.url}\n")
            return 1
        for conid in args.conids:
            client.subscribe(f"md+{conid}", {"fields": fields}, wait=False)
        until = "Ctrl-C" if args.duration is None else f"{args.duration:g} s"
        sys.stderr.write(f"recording {len(args.conids)} conid(s) to {out} (until {until})\n")
        stop = threading.Event()
        try:
            stop.wait(args.duration)
        except KeyboardInterrupt:
            pass
    finally:
        client.shutdown()
        recorder.dispose()
    sys.stderr.write(f"recorded {recorder.frames} frames to {out}\n")
    return 0
