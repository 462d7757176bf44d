"""The ``rxibkr`` command: one entry point, one sub-command per job.

Each sub-command lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``;
the options they share (gateway, TLS, OAuth, timeout, log level, instruments), the exit codes and the
one-line errors are in :mod:`rxibkr.cli.options`, signals and closed pipes in :mod:`rxibkr.cli.signals`.
Modules are imported when the parser is built; their heavy imports wait for ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from rxibkr.cli import signals
from rxibkr.cli.options import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_USAGE,
    CliError,
    one_line_warnings,
    prog_name,
    reset_logging,
)

# name -> (module, one-line help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("rxibkr.cli.demo", "show a live quote board from the embedded simulator (or a real gateway)"),
    "sim": ("rxibkr.cli.sim", "run the gateway simulator in the foreground until Ctrl-C or SIGTERM"),
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


def version() -> str:
    from rxibkr import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxibkr",
        description="ReactiveX client for the IBKR Client Portal WebSocket, with a gateway simulator.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rxibkr {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; returns its exit code (see ``rxibkr --help``).

    Ctrl-C at any moment ends with 130 and no traceback; SIGTERM and SIGHUP stop cleanly (0); a
    closed stdout ends quietly with 141; a :class:`~rxibkr.cli.options.CliError` prints one line.
    """
    with signals.handled(), warnings.catch_warnings():
        prog = "rxibkr"
        warnings.showwarning = one_line_warnings(prog)
        try:
            parser = build_parser()
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:  # --help, --version (0) or a usage error (2, already said)
                return exc.code if isinstance(exc.code, int) else EXIT_USAGE
            prog = prog_name(args)
            warnings.showwarning = one_line_warnings(prog)
            if getattr(args, "_run", None) is None:
                parser.print_help()
                return EXIT_USAGE
            try:
                code = int(args._run(args))
            finally:
                reset_logging()
        except CliError as exc:
            code = _say(f"{prog}: {exc}", exc.exit_code)
        except KeyboardInterrupt as exc:
            code = signals.exit_code_of(exc)
        except OSError as exc:
            if not signals.is_broken_pipe(exc):
                raise
            signals.silence_stdout()
            return EXIT_PIPE
        stop = signals.pending()
        if stop is not None and code == 0:
            code = stop.exit_code
        return code


def _say(line: str, code: int) -> int:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return code


__all__ = ["EXIT_INTERRUPTED", "build_parser", "main"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
