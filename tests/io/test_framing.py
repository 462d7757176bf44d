"""The reader's frame parser (``_WebSocketConnection._read_loop`` and its RFC 6455 checks), driven
directly over an in-memory socket read in chunks of every size: what reaches the listener, what the
client answers (pongs, the echoed close, close 1002 on a violation), and what ends the loop.

These were the "prototype" pinning tests of tests/benchmarks/test_prototypes.py; the over-a-real-socket
checks of the same rules are in tests/transport/test_framing.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import websocket

from rxibkr.io import transport
from rxibkr.io.transport import ProtocolViolation

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
CHUNKS = [1, 2, 3, 5, 64, 4096, 65536, 1 << 20]


def frame(payload: bytes, opcode: int, *, fin: bool = True, mask: bytes | None = None, rsv: int = 0) -> bytes:
    """One server frame, every length encoding; ``mask`` (4 bytes) makes it a masked frame."""
    n = len(payload)
    b1 = (0x80 if fin else 0) | rsv << 4 | opcode
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((b1, m | n))
    elif n < 65536:
        head = bytes((b1, m | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b1, m | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close(code: int | None, reason: bytes = b"") -> bytes:
    return frame((code.to_bytes(2, "big") if code is not None else b"") + reason, CLOSE)


class Socket:
    """Serves ``data`` at most ``chunk`` bytes per ``recv``; records the sizes asked for."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data = data
        self.pos = 0
        self.chunk = chunk
        self.asked: list[int] = []

    def recv(self, bufsize: int) -> bytes:
        self.asked.append(bufsize)
        n = min(bufsize, self.chunk)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


class WebSocket:
    def __init__(self, data: bytes, chunk: int = 1 << 20, *, broken: bool = False) -> None:
        self.sock: Socket | None = Socket(data, chunk)
        self.pongs: list[bytes] = []
        self.closes: list[tuple[int, bytes]] = []
        self.broken = broken

    def pong(self, payload: bytes) -> None:
        self.pongs.append(payload)

    def send_close(self, status: int = 1000, reason: bytes = b"") -> None:
        if self.broken:
            raise OSError("the socket is gone")
        self.closes.append((status, reason))


class Listener:
    def __init__(self) -> None:
        self.frames: list[bytes | str] = []
        self.pongs = 0

    def on_frame(self, _connection: Any, data: bytes | str) -> None:
        self.frames.append(data)

    def on_pong(self, _connection: Any) -> None:
        self.pongs += 1


class Connection:
    """The reader's own methods on a connection without a thread or a socket."""

    _read_loop = transport._WebSocketConnection._read_loop

    def __init__(self) -> None:
        self.listener = Listener()


def read(data: bytes, chunk: int = 1 << 20, **kw: Any) -> tuple[Connection, WebSocket, Any]:
    """Run the loop to its end: (connection, ws, the loop's result or the exception it raised)."""
    connection = Connection()
    ws = WebSocket(data, chunk, **kw)
    try:
        outcome: Any = connection._read_loop(ws)  # type: ignore[arg-type]
    except Exception as exc:
        outcome = exc
    return connection, ws, outcome


def smd(i: int) -> bytes:
    return b'smd+265598+{"31":"%d.25","84":"1.5","server_id":"q0","_updated":%d}' % (i, i)


STREAM: list[tuple[str, bytes]] = [
    ("binary", smd(0)),
    ("text", '{"topic":"system","hb":1,"x":"é"}'.encode()),
    ("binary", b""),
    ("binary", b"x" * 125),
    ("binary", b"y" * 126),
    ("binary", b"z" * 65535),
    ("binary", b"w" * 65536),
    ("binary", b"v" * 70001),
    ("ping", b"are you there"),
    ("pong", b""),
    ("fragmented-text", b'{"topic":"smd+1","31":"1.5"}'),
    ("fragmented-binary", smd(1) * 3),
    ("binary", smd(2)),
]


