"""close() racing the reader's handshake: a connection closed while its TCP connect or HTTP upgrade is
still in progress ends at once (not at the handshake timeout), never opens, and reports a local close
without an error."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from transport.support import read_request
from waiting import wait_until

from rxibkr.io.transport import ConnectOptions, WebSocketTransport


class Listener:
    def __init__(self) -> None:
        self.opened = threading.Event()
        self.closed = threading.Event()
        self.close: tuple[Any, ...] | None = None

    def on_open(self, connection: Any) -> None:
        self.opened.set()

    def on_frame(self, connection: Any, data: bytes | str) -> None:
        pass

    def on_pong(self, connection: Any) -> None:
        pass

    def on_close(self, connection: Any, code: int | None, reason: str, error: BaseException | None) -> None:
        self.close = (code, reason, error)
        self.closed.set()


class SilentServer:
    """Accepts connections and reads the upgrade request, never answers it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.conns.append(conn)
        request = read_request(conn)
        if b"\r\n\r\n" in request:  # whole (the client may hang up first)
            self.requests.append(request)

    def stop(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


def test_close_during_a_stalled_upgrade_ends_the_reader_at_once() -> None:
    server = SilentServer()
    listener = Listener()
    connection = WebSocketTransport().open(
        ConnectOptions(url=f"ws://127.0.0.1:{server.port}/v1/api/ws", timeout=30), listener
    )
    try:
        connection.start()  # type: ignore[attr-defined]
        assert wait_until(lambda: len(server.requests) == 1, 5)  # the upgrade is waiting for its answer
        started = time.monotonic()
        connection.close()
        assert listener.closed.wait(5) and connection.join(5)
        assert time.monotonic() - started < 3  # not the 30 s handshake timeout
        assert not listener.opened.is_set()
        assert listener.close is not None and listener.close[2] is None  # a local close, no error
        connection.close()  # again: nothing
    finally:
        server.stop()


def test_close_right_after_start_never_opens() -> None:
    server = SilentServer()
    try:
        for _ in range(20):  # close at every point of the connect: each ends promptly, none opens
            listener = Listener()
            connection = WebSocketTransport().open(
                ConnectOptions(url=f"ws://127.0.0.1:{server.port}/v1/api/ws", timeout=30), listener
            )
            connection.start()  # type: ignore[attr-defined]
            connection.close()
            assert connection.join(5)
            assert not listener.opened.is_set()
    finally:
        server.stop()
