"""The socket layer: websocket-client, TLS, cookies, and the reader thread. Knows no IBKR topics.

A :class:`Transport` opens :class:`Connection` objects. Each real connection runs one daemon
thread that (1) asks the cookie provider for the session cookie (a REST call), (2) performs the
WebSocket handshake bounded by ``timeout``, then (3) loops on ``recv_data_frame`` handing every
data frame to the listener as received (bytes for binary frames, str for text frames; UTF-8
validation is left to orjson). Pongs are reported so the client's ping watchdog can see them.
Exactly one ``on_close`` is delivered per connection, whatever happens.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn, Protocol
from urllib.parse import urlsplit

import websocket

_LOGGER = logging.getLogger(__name__)

CookieProvider = Callable[[], "str | None"]

_READ_SIZE = 65536
"""Bytes asked of the socket per read: one read serves hundreds of small frames."""

Scan = Callable[[bytes, int], tuple[list[bytes], int]]
"""``scan(buf, pos) -> (payloads, pos)``: the fast-path frames whole in ``buf`` from ``pos`` on."""

_c_scan: Scan | None
try:  # the optional C accelerator of the reader's fast path (setup.py builds it when it can)
    from rxibkr.io import _frames

    _c_scan = _frames.scan
except ImportError:  # pragma: no cover - no compiler at install time: the pure-Python reader
    _c_scan = None


def accelerator() -> Scan | None:
    """The C fast path of the reader (``rxibkr.io._frames.scan``), or None: not built, or turned off
    with ``RXIBKR_PURE_PYTHON=1``. Read when a connection starts reading (not per frame)."""
    if os.environ.get("RXIBKR_PURE_PYTHON", "").strip() not in ("", "0"):
        return None
    return _c_scan


class TransportListener(Protocol):
    """What a connection reports to. ``on_frame``, ``on_batch_end`` and ``on_pong`` run on the reader
    thread.

    ``on_batch_end`` is called when every whole frame of what the connection has read so far has been
    delivered, before it waits for more bytes: once per socket read (which holds hundreds of frames in a
    burst, one at low rates). A listener can hand over what it gathered from several frames there (the
    client wakes a consumer waiting on a queue once per batch, not per frame). It is optional: a
    listener without it is not called, and a connection that never calls it is allowed (the client then
    hands over per frame).

    ``on_progress`` is called after each read that brought bytes of a frame but not its end (a frame
    larger than one read): the peer is alive although no whole frame arrives, and a heartbeat or pong
    it sends queues behind that frame. Optional too (the client's watchdogs then wait for whole
    frames only).
    """

    def on_open(self, connection: Connection) -> None: ...

    def on_frame(self, connection: Connection, data: bytes | str) -> None: ...

    def on_batch_end(self, connection: Connection) -> None: ...

    def on_progress(self, connection: Connection) -> None: ...

    def on_pong(self, connection: Connection) -> None: ...

    def on_close(
        self, connection: Connection, code: int | None, reason: str, error: BaseException | None
    ) -> None: ...


class Connection(Protocol):
    """One WebSocket connection. Every method is safe to call from any thread."""

    @property
    def id(self) -> int: ...

    def send(self, text: str) -> None: ...

    def ping(self) -> None: ...

    def close(self, code: int = 1000, reason: str = "") -> None: ...

    def join(self, timeout: float | None = None) -> bool: ...


@dataclass(slots=True)
class ConnectOptions:
    """Everything a transport needs to open one connection."""

    url: str
    timeout: float = 10.0
    ssl_context: ssl.SSLContext | None = None
    cookie_provider: CookieProvider | None = None
    headers: dict[str, str] = field(default_factory=dict)
    url_provider: Callable[[], str] | None = None
    """Asked on the reader thread after the cookie provider (whose REST call may renew a token): the
    URL to connect to, when it changes between connections (an OAuth 2.0 bearer in the query)."""


class Transport(Protocol):
    """Opens connections; replaced by fakes in tests and by ``ReplayTransport`` for replay.

    ``open`` must not call the listener before it returns. A connection may instead come back
    unstarted with a ``start()`` method, which the client calls once it has recorded the connection
    (the websocket-client transport does this: its reader thread starts there).
    """

    def open(self, options: ConnectOptions, listener: TransportListener) -> Connection: ...


class ConnectionClosedError(ConnectionError):
    """Raised by ``send`` on a connection that is closed or not yet open."""


class ProtocolViolation(ConnectionError):
    """The server broke RFC 6455's framing rules; the connection was failed with close code 1002.

    Delivered as ``on_close``'s error (with ``code`` 1002 and ``reason`` the same text). ``reason`` says
    which rule: a data frame inside a fragmented message, a continuation without a start, a reserved
    opcode, RSV bits without an extension, a masked frame, a fragmented or oversize control frame, or an
    invalid close frame.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


