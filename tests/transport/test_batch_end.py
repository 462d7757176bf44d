"""The reader's end-of-batch hook: ``on_batch_end`` comes after every whole frame of what was read has
been delivered, before the reader waits for more bytes, and never in the middle of a frame's delivery.
A staged raw-socket server decides when each part of the stream reaches the socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waiting import wait_until

from rxibkr.io.transport import Connection, ConnectOptions, WebSocketTransport

from .support import close_frame, frame, read_request, upgrade_response


class StagedServer:
    """One connection: answers the upgrade, then writes each part handed to :meth:`send` at once."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(10)
        self.port = self._listener.getsockname()[1]
        self._conn: socket.socket | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/api/ws"

    def _accept(self) -> None:
        conn, _ = self._listener.accept()
        conn.settimeout(10)
        conn.sendall(upgrade_response(read_request(conn)))
        self._conn = conn
        self.ready.set()

    def send(self, data: bytes) -> None:
        assert self._conn is not None
        self._conn.sendall(data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._listener.close()


@contextmanager
def staged(listener: Any) -> Iterator[tuple[StagedServer, Connection]]:
    """A staged server and a started connection to it reporting to ``listener``; both closed after."""
    server = StagedServer()
    connection = WebSocketTransport().open(ConnectOptions(url=server.url, timeout=5), listener)
    connection.start()  # type: ignore[attr-defined]
    try:
        yield server, connection
    finally:
        connection.close()
        server.close()


class BatchRecorder:
    """A listener that logs frames and batch ends in the order the reader calls them."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.opened = threading.Event()
        self.closed = threading.Event()

    def on_open(self, connection: Connection) -> None:
        self.opened.set()

    def on_frame(self, connection: Connection, data: bytes | str) -> None:
        self.events.append(bytes(data) if isinstance(data, bytes) else data)

    def on_batch_end(self, connection: Connection) -> None:
        self.events.append("batch")

    def on_pong(self, connection: Connection) -> None:
        self.events.append("pong")

    def on_close(
        self, connection: Connection, code: int | None, reason: str, error: BaseException | None
    ) -> None:
        self.closed.set()

    def frames(self) -> list[Any]:
        return [e for e in self.events if e != "batch"]

    def ends_with_batch_after(self, count: int) -> bool:
        """``count`` frames delivered, and the last thing the reader did was a batch end."""
        events = list(self.events)
        return len([e for e in events if e != "batch"]) == count and events[-1:] == ["batch"]


def test_batch_end_follows_the_frames_of_a_read_before_the_reader_waits_again() -> None:
    recorder = BatchRecorder()
    with staged(recorder) as (server, connection):
        assert server.ready.wait(5) and recorder.opened.wait(5)
        # nothing read yet: the reader has ended its (empty) batch and waits
        assert wait_until(lambda: recorder.events == ["batch"], 5), recorder.events
        # three frames in one write: each delivered, then a batch end before the reader blocks again
        server.send(frame(b"a") + frame(b"b") + frame(b"c"))
        assert wait_until(lambda: recorder.ends_with_batch_after(3), 5), recorder.events
        assert recorder.frames() == [b"a", b"b", b"c"]
        # a frame alone (the low-rate case): it gets its own batch end at once
        server.send(frame(b"d"))
        assert wait_until(lambda: recorder.ends_with_batch_after(4), 5), recorder.events
        assert recorder.events[-2:] == [b"d", "batch"]
        # a frame split over two writes: the reader ends the batch with the half frame pending
        # (nothing whole to deliver), then delivers the frame once its second half arrives
        whole = frame(b"e" * 300)
        batches = recorder.events.count("batch")
        server.send(whole[:100])
        assert wait_until(lambda: recorder.events.count("batch") > batches, 5), recorder.events
        assert recorder.frames() == [b"a", b"b", b"c", b"d"]
        server.send(whole[100:])
        assert wait_until(lambda: recorder.ends_with_batch_after(5), 5), recorder.events
        assert recorder.frames()[-1] == b"e" * 300
        # a frame and a close frame in one read: the frame is delivered, then the connection closes
        server.send(frame(b"f") + close_frame(1000))
        assert recorder.closed.wait(5) and connection.join(5)
        assert recorder.frames()[-1] == b"f"


class ProgressRecorder(BatchRecorder):
    """Also logs ``on_progress``: a read that brought part of a frame but not its end."""

    def on_progress(self, connection: Connection) -> None:
        self.events.append("progress")

    def frames(self) -> list[Any]:
        return [e for e in self.events if e not in ("batch", "progress")]


def test_progress_is_told_for_each_read_of_a_frame_that_does_not_end_it() -> None:
    recorder = ProgressRecorder()
    with staged(recorder) as (server, _connection):
        assert server.ready.wait(5) and wait_until(lambda: recorder.events == ["batch"], 5)
        server.send(frame(b"a") + frame(b"b"))  # whole frames: no progress
        assert wait_until(lambda: recorder.events[-1:] == ["batch"] and len(recorder.frames()) == 2, 5)
        whole = frame(b"x" * 300_000)
        server.send(whole[:1000])  # the header and a first part: the batch ends, the frame waits
        assert wait_until(lambda: recorder.events.count("batch") == 3, 5), recorder.events[-3:]
        assert "progress" not in recorder.events
        waiting = len(recorder.events)
        for n in (1, 2, 3):  # each further part that does not end the frame: one progress
            server.send(whole[n * 1000 : (n + 1) * 1000])
            assert wait_until(lambda n=n: recorder.events.count("progress") == n, 5), recorder.events[-3:]
            assert len(recorder.frames()) == 2
        server.send(whole[4000:])  # the rest: the frame, whole, then the batch end
        assert wait_until(lambda: len(recorder.frames()) == 3 and recorder.events[-1] == "batch", 5)
        # inside the frame's reads: progress only (the last part may take several reads), no batch end
        inside = recorder.events[waiting:]
        assert inside[-2:] == [b"x" * 300_000, "batch"]
        assert len(inside) >= 5 and set(inside[:-2]) == {"progress"}


def test_a_listener_without_on_batch_end_still_gets_every_frame() -> None:
    class Plain:
        def __init__(self) -> None:
            self.frames: list[bytes | str] = []
            self.closed = threading.Event()

        def on_open(self, connection: Connection) -> None:
            pass

        def on_frame(self, connection: Connection, data: bytes | str) -> None:
            self.frames.append(data)

        def on_pong(self, connection: Connection) -> None:
            pass

        def on_close(self, connection: Connection, *args: Any) -> None:
            self.closed.set()

    listener = Plain()
    with staged(listener) as (server, _connection):
        assert server.ready.wait(5)
        server.send(frame(b"1") + frame(b"2"))
        server.send(frame(b"3") + close_frame(1000))
        assert listener.closed.wait(5)
        assert listener.frames == [b"1", b"2", b"3"]
