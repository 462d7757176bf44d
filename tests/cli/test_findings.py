"""Issue 15, the command line: each finding runs the installed ``rxibkr`` console script in a subprocess.

2. a failure no retry can fix: one line on stderr, exit code 3, promptly (refused, DNS, TLS, HTTP 404)
4. broken pipes: ``rxibkr demo | head -3`` and ``rxibkr replay FILE | head -2`` end quietly (141)
5. ``rxibkr sim``: a busy port is one line (3); SIGTERM stops it with a "stopped" line and removes its
   temporary CA; Ctrl-C at any moment of ``demo`` exits 130 without a traceback
6. one CLI: ``--version``, exit codes in ``--help``, symbols and conids in ``record``, OAuth options
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rxibkr
from tests.cli.support import env, finish, free_port, handles, popen, wait_for
from tests.cli.support import rxibkr as run

pytest.importorskip("aiohttp")

from rxibkr.sim import GatewaySimulator

FAST = dict(md_interval=0.05, heartbeat_interval=0.5, greeting_delay=0.0)


@pytest.fixture(scope="module")
def plain_sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(port=0, tls=False, **FAST) as sim:  # type: ignore[arg-type]
        yield sim


@pytest.fixture(scope="module")
def tls_sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(port=0, tls=True, **FAST) as sim:  # type: ignore[arg-type]
        yield sim


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and "Exception ignored" not in text and "observer raised" not in text, text


# =================================================================================================
# 6. one CLI: version, exit codes, the same options everywhere
# =================================================================================================


def test_version_is_the_package_metadata() -> None:
    result = run("--version", timeout=30)
    assert result.code == 0
    assert result.out.strip() == f"rxibkr {rxibkr.__version__}"
    assert rxibkr.__version__ == importlib.metadata.version("rxibkr")


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["record", "--help"], ["sim", "--help"]])
def test_help_documents_the_exit_codes(argv: list[str]) -> None:
    result = run(*argv, timeout=30)
    assert result.code == 0
    codes = result.out.split("exit codes:", 1)[1]
    for code, meaning in [
        ("0", "done"),
        ("1", "failed while running"),
        ("2", "usage"),
        ("3", "cannot connect"),
        ("130", "Ctrl-C"),
        ("141", "broken pipe"),
    ]:
        assert re.search(rf"^\s+{code}\s+.*{meaning}", codes, re.MULTILINE), (code, codes)


def test_a_usage_error_exits_2_with_one_line() -> None:
    result = run("record", "--duration", "-1", "265598", timeout=30)
    assert result.code == 2
    assert "--duration: expected a positive number" in result.err
    result = run("demo", "--oauth-config", "/no/such/oauth.json", timeout=30)
    assert (result.code, result.err_lines) == (2, [result.err_lines[0]])
    assert "rxibkr demo: --oauth-config: cannot read '/no/such/oauth.json'" in result.err


def test_record_takes_symbols_and_conids_like_demo(plain_sim: GatewaySimulator, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    result = run(
        "record",
        "--url",
        plain_sim.ws_url,
        "--duration",
        "0.5",
        "--out",
        str(out),
        "AAPL",
        "8314",
        timeout=60,
    )
    assert result.code == 0, result.err
    assert "rxibkr record: recording AAPL 8314 to" in result.err
    delivered = result.err_lines[-1].split("delivered: ")[1]
    assert "265598: " in delivered and "8314: " in delivered
    no_traceback(result.err)


def test_the_state_reads_the_same_on_a_terminal_and_in_a_pipe(plain_sim: GatewaySimulator) -> None:
    from rxibkr.cli.demo import Instrument, QuoteBoard, render_plain, render_table
    from rxibkr.client.events import ConnectionState

    board = QuoteBoard([Instrument(265598, "AAPL")])
    board.on_state(ConnectionState.AUTHENTICATED)
    assert "state authenticated |" in render_table(board.snapshot(), title="t", width=200)[1]
    assert "state=authenticated " in render_plain(board.snapshot())[0]
    result = run("demo", "--url", plain_sim.ws_url, "--duration", "0.5", "AAPL", timeout=60)
    assert result.code == 0, result.err
    assert "state=authenticated" in result.out


# =================================================================================================
# 2. failures no retry can fix: one line, exit code 3, promptly
# =================================================================================================


def connect_failure(*argv: str) -> str:
    result = run(*argv, "--duration", "2", "--timeout", "5", timeout=60)
    assert result.code == 3, (result.code, result.err)
    assert len(result.err_lines) == 1, result.err  # one line: no repeated warnings, no traceback
    assert result.seconds < 8.0, result.seconds  # not timeout x attempts: the first failure ends it
    return result.err_lines[0]


def test_refused_port_is_one_line() -> None:
    url = f"ws://127.0.0.1:{free_port()}/v1/api/ws"
    line = connect_failure("record", "--url", url, "--out", os.devnull, "265598")
    assert line == f"rxibkr record: cannot connect to {url}: connection refused"


def test_unresolvable_host_is_one_line() -> None:
    line = connect_failure(
        "record", "--url", "ws://no-such-host.invalid:5000/v1/api/ws", "--out", os.devnull, "1"
    )
    assert line == "rxibkr record: cannot connect to ws://no-such-host.invalid:5000/v1/api/ws: " + (
        "cannot resolve the host name"
    )


def test_http_404_on_the_upgrade_is_one_line(plain_sim: GatewaySimulator) -> None:
    url = plain_sim.ws_url.replace("/v1/api/ws", "/v1/api/nope")
    line = connect_failure("demo", "--url", url, "AAPL")
    assert line == f"rxibkr demo: cannot connect to {url}: HTTP 404 on the WebSocket upgrade"


def test_tls_failures_are_one_line(plain_sim: GatewaySimulator, tls_sim: GatewaySimulator) -> None:
    assert tls_sim.cacert is not None
    with GatewaySimulator(port=0, tls=True) as other:  # its CA did not sign tls_sim's certificate
        assert other.cacert is not None
        line = connect_failure(
            "record", "--url", tls_sim.ws_url, "--cacert", other.cacert, "--out", os.devnull, "1"
        )
    assert line.startswith(f"rxibkr record: cannot connect to {tls_sim.ws_url}: TLS: ")
    assert "CERTIFICATE_VERIFY_FAILED" in line or "certificate" in line.lower()
    wss_to_plain = plain_sim.ws_url.replace("ws://", "wss://")
    line = connect_failure("demo", "--url", wss_to_plain, "--cacert", tls_sim.cacert, "AAPL")
    assert line.startswith(f"rxibkr demo: cannot connect to {wss_to_plain}: TLS: ")


# =================================================================================================
# 4. broken pipes: quiet, exit code 141
# =================================================================================================


def test_demo_into_a_closed_pipe_exits_quietly() -> None:
    proc = popen("demo", "--md-interval", "0.05", "--refresh", "20", "AAPL", "MSFT")
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]  # rxibkr demo | head -3
    assert lines[0].startswith(b"rxibkr demo | simulator"), lines
    proc.stdout.close()
    started = time.monotonic()
    code, _, err = finish(proc)
    assert code == 141, err
    assert err == b""  # no traceback, no "Exception ignored"
    assert time.monotonic() - started < 10


def test_replay_into_a_closed_pipe_exits_quietly(plain_sim: GatewaySimulator, tmp_path: Path) -> None:
    recording = tmp_path / "rec.jsonl"
    made = run(
        "record", "--url", plain_sim.ws_url, "--duration", "1.5", "--out", str(recording), "AAPL", "MSFT"
    )
    assert made.code == 0, made.err
    proc = popen("replay", str(recording), "--speed", "1")  # 1.5 s of lines, in real time
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(2)]  # rxibkr replay rec.jsonl | head -2
    assert b"SYSTEM" in lines[0], lines
    proc.stdout.close()
    code, _, err = finish(proc)
    assert code == 141, err
    assert err == b""  # no "an observer raised BrokenPipeError", no traceback


# =================================================================================================
# 5. rxibkr sim: busy port, SIGTERM; Ctrl-C at any moment of demo
# =================================================================================================


def test_sim_on_a_busy_port_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("sim", "--port", str(port), "--no-tls", timeout=60)
    assert result.code == 3
    assert result.err_lines == [f"rxibkr sim: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert result.seconds < 15


def read_banner(proc: Any) -> dict[str, str]:
    banner: dict[str, str] = {}
    for raw in proc.stdout:
        line = raw.decode()
        key, sep, value = line.partition(":")
        if sep:
            banner[key.strip()] = value.strip()
        if line.startswith("Press Ctrl-C"):
            return banner
    raise AssertionError(f"no banner: {banner}")


def test_sim_stops_on_sigterm_and_removes_its_ca() -> None:
    proc = popen("sim", "--port", "0")
    try:
        banner = read_banner(proc)
        ca_dir = Path(banner["CA cert"]).parent
        assert ca_dir.is_dir()
        proc.send_signal(signal.SIGTERM)
        code, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    assert out.decode().strip().splitlines()[-1] == "simulator stopped (stopped by SIGTERM)"
    assert err == b""
    assert not ca_dir.exists()


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.2, 0.3, 0.6])
def test_ctrl_c_at_any_moment_of_demo_exits_130(delay: float) -> None:
    """From the moment ``main()`` runs (its handlers show in /proc: SIGTERM caught), through imports,
    the simulator's start, the connection and the board: 130 and no traceback."""
    proc = popen("demo", "--md-interval", "0.05", "AAPL")
    try:
        wait_for(lambda: handles(proc.pid, [signal.SIGINT, signal.SIGTERM]) or proc.poll() is not None)
        time.sleep(delay)  # the moment under test, not a synchronisation
        proc.send_signal(signal.SIGINT)
        code, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, err
    no_traceback(err.decode())
    if out:
        assert out.decode().rstrip().endswith(("(interrupted); stopped cleanly", "simulator")) or (
            "rxibkr demo |" in out.decode()
        )


