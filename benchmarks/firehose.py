"""A loopback WebSocket firehose: the server side of the benchmarks, in a process of its own.

Plain blocking sockets and a hand-rolled RFC 6455 handshake, stdlib only, so that this file also
runs as a script (``python benchmarks/firehose.py``). Server frames are unmasked, so the market
data frames are encoded once (header + payload) and written in batches of ``BATCH`` frames with one
``sendall``: the server writes far faster than any Python WebSocket client reads (the harness
measures and prints both).

Each connection is configured by the query string of its upgrade request
(``/v1/api/ws?mode=burst&n=200000&hb=5&conid=265598``):

* ``mode=burst``: on each ``smd+...`` text frame from the client (a market data subscription),
  send exactly ``n`` pre-encoded ``smd`` frames as fast as the socket takes them, then stay open;
* ``mode=paced``: on ``smd+...``, send ``n`` frames at ``rate`` frames/s, each carrying
  ``"_sent": time.time_ns()`` taken just before it is written (latency measurements);
* ``mode=idle``: never send market data (subscription churn);
* ``conids`` (burst only, default 1): the burst cycles over that many conids, ``conid`` to
  ``conid + conids - 1`` (frame ``i`` is of conid ``conid + i % conids``), and starts once an
  ``smd`` has come for each of them (the client has subscribed them all);
* ``hb``: seconds between ``{"topic":"system","hb":...}`` heartbeats (0: none). The client's
  heartbeat watchdog resets a connection that stays silent for ``max_ping_interval`` (20 s).

Every connection first gets the greeting the client waits for (a ``system`` success frame and an
``sts`` authenticated frame, as binary frames). Pings are answered with pongs; a close frame is
answered and ends the connection. With ``--certfile``/``--keyfile`` it serves ``wss://`` instead.
The process binds 127.0.0.1 only and ends by itself: after ``--lifetime`` seconds, or as soon as its
parent process is gone.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
PATH = "/v1/api/ws"
CONID = 265598
BATCH = 1000
"""Frames per ``sendall`` in a burst (and the period after which the frame contents repeat)."""

GREETING: tuple[bytes, ...] = (
    b'{"topic":"system","success":"bench","isFT":false,"isPaper":true}',
    b'{"topic":"sts","args":{"authenticated":true,"connected":true,"competing":false}}',
)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA
_UPDATED_0 = 1777552110061


# ---------------------------------------------------------------------------------------------------
# frames (shared with the harness, which needs the exact sizes for its raw-socket probe)
# ---------------------------------------------------------------------------------------------------
def encode_frame(payload: bytes, opcode: int = _OP_BINARY) -> bytes:
    """One unmasked, final server frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return header + payload