PROTOCOL_ERROR = 1002
"""The close code a protocol violation is answered with."""


def _valid_close_code(code: int) -> bool:
    """RFC 6455 7.4: codes a peer may send (1004-1006 and 1015 are reserved for local use only)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def _violation(b1: int, b2: int, length: int, fragment_op: int) -> str | None:
    """RFC 6455 section 5 for one frame off the fast path: what rule it breaks, or None."""
    opcode = b1 & 0x0F
    if b1 & 0x70:
        return f"RSV bits {(b1 >> 4) & 0x7:03b} set with no extension negotiated"
    if b2 & 0x80:
        return "a masked frame from the server"
    if opcode >= 0x8:
        if opcode > 0xA:
            return f"reserved control opcode 0x{opcode:X}"
        if not b1 & 0x80:
            return f"a fragmented control frame (opcode 0x{opcode:X})"
        if length > 125:
            return f"a control frame of {length} bytes (at most 125 allowed)"
        return None
    if opcode > 0x2:
        return f"reserved data opcode 0x{opcode:X}"
    if opcode == 0x0:
        return None if fragment_op else "a continuation frame without a message to continue"
    if fragment_op:
        return f"a new data frame (opcode 0x{opcode:X}) inside a fragmented message"
    return None


def _send_close(ws: websocket.WebSocket, code: int, reason: str) -> None:
    try:
        ws.send_close(code, reason.encode()[:123])
    except (OSError, websocket.WebSocketException):
        pass


def _fail(ws: websocket.WebSocket, reason: str) -> NoReturn:
    """Fail the connection (RFC 6455 7.1.7): send close 1002, then end by raising."""
    _send_close(ws, PROTOCOL_ERROR, reason)
    raise ProtocolViolation(f"protocol violation: {reason}")


def _closed_by_server(ws: websocket.WebSocket, payload: bytes) -> tuple[int | None, str]:
    """A close frame: echo its code (RFC 6455 5.5.1), or fail on an invalid one."""
    if len(payload) == 1:
        _fail(ws, "a close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
    if code is not None and not _valid_close_code(code):
        _fail(ws, f"invalid close code {code}")
    try:
        text = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        _fail(ws, "a close reason that is not UTF-8")
    _send_close(ws, code if code is not None else 1000, "")
    return code, text


def _not_listened(connection: Connection) -> None:
    return None


_next_id = 0
_id_lock = threading.Lock()


def _new_id() -> int:
    global _next_id
    with _id_lock:
        _next_id += 1
        return _next_id


class _WebSocketConnection:
    __slots__ = ("_closed", "_id", "_lock", "_raw", "_thread", "_ws", "listener", "options")

    def __init__(self, options: ConnectOptions, listener: TransportListener) -> None:
        self.options = options
        self.listener = listener
        self._id = _new_id()
        self._ws: websocket.WebSocket | None = None
        self._raw: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"rxibkr-reader-{self._id}", daemon=True)

    @property
    def id(self) -> int:
        return self._id

    def start(self) -> None:
        self._thread.start()

    # -- any thread -------------------------------------------------------------------------
    def send(self, text: str) -> None:
        ws = self._ws
        if ws is None or self._closed:
            raise ConnectionClosedError("the connection is not open")
        try:
            ws.send(text)
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionClosedError(str(exc)) from exc

    def ping(self) -> None:
        ws = self._ws
        if ws is None or self._closed:
            return
        try:
            ws.ping()
        except (OSError, websocket.WebSocketException):
            _LOGGER.debug("ping failed on connection %s", self._id)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close without waiting for the server: the reader thread ends promptly either way."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ws = self._ws
            raw = self._raw
        if ws is None:
            if raw is not None:  # still handshaking: abort it
                try:
                    raw.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return
        try:
            if ws.sock is not None:
                ws.sock.settimeout(1.0)
                ws.send_close(code, reason.encode())
        except (OSError, websocket.WebSocketException):
            pass
        try:
            ws.abort()
        except (OSError, websocket.WebSocketException):
            pass

    def join(self, timeout: float | None = None) -> bool:
        if threading.current_thread() is self._thread or not self._thread.is_alive():
            return not self._thread.is_alive()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- reader thread ----------------------------------------------------------------------
    def _run(self) -> None:
        code: int | None = None
        reason = ""
        error: BaseException | None = None
        ws: websocket.WebSocket | None = None
        try:
            ws = self._handshake()
            if ws is None:
                return
            self.listener.on_open(self)
            code, reason = self._read_loop(ws)
        except ProtocolViolation as exc:  # _read_loop has sent close 1002 already
            code, reason, error = PROTOCOL_ERROR, exc.reason, exc
        except BaseException as exc:  # reported, never raised out of the thread
            # a read that fails because close() aborted the socket is a normal local close
            error = None if self._closed else exc
        finally:
            with self._lock:
                self._closed = True
            if ws is not None:
                try:
                    ws.shutdown()
                except Exception:
                    pass
            self.listener.on_close(self, code, reason, error)

    def _handshake(self) -> websocket.WebSocket | None:
        """Cookie, TCP, TLS and the HTTP upgrade, each abortable by ``close()`` from another thread."""
        options = self.options
        cookie = options.cookie_provider() if options.cookie_provider is not None else None
        url = options.url_provider() if options.url_provider is not None else options.url
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        host = parts.hostname or "localhost"
        port = parts.port or (443 if secure else 80)
        raw = socket.create_connection((host, port), timeout=options.timeout)
        with self._lock:
            if self._closed:
                raw.close()
                return None
            self._raw = raw  # close() shuts it down: a stalled TLS or upgrade handshake ends at once
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock: socket.socket = raw
        if secure:
            context = options.ssl_context or ssl.create_default_context()
            sock = context.wrap_socket(raw, server_hostname=host)  # detaches raw: track the new one
            with self._lock:
                self._raw = sock
                if self._closed:
                    sock.close()
                    return None
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        ws.connect(
            url,
            timeout=options.timeout,
            cookie=cookie,
            header=[f"{k}: {v}" for k, v in options.headers.items()],
            suppress_origin=True,
            socket=sock,
        )
        ws.settimeout(None)  # reads block; close() aborts the socket to end them
        with self._lock:
            if self._closed:  # closed while we were connecting
                ws.shutdown()
                return None
            self._ws = ws
        return ws

    def _read_loop(self, ws: websocket.WebSocket) -> tuple[int | None, str]:
        """Read server frames ourselves, from large reads (one ``recv`` serves hundreds of frames).

        websocket-client's frame parser makes three system calls per small frame (header, extended
        length, payload) and builds several objects per frame: about 9 us of the 10 us a frame costs
        its ``recv()`` loop. Here: a final unmasked binary frame with no RSV bits (first byte 0x82, the
        gateway's every frame) goes straight to ``on_frame``; everything else takes the checked path:
        pings are answered with ``ws.pong``; fragments are joined (control frames may come in between);
        a close frame is answered with the server's own code and ends the loop. Any framing violation
        sends close 1002 and raises :class:`ProtocolViolation`. End of stream raises, as
        websocket-client does.
        """
        listener = self.listener
        on_frame = listener.on_frame
        on_batch_end = getattr(listener, "on_batch_end", None) or _not_listened
        on_progress = getattr(listener, "on_progress", None) or _not_listened
        sock = ws.sock
        if sock is None:
            raise websocket.WebSocketConnectionClosedException("socket is already closed.")
        sock_recv = sock.recv
        scan = accelerator()
        buf = b""
        pos = 0
        fragments: list[bytes] = []
        fragment_op = 0  # 0x1 or 0x2 while a fragmented message is open
        while True:
            if scan is not None and not fragment_op:
                # the C accelerator: every fast-path frame whole in the buffer, in one call
                payloads, pos = scan(buf, pos)
                for payload in payloads:
                    on_frame(self, payload)
            available = len(buf) - pos
            if available >= 2:
                b1 = buf[pos]
                b2 = buf[pos + 1]
                length = b2 & 0x7F
                head = 2 if length < 126 else (4 if length == 126 else 10)
                if b2 & 0x80:
                    head += 4  # a masked server frame: read whole, then refused below
                if available >= head:
                    if length == 126:
                        length = buf[pos + 2] << 8 | buf[pos + 3]
                    elif length == 127:
                        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                        if length >> 63:
                            _fail(ws, "a 64-bit frame length with the most significant bit set")
                    end = pos + head + length
                    if end <= len(buf):
                        payload = buf[pos + head : end]
                        pos = end
                        if b1 == 0x82 and not fragment_op and not b2 & 0x80:  # the fast path
                            on_frame(self, payload)
                            continue
                        violation = _violation(b1, b2, length, fragment_op)
                        if violation is not None:
                            _fail(ws, violation)
                        opcode = b1 & 0x0F
                        if opcode <= 0x2:  # text or binary, or a fragment of a message
                            if opcode:
                                fragment_op = opcode
                            if b1 & 0x80:
                                if fragments:
                                    fragments.append(payload)
                                    payload = b"".join(fragments)
                                    fragments.clear()
                                if fragment_op == 0x1:
                                    on_frame(self, payload.decode("utf-8", "replace"))
                                else:
                                    on_frame(self, payload)
                                fragment_op = 0
                            else:
                                fragments.append(payload)
                        elif opcode == 0x9:
                            ws.pong(payload)
                        elif opcode == 0xA:
                            listener.on_pong(self)
                        else:  # 0x8, close
                            return _closed_by_server(ws, payload)
                        continue
                    need = end - len(buf)
                else:
                    need = head - available
            else:
                need = 2 - available
            # no whole frame in the buffer: read at least what is missing (a large frame in one join)
            on_batch_end(self)  # every whole frame read so far is delivered
            parts = [buf[pos:]] if pos < len(buf) else []
            while True:
                chunk = sock_recv(max(_READ_SIZE, min(need, 1 << 20)))
                if not chunk:
                    raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
                parts.append(chunk)
                need -= len(chunk)
                if need <= 0:
                    break
                on_progress(self)  # part of a frame: the peer is alive
            buf = parts[0] if len(parts) == 1 else b"".join(parts)
            pos = 0


class WebSocketTransport:
    """The default transport: websocket-client's low-level ``WebSocket`` on a reader thread of our own."""

    def open(self, options: ConnectOptions, listener: TransportListener) -> Connection:
        """An unstarted connection: the client records it, then calls ``start()``."""
        return _WebSocketConnection(options, listener)


def is_tls_verification_error(error: BaseException | None) -> bool:
    """True when a connect failed because the server's certificate did not verify (fatal, no retry)."""
    while error is not None:
        if isinstance(error, ssl.SSLCertVerificationError):
            return True
        error = error.__cause__ or error.__context__
    return False
