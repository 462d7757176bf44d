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
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from rxibkr.cli import signals
from rxibkr.cli.options import (
    EXIT_OK,
    CliError,
    Instrument,
    add_duration,
    add_gateway,
    add_instruments,
    add_logging,
    client_instruments,
    connect,
    make_client,
    positive_float,
    resolve_instruments,
    setup_logging,
    state_text,
    uses_gateway_options,
)

if TYPE_CHECKING:  # the command's heavy imports wait for run(): `rxibkr --help` stays fast
    from rxibkr.client.core import IbkrWsClient
    from rxibkr.client.events import ConnectionState, ErrorEvent
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

_STATE_COLORS: Mapping[str, str] = {  # by ConnectionState value
    "authenticated": _GREEN,
    "connecting": _YELLOW,
    "open": _YELLOW,
    "reconnecting": _YELLOW,
    "unauthenticated": _RED,
    "failed": _RED,
    "stopped": _DIM,
}


DemoError = CliError
"""A problem the demo reports in one line before exiting with ``exit_code`` (:class:`CliError`)."""


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
        from rxibkr.client.events import ConnectionState

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
    shown = _paint(state_text(state), _STATE_COLORS.get(state_text(state)) if color else None)
    status = (
        f"state {shown} | {snapshot.elapsed:.1f}s | {snapshot.updates} updates | "
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
        f"{stamp} state={state_text(snapshot.state)} updates={snapshot.updates} errors={snapshot.errors}"
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
        "Show a live quote board. Without --url (or OAuth) it starts the embedded gateway simulator "
        "(needs the 'sim' extra) and connects to it over TLS with the simulator's CA; with --url it "
        "connects to a real Client Portal gateway instead, with --oauth1a/--oauth2/--oauth-config to "
        "IBKR's servers."
    )
    add_instruments(parser, required=False, default=DEFAULT_INSTRUMENTS)
    add_duration(parser)
    parser.add_argument(
        "--refresh",
        type=positive_float,
        default=None,
        metavar="HZ",
        help="board redraws per second (default: 4 on a terminal, 1 when the output is not a terminal)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="print plain lines instead of redrawing in place (the default when stdout is not a terminal)",
    )
    add_gateway(parser, title="real gateway (no simulator)")
    sim = parser.add_argument_group("embedded simulator (without --url)")
    sim.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the session id and market model (default: 0)",
    )
    sim.add_argument(
        "--md-interval",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="seconds between market data updates (default: 0.25)",
    )
    sim.add_argument(
        "--heartbeat-interval",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="seconds between system heartbeats (default: 10)",
    )
    add_logging(parser)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What :func:`run_demo` needs; ``run()`` builds it from the command line. Without ``url`` and
    OAuth it starts the simulator; the gateway fields mean what ``rxibkr.cli.options.add_gateway``'s
    options mean."""

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
    account: str | None = None
    oauth1a: bool = False
    oauth2: bool = False
    oauth_config: str | None = None

    @property
    def simulated(self) -> bool:
        return self.url is None and not (self.oauth1a or self.oauth2 or self.oauth_config)


def _options(args: argparse.Namespace) -> DemoOptions:
    oauth = bool(args.oauth1a or args.oauth2 or args.oauth_config)
    if args.url is None and not oauth:
        given = uses_gateway_options(args)
        if given:
            raise CliError(
                f"{', '.join(given)}: gateway options, for --url or OAuth (the simulator brings its own CA)",
                2,
            )
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
            raise CliError(f"{', '.join(given)}: simulator options, not valid with --url or OAuth", 2)
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
        account=args.account,
        oauth1a=bool(args.oauth1a),
        oauth2=bool(args.oauth2),
        oauth_config=args.oauth_config,
    )


def run(args: argparse.Namespace) -> int:
    setup_logging(args)
    try:
        options = _options(args)
    except CliError as exc:
        sys.stderr.write(f"rxibkr demo: {exc}\n")
        return exc.exit_code
    return run_demo(options, sys.stdout, sys.stderr)


def run_demo(options: DemoOptions, out: TextIO, err: TextIO) -> int:
    """Run the demo until ``options.duration``, Ctrl-C or SIGTERM; returns the exit code.

    0: stopped by duration or SIGTERM; 130: Ctrl-C; 3: the connection failed; 2: bad arguments
    (an unknown symbol, a missing extra). A closed ``out`` raises ``BrokenPipeError`` (``main()``
    makes it exit 141, quietly). Every resource is released before it returns.
    """
    try:
        return _run(options, out)
    except CliError as exc:
        err.write(f"rxibkr demo: {exc}\n")
        err.flush()
        return exc.exit_code


def _run(options: DemoOptions, out: TextIO) -> int:
    interactive = not options.plain and out.isatty()
    color = interactive and "NO_COLOR" not in os.environ
    refresh = options.refresh if options.refresh is not None else (4.0 if interactive else 1.0)
    period = 1.0 / refresh
    board: QuoteBoard | None = None
    stopped: KeyboardInterrupt | None = None
    started = time.monotonic()
    with ExitStack() as stack:
        try:
            client, where = _client(options, stack)
            connect(client, "rxibkr demo")
            instruments = client_instruments(client, options.instruments)
            board = QuoteBoard(instruments)
            stack.enter_context(client.state.subscribe(board.on_state))
            stack.enter_context(client.errors.subscribe(board.on_error))
            import reactivex

            from rxibkr import operators as rxo

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
            signals.stopping()  # from here on a signal is noted, not raised: the clean-up runs whole
        except KeyboardInterrupt as exc:
            stopped = exc
    # everything is released here: subscriptions disposed, client shut down, simulator stopped
    code = EXIT_OK if stopped is None else signals.exit_code_of(stopped)
    if board is None:
        return code
    elapsed = time.monotonic() - started
    how = "duration reached" if stopped is None else getattr(stopped, "reason", "interrupted")
    out.write(
        f"rxibkr demo: {board.updates} updates from {len(board.snapshot().rows)} instruments in "
        f"{elapsed:.1f} s ({how}); stopped cleanly\n"
    )
    out.flush()
    return code


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


def _client(options: DemoOptions, stack: ExitStack) -> tuple[IbkrWsClient, str]:
    """The client (shut down by ``stack``) and a description of where the data comes from; starts the
    simulator when there is no ``--url`` nor OAuth (stopped by ``stack``)."""
    if not options.simulated:
        with signals.deferred():
            client = make_client(options)
            stack.callback(client.shutdown)
        url = client.url.split("?", 1)[0]
        if options.insecure:
            tls = "TLS not verified"
        elif url.startswith("wss://"):
            tls = "TLS verified"
        else:
            tls = "no TLS"
        return client, f"gateway {url} ({tls})"
    try:
        from rxibkr.sim import GatewaySimulator
    except ImportError as exc:
        raise CliError(
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
    with signals.deferred():  # a Ctrl-C now waits until the simulator can be stopped (its CA removed)
        stack.callback(sim.stop)
        sim.start()
    assert sim.cacert is not None
    with signals.deferred():
        client = make_client(options, url=sim.ws_url, cacert=sim.cacert, account_id=sim.account)
        stack.callback(client.shutdown)
    return client, f"simulator {sim.ws_url} (TLS verified)"


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
