"""The hot-path prototypes parse server frames exactly as websocket-client does.

The buffered ``recv`` prototype is pinned on every read boundary (frames split at any byte),
fragmented messages with control frames in between, every length encoding, ping/pong/close, and end
of stream. The reader's own frame parser (once the ``framing`` prototype) has its tests in
tests/io/test_framing.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import websocket
from websocket._abnf import frame_buffer

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the benchmarks package lives at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.firehose import encode_frame, smd_payload  # noqa: E402
from benchmarks.prototypes import BufferedRecv  # noqa: E402

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def _frame(payload: bytes, opcode: int, fin: bool = True) -> bytes:
    data = encode_frame(payload, opcode)
    return data if fin else bytes((data[0] & 0x7F,)) + data[1:]


STREAM: list[tuple[str, bytes]] = [
    ("binary", smd_payload(0)),
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
    ("binary", smd_payload(1)),
]


def _wire() -> tuple[bytes, list[bytes | str], list[bytes]]:
    """The bytes a server sends, the frames the listener must get, the pongs the client must send."""
    out = bytearray()
    frames: list[bytes | str] = []
    pongs: list[bytes] = []
    for kind, payload in STREAM:
        if kind == "binary":
            out += _frame(payload, BINARY)
            frames.append(payload)
        elif kind == "text":
            out += _frame(payload, TEXT)
            frames.append(payload.decode())
        elif kind == "ping":
            out += _frame(payload, PING)
            pongs.append(payload)
        elif kind == "pong":
            out += _frame(payload, PONG)
        elif kind == "fragmented-text":
            a, b, c = payload[:5], payload[5:12], payload[12:]
            out += _frame(a, TEXT, fin=False)
            out += _frame(b"in between", PING)  # control frames may come between fragments
            pongs.append(b"in between")
            out += _frame(b, CONT, fin=False)
            out += _frame(c, CONT)
            frames.append(payload.decode())
    out += _frame((1000).to_bytes(2, "big") + b"bye", CLOSE)
    return bytes(out), frames, pongs


class _Socket:
    def __init__(self, data: bytes, chunk: int) -> None:
        self.data = data
        self.pos = 0
        self.chunk = chunk

    def recv(self, bufsize: int) -> bytes:
        n = min(bufsize, self.chunk)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


class _WebSocket:
    def __init__(self, sock: _Socket) -> None:
        self.sock = sock
        self.pongs: list[bytes] = []
        self.closes = 0

    def pong(self, payload: bytes) -> None:
        self.pongs.append(payload)

    def send_close(self, status: int = 1000, reason: bytes = b"") -> None:
        self.closes += 1
        self.close_status = status


@pytest.mark.parametrize("chunk", [1, 3, 64, 65536])
def test_buffered_recv_feeds_websocket_clients_frame_parser(chunk: int) -> None:
    data, frames, _ = _wire()
    parser = frame_buffer(BufferedRecv(_Socket(data, chunk)), True)
    got: list[tuple[int, bytes]] = []
    while True:
        frame = parser.recv_frame()
        got.append((frame.opcode, frame.data))
        if frame.opcode == CLOSE:
            break
    expected = frame_buffer(_Socket(data, 1 << 20).recv, True)
    want: list[tuple[int, bytes]] = []
    while True:
        frame = expected.recv_frame()
        want.append((frame.opcode, frame.data))
        if frame.opcode == CLOSE:
            break
    assert got == want
    assert len([op for op, _ in got if op in (TEXT, BINARY)]) == len(frames)  # first fragments count


def test_buffered_recv_raises_at_end_of_stream() -> None:
    recv = BufferedRecv(_Socket(b"ab", 1))
    assert recv(5) == b"a"
    assert recv(5) == b"b"
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        recv(5)


@pytest.mark.parametrize("prototype", ["buffered", "framing"])
def test_prototype_client_over_a_real_socket_keeps_its_pongs_and_frames(prototype: str) -> None:
    import threading
    import time

    from benchmarks import firehose as fh
    from benchmarks import harness as h
    from benchmarks.prototypes import PROTOTYPES
    from rxibkr.client.events import ConnectionState
    from rxibkr.protocol import IbkrWsKey

    total = 5000
    seen: list[int] = []
    done = threading.Event()

    def on_next(message: Any) -> None:
        seen.append(message.data["conid"])
        if len(seen) == total:
            done.set()

    with fh.FirehoseProcess(lifetime=60) as firehose, PROTOTYPES[prototype].apply():
        url = firehose.url(mode="burst", n=total, hb=0.1)
        with h.connected_client(url, ping_interval=0.05, max_ping_interval=0.5) as client:
            errors: list[Any] = []
            client.errors.subscribe(errors.append)
            client.observe(IbkrWsKey.MARKET_DATA).subscribe(on_next)
            client.subscribe(f"md+{fh.CONID}", needs_confirmation=False)
            assert done.wait(20)
            time.sleep(1.0)  # twice the pong watchdog: pongs must keep arriving
            assert client.state.value is ConnectionState.AUTHENTICATED
            assert errors == []
    assert seen == [fh.CONID] * total
    # nothing of the client is left running for the tests after this one
    assert [t.name for t in threading.enumerate() if t.name.startswith("rxibkr-")] == []