def encode_client_frame(payload: bytes, opcode: int = _OP_TEXT, mask: bytes = b"\x1f\x2e\x3d\x4c") -> bytes:
    """One masked client frame (the harness's raw-socket probe sends its trigger with this)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    else:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    return header + mask + _unmask(payload, mask)


def smd_payload(i: int, conid: int = CONID, sent_ns: int | None = None) -> bytes:
    """The ``i``-th market data frame of a stream: realistic fields, prices that wander."""
    h = (i * 2654435761) & 0xFFFFFFFF
    last = 27000 + (h % 401) - 200  # cents
    bid = last - 1 - (h >> 9) % 3
    ask = last + 1 + (h >> 11) % 2
    ask_size = 100 * (1 + (h >> 13) % 9)
    bid_size = 100 * (1 + (h >> 17) % 7)
    change = ((h >> 5) % 300 - 150) / 100
    sent = b'"_sent":%d,' % sent_ns if sent_ns is not None else b""
    return (
        b'{"server_id":"q1","conidEx":"%d","conid":%d,"_updated":%d,%s"6119":"q1",'
        b'"31":"%d.%02d","84":"%d.%02d","86":"%d.%02d","85":"%d","88":"%d","83":%s,"topic":"smd+%d"}'
        % (
            conid,
            conid,
            _UPDATED_0 + 3 * i,
            sent,
            last // 100,
            last % 100,
            bid // 100,
            bid % 100,
            ask // 100,
            ask % 100,
            ask_size,
            bid_size,
            repr(change).encode(),
            conid,
        )
    )


def smd_frames(count: int = BATCH, conid: int = CONID) -> list[bytes]:
    """The first ``count`` encoded market data frames (a burst cycles through the first ``BATCH``)."""
    return [encode_frame(smd_payload(i, conid)) for i in range(count)]


def cycle_length(conids: int) -> int:
    """Frames in the repeating cycle of a burst over ``conids`` conids: at least ``BATCH``, a
    multiple of ``conids``, and at least two frames per conid, so that no frame of a conid equals
    the conid's previous one (a typed stream would drop it as the gateway's duplicate)."""
    if conids <= 1:
        return BATCH
    rounds = max(2, -(-BATCH // conids))
    return rounds * conids


def multi_conid_frames(conids: int, conid: int = CONID) -> list[bytes]:
    """One cycle of a burst over ``conids`` conids: frame ``i`` is of conid ``conid + i % conids``."""
    if conids <= 1:
        return smd_frames(BATCH, conid)
    return [encode_frame(smd_payload(i, conid + i % conids)) for i in range(cycle_length(conids))]


def greeting_size() -> int:
    return sum(len(encode_frame(p)) for p in GREETING)


def burst_size(n: int, conid: int = CONID) -> int:
    """Bytes on the wire of a burst of ``n`` frames (no heartbeats)."""
    sizes = [len(f) for f in smd_frames(BATCH, conid)]
    full, rest = divmod(n, BATCH)
    return full * sum(sizes) + sum(sizes[:rest])


def heartbeat_payload() -> bytes:
    return b'{"topic":"system","hb":%d}' % (time.time_ns() // 1_000_000)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    key = int.from_bytes((mask * (len(payload) // 4 + 1))[: len(payload)], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


# ---------------------------------------------------------------------------------------------------
# one connection
# ---------------------------------------------------------------------------------------------------
class _Connection:
    def __init__(self, sock: socket.socket, tls: ssl.SSLContext | None = None) -> None:
        self.sock = sock
        self.tls = tls
        self.write_lock = threading.Lock()
        self.closed = threading.Event()
        self.streaming = False
        self.params: dict[str, str] = {}
        self.subscribed: set[bytes] = set()  # conids asked for with smd (multi-conid bursts)
        self._buffer = b""

    # -- io -----------------------------------------------------------------------------------------
    def write(self, data: bytes | memoryview) -> bool:
        if self.closed.is_set():
            return False
        try:
            with self.write_lock:
                if self.tls is None:
                    self.sock.sendall(data)
                    return True
                view = memoryview(data)
                while view:
                    try:
                        view = view[self.sock.send(view) :]
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                        if self.closed.is_set():
                            return False
                        select.select([], [self.sock], [], 1.0)
            return True
        except OSError:
            self.closed.set()
            return False

    def _recv(self) -> bytes:
        if self.tls is None:
            return self.sock.recv(65536)
        # TLS: one SSL object must not be used by two threads at once. The socket is non-blocking:
        # wait for data outside the write lock, read under it, never wait while holding it.
        sock = self.sock
        assert isinstance(sock, ssl.SSLSocket)
        while True:
            if not sock.pending():
                readable, _, _ = select.select([sock], [], [], 1.0)
                if not readable:
                    continue
            with self.write_lock:
                try:
                    return sock.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    continue
                except ssl.SSLZeroReturnError:
                    return b""

    def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self._recv()
            if not chunk:
                raise ConnectionError("peer closed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    # -- lifecycle ----------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.tls is not None:
                self.sock = self.tls.wrap_socket(self.sock, server_side=True)
                self.sock.setblocking(False)  # see _recv and write
            if not self._handshake():
                return
            for payload in GREETING:
                self.write(encode_frame(payload))
            hb = float(self.params.get("hb", "0"))
            if hb > 0:
                threading.Thread(target=self._heartbeats, args=(hb,), daemon=True).start()
            self._read_loop()
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            self.closed.set()
            try:
                self.sock.close()
            except OSError:
                pass

    def _handshake(self) -> bool:
        while b"\r\n\r\n" not in self._buffer:
            chunk = self._recv()
            if not chunk or len(self._buffer) > 65536:
                return False
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        target = urlsplit(parts[1] if len(parts) > 1 else "")
        key = headers.get("sec-websocket-key")
        if parts[0] != "GET" or target.path.rstrip("/") != PATH or not key:
            self.sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        self.params = {k: v[-1] for k, v in parse_qs(target.query).items()}
        self.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
        )
        return True

    def _read_loop(self) -> None:
        while not self.closed.is_set():
            b1, b2 = self._read_exact(2)
            opcode = b1 & 0x0F
            length = b2 & 0x7F
            if length == 126:
                length = int.from_bytes(self._read_exact(2), "big")
            elif length == 127:
                length = int.from_bytes(self._read_exact(8), "big")
            mask = self._read_exact(4) if b2 & 0x80 else b""
            payload = self._read_exact(length)
            if mask:
                payload = _unmask(payload, mask)
            if opcode == _OP_PING:
                self.write(encode_frame(payload, _OP_PONG))
            elif opcode == _OP_CLOSE:
                self.write(encode_frame(payload[:2], _OP_CLOSE))
                return
            elif opcode in (_OP_TEXT, _OP_BINARY) and payload.startswith(b"smd+"):
                self._on_subscribe(payload)

    def _on_subscribe(self, payload: bytes) -> None:
        mode = self.params.get("mode", "burst")
        if mode == "idle" or self.streaming:
            return
        n = int(self.params.get("n", "1000"))
        conid = int(self.params.get("conid", str(CONID)))
        conids = int(self.params.get("conids", "1"))
        if mode == "burst" and conids > 1:
            self.subscribed.add(payload[4:].split(b"+", 1)[0])
            if len(self.subscribed) < conids:
                return
        target: Callable[..., None]
        args: tuple[object, ...]
        if mode == "paced":
            target, args = self._paced, (n, float(self.params.get("rate", "1000")), conid)
        else:
            target, args = self._burst, (n, conid, conids)
        self.streaming = True
        threading.Thread(target=target, args=args, daemon=True).start()

    # -- writers ------------------------------------------------------------------------------------
    def _burst(self, n: int, conid: int, conids: int = 1) -> None:
        try:
            frames = multi_conid_frames(conids, conid)
            blob = memoryview(b"".join(frames))
            ends = [0]
            for f in frames:
                ends.append(ends[-1] + len(f))
            remaining = n
            position = 0  # in the cycle of len(frames) frames
            while remaining > 0:
                count = min(BATCH, remaining, len(frames) - position)
                if not self.write(blob[ends[position] : ends[position + count]]):
                    return
                remaining -= count
                position = (position + count) % len(frames)
        finally:
            self.streaming = False

    def _paced(self, n: int, rate: float, conid: int) -> None:
        try:
            start = time.perf_counter()
            sent = 0
            while sent < n and not self.closed.is_set():
                due = start + sent / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                # everything due by now goes out, each frame stamped just before the write
                upto = min(n, int((time.perf_counter() - start) * rate) + 1)
                upto = max(upto, sent + 1)
                batch = b"".join(
                    encode_frame(smd_payload(i, conid, time.time_ns())) for i in range(sent, upto)
                )
                if not self.write(batch):
                    return
                sent = upto
        finally:
            self.streaming = False

    def _heartbeats(self, period: float) -> None:
        while not self.closed.wait(period):
            if not self.write(encode_frame(heartbeat_payload())):
                return


# ---------------------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------------------
def serve(
    port: int = 0,
    lifetime: float = 900.0,
    announce: Callable[[int], None] | None = None,
    tls: tuple[str, str] | None = None,
) -> None:
    """Serve until ``lifetime`` seconds have passed or the parent process is gone.

    ``tls``: (certificate chain file, key file) to serve ``wss://`` instead of ``ws://``.
    """
    context: ssl.SSLContext | None = None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
    deadline = time.monotonic() + lifetime
    parent = os.getppid()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(64)
    listener.settimeout(0.25)
    if announce is not None:
        announce(listener.getsockname()[1])
    try:
        while time.monotonic() < deadline and os.getppid() == parent:
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_Connection(sock, context).run, daemon=True).start()
    finally:
        listener.close()


class FirehoseProcess:
    """The firehose in a child process (its own interpreter, so it never shares the client's GIL).

    ``with FirehoseProcess() as firehose: firehose.port``; the child is terminated on exit (and
    killed if it does not stop), and ends by itself after ``lifetime`` seconds anyway.
    """

    def __init__(self, lifetime: float = 900.0, tls: tuple[str, str] | None = None) -> None:
        self.lifetime = lifetime
        self.tls = tls
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> FirehoseProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-u", os.path.abspath(__file__), "--lifetime", str(self.lifetime)]
            + (["--certfile", self.tls[0], "--keyfile", self.tls[1]] if self.tls else []),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.close()
            raise RuntimeError(f"the firehose did not start (said {line!r})")
        self.port = int(line[1])
        return self

    def url(self, **params: object) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{HOST}:{self.port}{PATH}" + (f"?{query}" if query else "")

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.terminate()
            proc.wait(3.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(3.0)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def __exit__(self, *_: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--lifetime", type=float, default=900.0, help="seconds before the server exits")
    parser.add_argument("--certfile", help="certificate chain (PEM): serve wss://")
    parser.add_argument("--keyfile", help="private key (PEM) of --certfile")
    args = parser.parse_args(argv)

    def announce(port: int) -> None:
        print(f"PORT {port}", flush=True)

    try:
        tls = (args.certfile, args.keyfile or args.certfile) if args.certfile else None
        serve(args.port, args.lifetime, announce, tls)
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    os._exit(0)  # connection threads may be blocked in sendall: do not wait for them


if __name__ == "__main__":
    main()
