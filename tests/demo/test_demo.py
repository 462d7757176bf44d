"""``rxibkr demo``: the board's state and rendering, symbol lookup, and the command end to end."""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from reactivex.subject import Subject

from rxibkr import operators as rxo
from rxibkr.cli import main as cli
from rxibkr.cli.demo import (
    DemoError,
    Instrument,
    QuoteBoard,
    render_plain,
    render_table,
    resolve_instruments,
)
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.protocol import decode
from rxibkr.streams.models import MarketDataUpdate
from rxibkr.testing import frames

FAST_SIM = ["--md-interval", "0.05", "--heartbeat-interval", "0.5"]
ROW = re.compile(
    r"\]\s(?P<symbol>\S+)\s+conid=(?P<conid>\d+) bid=(?P<bid>[\d,.]+) ask=(?P<ask>[\d,.]+) "
    r"last=(?P<last>[\d,.]+) chg=(?P<chg>[-+][\d.]+%) rate=(?P<rate>[\d.]+)/s"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def feeder(board: QuoteBoard) -> Callable[..., None]:
    """``push(conid, last=..., bid=...)``: one smd frame, merged by ``snapshots()`` into the board."""
    updates: Subject[MarketDataUpdate] = Subject()
    updates.pipe(rxo.snapshots()).subscribe(board.on_quote)

    def push(conid: int, **fields: Any) -> None:
        update = MarketDataUpdate.from_message(decode(frames.encode(frames.smd(conid, **fields))))
        assert update is not None
        updates.on_next(update)

    return push


# =================================================================================================
# board state and rendering
# =================================================================================================


def test_board_merges_quotes_and_measures_updates_per_second() -> None:
    clock = FakeClock()
    board = QuoteBoard([Instrument(265598, "AAPL"), Instrument(272093)], clock=clock, window=2.0)
    push = feeder(board)
    push(265598, bid=1.0, ask=1.2, symbol="AAPL")
    for i in range(9):
        clock.now += 0.1
        push(265598, last=round(1.1 + i / 100, 2))
    push(272093, last=50.0, prior_close=40.0, symbol="MSFT")
    board.on_state(ConnectionState.AUTHENTICATED)
    clock.now += 1.1  # 2 s since the board started: every update is inside the window

    snap = board.snapshot()
    assert snap.state is ConnectionState.AUTHENTICATED
    assert snap.updates == 11
    aapl, msft = snap.rows
    assert (aapl.symbol, aapl.bid, aapl.ask, aapl.last, aapl.updates) == ("AAPL", 1.0, 1.2, 1.18, 10)
    assert aapl.rate == pytest.approx(5.0, rel=0.01)
    assert aapl.direction == 1
    assert msft.symbol == "MSFT"  # learnt from field 55
    assert msft.change_percent == pytest.approx(25.0)  # no field 83: from the prior close

    clock.now += 5.0  # nothing new for longer than the window
    assert board.snapshot().rows[0].rate == 0.0


def test_board_adds_rows_for_unexpected_conids_and_counts_errors() -> None:
    board = QuoteBoard([Instrument(1)], clock=FakeClock())
    feeder(board)(2, last=3.0)
    board.on_error(ErrorEvent(ErrorKind.WATCHDOG, "no heartbeat for 1 s"))
    snap = board.snapshot()
    assert [r.conid for r in snap.rows] == [1, 2]
    assert snap.rows[0].last is None and snap.rows[1].symbol == "2"
    assert (snap.errors, snap.last_error) == (1, "watchdog: no heartbeat for 1 s")


def test_render_table_fits_the_width_and_colours_only_whole_lines() -> None:
    clock = FakeClock()
    board = QuoteBoard([Instrument(265598, "AAPL"), Instrument(12087792, "EUR.USD")], clock=clock)
    push = feeder(board)
    push(265598, bid=271.1, ask=271.2, last=271.15, change_pct=0.5)
    push(265598, last=271.0, change_pct=-0.2)
    push(12087792, bid=1.16833, ask=1.16838)
    board.on_state(ConnectionState.RECONNECTING)
    snap = board.snapshot()

    lines = render_table(snap, title="rxibkr demo | test", width=200)
    text = "\n".join(lines)
    assert "\x1b" not in text
    assert lines[0] == "rxibkr demo | test"
    assert "state reconnecting" in lines[1]  # as in a pipe: the state's value and "3 updates" in lines[1]
    assert lines[2].split() == ["SYMBOL", "CONID", "BID", "ASK", "LAST", "CHG", "%", "UPD/S"]
    assert lines[3].split()[:6] == ["AAPL", "265598", "271.10", "271.20", "271.00", "-0.20%"]
    assert lines[4].split()[:5] == ["EUR.USD", "12087792", "1.1683", "1.1684", "-"]

    coloured = render_table(snap, title="t", width=200, color=True)
    assert "\x1b[31m" in coloured[3]  # the last price went down: red
    narrow = render_table(snap, title="t", width=30, color=True)
    assert all(len(line) <= 30 for line in narrow[2:])
    assert all("\x1b" not in line for line in narrow[2:])  # cut lines lose their colours


def test_render_plain_is_one_greppable_line_per_instrument() -> None:
    board = QuoteBoard([Instrument(265598, "AAPL")], clock=FakeClock())
    feeder(board)(265598, bid=271.1, ask=271.2, last=271.15, change_pct=0.25)
    board.on_state(ConnectionState.AUTHENTICATED)
    status, row = render_plain(board.snapshot())
    assert "state=authenticated updates=1 errors=0" in status
    match = ROW.search(row)
    assert match is not None
    assert match["symbol"] == "AAPL" and match["bid"] == "271.10" and match["chg"] == "+0.25%"


# =================================================================================================
# symbols
# =================================================================================================


def test_resolve_instruments_takes_conids_and_exact_stock_matches() -> None:
    asked: list[str] = []

    def search(symbol: str) -> list[dict[str, Any]]:
        asked.append(symbol)
        return [
            {"conid": "1", "symbol": "AAPLX", "sections": [{"secType": "STK"}]},
            {"conid": "2", "symbol": "AAPL", "sections": [{"secType": "OPT"}]},
            {"conid": "265598", "symbol": "AAPL", "sections": [{"secType": "STK"}, {"secType": "OPT"}]},
        ]

    got = resolve_instruments(["aapl", "8314", "265598"], search)
    assert got == [Instrument(265598, "AAPL"), Instrument(8314)]  # duplicates dropped, order kept
    assert asked == ["AAPL"]


@pytest.mark.parametrize(
    ("specs", "search", "message"),
    [
        (["NOPE"], lambda s: [], "unknown symbol 'NOPE'"),
        (["AAPL"], None, "without a REST session"),
        ([" "], None, "empty string"),
        (["0"], None, "must be positive"),
    ],
)
def test_resolve_instruments_errors_are_clear(specs: list[str], search: Any, message: str) -> None:
    with pytest.raises(DemoError, match=re.escape(message)) as info:
        resolve_instruments(specs, search)
    assert info.value.exit_code == 2


def test_resolve_instruments_reports_a_failed_search() -> None:
    def search(symbol: str) -> list[dict[str, Any]]:
        raise OSError("connection refused")

    with pytest.raises(DemoError, match=r"looking up symbol 'AAPL' .* connection refused"):
        resolve_instruments(["AAPL"], search)


# =================================================================================================
# the command, in process
# =================================================================================================


def rxibkr_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rxibkr-") and t.is_alive()]


def test_help_lists_the_options_and_matches_the_simulator_command() -> None:
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    demo, sim = subparsers.choices["demo"], subparsers.choices["sim"]
    demo_help = demo.format_help()
    for option in ("--duration", "--url", "--cacert", "--insecure", "--refresh", "--plain", "CONID|SYMBOL"):
        assert option in demo_help

    def options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
        return {o: a for a in p._actions for o in a.option_strings}

    demo_options, sim_options = options(demo), options(sim)
    for shared in ("--duration", "--seed", "--md-interval", "--heartbeat-interval", "--log-level"):
        assert shared in demo_options and shared in sim_options
        assert demo_options[shared].metavar == sim_options[shared].metavar
        assert demo_options[shared].type == sim_options[shared].type


def test_demo_against_the_simulator_prints_plain_lines_and_stops_cleanly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    code = cli.main(["demo", "--duration", "1.5", *FAST_SIM, "AAPL", "8314", "SPY"])
    out = capsys.readouterr().out
    assert code == 0
    assert time.monotonic() - started < 15
    assert out.startswith("rxibkr demo | simulator wss://127.0.0.1:")
    assert "(TLS verified)" in out.splitlines()[0]
    rows = [m.groupdict() for m in ROW.finditer(out)]
    assert {r["symbol"] for r in rows} == {"AAPL", "IBM", "SPY"}  # IBM: conid 8314, named by field 55
    last_aapl = [r for r in rows if r["symbol"] == "AAPL"][-1]
    assert last_aapl["conid"] == "265598"
    assert float(last_aapl["bid"]) <= float(last_aapl["ask"])
    assert float(last_aapl["rate"]) > 0
    assert "state=authenticated" in out
    summary = out.strip().splitlines()[-1]
    assert re.fullmatch(
        r"rxibkr demo: \d+ updates from 3 instruments in [\d.]+ s \(duration reached\); stopped cleanly",
        summary,
    )
    assert int(summary.split()[2]) > 10
    assert rxibkr_threads() == []


def test_unknown_symbol_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["demo", "--duration", "1", *FAST_SIM, "AAPL", "NOSUCHSYM"])
    captured = capsys.readouterr()
    assert code == 2
    assert "unknown symbol 'NOSUCHSYM'" in captured.err
    assert rxibkr_threads() == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cacert", "ca.pem"], "for --url or OAuth"),
        (["--url", "wss://localhost:5000/v1/api/ws", "--seed", "3"], "--seed: simulator options"),
        (["--url", "wss://localhost:5000/v1/api/ws", "--cacert", "x", "--insecure"], "not allowed with"),
        (["--url", "wss://localhost:5000/v1/api/ws", "--cacert", "/no/such/ca.pem"], "no such file"),
        (["--url", "https://localhost:5000/v1/api/ws", "--insecure"], "expected a ws:// or wss:// URL"),
        (["--duration", "0"], "expected a positive number"),
        (["--log-level", "LOUD"], "unknown level"),
    ],
)
def test_bad_options_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["demo", *argv]) == 2
    assert message in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.filterwarnings("ignore:rxibkr. TLS certificate verification is disabled")