def test_ctrl_c_stops_record_cleanly_with_130(plain_sim: GatewaySimulator, tmp_path: Path) -> None:
    out = tmp_path / "i.jsonl"
    proc = popen("record", "--url", plain_sim.ws_url, "--out", str(out), "AAPL")
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert b"rxibkr record: recording AAPL" in line, line
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130, err
    assert err.decode().startswith("rxibkr record: stopped (SIGINT)") and "file closed" in err.decode()


# =================================================================================================
# 6. OAuth options (rxibkr.auth) on every gateway command
# =================================================================================================


@pytest.fixture(scope="module")
def oauth_sim() -> Iterator[GatewaySimulator]:
    pytest.importorskip("cryptography")
    with GatewaySimulator(port=0, oauth=True, **FAST) as sim:  # type: ignore[arg-type]
        yield sim


def test_oauth_config_file_and_environment(oauth_sim: GatewaySimulator, tmp_path: Path) -> None:
    assert oauth_sim.oauth is not None
    config = tmp_path / "oauth.json"
    config.write_text(json.dumps(oauth_sim.oauth.oauth1a_config))
    result = run("record", "--oauth-config", str(config), "--duration", "0.5", "--out", os.devnull, "AAPL")
    assert result.code == 0, result.err
    assert "265598: " in result.err_lines[-1]
    result = run(
        "demo", "--oauth2", "--duration", "0.5", "MSFT", environ=env(**oauth_sim.oauth.client_env("2.0"))
    )
    assert result.code == 0, result.err
    assert "MSFT" in result.out and "state=authenticated" in result.out
    result = run("demo", "--oauth1a", "AAPL")  # no RXIBKR_OAUTH1A_* variables: a usage error, one line
    assert result.code == 2 and len(result.err_lines) == 1, result.err
    assert result.err.startswith("rxibkr demo: OAuth configuration:")


