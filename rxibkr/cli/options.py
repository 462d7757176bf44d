"""What every ``rxibkr`` sub-command shares: options, exit codes, logging, the connection, instruments.

A sub-command's ``configure(parser)`` calls the ``add_*`` helpers it needs, so the same option has the
same name, metavar, default and help everywhere; its ``run(args)`` calls :func:`setup_logging`,
:func:`make_client` and :func:`connect` and raises :class:`CliError` for a one-line failure.

Nothing here is imported by the library; ``rxibkr --help`` stays fast (heavy imports are in the calls).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rxibkr.client.core import IbkrWsClient
    from rxibkr.client.events import ErrorEvent

# =================================================================================================
# exit codes
# =================================================================================================

EXIT_OK = 0
"""Done: finished, ``--duration`` reached, or stopped by SIGTERM / SIGHUP (a clean stop)."""
EXIT_FAILURE = 1
"""Failed while running: a file that cannot be written, an empty recording, ..."""
EXIT_USAGE = 2
"""Bad options or arguments (argparse's own code too), an unknown symbol, a bad OAuth config."""
EXIT_CONNECT = 3
"""Cannot connect: DNS, refused, TLS, an HTTP status on the upgrade, authentication, no session
within ``--timeout``; ``sim``: cannot listen on the address."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (SIGINT), after a clean stop (128 + 2, as shells report it)."""
EXIT_PIPE = 141
"""The output was closed (a broken pipe: ``| head``); quiet, after a clean stop (128 + 13)."""

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK:<4} done: finished, --duration reached, or stopped by SIGTERM/SIGHUP
  {EXIT_FAILURE:<4} failed while running (a file cannot be written, an empty recording, ...)
  {EXIT_USAGE:<4} usage: bad options or arguments, an unknown symbol, a bad OAuth config
  {EXIT_CONNECT:<4} cannot connect: DNS, refused, TLS, HTTP status on the upgrade, authentication,
       no session within --timeout (sim: cannot listen on the address)
  {EXIT_INTERRUPTED:<4} interrupted by Ctrl-C, after a clean stop
  {EXIT_PIPE:<4} output closed (a broken pipe, e.g. | head), quietly
"""

# =================================================================================================
# defaults shared by every sub-command
# =================================================================================================

DEFAULT_LOG_LEVEL = "WARNING"
DEFAULT_TIMEOUT = 5.0
CONNECT_ATTEMPTS = 3
"""Connection attempts for a retryable failure (a timeout, a 5xx); a failure no retry can fix ends
at the first."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CliError(Exception):
    """A problem reported in one line (``rxibkr CMD: message``) before exiting with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def prog_name(args: argparse.Namespace) -> str:
    """``rxibkr CMD``: the prefix of every line a sub-command prints about itself."""
    command = getattr(args, "command", None)
    return f"rxibkr {command}" if command else "rxibkr"


# =================================================================================================
# argument types
# =================================================================================================


def positive_float(text: str) -> float:
    """argparse type: a number of seconds (or a rate) greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def log_level(text: str) -> str:
    """argparse type: a logging level name, any case."""
    name = text.strip().upper()
    if name not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown level {text!r}; choose from {', '.join(LOG_LEVELS)}")
    return name


# =================================================================================================
# the options
# =================================================================================================


def add_logging(parser: argparse.ArgumentParser) -> None:
    """``--log-level LEVEL`` (default WARNING): the library's log, one line per record, to stderr."""
    parser.add_argument(
        "--log-level",
        type=log_level,
        default=DEFAULT_LOG_LEVEL,
        metavar="LEVEL",
        help=f"log level, to stderr: {', '.join(LOG_LEVELS)} (default: {DEFAULT_LOG_LEVEL})",
    )


def add_duration(parser: argparse.ArgumentParser | Any, what: str = "stop by itself") -> None:
    """``--duration SECONDS`` (default: until Ctrl-C, SIGTERM or SIGHUP)."""
    parser.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help=f"{what} after this many seconds (default: run until Ctrl-C, SIGTERM or SIGHUP)",
    )


