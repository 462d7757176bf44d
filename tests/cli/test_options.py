"""One CLI: every sub-command takes the shared options from ``rxibkr.cli.options``, so the same option
has the same name, metavar, type, default and help everywhere (issue 15, finding 6)."""

from __future__ import annotations

import argparse

import pytest

from rxibkr.cli import main as cli
from rxibkr.cli import options

GATEWAY = [
    "--url",
    "--cacert",
    "--insecure",
    "--timeout",
    "--account",
    "--oauth1a",
    "--oauth2",
    "--oauth-config",
]
GATEWAY_COMMANDS = ["demo", "record", "serve"]
PENDING: set[str] = set()  # every command with --url takes the shared gateway options


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings}


def signature(action: argparse.Action) -> tuple[object, ...]:
    return (action.metavar, action.type, action.default, action.help, type(action).__name__)


def test_every_command_with_a_gateway_takes_the_same_gateway_options() -> None:
    parsers = commands()
    with_url = {name for name, p in parsers.items() if "--url" in actions(p)}
    assert with_url - PENDING == set(GATEWAY_COMMANDS)
    reference = actions(parsers[GATEWAY_COMMANDS[0]])
    for name in GATEWAY_COMMANDS:
        mine = actions(parsers[name])
        for option in GATEWAY:
            assert signature(mine[option]) == signature(reference[option]), (name, option)


def test_log_level_duration_and_instruments_are_the_same_everywhere() -> None:
    parsers = commands()
    levels = {
        name: signature(actions(p)["--log-level"]) for name, p in parsers.items() if name not in PENDING
    }
    assert set(levels) == set(parsers) - PENDING  # every command has --log-level
    assert len(set(levels.values())) == 1
    assert next(iter(levels.values()))[2] == options.DEFAULT_LOG_LEVEL == "WARNING"
    durations = {name: actions(parsers[name])["--duration"] for name in ("demo", "record", "sim")}
    assert {(a.metavar, a.type, a.default) for a in durations.values()} == {
        ("SECONDS", options.positive_float, None)
    }
    for name in ("demo", "record"):  # instruments: conids or symbols, wherever they are taken
        (positional,) = [a for a in parsers[name]._actions if a.dest == "instruments"]
        assert positional.metavar == "CONID|SYMBOL"
    demo, sim = actions(parsers["demo"]), actions(parsers["sim"])
    for shared in ("--seed", "--md-interval", "--heartbeat-interval"):
        assert (demo[shared].metavar, demo[shared].type) == (sim[shared].metavar, sim[shared].type)


def test_gateway_options_build_the_client_options(tmp_path: object) -> None:
    parser = argparse.ArgumentParser()
    options.add_gateway(parser)
    args = parser.parse_args(
        ["--url", "ws://h:1/v1/api/ws", "--insecure", "--timeout", "2", "--account", "X"]
    )
    assert options.client_options(args) == {
        "url": "ws://h:1/v1/api/ws",
        "cacert": False,
        "timeout": 2.0,
        "max_connection_attempts": options.CONNECT_ATTEMPTS,
        "account_id": "X",
    }
    assert options.client_options(parser.parse_args([])) == {
        "timeout": options.DEFAULT_TIMEOUT,
        "max_connection_attempts": options.CONNECT_ATTEMPTS,
    }  # nothing else: the library's defaults (URL, TLS policy, account) apply
    with pytest.raises(SystemExit):
        parser.parse_args(["--cacert", "x.pem", "--insecure"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--oauth1a", "--oauth2"])
    with pytest.raises(options.CliError, match="expected a ws:// or wss:// URL") as info:
        options.client_options(parser.parse_args(["--url", "https://h/"]))
    assert info.value.exit_code == options.EXIT_USAGE


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "x"])
def test_positive_float_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        options.positive_float(text)