def wire() -> tuple[bytes, list[bytes | str], list[bytes]]:
    """The bytes a server sends, the frames the listener must get, the pongs the client must send."""
    out = bytearray()
    frames: list[bytes | str] = []
    pongs: list[bytes] = []
    for kind, payload in STREAM:
        if kind == "binary":
            out += frame(payload, BINARY)
            frames.append(payload)
        elif kind == "text":
            out += frame(payload, TEXT)
            frames.append(payload.decode())
        elif kind == "ping":
            out += frame(payload, PING)
            pongs.append(payload)
        elif kind == "pong":
            out += frame(payload, PONG)
        elif kind == "fragmented-text":
            a, b, c = payload[:5], payload[5:12], payload[12:]
            out += frame(a, TEXT, fin=False)
            out += frame(b"in between", PING)  # control frames may come between fragments
            pongs.append(b"in between")
            out += frame(b, CONT, fin=False)
            out += frame(c, CONT)
            frames.append(payload.decode())
        elif kind == "fragmented-binary":
            third = len(payload) // 3
            out += frame(payload[:third], BINARY, fin=False)
            out += frame(payload[third : 2 * third], CONT, fin=False)
            out += frame(b"", PONG)
            out += frame(payload[2 * third :], CONT)
            frames.append(payload)  # bytes, joined: a binary message stays binary
    out += close(1000, b"bye")
    return bytes(out), frames, pongs


@pytest.mark.parametrize("chunk", CHUNKS)
def test_every_frame_kind_is_delivered_whole_at_any_read_boundary(chunk: int) -> None:
    data, frames, pongs = wire()
    connection, ws, outcome = read(data, chunk)
    assert outcome == (1000, "bye")
    assert connection.listener.frames == frames
    assert [type(f) for f in connection.listener.frames] == [type(f) for f in frames]
    assert ws.pongs == pongs
    assert connection.listener.pongs == 2
    assert ws.closes == [(1000, b"")]  # the server's code echoed, once


def test_a_message_in_one_fragment_then_a_continuation_joins_in_order() -> None:
    data = frame(b"ab", BINARY, fin=False) + frame(b"cd", CONT) + frame(b"ef", BINARY) + close(1000)
    connection, _, outcome = read(data, 3)
    assert outcome == (1000, "")
    assert connection.listener.frames == [b"abcd", b"ef"]


def test_a_text_message_with_invalid_utf8_is_delivered_with_replacements() -> None:
    connection, _, _ = read(frame(b"a\xffb", TEXT) + close(1000))
    assert connection.listener.frames == ["a\ufffdb"]


def test_the_loop_raises_at_end_of_stream_and_delivers_no_partial_frame() -> None:
    data = frame(smd(0), BINARY)
    connection, ws, outcome = read(data[:-3], 7)
    assert isinstance(outcome, websocket.WebSocketConnectionClosedException)
    assert connection.listener.frames == []
    assert ws.closes == []


def test_a_socket_already_closed_raises_at_once() -> None:
    connection = Connection()
    ws = WebSocket(b"")
    ws.sock = None
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        connection._read_loop(ws)  # type: ignore[arg-type]


def test_a_large_frame_is_read_in_few_large_reads() -> None:
    payload = b"p" * 300_000
    connection, ws, outcome = read(frame(payload, BINARY) + close(1000), 1 << 20)
    assert outcome == (1000, "")
    assert connection.listener.frames == [payload]
    assert ws.sock is not None
    # one ordinary read, then everything the frame still misses at once (not 64 KiB at a time)
    assert ws.sock.asked[:2] == [65536, 10 + len(payload) - 65536]  # a 10-byte header


