"""``rxibkr sim``: run the gateway simulator in the foreground until Ctrl-C, SIGTERM or SIGHUP.

A port already in use (or any address it cannot listen on) is one line and exit code 3; a stop by
signal prints "simulator stopped" and removes the simulator's temporary CA directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import TYPE_CHECKING

from rxibkr.cli import signals
from rxibkr.cli.options import (
    EXIT_CONNECT,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_duration,
    add_logging,
    positive_float,
    setup_logging,
)

if TYPE_CHECKING:
    from rxibkr.sim.server import GatewaySimulator

PROFILE_NAMES = ("fast", "live")
"""``rxibkr.sim.config.PROFILES``' names (not imported here: ``rxibkr --help`` needs no aiohttp)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
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
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the session id and market model (default: 0)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=positive_float,
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
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="seconds between market data ticks (default: the profile's, fast 0.25, live 0.5)",
    )
    parser.add_argument(
        "--smd-expiry",
        type=positive_float,
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
    add_duration(parser)
    add_logging(parser)


def build(args: argparse.Namespace) -> GatewaySimulator:
    """The simulator the parsed options describe (not started)."""
    try:
        from rxibkr.sim.server import GatewaySimulator
    except ImportError as exc:
        raise CliError(
            f"the simulator needs the 'sim' extra ({exc.name} is missing): "
            'python -m pip install -e ".[sim]"',
            EXIT_USAGE,
        ) from exc
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
    setup_logging(args)
    sim = build(args)
    stop: signals.Stopped | None = None
    try:
        with signals.deferred():  # a signal now waits until the simulator can be stopped
            try:
                sim.start()
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise CliError(f"cannot listen on {args.host}:{args.port}: {reason}", EXIT_CONNECT) from None
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
        threading.Event().wait(args.duration)  # never set: a wait that a signal ends
    except KeyboardInterrupt as exc:
        stop = exc if isinstance(exc, signals.Stopped) else signals.Stopped("SIGINT")
    finally:
        signals.stopping()
        sim.stop()  # closes every socket and removes the temporary CA directory
    how = "" if stop is None else f" ({stop.reason})"
    sys.stdout.write(f"simulator stopped{how}\n")
    sys.stdout.flush()
    return EXIT_OK if stop is None else stop.exit_code
