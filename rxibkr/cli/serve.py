"""``rxibkr serve``: hold one gateway session and publish it to Redis Streams for many consumers.

    rxibkr serve --redis redis://localhost:6379/0 --url wss://localhost:5000/v1/api/ws --cacert ca.pem

Consumers attach with ``rxibkr.remote.RemoteClient("redis://localhost:6379/0")``. Runs until Ctrl-C
or SIGTERM, then releases every gateway subscription (consumers' leases stay in Redis, so a serve
started again restores them). See docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from rxibkr.remote._layout import DEFAULT_LEASE_TTL, DEFAULT_MAXLEN, DEFAULT_PREFIX

_SWITCH_INTERVAL = 0.0005


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        required=True,
        metavar="URL",
        help="Redis to publish to, redis://HOST:PORT/DB (a password in the URL is never logged)",
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
        "--prefix", default=DEFAULT_PREFIX, help=f"Redis key prefix (default: {DEFAULT_PREFIX})"
    )
    parser.add_argument(
        "--maxlen",
        type=int,
        default=DEFAULT_MAXLEN,
        metavar="N",
        help=f"entries kept per stream, approximately (default: {DEFAULT_MAXLEN})",
    )
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=DEFAULT_LEASE_TTL,
        metavar="S",
        help=f"seconds before a silent consumer's subscriptions go (default: {DEFAULT_LEASE_TTL:g})",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="connect timeout (default: 5)"
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")


def run(args: argparse.Namespace) -> int:
    from rxibkr.client.core import IbkrWsClient  # imported here: `rxibkr --help` stays fast
    from rxibkr.remote import Server, serve

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # This process only forwards: the gateway client's reader thread decodes bursts while serve's
    # publisher waits for the GIL to write them. A shorter switch interval (Python's default is 5 ms)
    # bounds that wait, which is most of serve's tail latency under load.
    sys.setswitchinterval(_SWITCH_INTERVAL)
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
    except (TypeError, ValueError, OSError) as exc:
        sys.stderr.write(f"rxibkr serve: {exc}\n")
        return 2

    def ready(server: Server) -> None:
        sys.stderr.write(
            f"serving {client.url} on Redis (prefix {server.layout.prefix!r}, state "
            f"{client.state.value.value}); Ctrl-C to stop\n"
        )
        sys.stderr.flush()

    try:
        stats = serve(
            client,
            args.redis,
            prefix=args.prefix,
            maxlen=args.maxlen,
            lease_ttl=args.lease_ttl,
            ready=ready,
        )
    except (TypeError, ValueError, ImportError) as exc:
        sys.stderr.write(f"rxibkr serve: {exc}\n")
        return 2
    finally:
        client.shutdown()
    sys.stderr.write(f"serve stopped: {stats.published} messages published, {stats.dropped} lost\n")
    return 0