def test_a_masked_frame_is_read_whole_mask_key_included_before_it_is_refused() -> None:
    masked = frame(b"{}", BINARY, mask=b"\x01\x02\x03\x04")
    # cut inside the payload: the reader must wait for the frame's last byte (2 header + 4 key +
    # 2 payload), so the end of stream comes first and it is a lost connection, not a violation
    connection, ws, outcome = read(frame(b"ok", BINARY) + masked[:-1], 1)
    assert isinstance(outcome, websocket.WebSocketConnectionClosedException), outcome
    assert connection.listener.frames == [b"ok"]
    assert ws.closes == []
    connection, ws, outcome = read(frame(b"ok", BINARY) + masked + frame(b"after", BINARY), 1)
    assert isinstance(outcome, ProtocolViolation) and "masked frame" in outcome.reason
    assert connection.listener.frames == [b"ok"]
    assert ws.closes == [(1002, b"a masked frame from the server")]


def test_a_masked_text_frame_is_refused_too() -> None:
    _, ws, outcome = read(frame(b"{}", TEXT, mask=b"abcd"))
    assert isinstance(outcome, ProtocolViolation) and "masked frame" in outcome.reason
    assert ws.closes[0][0] == 1002


VIOLATIONS: dict[str, tuple[bytes, str]] = {
    "data frame inside a fragmented message": (
        frame(b'{"a":', TEXT, fin=False) + frame(b"{}", BINARY),
        "a new data frame (opcode 0x2) inside a fragmented message",
    ),
    "text frame inside a fragmented message": (
        frame(b"ab", BINARY, fin=False) + frame(b"{}", TEXT),
        "a new data frame (opcode 0x1) inside a fragmented message",
    ),
    "continuation without a start": (
        frame(b"1}", CONT),
        "a continuation frame without a message to continue",
    ),
    "reserved data opcode 3": (frame(b"x", 0x3), "reserved data opcode 0x3"),
    "reserved data opcode 7": (frame(b"x", 0x7), "reserved data opcode 0x7"),
    "reserved control opcode B": (frame(b"x", 0xB), "reserved control opcode 0xB"),
    "reserved control opcode F": (frame(b"x", 0xF), "reserved control opcode 0xF"),
    "RSV1": (frame(b"{}", BINARY, rsv=4), "RSV bits 100 set"),
    "RSV2": (frame(b"{}", BINARY, rsv=2), "RSV bits 010 set"),
    "RSV3 on text": (frame(b"{}", TEXT, rsv=1), "RSV bits 001 set"),
    "fragmented ping": (frame(b"p", PING, fin=False), "a fragmented control frame (opcode 0x9)"),
    "fragmented close": (frame(b"\x03\xe8", CLOSE, fin=False), "a fragmented control frame (opcode 0x8)"),
    "oversize ping": (frame(b"p" * 126, PING), "a control frame of 126 bytes"),
    "oversize pong": (frame(b"p" * 200, PONG), "a control frame of 200 bytes"),
    "invalid close code 1005": (close(1005), "invalid close code 1005"),
    "invalid close code 1004": (close(1004), "invalid close code 1004"),
    "invalid close code 1006": (close(1006), "invalid close code 1006"),
    "invalid close code 999": (close(999), "invalid close code 999"),
    "invalid close code 1015": (close(1015), "invalid close code 1015"),
    "invalid close code 2999": (close(2999), "invalid close code 2999"),
    "invalid close code 5000": (close(5000), "invalid close code 5000"),
    "one-byte close payload": (frame(b"\x03", CLOSE), "a close frame with a 1-byte payload"),
    "close reason not UTF-8": (close(1000, b"\xff\xfe"), "a close reason that is not UTF-8"),
    "64-bit length with the top bit": (
        bytes((0x82, 127)) + (1 << 63 | 5).to_bytes(8, "big") + b"hello",
        "a 64-bit frame length with the most significant bit set",
    ),
}


