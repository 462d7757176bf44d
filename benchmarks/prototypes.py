"""Prototypes of changes to rxibkr's hot path, applied as monkeypatches so they can be measured
against the unpatched client in the same run (``python -m benchmarks.run --prototype NAME``).

Nothing here is used by the library; each prototype names the change it stands for in rxibkr.

* ``buffered``: the reader gives websocket-client's frame parser a buffered ``recv`` (one
  ``sock.recv(65536)`` serves hundreds of frames) instead of websocket-client's ``_recv``, which
  makes one system call per header, per extended length and per payload: three per ``smd`` frame,
  each releasing and re-taking the GIL. Proposed for ``rxibkr/transport.py``
  (``_WebSocketConnection._handshake``, after ``ws.settimeout(None)``).
* ``framing``: the reader parses server frames itself over the same buffer (unmasked final
  text/binary frames go straight to ``on_frame``; ping, pong, close and continuation frames are
  handled as websocket-client handles them). Proposed for ``_WebSocketConnection._read_loop``.
* ``dispatch``: ``IbkrWsClient.on_frame`` with a market data fast path.
* ``framing-dispatch``: both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import websocket

from rxibkr import client as client_module
from rxibkr import transport
from rxibkr.protocol import IbkrWsKey, MessageKind, decode

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
def framing_read_loop(self: Any, ws: websocket.WebSocket) -> tuple[int | None, str]:
    """Read server frames ourselves, from large reads (one ``recv`` serves hundreds of frames).

    websocket-client's frame parser makes three system calls per small frame (header, extended
    length, payload) and builds several objects per frame: about 9 us of the 10 us a frame costs
    its ``recv()`` loop. Here: unmasked final data frames go straight to ``on_frame``; pings are
    answered with ``ws.pong``; fragments are joined (control frames may come in between); a
    close frame is answered and ends the loop. End of stream raises, as websocket-client does.
    """
    listener = self.listener
    on_frame = listener.on_frame
    sock = ws.sock
    if sock is None:
        raise websocket.WebSocketConnectionClosedException("socket is already closed.")
    sock_recv = sock.recv
    buf = b""
    pos = 0
    fragments: list[bytes] = []
    fragment_op = 0
    while True:
        available = len(buf) - pos
        if available >= 2:
            b1 = buf[pos]
            b2 = buf[pos + 1]
            length = b2 & 0x7F
            head = 2 if length < 126 else (4 if length == 126 else 10)
            if b2 & 0x80:
                head += 4  # servers must not mask; tolerated, as websocket-client does
            if available >= head:
                if length == 126:
                    length = buf[pos + 2] << 8 | buf[pos + 3]
                elif length == 127:
                    length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                end = pos + head + length
                if end <= len(buf):
                    payload = buf[pos + head : end]
                    if b2 & 0x80:
                        payload = websocket.ABNF.mask(buf[pos + head - 4 : pos + head], payload)
                    pos = end
                    opcode = b1 & 0x0F
                    if opcode == 0x2 and b1 & 0x80 and not fragments:
                        on_frame(self, payload)
                    elif opcode <= 0x2:  # text, or a fragment of a message
                        if opcode:
                            fragment_op = opcode
                        fragments.append(payload)
                        if b1 & 0x80:
                            joined = b"".join(fragments)
                            fragments.clear()
                            if fragment_op == 0x1:
                                on_frame(self, joined.decode("utf-8", "replace"))
                            else:
                                on_frame(self, joined)
                    elif opcode == 0x9:
                        ws.pong(payload)
                    elif opcode == 0xA:
                        listener.on_pong(self)
                    elif opcode == 0x8:
                        try:
                            ws.send_close()
                        except (OSError, websocket.WebSocketException):
                            pass
                        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                        return code, payload[2:].decode("utf-8", "replace")
                    continue
                need = end - len(buf)
            else:
                need = head - available
        else:
            need = 2 - available
        # no whole frame in the buffer: read at least what is missing (a large frame in one join)
        parts = [buf[pos:]] if pos < len(buf) else []
        while True:
            chunk = sock_recv(max(READ_SIZE, min(need, 1 << 20)))
            if not chunk:
                raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
            parts.append(chunk)
            need -= len(chunk)
            if need <= 0:
                break
        buf = parts[0] if len(parts) == 1 else b"".join(parts)
        pos = 0


# ---------------------------------------------------------------------------------------------------
# prototype dispatch (IbkrWsClient.on_frame)
# ---------------------------------------------------------------------------------------------------
_MARKET_DATA = IbkrWsKey.MARKET_DATA
_SYSTEM = IbkrWsKey.SYSTEM
_DATA = MessageKind.DATA


def dispatch_on_frame(self: Any, connection: Any, data: bytes | str) -> None:
    """``IbkrWsClient.on_frame`` with a market data fast path (``dispatch``).

    Market data, the bulk of the traffic, goes by identity to a subject kept in an attribute and
    skips the control checks; the queue check is skipped while no queue is registered; ``frames``
    is only called while observed. (Before ``IbkrWsKey`` hashed by identity, each of the three
    dict/set lookups by key also cost a Python ``Enum.__hash__`` call.)
    """
    if connection is not self._conn:
        return
    if self._wire._observers:
        self._wire.on_next(client_module.WireEvent("in", data, connection.id))
    frames = self._frames
    if frames._observers:
        frames.on_next(data)
    if self._log_raw:
        client_module._LOGGER.debug("recv: %s", self._for_log(data))
    message = decode(data)
    key = message.key
    if key is _MARKET_DATA:
        self._market_data_subject.on_next(message)
    else:
        self._subjects[key].on_next(message)
    queued = self._queued_keys
    if queued and key in queued:
        item = client_module._queue_item(message)
        if item is not None:
            self._queue_controller.put_to_queue(key, item)
    if key is not _MARKET_DATA and (
        message.kind is not _DATA
        or key in client_module._CONTROL_KEYS
        or (key is _SYSTEM and "hb" not in message.data)  # type: ignore[operator]
    ):
        self._post(self._on_control_message, message)
    elif self._awaiting and message.channel in self._awaiting:
        self._post(self._confirm_from_frame, message)


@contextmanager
def _dispatch() -> Iterator[None]:
    cls: Any = client_module.IbkrWsClient
    original_init, original_on_frame = cls.__init__, cls.on_frame

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._market_data_subject = self._subjects[_MARKET_DATA]

    cls.__init__, cls.on_frame = init, dispatch_on_frame
    try:
        yield
    finally:
        cls.__init__, cls.on_frame = original_init, original_on_frame


@contextmanager
def _framing_dispatch() -> Iterator[None]:
    with _framing(), _dispatch():
        yield


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
        Prototype("dispatch", "on_frame: market data fast path, no enum hashing", _dispatch),
        Prototype("framing-dispatch", "both framing and dispatch", _framing_dispatch),
    )
}
