"""A one-connection raw-socket WebSocket server with hand-written frames, and a recording listener."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from rxibkr.io.transport import Connection, ConnectOptions, WebSocketTransport

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload: bytes, first_byte: int = 0x82, *, length: int | None = None, mask: bool = False) -> bytes:
    """One server frame with a chosen first byte (FIN, RSV, opcode); ``length`` may lie about the size."""
    n = len(payload) if length is None else length
    mask_bit = 0x80 if mask else 0
    if n < 126:
        header = bytes((first_byte, mask_bit | n))
    elif n < 65536:
        header = bytes((first_byte, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first_byte, mask_bit | 127)) + n.to_bytes(8, "big")
    if mask:
        key = b"\x01\x02\x03\x04"
        return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + payload


def close_frame(code: int | None, reason: bytes = b"") -> bytes:
    return frame((code.to_bytes(2, "big") if code is not None else b"") + reason, 0x88)


def parse_client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, unmasked payload) of every whole client frame in ``data``."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while len(data) - pos >= 2:
        b1, b2 = data[pos], data[pos + 1]
        n = b2 & 0x7F
        head = 2
        if n == 126:
            n, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        key = data[pos + head : pos + head + 4] if b2 & 0x80 else b"\0\0\0\0"
        head += 4 if b2 & 0x80 else 0
        if len(data) < pos + head + n:
            break
        raw = data[pos + head : pos + head + n]
        out.append((b1 & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(raw))))
        pos += head + n
    return out


def read_request(conn: socket.socket) -> bytes:
    """The client's HTTP request head, read up to its blank line (less if the client hangs up)."""
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            break
        request += chunk
    return request


def upgrade_response(request: bytes) -> bytes:
    """The ``101 Switching Protocols`` answer to ``request``, with its ``Sec-WebSocket-Accept``."""
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


class RawServer:
    """Accepts one connection on 127.0.0.1, answers the upgrade (or ``status_line`` instead), sends
    ``script``, then records everything the client sends until it closes."""

    def __init__(
        self, script: bytes = b"", status_line: bytes | None = None, raw_answer: bytes | None = None
    ):
        self.script = script
        self.status_line = status_line
        self.raw_answer = raw_answer
        self.received = b""
        self.done = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(10)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/api/ws"

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            self.done.set()
            return
        with conn:
            conn.settimeout(10)
            request = read_request(conn)
            if self.raw_answer is not None:
                conn.sendall(self.raw_answer)
                conn.shutdown(socket.SHUT_WR)  # answer, then hang up (as a TLS port does to plain HTTP)
            elif self.status_line is not None:
                conn.sendall(self.status_line + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                conn.sendall(upgrade_response(request) + self.script)
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    self.received += chunk
            except OSError:
                pass
        self._listener.close()
        self.done.set()

    def client_frames(self) -> list[tuple[int, bytes]]:
        return parse_client_frames(self.received)

    def close(self) -> None:
        self._listener.close()


@dataclass
class Recorder:
    """A TransportListener that records everything."""

    frames: list[bytes | str] = field(default_factory=list)
    pongs: int = 0
    opened: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    close: tuple[int | None, str, BaseException | None] | None = None
    on_open_hook: Callable[[Connection], None] | None = None

    def on_open(self, connection: Connection) -> None:
        self.opened.set()
        if self.on_open_hook is not None:
            self.on_open_hook(connection)

    def on_frame(self, connection: Connection, data: bytes | str) -> None:
        self.frames.append(data)

    def on_pong(self, connection: Connection) -> None:
        self.pongs += 1

    def on_close(
        self, connection: Connection, code: int | None, reason: str, error: BaseException | None
    ) -> None:
        self.close = (code, reason, error)
        self.closed.set()


def open_connection(options: ConnectOptions) -> tuple[Connection, Recorder]:
    """Open one connection with the real transport; returns once it has closed (bounded)."""
    recorder = Recorder()
    connection = WebSocketTransport().open(options, recorder)
    start = getattr(connection, "start", None)
    if callable(start):
        start()
    return connection, recorder


def run_until_closed(options: ConnectOptions, timeout: float = 10.0) -> Recorder:
    connection, recorder = open_connection(options)
    assert recorder.closed.wait(timeout), "the connection did not close in time"
    assert connection.join(timeout)
    return recorder