def add_instruments(parser: argparse.ArgumentParser, *, required: bool, default: Sequence[str] = ()) -> None:
    """The positional instruments: conids (265598) or symbols (AAPL), in any mix."""
    shown = f" (default: {' '.join(default)})" if default else ""
    parser.add_argument(
        "instruments",
        nargs="+" if required else "*",
        metavar="CONID|SYMBOL",
        help="contract ids (265598) or symbols (AAPL), looked up with the gateway's secdef search" + shown,
    )


def add_gateway(parser: argparse.ArgumentParser, *, title: str | None = "gateway connection") -> None:
    """``--url URL``, ``--cacert PEM`` | ``--insecure``, ``--timeout SECONDS``, ``--account ID`` and
    ``--oauth1a`` | ``--oauth2`` | ``--oauth-config FILE``: where the gateway is and how to trust it."""
    group: Any = parser.add_argument_group(title) if title else parser
    group.add_argument(
        "--url",
        default=None,
        metavar="URL",
        help="gateway WebSocket URL (default: $RXIBKR_WS_URL or wss://localhost:5000/v1/api/ws; with "
        "OAuth: IBKR's)",
    )
    tls = group.add_mutually_exclusive_group()
    tls.add_argument(
        "--cacert",
        default=None,
        metavar="PEM",
        help="CA certificate (PEM file) to verify the gateway with (default: the library's TLS policy)",
    )
    tls.add_argument(
        "--insecure", action="store_true", help="do not verify the gateway's certificate (prefer --cacert)"
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"connect and REST timeout; no session within {CONNECT_ATTEMPTS} x this fails the command "
        f"(default: {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--account", default=None, metavar="ID", help="account id (default: $RXIBKR_ACCOUNT_ID)"
    )
    oauth = group.add_mutually_exclusive_group()
    oauth.add_argument(
        "--oauth1a",
        action="store_true",
        help="no gateway: IBKR's servers over OAuth 1.0a, configured by $RXIBKR_OAUTH1A_* (needs 'oauth')",
    )
    oauth.add_argument(
        "--oauth2",
        action="store_true",
        help="no gateway: IBKR's servers over OAuth 2.0, configured by $RXIBKR_OAUTH2_* (needs 'oauth')",
    )
    oauth.add_argument(
        "--oauth-config",
        default=None,
        metavar="FILE",
        help="no gateway: OAuth 1.0a or 2.0 settings from a JSON file (consumer_key: 1.0a, client_id: 2.0)",
    )


def uses_gateway_options(args: argparse.Namespace) -> list[str]:
    """The gateway options given on the command line (for commands where some modes ignore them)."""
    given = []
    for name in ("url", "cacert", "account", "oauth_config"):
        if getattr(args, name, None) is not None:
            given.append("--" + name.replace("_", "-"))
    for name in ("insecure", "oauth1a", "oauth2"):
        if getattr(args, name, False):
            given.append("--" + name)
    return given


# =================================================================================================
# logging and warnings
# =================================================================================================


