"""``rxibkr sim``: option parsing and a real run in a subprocess, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import urllib3

from rxibkr.cli import sim as cli

RUN = [sys.executable, "-m", "rxibkr", "sim"]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(list(argv))


def test_defaults_and_options() -> None:
    args = parse()
    assert (args.host, args.port, args.no_tls, args.seed, args.heartbeat_interval, args.text_frames) == (
        "127.0.0.1",
        5000,
        False,
        0,
        10.0,
        False,
    )
    args = parse(
        "--port",
        "0",
        "--no-tls",
        "--seed",
        "3",
        "--heartbeat-interval",
        "0.5",
        "--text-frames",
        "--allow",
        "10.0.0.0/8",
        "--number-frames",
    )
    assert (args.port, args.no_tls, args.seed, args.heartbeat_interval, args.text_frames) == (
        0,
        True,
        3,
        0.5,
        True,
    )
    assert args.allow == ["10.0.0.0/8"] and args.number_frames


def test_profile_and_fidelity_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RXIBKR_SIM_GREETING", raising=False)
    fast = cli.build(parse()).config
    assert (fast.profile, fast.greeting, fast.md_interval, fast.market_closed) == ("fast", True, 0.25, False)
    live = cli.build(parse("--profile", "live", "--no-greeting", "--market-closed")).config
    assert (live.profile, live.greeting, live.md_interval, live.market_closed) == ("live", False, 0.5, True)
    assert live.order_confirmations and live.heartbeat_interval == 10.0
    assert cli.build(parse("--profile", "live", "--md-interval", "0.1")).config.md_interval == 0.1
    with pytest.raises(SystemExit):
        parse("--profile", "slow")
    from rxibkr.sim.config import PROFILES

    assert cli.PROFILE_NAMES == tuple(sorted(PROFILES))  # the option's choices, named without importing


def read_banner(proc: subprocess.Popen[str], timeout: float = 10.0) -> dict[str, str]:
    assert proc.stdout is not None
    lines: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        key, sep, value = line.partition(":")
        if sep:
            lines[key.strip()] = value.strip()
        if line.startswith("Press Ctrl-C"):
            return lines
    raise AssertionError(f"no banner; got {lines}")


@pytest.mark.parametrize("tls", [True, False])
def test_run_prints_urls_and_stops_on_ctrl_c(tls: bool) -> None:
    """Ctrl-C exits 130 (interrupted) after a clean stop: CA removed."""
    argv = [*RUN, "--port", "0", "--seed", "5", "--heartbeat-interval", "1"]
    if not tls:
        argv.append("--no-tls")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = read_banner(proc)
        scheme = "wss" if tls else "ws"
        assert re.fullmatch(rf"{scheme}://127\.0\.0\.1:\d+/v1/api/ws", banner["WS URL"]), banner
        assert banner["REST URL"].startswith("https://" if tls else "http://")
        assert re.fullmatch(r"[0-9a-f]{32}", banner["Session id"])
        if tls:
            assert os.path.exists(banner["CA cert"])
            http = urllib3.PoolManager(ca_certs=banner["CA cert"], retries=False, timeout=3.0)
        else:
            http = urllib3.PoolManager(retries=False, timeout=3.0)
        assert http.request("GET", banner["REST URL"] + "/tickle").json()["session"] == banner["Session id"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 130, err  # Ctrl-C: interrupted, after a clean stop
        assert "simulator stopped (interrupted)" in out and "Traceback" not in err
        if tls:
            assert not os.path.exists(banner["CA cert"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_run_with_duration_returns_zero(capsys: pytest.CaptureFixture[str]) -> None:
    from rxibkr.cli.main import main

    assert main(["sim", "--port", "0", "--no-tls", "--duration", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "WS URL:     ws://127.0.0.1:" in out and "simulator stopped" in out


def test_top_level_command_wires_sim(capsys: pytest.CaptureFixture[str]) -> None:
    from rxibkr.cli.main import main

    assert main(["sim", "--port", "0", "--no-tls", "--duration", "0.05"]) == 0
    assert "REST URL:   http://127.0.0.1:" in capsys.readouterr().out
