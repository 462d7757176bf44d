"""``rxibkr sim``: run the gateway simulator in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from rxibkr.sim.config import PROFILES
from rxibkr.sim.server import GatewaySimulator


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="fast",
        help="timing profile: fast (tests) or live (the timing of live gateways; default: fast)",
    )
    parser.add_argument(
        "--no-greeting",
        action="store_true",
        help="send no system/act/sts after the socket opens (as live gateways on some days)",
    )
    parser.add_argument(
        "--market-closed",
        action="store_true",
        help="a closed market: frozen values, field 31 with the C prefix",
    )
    parser.add_argument(
        "--port", type=int, default=5000, help="port to bind, 0 = any free port (default: 5000)"
    )
    parser.add_argument("--no-tls", action="store_true", help="serve plain http/ws instead of https/wss")
    parser.add_argument("--seed", type=int, default=0, help="seed of the session id and market model")
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between system heartbeats (default: 10)",
    )
    parser.add_argument(
        "--text-frames",
        action="store_true",
        help="send server frames as text instead of binary WebSocket frames",
    )
    parser.add_argument(
        "--md-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between market data ticks (default: the profile's, fast 0.25, live 0.5)",
    )
    parser.add_argument(
        "--smd-expiry",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="smd streams end this long after the last smd (default: 600)",
    )
    parser.add_argument(
        "--greeting-delay",
        type=float,
        default=None,
        metavar="SECONDS",
        help="delay between authentication and the confirmation burst (default: the profile's)",
    )
    parser.add_argument("--account", default="DU1234567", help="simulated account id")
    parser.add_argument("--username", default="simuser", help="simulated user name")
    parser.add_argument(
        "--allow",
        action="append",
        default=None,
        metavar="ADDRESS",
        help="caller address or CIDR allowed to connect (repeatable; default: loopback)",
    )
    parser.add_argument(
        "--keep-early-frames",
        action="store_true",
        help="act on frames sent before the confirmation burst instead of dropping them",
    )
    parser.add_argument("--number-frames", action="store_true", help='add "_seq" to every frame sent')
    parser.add_argument(
        "--require-accounts-preflight",
        action="store_true",
        help='smd answers "No accounts" until /iserver/accounts was called',
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this many seconds",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")


def build(args: argparse.Namespace) -> GatewaySimulator:
    """The simulator the parsed options describe (not started)."""
    allowed = tuple(args.allow) if args.allow else ("127.0.0.1", "::1")
    return GatewaySimulator(
        profile=args.profile,
        greeting=False if args.no_greeting else None,
        market_closed=args.market_closed,
        host=args.host,
        port=args.port,
        tls=not args.no_tls,
        seed=args.seed,
        heartbeat_interval=args.heartbeat_interval,
        binary_frames=not args.text_frames,
        md_interval=args.md_interval,
        smd_expiry=args.smd_expiry,
        greeting_delay=args.greeting_delay,
        account=args.account,
        username=args.username,
        allowed_hosts=allowed,
        drop_early_frames=not args.keep_early_frames,
        number_frames=args.number_frames,
        require_accounts_preflight=args.require_accounts_preflight,
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sim = build(args)
    sim.start()
    try:
        out = sys.stdout
        greeting = "on" if sim.config.greeting else "off"
        out.write(
            f"rxibkr gateway simulator (seed {args.seed}, profile {args.profile}, greeting {greeting})\n"
        )
        out.write(f"WS URL:     {sim.ws_url}\n")
        out.write(f"REST URL:   {sim.rest_url}\n")
        out.write(f"CA cert:    {sim.cacert or '(none: TLS off)'}\n")
        out.write(f"Session id: {sim.session_id}\n")
        out.write(f"Account:    {sim.account}\n")
        out.write("Press Ctrl-C to stop.\n")
        out.flush()
        deadline = None if args.duration is None else time.monotonic() + args.duration
        idle = threading.Event()
        while deadline is None or time.monotonic() < deadline:
            idle.wait(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    sys.stdout.write("simulator stopped\n")
    sys.stdout.flush()
    return 0
