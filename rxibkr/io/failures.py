"""Why a connection attempt failed, and whether trying again could help: :func:`classify_connect_error`.

Pure: looks only at the exception (its ``__cause__``/``__context__`` chain) and, optionally, the URL
that was tried. The client uses it to fail fast on what no retry can fix (a wrong host, a closed port,
a certificate that does not verify, a 404 or 401 on the upgrade) and to keep retrying the rest.

``retryable`` answers "could the same attempt succeed in a few seconds without anyone doing anything?".
A refused port or an unknown host are not retryable on a *first* connect (nobody is listening there);
a client that already had a session may still choose to retry them while a gateway restarts: ``kind``
tells it what happened.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, TypeVar
from urllib.parse import urlsplit

import urllib3
import websocket

from rxibkr.io.tls import CertificatePinError

E = TypeVar("E", bound=BaseException)

DNS: Final = "dns"
REFUSED: Final = "refused"
TLS: Final = "tls"
HTTP_STATUS: Final = "http_status"
AUTH: Final = "auth"
TIMEOUT: Final = "timeout"
PROTOCOL: Final = "protocol"
NETWORK: Final = "network"
UNKNOWN: Final = "unknown"


@dataclass(frozen=True, slots=True)
class ConnectFailure:
    """A classified connect failure.

    ``kind`` is one of ``"dns"``, ``"refused"``, ``"tls"``, ``"http_status"``, ``"auth"`` (401/403, or a
    gateway that is not logged in), ``"timeout"``, ``"protocol"`` (the server does not speak
    HTTP/WebSocket as expected, e.g. ``ws://`` against a TLS port, or broke the framing rules),
    ``"network"`` (reset, unreachable, ...) or ``"unknown"``. ``reason`` is one line for a person,
    saying what to check. ``status`` is the HTTP status when there was one.
    """

    retryable: bool
    reason: str
    kind: str
    status: int | None = None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status_failure(status: int, where: str, what: str) -> ConnectFailure:
    if status in (401, 403):
        return ConnectFailure(
            False,
            f"{what} {where}: HTTP {status}: not authorized; log in to the gateway (or check ips.allow)",
            AUTH,
            status,
        )
    if status in (408, 429) or status >= 500:
        return ConnectFailure(
            True, f"{what} {where}: HTTP {status} (the server may recover)", HTTP_STATUS, status
        )
    hint = "; check the URL's path (the gateway's socket is /v1/api/ws)" if status == 404 else ""
    return ConnectFailure(False, f"{what} {where}: HTTP {status}{hint}", HTTP_STATUS, status)


def classify_connect_error(error: BaseException, url: str | None = None) -> ConnectFailure:
    """Classify why opening ``url`` failed with ``error`` (any exception a connect attempt can raise:
    socket, TLS, urllib3/REST, websocket-client, :class:`~rxibkr.io.transport.ProtocolViolation`)."""
    parts = urlsplit(url) if url else None
    where = f"{parts.hostname}:{parts.port}" if parts and parts.port else (parts.hostname if parts else None)
    where = where or "the server"
    plain = parts is not None and parts.scheme in ("ws", "http")
    chain = list(_chain(error))

    def find(kind: type[E]) -> E | None:
        return next((e for e in chain if isinstance(e, kind)), None)

    def find_any(*kinds: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kinds)), None)

    from rxibkr.io.transport import ProtocolViolation  # the transport imports nothing from here

    if (violation := find(ProtocolViolation)) is not None:
        return ConnectFailure(True, f"protocol violation by {where}: {violation}", PROTOCOL)
    if (pin := find(CertificatePinError)) is not None:
        return ConnectFailure(False, str(pin), TLS)
    if (verify := find(ssl.SSLCertVerificationError)) is not None:
        return ConnectFailure(
            False,
            f"TLS verification of {where} failed: {getattr(verify, 'verify_message', None) or verify}; "
            "check cacert",
            TLS,
        )
    if (bad := find(websocket.WebSocketBadStatusException)) is not None:
        status = getattr(bad, "status_code", None)
        if isinstance(status, int):
            return _status_failure(status, where, "WebSocket upgrade at")
    for e in chain:  # the REST call before the upgrade (IbkrSession's SessionError carries .status)
        status = getattr(e, "status", None)
        if isinstance(status, int) and status >= 400 and isinstance(e, RuntimeError):
            return _status_failure(status, where, "REST call to")
    if (dns := find(socket.gaierror)) is not None:
        temporary = dns.errno == socket.EAI_AGAIN
        return ConnectFailure(
            temporary,
            f"cannot resolve host {parts.hostname if parts else where!r}: {dns.strerror or dns}"
            + (" (temporary)" if temporary else "; check the URL's host"),
            DNS,
        )
    if find(ConnectionRefusedError) is not None:
        return ConnectFailure(
            False, f"connection refused by {where}: is the gateway running on that port?", REFUSED
        )
    if find_any(
        TimeoutError, socket.timeout, websocket.WebSocketTimeoutException, urllib3.exceptions.TimeoutError
    ):
        return ConnectFailure(True, f"timed out connecting to {where}", TIMEOUT)
    if (ssl_error := find(ssl.SSLError)) is not None:
        if isinstance(ssl_error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return ConnectFailure(True, f"{where} closed the connection during the TLS handshake", NETWORK)
        if getattr(ssl_error, "reason", None) in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"):
            return ConnectFailure(
                False, f"{where} does not speak TLS on that port ({ssl_error.reason}); try a ws:// URL", TLS
            )
        return ConnectFailure(False, f"TLS handshake with {where} failed: {ssl_error}", TLS)
    closed = find_any(
        websocket.WebSocketConnectionClosedException,
        http.client.RemoteDisconnected,
        ConnectionResetError,
        BrokenPipeError,
    )
    garbage = find_any(
        http.client.BadStatusLine, websocket.WebSocketProtocolException, websocket.WebSocketPayloadException
    )
    if garbage is not None or (closed is not None and plain):
        hint = "; if it serves TLS, use a wss:// URL" if plain else ""
        return ConnectFailure(
            False,
            f"{where} did not answer the handshake as an HTTP/WebSocket server ({garbage or closed}){hint}",
            PROTOCOL,
        )
    if closed is not None:
        return ConnectFailure(True, f"{where} closed the connection during the handshake", NETWORK)
    for e in chain:  # the REST session found no session id: the gateway is not logged in
        if type(e).__name__ == "SessionError" and "session id" in str(e):
            return ConnectFailure(False, f"{where}: {e}", AUTH)
    if (os_error := find(OSError)) is not None:
        unreachable = os_error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL)
        return ConnectFailure(
            True,
            f"network error connecting to {where}: {os_error}" + (" (unreachable)" if unreachable else ""),
            NETWORK,
        )
    if (ws_error := find(websocket.WebSocketException)) is not None:
        return ConnectFailure(False, f"the WebSocket handshake with {where} failed: {ws_error}", PROTOCOL)
    return ConnectFailure(True, f"connecting to {where} failed: {error.__class__.__name__}: {error}", UNKNOWN)