def test_connection_failure_exits_3_quickly(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"wss://127.0.0.1:{free_port()}/v1/api/ws"
    started = time.monotonic()
    code = cli.main(["demo", "--url", url, "--insecure", "--timeout", "1", "AAPL"])
    captured = capsys.readouterr()
    assert code == 3
    assert f"rxibkr demo: cannot connect to {url}: connection refused" in captured.err
    assert time.monotonic() - started < 10
    assert rxibkr_threads() == []


@pytest.fixture
def sim() -> Iterator[Any]:
    sim_module = pytest.importorskip("rxibkr.sim")
    with sim_module.GatewaySimulator(md_interval=0.05, heartbeat_interval=0.5) as simulator:
        yield simulator


def test_url_mode_verifies_tls_with_the_given_ca(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["demo", "--url", sim.ws_url, "--cacert", sim.cacert, "--duration", "1", "MSFT"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"gateway {sim.ws_url} (TLS verified)" in out
    assert any(m["symbol"] == "MSFT" for m in ROW.finditer(out))


def test_url_mode_refuses_an_unverified_certificate(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sim_module = pytest.importorskip("rxibkr.sim")
    with sim_module.GatewaySimulator() as other:  # another CA, which did not sign sim's certificate
        argv = ["--url", sim.ws_url, "--cacert", other.cacert, "--timeout", "1", "--duration", "1", "AAPL"]
        code = cli.main(["demo", *argv])
    captured = capsys.readouterr()
    assert code == 3
    assert "cannot connect" in captured.err and "TLS" in captured.err
    assert sim.session_id not in captured.err + captured.out  # no secrets in what it prints


# =================================================================================================
# the command as a process: a terminal, and Ctrl-C
# =================================================================================================


def read_until(fd: int, pattern: bytes | re.Pattern[bytes], timeout: float, count: int = 1) -> bytes:
    """Read from ``fd`` until ``pattern`` appeared ``count`` times (or EOF / timeout); returns all read."""
    data = b""
    deadline = time.monotonic() + timeout

    def seen() -> int:
        return data.count(pattern) if isinstance(pattern, bytes) else len(pattern.findall(data))

    while seen() < count and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the pty closed
                break
            if not chunk:
                break
            data += chunk
    return data


def test_on_a_terminal_it_redraws_in_place_and_ctrl_c_exits_130() -> None:
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "30"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxibkr", "demo", "--duration", "30", *FAST_SIM, "AAPL", "MSFT"],
        stdin=subprocess.DEVNULL,
        stdout=child_fd,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(child_fd)
    try:
        # two redraws of the board in place (cursor up over the 5 lines drawn before), live prices
        cursor_up = re.compile(rb"\x1b\[5A")
        data = read_until(main_fd, cursor_up, timeout=20, count=2)
        assert b"\x1b[?25l" in data  # cursor hidden while drawing
        assert len(cursor_up.findall(data)) >= 2, data[-2000:]
        text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", data).decode()
        assert re.search(r"AAPL\s+265598\s+[\d,.]+\s+[\d,.]+", text)
        assert "state authenticated" in text  # as in a pipe
        proc.send_signal(signal.SIGINT)
        rest = read_until(main_fd, b"stopped cleanly", timeout=15)
        assert proc.wait(timeout=15) == 130
        assert b"\x1b[?25h" in rest  # cursor shown again
        assert b"(interrupted); stopped cleanly" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main_fd)
        assert proc.stderr is not None
        proc.stderr.close()


def test_sigterm_in_plain_mode_exits_0() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxibkr", "demo", *FAST_SIM, "--refresh", "5", "IBM"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        data = read_until(fd, b"state=authenticated", timeout=20)
        data += read_until(fd, b"IBM", timeout=5)
        assert b"IBM" in data
        proc.send_signal(signal.SIGTERM)
        data += read_until(fd, b"stopped cleanly", timeout=15)
        assert proc.wait(timeout=15) == 0
        assert b"(stopped by SIGTERM); stopped cleanly" in data
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