class _Quiet(logging.Filter):
    """Consecutive repeats of one message are shown once (then "repeated N times"); while held (during
    the connection), records wait: shown once connected, dropped when the failure's one line says it."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self._handler = handler
        self._lock = threading.Lock()
        self._last: tuple[str, int, str] | None = None
        self._repeats = 0
        self._held: list[logging.LogRecord] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            if self._held is not None and record.levelno < logging.ERROR:
                self._held.append(record)
                return False
            key = (record.name, record.levelno, record.getMessage())
            if key == self._last:
                self._repeats += 1
                return False
            repeats, self._repeats, self._last = self._repeats, 0, key
        if repeats:
            sys.stderr.write(f"(the previous message was repeated {repeats} more times)\n")
        return True

    def flush(self) -> None:
        """Say how often the last message was repeated, if it was (at the end of the command)."""
        with self._lock:
            repeats, self._repeats, self._last = self._repeats, 0, None
        if repeats:
            sys.stderr.write(f"(the previous message was repeated {repeats} more times)\n")

    def hold(self) -> None:
        with self._lock:
            if self._held is None:
                self._held = []

    def release(self, show: bool) -> None:
        with self._lock:
            held, self._held = self._held, None
        if show and held:
            for record in held:
                if self.filter(record):
                    self._handler.handle(record)


_quiet: _Quiet | None = None
_installed: tuple[logging.Handler, int, bool] | None = None


def setup_logging(args: argparse.Namespace) -> None:
    """One handler on stderr at ``--log-level`` for the ``rxibkr`` loggers (repeats collapsed), until
    :func:`reset_logging`. A program that configured logging itself (handlers on the root logger)
    keeps its handlers; only the level is set."""
    global _quiet, _installed
    level = getattr(logging, str(getattr(args, "log_level", DEFAULT_LOG_LEVEL)).upper(), logging.WARNING)
    package = logging.getLogger("rxibkr")
    if _installed is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        _installed = (handler, package.level, package.propagate)
        if not logging.getLogger().handlers:
            _quiet = _Quiet(handler)
            handler.addFilter(_quiet)
            package.addHandler(handler)
            package.propagate = False
    package.setLevel(level)


def flush_logs() -> None:
    """Say now how often the last log message was repeated (before a command's final line)."""
    if _quiet is not None:
        try:
            _quiet.flush()
        except (OSError, ValueError):
            pass


def reset_logging() -> None:
    """Undo :func:`setup_logging` (``main()`` does, so in-process callers keep their logging)."""
    global _quiet, _installed
    if _installed is None:
        return
    handler, level, propagate = _installed
    flush_logs()
    package = logging.getLogger("rxibkr")
    package.removeHandler(handler)
    package.setLevel(level)
    package.propagate = propagate
    _quiet, _installed = None, None


def hold_logs() -> None:
    """Hold the library's warnings until :func:`release_logs` (the connection phase)."""
    if _quiet is not None and logging.getLogger("rxibkr").getEffectiveLevel() >= logging.WARNING:
        _quiet.hold()


def release_logs(show: bool) -> None:
    if _quiet is not None:
        _quiet.release(show)


def one_line_warnings(prog: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints ``prog: warning: message``, each message once."""
    seen: set[str] = set()

    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        text = str(message).splitlines()[0] if str(message) else category.__name__
        text = text.removeprefix("rxibkr: ")
        if category.__name__ == "InsecureRequestWarning":  # urllib3, per request: said once already
            text = "TLS certificate verification is disabled"
        if text in seen:
            return
        seen.add(text)
        try:
            sys.stderr.write(f"{prog}: warning: {text}\n")
        except (OSError, ValueError):
            pass

    return show


# =================================================================================================
# the client
# =================================================================================================


def oauth_config(args: Any) -> Any:
    """The OAuth config the options name (None without ``--oauth1a``/``--oauth2``/``--oauth-config``)."""
    from rxibkr import auth

    try:
        if getattr(args, "oauth1a", False):
            return auth.config_from_env("1.0a")
        if getattr(args, "oauth2", False):
            return auth.config_from_env("2.0")
        path = getattr(args, "oauth_config", None)
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                values = json.load(handle)
        except OSError as exc:
            raise CliError(f"--oauth-config: cannot read {path!r}: {exc.strerror}", EXIT_USAGE) from None
        except ValueError as exc:
            raise CliError(f"--oauth-config: {path!r} is not JSON: {exc}", EXIT_USAGE) from None
        return auth.config_from_mapping(values)
    except (TypeError, ValueError) as exc:
        raise CliError(f"OAuth configuration: {exc}", EXIT_USAGE) from None


def client_options(args: Any) -> dict[str, Any]:
    """``IbkrWsClient`` keyword arguments from the gateway options."""
    options: dict[str, Any] = {
        "timeout": float(getattr(args, "timeout", DEFAULT_TIMEOUT)),
        "max_connection_attempts": CONNECT_ATTEMPTS,
    }
    url = getattr(args, "url", None)
    if url is not None:
        if not url.startswith(("ws://", "wss://")):
            raise CliError(f"--url: expected a ws:// or wss:// URL, got {url!r}", EXIT_USAGE)
        options["url"] = url
    if getattr(args, "insecure", False):
        options["cacert"] = False
    elif getattr(args, "cacert", None) is not None:
        if not os.path.isfile(args.cacert):
            raise CliError(f"--cacert: no such file: {args.cacert!r}", EXIT_USAGE)
        options["cacert"] = args.cacert
    if getattr(args, "account", None) is not None:
        options["account_id"] = args.account
    config = oauth_config(args)
    if config is not None:
        options["oauth"] = config
    return options


def make_client(args: Any, **overrides: Any) -> IbkrWsClient:
    """An ``IbkrWsClient`` as the options say (``overrides`` win); :class:`CliError` when it cannot be
    built (usage: 2; an OAuth login refused: 3)."""
    from rxibkr.client.core import IbkrWsClient
    from rxibkr.io.rest import SessionError

    options = {**client_options(args), **overrides}
    try:
        return IbkrWsClient(**options)
    except SessionError as exc:  # OAuth 2.0 logs in here
        raise CliError(f"cannot authenticate: {exc}", EXIT_CONNECT) from None
    except ImportError as exc:
        raise CliError(f"{exc} (pip install 'rxibkr[oauth]')", EXIT_USAGE) from None
    except (TypeError, ValueError, OSError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def public_url(url: str) -> str:
    """``url`` without its query (OAuth puts a token there)."""
    return url.split("?", 1)[0]


def _chain(exc: BaseException | None) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out and len(out) < 10:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def failure_reason(error: ErrorEvent) -> tuple[str, bool]:
    """A short reason for a failed connection attempt, and whether no retry can fix it."""
    from rxibkr.client.events import ErrorKind

    chain = _chain(error.exception)
    text = " ".join(str(e) for e in chain) + " " + error.message
    lowered = text.lower()
    tls = error.kind is ErrorKind.TLS or "sslerror" in lowered
    if tls or any(isinstance(e, ssl.SSLError) for e in chain):
        detail = next((str(e) for e in chain if isinstance(e, ssl.SSLError)), None)
        if detail is None:
            detail = error.message.split("SSLError: ", 1)[-1]
        if "wrong_version_number" in lowered or "wrong version number" in lowered:
            detail += " (is it a plain ws:// port?)"
        return f"TLS: {detail}", True
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        s in lowered for s in ("name or service not known", "failed to resolve", "nodename nor servname")
    ):
        return "cannot resolve the host name", True
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "connection refused" in lowered:
        return "connection refused", True
    status: int | None = None
    for e in chain:
        for attribute in ("status", "status_code"):
            value = getattr(e, attribute, None)
            if status is None and isinstance(value, int):
                status = value
    if status is None and "handshake status " in lowered:
        try:
            status = int(lowered.split("handshake status ", 1)[1][:3])
        except ValueError:
            status = None
    if status is not None:
        if status in (401, 403):
            return f"authentication refused (HTTP {status})", True
        where = "on the WebSocket upgrade" if "handshake" in lowered else "from the gateway"
        return f"HTTP {status} {where}", 400 <= status < 500
    if error.kind is ErrorKind.AUTHENTICATION:
        return f"not authenticated: {error.message}", False
    if "remote end closed connection without response" in lowered:
        return "the server closed the connection without a response (a TLS port? try wss://)", False
    if "timed out" in lowered or "timeout" in lowered:
        return "timed out", False
    return error.message, False


def connect(client: IbkrWsClient, prog: str) -> None:
    """``client.start()``, ended at the first failure no retry can fix; :class:`CliError` (exit 3)
    with one line saying why when there is no session. The library's warnings meanwhile are held:
    shown once connected, replaced by that line otherwise."""
    from rxibkr.client.events import ErrorKind

    errors: list[ErrorEvent] = []
    fatal: list[str] = []

    def on_error(error: ErrorEvent) -> None:
        if error.kind not in (ErrorKind.CONNECTION_ERROR, ErrorKind.TLS, ErrorKind.AUTHENTICATION):
            return
        if error.message.startswith("giving up"):
            return
        errors.append(error)
        reason, final = failure_reason(error)
        if final and not fatal:
            fatal.append(reason)
            client.shutdown()  # releases start() at once; safe from the client's own threads

    hold_logs()
    ok = False
    try:
        with client.errors.subscribe(on_error):
            ok = client.start()
    finally:
        release_logs(show=ok)
    if ok:
        return
    last = getattr(client, "last_error", None)  # the client's own account of the failure, where it has one
    if fatal:
        reason = fatal[0]
    elif last is not None and hasattr(last, "kind") and hasattr(last, "message"):
        reason = failure_reason(last)[0]
    elif errors:
        reason = failure_reason(errors[-1])[0] + f" (gave up after {CONNECT_ATTEMPTS} attempts)"
    else:
        reason = "no session confirmed in time"
    raise CliError(f"cannot connect to {public_url(client.url)}: {reason}", EXIT_CONNECT)


# =================================================================================================
# instruments
# =================================================================================================


@dataclass(frozen=True, slots=True)
class Instrument:
    """One instrument: the contract id, and its symbol when known (looked up, or from a quote)."""

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
    Raises :class:`CliError` (exit code 2) for an empty spec, an unknown symbol, or a symbol when
    there is no ``search``.
    """
    out: list[Instrument] = []
    seen: set[int] = set()
    for spec in specs:
        text = spec.strip()
        if not text:
            raise CliError(
                "instrument: expected a conid (265598) or a symbol (AAPL), got an empty string", EXIT_USAGE
            )
        if text.isascii() and text.isdigit():
            conid = int(text)
            if conid <= 0:
                raise CliError(f"instrument: a conid must be positive, got {text!r}", EXIT_USAGE)
            instrument = Instrument(conid)
        else:
            instrument = _search_symbol(text.upper(), search)
        if instrument.conid not in seen:
            seen.add(instrument.conid)
            out.append(instrument)
    return out


def _search_symbol(symbol: str, search: Callable[[str], list[dict[str, Any]]] | None) -> Instrument:
    if search is None:
        raise CliError(
            f"cannot look up symbol {symbol!r} without a REST session; give its conid instead", EXIT_USAGE
        )
    try:
        results = search(symbol)
    except Exception as exc:
        raise CliError(f"looking up symbol {symbol!r} (secdef search) failed: {exc}", EXIT_USAGE) from exc
    exact = [r for r in results if isinstance(r, Mapping) and str(r.get("symbol", "")).upper() == symbol]
    stocks = [r for r in exact if "STK" in _sections_sec_types(r)]
    for result in stocks or exact:
        try:
            return Instrument(int(str(result.get("conid"))), symbol)
        except ValueError:
            continue
    raise CliError(f"unknown symbol {symbol!r}: secdef search found no contract with that symbol", EXIT_USAGE)


def client_instruments(client: IbkrWsClient, specs: Sequence[str]) -> list[Instrument]:
    """:func:`resolve_instruments` with the client's REST session (symbols need one)."""
    rest = client.rest
    return resolve_instruments(specs, getattr(rest, "search", None) if rest is not None else None)


# =================================================================================================
# state, as printed
# =================================================================================================


def state_text(state: Any) -> str:
    """A connection state as every command prints it, terminal or pipe: its value (``authenticated``)."""
    value = getattr(state, "value", state)
    return str(value)


__all__ = [
    "CONNECT_ATTEMPTS",
    "DEFAULT_LOG_LEVEL",
    "DEFAULT_TIMEOUT",
    "EXIT_CODES_HELP",
    "EXIT_CONNECT",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_USAGE",
    "CliError",
    "Instrument",
    "add_duration",
    "add_gateway",
    "add_instruments",
    "add_logging",
    "client_instruments",
    "client_options",
    "connect",
    "failure_reason",
    "flush_logs",
    "make_client",
    "one_line_warnings",
    "positive_float",
    "prog_name",
    "reset_logging",
    "resolve_instruments",
    "setup_logging",
    "state_text",
]