def test_repeated_warnings_are_collapsed(plain_sim: GatewaySimulator) -> None:
    """Four dropped connections: each is accounted for, but one message is never printed twice in a
    row (``(the previous message was repeated N more times)`` instead)."""
    proc = popen("record", "--url", plain_sim.ws_url, "--out", os.devnull, "AAPL")
    try:
        assert proc.stderr is not None
        assert b"recording AAPL" in proc.stderr.readline()
        for _ in range(4):
            before = plain_sim.total_connections
            plain_sim.drop_connections()
            assert plain_sim.wait_for(
                lambda before=before: (
                    plain_sim.total_connections > before and plain_sim.connection_count == 1
                ),
                timeout=15,
            )
        proc.send_signal(signal.SIGTERM)
        code, _, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    lines = err.decode().splitlines()
    messages = [line.split(" ", 2)[2] for line in lines if " WARNING " in line]  # without the time stamp
    assert all(a != b for a, b in itertools.pairwise(messages)), lines
    repeated = sum(int(m[1]) for line in lines if (m := re.search(r"repeated (\d+) more times", line)))
    lost = sum(1 for m in messages if "connection_lost" in m)
    assert lost + repeated == 4, lines
    assert lines[-1].startswith("rxibkr record: stopped (SIGTERM)")
