"""``rxibkr demo``: a live quote board in the terminal, against the embedded simulator or a real gateway.

Without ``--url`` it starts the gateway simulator on a free loopback port (TLS with a throwaway CA,
verification on), connects a client to it, subscribes a handful of well-known instruments and
redraws a quote board in place (ANSI escape codes, throttled to ``--refresh`` per second) until
Ctrl-C or ``--duration``. When stdout is not a terminal it prints plain, greppable lines instead.
With ``--url``/``--cacert`` the same board shows a real Client Portal gateway (no simulator).

The pieces are usable on their own: :class:`QuoteBoard` (thread-safe board state fed by quotes,
state changes and errors), :func:`render_table` / :func:`render_plain` (pure rendering) and
:func:`resolve_instruments` (symbols to conids through REST secdef search).
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

import reactivex

from rxibkr import operators as rxo
from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.streams.models import Quote

DEFAULT_INSTRUMENTS: tuple[str, ...] = ("AAPL", "MSFT", "NVDA", "TSLA", "SPY", "QQQ")
"""What the demo shows when no instrument is named (all in the simulator's universe)."""

_LOGGER = logging.getLogger(__name__)

# ANSI escape sequences (no curses: they work in every terminal emulator people use today)
_CSI = "\x1b["
_CLEAR_LINE = _CSI + "2K"
_CLEAR_BELOW = _CSI + "J"
_HIDE_CURSOR = _CSI + "?25l"
_SHOW_CURSOR = _CSI + "?25h"
_RESET = _CSI + "0m"
_BOLD = _CSI + "1m"
_DIM = _CSI + "2m"
_RED = _CSI + "31m"
_GREEN = _CSI + "32m"
_YELLOW = _CSI + "33m"

_STATE_COLORS: Mapping[ConnectionState, str] = {
    ConnectionState.AUTHENTICATED: _GREEN,
    ConnectionState.CONNECTING: _YELLOW,
    ConnectionState.OPEN: _YELLOW,
    ConnectionState.RECONNECTING: _YELLOW,
    ConnectionState.UNAUTHENTICATED: _RED,
    ConnectionState.FAILED: _RED,
    ConnectionState.STOPPED: _DIM,
}


class DemoError(Exception):
    """A problem the demo reports in one line before exiting with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# =================================================================================================
# instruments
# =================================================================================================


@dataclass(frozen=True, slots=True)
class Instrument:
    """One row of the board: the contract id, and its symbol when known before the first quote."""

    conid: int
    symbol: str | None = None

    @property
    def label(self) -> str:
        return self.symbol or str(self.conid)


def _sections_sec_types(result: Mapping[str, Any]) -> list[str]:
    sections = result.get("sections")
    if not isinstance(sections, list):
        return []
    return [str(s.get("secType")) for s in sections if isinstance(s, Mapping)]


def resolve_instruments(
    specs: Sequence[str], search: Callable[[str], list[dict[str, Any]]] | None
) -> list[Instrument]:
    """``CONID`` or ``SYMBOL`` strings to :class:`Instrument` rows, in order, without duplicates.

    A number is taken as a conid. A symbol is looked up with ``search`` (the REST secdef search,
    ``IbkrSession.search``): the first result whose symbol matches exactly, a stock if there is one.
    Raises :class:`DemoError` (exit code 2) for an empty spec, an unknown symbol, or a symbol when
    there is no ``search``.
    """
    out: list[Instrument] = []
    seen: set[int] = set()
    for spec in specs:
        text = spec.strip()
        if not text:
            raise DemoError(
                "instrument: expected a conid (265598) or a symbol (AAPL), got an empty string", 2
            )
        if text.isascii() and text.isdigit():
            conid = int(text)
            if conid <= 0:
                raise DemoError(f"instrument: a conid must be positive, got {text!r}", 2)
            instrument = Instrument(conid)
        else:
            instrument = _search_symbol(text.upper(), search)
        if instrument.conid not in seen:
            seen.add(instrument.conid)
            out.append(instrument)
    return out


def _search_symbol(symbol: str, search: Callable[[str], list[dict[str, Any]]] | None) -> Instrument:
    if search is None:
        raise DemoError(f"cannot look up symbol {symbol!r} without a REST session; give its conid instead", 2)
    try:
        results = search(symbol)
    except Exception as exc:
        raise DemoError(f"looking up symbol {symbol!r} (secdef search) failed: {exc}", 2) from exc
    exact = [r for r in results if isinstance(r, Mapping) and str(r.get("symbol", "")).upper() == symbol]
    stocks = [r for r in exact if "STK" in _sections_sec_types(r)]
    for result in stocks or exact:
        try:
            return Instrument(int(str(result.get("conid"))), symbol)
        except ValueError:
            continue
    raise DemoError(f"unknown symbol {symbol!r}: secdef search found no contract with that symbol", 2)


# =================================================================================================
# the board's state
# =================================================================================================


@dataclass(frozen=True, slots=True)
class RowSnapshot:
    """One instrument on the board at one moment."""

    conid: int
    symbol: str
    bid: float | None
    ask: float | None
    last: float | None
    change_percent: float | None
    updates: int
    rate: float
    direction: int  # +1: last went up, -1: down, 0: unchanged or unknown


@dataclass(frozen=True, slots=True)
class BoardSnapshot:
    """Everything a renderer needs, copied out of :class:`QuoteBoard` under its lock."""

    rows: tuple[RowSnapshot, ...]
    state: ConnectionState
    updates: int
    errors: int
    last_error: str | None
    elapsed: float


class _Row:
    __slots__ = ("arrivals", "conid", "direction", "quote", "symbol", "updates")

    def __init__(self, instrument: Instrument) -> None:
        self.conid = instrument.conid
        self.symbol = instrument.symbol
        self.quote: Quote | None = None
        self.updates = 0
        self.direction = 0
        self.arrivals: collections.deque[float] = collections.deque()


def _change_percent(quote: Quote) -> float | None:
    value = quote.change_percent
    if value is not None:
        return value
    last, prior = quote.last, quote.prior_close
    if last is None or not prior:
        return None
    return (last - prior) / prior * 100.0


class QuoteBoard:
    """Live state of the board: fed from any thread (quotes arrive on the client's reader thread),
    read by the drawing thread through :meth:`snapshot`.

    ``window``: seconds over which updates per second are measured; ``clock``: a monotonic clock
    in seconds (tests pass a fake one).
    """

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        window: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window > 0:
            raise ValueError(f"window: expected a positive number of seconds, got {window!r}")
        self._lock = threading.Lock()
        self._clock = clock
        self._window = window
        self._started = clock()
        self._rows: dict[int, _Row] = {i.conid: _Row(i) for i in instruments}
        self._state = ConnectionState.STOPPED
        self._updates = 0
        self._errors = 0
        self._last_error: str | None = None

    def on_quote(self, quote: Quote) -> None:
        """One merged quote (``operators.snapshots()``): one update for its row."""
        now = self._clock()
        with self._lock:
            row = self._rows.get(quote.conid)
            if row is None:
                row = self._rows[quote.conid] = _Row(Instrument(quote.conid))
            previous = row.quote.last if row.quote is not None else None
            last = quote.last
            if previous is not None and last is not None and last != previous:
                row.direction = 1 if last > previous else -1
            row.quote = quote
            if quote.symbol:
                row.symbol = quote.symbol
            row.updates += 1
            row.arrivals.append(now)
            self._updates += 1

    def on_state(self, state: ConnectionState) -> None:
        with self._lock:
            self._state = state

    def on_error(self, error: ErrorEvent) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = str(error)

    @property
    def updates(self) -> int:
        return self._updates

    @property
    def state(self) -> ConnectionState:
        return self._state

    def snapshot(self) -> BoardSnapshot:
        now = self._clock()
        elapsed = now - self._started
        span = min(self._window, max(elapsed, 1.0))
        rows: list[RowSnapshot] = []
        with self._lock:
            for row in self._rows.values():
                arrivals = row.arrivals
                while arrivals and arrivals[0] < now - self._window:
                    arrivals.popleft()
                quote = row.quote
                rows.append(
                    RowSnapshot(
                        conid=row.conid,
                        symbol=row.symbol or str(row.conid),
                        bid=quote.bid if quote is not None else None,
                        ask=quote.ask if quote is not None else None,
                        last=quote.last if quote is not None else None,
                        change_percent=_change_percent(quote) if quote is not None else None,
                        updates=row.updates,
                        rate=len(arrivals) / span,
                        direction=row.direction,
                    )
                )
            return BoardSnapshot(
                tuple(rows), self._state, self._updates, self._errors, self._last_error, elapsed
            )


# =================================================================================================
# rendering (pure functions of a snapshot)
# =================================================================================================


def _price(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.2f}" if abs(value) >= 10 else f"{value:.4f}"


def _percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.2f}%"


def _paint(text: str, color: str | None) -> str:
    return f"{color}{text}{_RESET}" if color else text


_COLUMNS: tuple[tuple[str, int], ...] = (
    ("SYMBOL", -10),
    ("CONID", 11),
    ("BID", 12),
    ("ASK", 12),
    ("LAST", 12),
    ("CHG %", 9),
    ("UPD/S", 7),
)


def _cell(text: str, width: int) -> str:
    return text.ljust(-width) if width < 0 else text.rjust(width)


def render_table(snapshot: BoardSnapshot, *, title: str, width: int = 100, color: bool = False) -> list[str]:
    """The board as lines (no cursor movement): the title, a status line (connection state, time,
    counts), the column header, one row per instrument and the last error if any. Lines are cut to
    ``width`` columns; ``color`` adds ANSI colours."""
    state = snapshot.state
    state_text = _paint(state.value.upper(), _STATE_COLORS.get(state) if color else None)
    status = (
        f"state {state_text} | {snapshot.elapsed:.1f}s | {snapshot.updates} updates | "
        f"{snapshot.errors} errors | Ctrl-C to quit"
    )
    lines: list[tuple[str, str]] = [(title, title), (status, _strip(status))]
    columns = " ".join(_cell(name, w) for name, w in _COLUMNS)
    lines.append((_paint(columns, _BOLD if color else None), columns))
    for row in snapshot.rows:
        cells = [
            row.symbol[:10],
            str(row.conid),
            _price(row.bid),
            _price(row.ask),
            _price(row.last),
            _percent(row.change_percent),
            f"{row.rate:.1f}",
        ]
        plain = " ".join(_cell(text, w) for text, (_, w) in zip(cells, _COLUMNS, strict=True))
        if color:
            last_color = _GREEN if row.direction > 0 else _RED if row.direction < 0 else None
            change = row.change_percent
            change_color = None if change is None or change == 0 else _GREEN if change > 0 else _RED
            painted = [_cell(text, w) for text, (_, w) in zip(cells, _COLUMNS, strict=True)]
            painted[4] = _paint(painted[4], last_color)
            painted[5] = _paint(painted[5], change_color)
            lines.append((" ".join(painted), plain))
        else:
            lines.append((plain, plain))
    if snapshot.last_error:
        error = f"last error: {snapshot.last_error}"
        lines.append((_paint(error, _DIM if color else None), error))
    out: list[str] = []
    for painted_line, plain_line in lines:
        # colour only when the line fits: escape codes must never be cut in half
        out.append(painted_line if len(plain_line) <= width else plain_line[: max(0, width)])
    return out


def _strip(text: str) -> str:
    """``text`` without ANSI colour codes (for measuring)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith(_CSI, i):
            end = i + len(_CSI)
            while end < len(text) and not text[end].isalpha():
                end += 1
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def render_plain(snapshot: BoardSnapshot) -> list[str]:
    """Plain lines for pipes and logs: one status line, then one ``key=value`` line per instrument."""
    stamp = f"[{snapshot.elapsed:6.1f}s]"
    lines = [
        f"{stamp} state={snapshot.state.value} updates={snapshot.updates} errors={snapshot.errors}"
        + (f" last_error={snapshot.last_error!r}" if snapshot.last_error else "")
    ]
    for row in snapshot.rows:
        lines.append(
            f"{stamp} {row.symbol:<10} conid={row.conid} bid={_price(row.bid)} ask={_price(row.ask)} "
            f"last={_price(row.last)} chg={_percent(row.change_percent)} rate={row.rate:.1f}/s"
        )
    return lines


class AnsiScreen:
    """Redraws a block of lines in place: cursor up over the previous block, clear, rewrite."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._height = 0

    def __enter__(self) -> AnsiScreen:
        self._out.write(_HIDE_CURSOR)
        return self

    def draw(self, lines: Sequence[str]) -> None:
        parts: list[str] = []
        if self._height:
            parts.append(f"{_CSI}{self._height}A\r")
        for line in lines:
            parts.append(f"{_CLEAR_LINE}{line}\n")
        parts.append(_CLEAR_BELOW)
        self._out.write("".join(parts))
        self._out.flush()
        self._height = len(lines)

    def __exit__(self, *_: object) -> None:
        self._out.write(_SHOW_CURSOR)
        self._out.flush()


# =================================================================================================
# the command
# =================================================================================================


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show a live quote board. Without --url it starts the embedded gateway simulator (needs the "
        "'sim' extra) and connects to it over TLS with the simulator's CA; with --url it connects to a "
        "real Client Portal gateway instead."
    )
    parser.add_argument(
        "instruments",
        nargs="*",
        metavar="CONID|SYMBOL",
        help=f"instruments to show (default: {' '.join(DEFAULT_INSTRUMENTS)}); symbols are looked up "
        "with the gateway's secdef search",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this many seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--refresh",
        type=float,
        default=None,
        metavar="HZ",
        help="board redraws per second (default: 4 on a terminal, 1 when the output is not a terminal)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="print plain lines instead of redrawing in place (the default when stdout is not a terminal)",
    )
    gateway = parser.add_argument_group("real gateway (no simulator)")
    gateway.add_argument(
        "--url",
        default=None,
        help="WebSocket URL of a running gateway, e.g. wss://localhost:5000/v1/api/ws",
    )
    gateway.add_argument(
        "--cacert",
        default=None,
        metavar="PEM",
        help="PEM file with the gateway's CA certificate, for TLS verification (default: the system's CAs)",
    )
    gateway.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the gateway's TLS certificate (prefer --cacert)",
    )
    gateway.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="connect and REST timeout (default: 5)",
    )
    sim = parser.add_argument_group("embedded simulator (without --url)")
    sim.add_argument(
        "--seed", type=int, default=None, help="seed of the session id and market model (default: 0)"
    )
    sim.add_argument(
        "--md-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between market data updates (default: 0.25)",
    )
    sim.add_argument(
        "--heartbeat-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between system heartbeats (default: 10)",
    )
    parser.add_argument("--log-level", default="ERROR", help="logging level, to stderr (default: ERROR)")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What :func:`run_demo` needs; ``run()`` builds it from the command line."""

    instruments: tuple[str, ...] = DEFAULT_INSTRUMENTS
    duration: float | None = None
    refresh: float | None = None
    plain: bool = False
    url: str | None = None
    cacert: str | None = None
    insecure: bool = False
    timeout: float = 5.0
    seed: int = 0
    md_interval: float = 0.25
    heartbeat_interval: float = 10.0


def _options(args: argparse.Namespace) -> DemoOptions:
    if args.url is None:
        if args.cacert is not None or args.insecure:
            raise DemoError("--cacert and --insecure apply to --url (the simulator brings its own CA)", 2)
    else:
        given = [
            name
            for name, value in (
                ("--seed", args.seed),
                ("--md-interval", args.md_interval),
                ("--heartbeat-interval", args.heartbeat_interval),
            )
            if value is not None
        ]
        if given:
            raise DemoError(f"{', '.join(given)}: simulator options, not valid with --url", 2)
        if args.cacert is not None and args.insecure:
            raise DemoError("--cacert and --insecure contradict each other: choose one", 2)
    for name, value in (
        ("--duration", args.duration),
        ("--refresh", args.refresh),
        ("--timeout", args.timeout),
        ("--md-interval", args.md_interval),
        ("--heartbeat-interval", args.heartbeat_interval),
    ):
        if value is not None and not value > 0:
            raise DemoError(f"{name}: expected a positive number, got {value!r}", 2)
    return DemoOptions(
        instruments=tuple(args.instruments) or DEFAULT_INSTRUMENTS,
        duration=args.duration,
        refresh=args.refresh,
        plain=bool(args.plain),
        url=args.url,
        cacert=args.cacert,
        insecure=bool(args.insecure),
        timeout=float(args.timeout),
        seed=0 if args.seed is None else int(args.seed),
        md_interval=0.25 if args.md_interval is None else float(args.md_interval),
        heartbeat_interval=10.0 if args.heartbeat_interval is None else float(args.heartbeat_interval),
    )


def run(args: argparse.Namespace) -> int:
    level = getattr(logging, str(args.log_level).upper(), None)
    if not isinstance(level, int):
        sys.stderr.write(f"rxibkr demo: --log-level: unknown level {args.log_level!r}\n")
        return 2
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    package_logger = logging.getLogger("rxibkr")
    previous_level = package_logger.level
    package_logger.setLevel(level)
    try:
        try:
            options = _options(args)
        except DemoError as exc:
            sys.stderr.write(f"rxibkr demo: {exc}\n")
            return exc.exit_code
        return run_demo(options, sys.stdout, sys.stderr)
    finally:
        package_logger.setLevel(previous_level)  # in-process callers (tests) keep their own level


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the demo like Ctrl-C does (clean shutdown, exit code 0)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(options: DemoOptions, out: TextIO, err: TextIO) -> int:
    """Run the demo until ``options.duration`` or Ctrl-C; returns the exit code.

    0: stopped by duration or Ctrl-C (SIGTERM too); 1: the connection failed; 2: bad arguments
    (an unknown symbol, a missing extra). Every resource is released before it returns.
    """
    try:
        with _terminate_as_interrupt():
            return _run(options, out)
    except DemoError as exc:
        err.write(f"rxibkr demo: {exc}\n")
        err.flush()
        return exc.exit_code


def _run(options: DemoOptions, out: TextIO) -> int:
    interactive = not options.plain and out.isatty()
    color = interactive and "NO_COLOR" not in os.environ
    refresh = options.refresh if options.refresh is not None else (4.0 if interactive else 1.0)
    period = 1.0 / refresh
    board: QuoteBoard | None = None
    errors: list[ErrorEvent] = []
    interrupted = False
    started = time.monotonic()
    with ExitStack() as stack:
        try:
            url, cacert, account, where = _gateway(options, stack)
            client = IbkrWsClient(
                url=url,
                cacert=cacert,
                account_id=account,
                timeout=options.timeout,
                max_connection_attempts=3,
            )
            stack.callback(client.shutdown)
            stack.enter_context(client.errors.subscribe(errors.append))
            if not client.start():
                raise DemoError(f"could not connect to {url}: {_failure(errors)}", 1)
            instruments = resolve_instruments(
                options.instruments, client.rest.search if client.rest else None
            )
            board = QuoteBoard(instruments)
            stack.enter_context(client.state.subscribe(board.on_state))
            stack.enter_context(client.errors.subscribe(board.on_error))
            quotes = reactivex.merge(*(client.market_data(i.conid) for i in instruments)).pipe(
                rxo.snapshots()
            )
            stack.enter_context(quotes.subscribe(board.on_quote))
            title = f"rxibkr demo | {where}"
            # the duration counts from the first board: connecting to a real gateway may take a while
            deadline = None if options.duration is None else time.monotonic() + options.duration
            if interactive:
                screen = stack.enter_context(AnsiScreen(out))

                def draw() -> None:
                    assert board is not None
                    width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
                    screen.draw(render_table(board.snapshot(), title=title, width=width, color=color))
            else:
                out.write(f"{title}\n")

                def draw() -> None:
                    assert board is not None
                    out.write("\n".join(render_plain(board.snapshot())) + "\n")
                    out.flush()

            _loop(draw, period, deadline)
        except KeyboardInterrupt:
            interrupted = True
    # everything is released here: subscriptions disposed, client shut down, simulator stopped
    elapsed = time.monotonic() - started
    if board is None:
        return 0
    how = "interrupted" if interrupted else "duration reached"
    out.write(
        f"rxibkr demo: {board.updates} updates from {len(board.snapshot().rows)} instruments in "
        f"{elapsed:.1f} s ({how}); stopped cleanly\n"
    )
    out.flush()
    return 0


def _failure(errors: Sequence[ErrorEvent]) -> str:
    """Why the connection failed, for one line: the most telling error, and a hint for TLS."""
    telling = [e for e in errors if not e.message.startswith("giving up")] or list(errors)
    if not telling:
        return "no session confirmation"
    error = telling[-1]
    text = str(error)
    if error.kind is ErrorKind.TLS:
        text += " (demo: --cacert PEM names the gateway's CA certificate; --insecure skips verification)"
    elif len(telling) < len(errors):
        text += " (gave up after 3 attempts)"
    return text


def _loop(draw: Callable[[], None], period: float, deadline: float | None) -> None:
    """Draw every ``period`` seconds until ``deadline`` (monotonic), then once more."""
    ticker = threading.Event()  # never set: a wait that Ctrl-C interrupts
    next_draw = time.monotonic()
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        if now >= next_draw:
            draw()
            next_draw = max(next_draw + period, now)
        wake = next_draw if deadline is None else min(next_draw, deadline)
        ticker.wait(max(0.0, wake - time.monotonic()))
    draw()


def _gateway(options: DemoOptions, stack: ExitStack) -> tuple[str, str | bool, str | None, str]:
    """URL, cacert, account and a description of where the data comes from; starts the simulator
    when there is no ``--url`` (stopped by ``stack``)."""
    if options.url is not None:
        if options.insecure:
            cacert: str | bool = False
        elif options.cacert is not None:
            if not os.path.isfile(options.cacert):
                raise DemoError(f"--cacert: no such file: {options.cacert!r}", 2)
            cacert = options.cacert
        else:
            cacert = True
        if not options.url.startswith(("ws://", "wss://")):
            raise DemoError(f"--url: expected a ws:// or wss:// URL, got {options.url!r}", 2)
        tls = (
            "TLS not verified"
            if cacert is False
            else "TLS verified"
            if options.url.startswith("wss")
            else "no TLS"
        )
        return options.url, cacert, None, f"gateway {options.url} ({tls})"
    try:
        from rxibkr.sim import GatewaySimulator
    except ImportError as exc:
        raise DemoError(
            f"the embedded simulator needs the 'sim' extra ({exc.name} is missing): "
            'python -m pip install -e ".[sim]"',
            2,
        ) from exc
    sim = GatewaySimulator(
        port=0,
        tls=True,
        seed=options.seed,
        md_interval=options.md_interval,
        heartbeat_interval=options.heartbeat_interval,
    )
    sim.start()
    stack.callback(sim.stop)
    assert sim.cacert is not None
    return sim.ws_url, sim.cacert, sim.account, f"simulator {sim.ws_url} (TLS verified)"


__all__ = [
    "DEFAULT_INSTRUMENTS",
    "AnsiScreen",
    "BoardSnapshot",
    "DemoError",
    "DemoOptions",
    "Instrument",
    "QuoteBoard",
    "RowSnapshot",
    "configure",
    "render_plain",
    "render_table",
    "resolve_instruments",
    "run",
    "run_demo",
]