@pytest.mark.parametrize("name", list(VIOLATIONS))
@pytest.mark.parametrize("chunk", [1, 1 << 20])
def test_a_violation_sends_close_1002_with_the_reason_and_ends_the_loop(name: str, chunk: int) -> None:
    script, reason = VIOLATIONS[name]
    ok = frame(b'{"topic":"system"}', BINARY)
    connection, ws, outcome = read(ok + script + ok, chunk)
    assert isinstance(outcome, ProtocolViolation), outcome
    assert outcome.reason.startswith(f"protocol violation: {reason}"), outcome.reason
    assert connection.listener.frames == [b'{"topic":"system"}']  # nothing after the violation
    assert len(ws.closes) == 1
    code, sent = ws.closes[0]
    assert code == 1002 and sent.decode().startswith(reason) and outcome.reason.endswith(sent.decode())


def test_a_violation_still_ends_the_loop_when_the_close_cannot_be_sent() -> None:
    _, ws, outcome = read(frame(b"x", 0x3), broken=True)
    assert isinstance(outcome, ProtocolViolation)
    assert ws.closes == []


def test_a_long_reason_is_cut_to_fit_a_control_frame() -> None:
    ws = WebSocket(b"")
    transport._send_close(ws, 1002, "é" * 100)  # type: ignore[arg-type]
    assert ws.closes == [(1002, ("é" * 100).encode()[:123])]


VALID_CLOSES = [1000, 1001, 1002, 1003, 1007, 1010, 1014, 3000, 4000, 4999]


@pytest.mark.parametrize("code", VALID_CLOSES)
def test_a_valid_close_code_is_echoed_and_returned_with_its_reason(code: int) -> None:
    connection, ws, outcome = read(frame(b"a", BINARY) + close(code, "fin é".encode()) + frame(b"b", BINARY))
    assert outcome == (code, "fin é")
    assert ws.closes == [(code, b"")]
    assert connection.listener.frames == [b"a"]  # nothing read past the close


def test_a_close_without_a_code_is_answered_with_1000() -> None:
    _, ws, outcome = read(close(None))
    assert outcome == (None, "")
    assert ws.closes == [(1000, b"")]


@pytest.mark.parametrize("size", [0, 1, 125])
def test_control_frames_up_to_125_bytes_are_accepted(size: int) -> None:
    payload = b"q" * size
    connection, ws, outcome = read(frame(payload, PING) + frame(payload, PONG) + close(1000))
    assert outcome == (1000, "")
    assert ws.pongs == [payload]
    assert connection.listener.pongs == 1


def test_a_ping_inside_a_fragmented_message_does_not_end_it() -> None:
    data = (
        frame(b"12", TEXT, fin=False)
        + frame(b"!", PING)
        + frame(b"34", CONT, fin=False)
        + frame(b"", PONG)
        + frame(b"56", CONT)
        + frame(b"78", TEXT)
        + close(1001)
    )
    for chunk in (1, 4, 1 << 20):
        connection, ws, outcome = read(data, chunk)
        assert outcome == (1001, "")
        assert connection.listener.frames == ["123456", "78"]
        assert ws.pongs == [b"!"]
        assert connection.listener.pongs == 1


@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_stream_ending_right_after_an_empty_close_frame_closes_cleanly(chunk: int) -> None:
    # whatever the read boundaries (here the close frame's first byte may come with the frame
    # before it), the reader asks for no more than the frame needs: the stream may end after it
    data = frame(b"x", BINARY) + close(None)
    connection, ws, outcome = read(data, chunk)
    assert outcome == (None, "")
    assert connection.listener.frames == [b"x"]
    assert ws.closes == [(1000, b"")]


def test_reads_are_capped_at_one_mebibyte_even_for_a_larger_frame() -> None:
    payload = b"m" * (3 << 20)
    connection, ws, outcome = read(frame(payload, BINARY) + close(1000), 1 << 22)
    assert outcome == (1000, "")
    assert connection.listener.frames == [payload]
    assert ws.sock is not None
    assert max(ws.sock.asked) == 1 << 20  # memory per read stays bounded
