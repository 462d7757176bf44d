"""Prototypes of changes to rxibkr's hot path, applied as monkeypatches so they can be measured
against the unpatched client in the same run (``python -m benchmarks.run --prototype NAME``).

Nothing here is used by the library; each prototype names the change it stands for in rxibkr.
``framing`` and ``dispatch`` have since been applied to rxibkr: their entries now alias the library's
own code (so ``--prototype framing`` measures the client as it is), and the pinning tests in
tests/benchmarks/test_prototypes.py test the transport's real frame parser.

* ``buffered``: the reader gives websocket-client's frame parser a buffered ``recv`` (one
  ``sock.recv(65536)`` serves hundreds of frames) instead of websocket-client's ``_recv``, which
  makes one system call per header, per extended length and per payload: three per ``smd`` frame,
  each releasing and re-taking the GIL. Proposed for ``rxibkr/transport.py``
  (``_WebSocketConnection._handshake``, after ``ws.settimeout(None)``).
* ``framing``: the reader parses server frames itself over the same buffer (unmasked final
  text/binary frames go straight to ``on_frame``; ping, pong, close and continuation frames are
  handled as websocket-client handles them). Proposed for ``_WebSocketConnection._read_loop``.
* ``framing-dispatch``: both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import websocket

from rxibkr.io import transport

READ_SIZE = 65536


class BufferedRecv:
    """A ``recv(bufsize)`` for websocket-client's ``frame_buffer``: serves slices of large reads.

    Returns at most ``bufsize`` bytes (``frame_buffer.recv_strict`` asks again for the rest), never
    an empty result: end of stream raises like websocket-client's own ``_recv``.
    """

    __slots__ = ("_buf", "_pos", "_recv")

    def __init__(self, sock: Any, size: int = READ_SIZE) -> None:
        raw_recv = sock.recv
        self._recv: Callable[[], bytes] = lambda: raw_recv(size)
        self._buf = b""
        self._pos = 0

    def __call__(self, bufsize: int) -> bytes:
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            buf = self._recv()
            if not buf:
                raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
            self._buf = buf
            pos = 0
        end = pos + bufsize
        self._pos = end
        return buf[pos:end]


def install_buffered_recv(ws: websocket.WebSocket) -> None:
    """The proposed change: websocket-client keeps parsing frames, but reads through a buffer."""
    ws.frame_buffer.recv = BufferedRecv(ws.sock)


# ---------------------------------------------------------------------------------------------------
# prototype read loops
# ---------------------------------------------------------------------------------------------------
# Applied to rxibkr: the prototype is now the transport's own loop (tests/benchmarks pin its framing).
framing_read_loop = transport._WebSocketConnection._read_loop


# ---------------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prototype:
    name: str
    description: str
    apply: Callable[[], Any]  # a context manager factory


@contextmanager
def _buffered() -> Iterator[None]:
    cls: Any = transport._WebSocketConnection
    original = cls._handshake

    def handshake(self: Any) -> Any:
        ws = original(self)
        if ws is not None:
            install_buffered_recv(ws)
        return ws

    cls._handshake = handshake
    try:
        yield
    finally:
        cls._handshake = original


@contextmanager
def _framing() -> Iterator[None]:
    cls: Any = transport._WebSocketConnection
    original = cls._read_loop
    cls._read_loop = framing_read_loop
    try:
        yield
    finally:
        cls._read_loop = original


PROTOTYPES: dict[str, Prototype] = {
    p.name: p
    for p in (
        Prototype("buffered", "reader: websocket-client framing over a buffered recv", _buffered),
        Prototype("framing", "reader: own framing over a buffered recv", _framing),
    )
}
