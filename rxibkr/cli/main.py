"""The ``rxibkr`` command: one entry point, one sub-command per job.

Each sub-command lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``;
they are imported lazily so that ``rxibkr --help`` stays fast and optional extras (the simulator's
aiohttp) are only needed by the sub-commands that use them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("rxibkr.cli.demo", "show a live quote board from the embedded simulator (or a real gateway)"),
    "sim": ("rxibkr.cli.sim", "run the gateway simulator in the foreground until Ctrl-C"),
    "record": (
        "rxibkr.cli.record",
        "record a gateway session (market data for some instruments): raw log, Parquet",
    ),
    "replay": ("rxibkr.cli.replay", "replay a recording through a client; print its messages or a summary"),
    "export": (
        "rxibkr.cli.export",
        "build the Parquet tables (quotes, bars, orders, ...) of a raw recording",
    ),
    "serve": (
        "rxibkr.cli.serve",
        "hold one gateway session and publish it to Redis Streams for many consumers",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxibkr",
        description="ReactiveX client for the IBKR Client Portal WebSocket, with a gateway simulator.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
