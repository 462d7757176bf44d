"""``rxibkr serve``: hold one gateway session and publish it to Redis Streams for many consumers.

    rxibkr serve --redis redis://localhost:6379/0 --url wss://localhost:5000/v1/api/ws --cacert ca.pem

Consumers attach with ``rxibkr.remote.RemoteClient("redis://localhost:6379/0")``. Runs until Ctrl-C
or SIGTERM, then releases every gateway subscription (consumers' leases stay in Redis, so a serve
started again restores them). See docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import sys

from rxibkr.cli.options import (
    EXIT_USAGE,
    CliError,
    add_gateway,
    add_logging,
    connect,
    make_client,
    positive_float,
    setup_logging,
)
from rxibkr.remote._layout import DEFAULT_LEASE_TTL, DEFAULT_MAXLEN, DEFAULT_PREFIX

_SWITCH_INTERVAL = 0.0005


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        required=True,
        metavar="URL",
        help="Redis to publish to, redis://HOST:PORT/DB (a password in the URL is never logged)",
    )
    add_gateway(parser)
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
        type=positive_float,
        default=DEFAULT_LEASE_TTL,
        metavar="SECONDS",
        help=f"seconds before a silent consumer's subscriptions go (default: {DEFAULT_LEASE_TTL:g})",
    )
    add_logging(parser)


def run(args: argparse.Namespace) -> int:
    from rxibkr.remote import Server, serve

    setup_logging(args)
    # This process only forwards: the gateway client's reader thread decodes bursts while serve's
    # publisher waits for the GIL to write them. A shorter switch interval (Python's default is 5 ms)
    # bounds that wait, which is most of serve's tail latency under load.
    sys.setswitchinterval(_SWITCH_INTERVAL)
    client = make_client(args)  # CliError: main() prints one line, exit 2 (usage) or 3 (OAuth login)

    def ready(server: Server) -> None:
        sys.stderr.write(
            f"serving {client.url} on Redis (prefix {server.layout.prefix!r}, state "
            f"{client.state.value.value}); Ctrl-C to stop\n"
        )
        sys.stderr.flush()

    try:
        connect(client, "rxibkr serve")  # a failure no retry can fix: one line, exit 3
        stats = serve(
            client,
            args.redis,
            prefix=args.prefix,
            maxlen=args.maxlen,
            lease_ttl=args.lease_ttl,
            ready=ready,
        )
    except (TypeError, ValueError, ImportError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    finally:
        client.shutdown()
    sys.stderr.write(f"serve stopped: {stats.published} messages published, {stats.dropped} lost\n")
    return 0
