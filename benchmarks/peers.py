"""The reference and the peers of ``python -m benchmarks.run``: other ways to read the same frames.

* ``limit``: Python's physical limit here: a raw socket, a hand-rolled handshake, an own frame
  parser over 64 KiB reads and ``orjson.loads`` on every payload (the reference row, ratio 1.00);
* ``picows`` (C WebSocket client on asyncio), ``aiohttp`` (its WebSocket client), ``websockets``
  (its sync client), ``websocket-client`` (``recv()`` + ``orjson.loads``): each ``orjson.loads``
  every frame and counts it;
* ``ibind-0.1.14``, ``ibind-0.2.2``: IBind's own client, in a child process under an interpreter
  that has that version (``benchmarks/ibind_peer.py``; a virtualenv of its own under
  ``~/.cache/rxibkr-bench`` made on first use, since the two versions conflict).

Every consumer counts its deliveries; the clock runs from the ``warm``-th to the last, so a lost
message shows as a timeout. A peer whose package cannot be imported or installed is skipped with
the reason in the table.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks import firehose as fh
from benchmarks import harness as h

CONID = fh.CONID
IBIND_VERSIONS = ("0.1.14", "0.2.2")
SUBSCRIBE = f"smd+{CONID}+{{}}"


class Skipped(Exception):
    """The peer cannot run here (not installed, cannot be installed): the reason is in the table."""


def _url(firehose: fh.FirehoseProcess, total: int) -> str:
    return h.burst_url(firehose, total, hb=0)


# ---------------------------------------------------------------------------------------------------
# the limit: raw socket + own framing + orjson.loads
# ---------------------------------------------------------------------------------------------------
def limit(firehose: fh.FirehoseProcess, warm: int, n: int) -> h.Sample:
    """A raw socket, an own RFC 6455 handshake and frame parser, ``orjson.loads`` per payload."""
    total = warm + n
    counter = h.Counter(warm, total)
    count, loads = counter.on_next, orjson.loads
    sock = socket.create_connection((fh.HOST, firehose.port), timeout=30)
    with sock:
        query = _url(firehose, total).split(fh.PATH, 1)[1]
        sock.sendall(
            f"GET {fh.PATH}{query} HTTP/1.1\r\nHost: {fh.HOST}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the firehose closed during the handshake")
            buf += chunk
        buf = buf.split(b"\r\n\r\n", 1)[1]
        sock.sendall(fh.encode_client_frame(SUBSCRIBE.encode()))
        recv = sock.recv
        pos = 0
        seen = 0
        greeting = len(fh.GREETING)
        while seen < total + greeting:
            if len(buf) - pos >= 2:
                length = buf[pos + 1] & 0x7F
                head = 2 if length < 126 else (4 if length == 126 else 10)
                if len(buf) - pos >= head:
                    if length == 126:
                        length = buf[pos + 2] << 8 | buf[pos + 3]
                    elif length == 127:
                        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                    end = pos + head + length
                    if end <= len(buf):
                        obj = loads(buf[pos + head : end])
                        pos = end
                        seen += 1
                        if seen > greeting:
                            count(obj)
                        continue
            chunk = recv(65536)
            if not chunk:
                raise ConnectionError("the firehose closed during the burst")
            buf = buf[pos:] + chunk
            pos = 0
    return counter.wait(0)


# ---------------------------------------------------------------------------------------------------
# peers in this process
# ---------------------------------------------------------------------------------------------------
def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Skipped(f"not installed ({exc}); pip install {name}") from None


def websocket_client(firehose: fh.FirehoseProcess, warm: int, n: int) -> h.Sample:
    """websocket-client: ``orjson.loads(ws.recv())`` in a loop (rxibkr's old ceiling)."""
    return h.ceiling(firehose, warm, n)


def websockets_sync(firehose: fh.FirehoseProcess, warm: int, n: int) -> h.Sample:
    """websockets' sync client: ``orjson.loads(ws.recv())``."""
    client = _module("websockets.sync.client")
    total = warm + n
    counter = h.Counter(warm, total)
    count, loads = counter.on_next, orjson.loads
    with client.connect(_url(firehose, total), compression=None, max_queue=None, ping_interval=None) as ws:
        recv = ws.recv
        for _ in fh.GREETING:
            recv()
        ws.send(SUBSCRIBE)
        for _ in range(total):
            count(loads(recv()))
    return counter.wait(0)


def aiohttp_ws(firehose: fh.FirehoseProcess, warm: int, n: int) -> h.Sample:
    """aiohttp's WebSocket client: ``orjson.loads(msg.data)`` per ``receive()``."""
    aiohttp = _module("aiohttp")
    total = warm + n
    counter = h.Counter(warm, total)
    count, loads = counter.on_next, orjson.loads

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(_url(firehose, total), autoping=True, max_msg_size=0) as ws:
                receive = ws.receive
                for _ in fh.GREETING:
                    await receive()
                await ws.send_str(SUBSCRIBE)
                for _ in range(total):
                    count(loads((await receive()).data))

    asyncio.run(run())
    return counter.wait(0)


def picows_ws(firehose: fh.FirehoseProcess, warm: int, n: int) -> h.Sample:
    """picows (C framing on asyncio): ``orjson.loads`` in ``on_ws_frame``."""
    picows = _module("picows")
    total = warm + n
    counter = h.Counter(warm, total)
    count, loads = counter.on_next, orjson.loads
    greeting = len(fh.GREETING)

    class Listener(picows.WSListener):  # type: ignore[misc,name-defined]
        seen = 0

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type is picows.WSMsgType.PING:
                transport.send_pong(frame.get_payload_as_bytes())
                return
            obj = loads(frame.get_payload_as_memoryview())
            self.seen += 1
            if self.seen == greeting:
                transport.send(picows.WSMsgType.TEXT, SUBSCRIBE.encode())
            elif self.seen > greeting:
                count(obj)

    async def run() -> None:
        transport, _ = await picows.ws_connect(Listener, _url(firehose, total))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, counter.done.wait, h._timeout(total))
        transport.disconnect()

    asyncio.run(run())
    return counter.wait(0)


# ---------------------------------------------------------------------------------------------------
# IBind, in a child process
# ---------------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rxibkr-bench"


def ibind_python(version: str, install: bool = True) -> str:
    """An interpreter that imports IBind ``version``: this one if it has it, else a virtualenv of
    its own under :func:`cache_dir` (created and filled from PyPI on first use when ``install``)."""
    try:
        from importlib.metadata import version as installed

        if installed("ibind") == version:
            return sys.executable
    except Exception:
        pass
    venv = cache_dir() / f"ibind-{version}"
    python = venv / "bin" / "python"
    if python.exists():
        return str(python)
    if not install:
        raise Skipped(f"IBind {version} not installed (no virtualenv at {venv})")
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"ibind=={version}", "orjson"],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        raise Skipped(f"cannot install IBind {version} in a virtualenv: {exc}") from None
    return str(python)


def ibind(version: str) -> Callable[[fh.FirehoseProcess, int, int], h.Sample]:
    def measure(firehose: fh.FirehoseProcess, warm: int, n: int) -> h.Sample:
        python = ibind_python(version)
        script = Path(__file__).with_name("ibind_peer.py")
        total = warm + n
        done = subprocess.run(
            [python, str(script), _url(firehose, total), str(warm), str(n)],
            capture_output=True,
            text=True,
            timeout=max(120.0, total / 500),
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"IBind {version} failed: {(done.stderr or '').strip()[-300:]}")
        result = json.loads(lines[-1])
        if "rate" not in result:
            raise TimeoutError(f"IBind {version} saw {result.get('seen', 0):,} of {total:,} frames")
        return h.Sample(result["rate"], result["cpu_us"])

    return measure


PEERS: dict[str, tuple[str, Callable[[fh.FirehoseProcess, int, int], h.Sample]]] = {
    "picows": ("picows (C WebSocket client) + orjson.loads", picows_ws),
    "aiohttp": ("aiohttp WebSocket client + orjson.loads", aiohttp_ws),
    "websockets": ("websockets (sync client) recv() + orjson.loads", websockets_sync),
    "websocket-client": ("websocket-client recv() + orjson.loads", websocket_client),
    **{f"ibind-{v}": (f"IBind {v} (its client, counted at delivery)", ibind(v)) for v in IBIND_VERSIONS},
}
"""name: (label, measurement)."""


def timed(fn: Callable[[], h.Sample]) -> tuple[h.Sample | None, str | None]:
    try:
        return fn(), None
    except Skipped as exc:
        return None, f"skipped: {exc}"
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _smoke() -> None:  # python -m benchmarks.peers: each peer once, small
    with fh.FirehoseProcess(lifetime=300) as firehose:
        for name, (label, fn) in {"limit": ("limit", limit), **PEERS}.items():
            t0 = time.perf_counter()
            sample, error = timed(lambda: fn(firehose, 2000, 20000))  # noqa: B023
            what = f"{sample.rate:,.0f} msg/s {sample.cpu_us:.2f} us" if sample else error
            print(f"{name:<18} {what}  ({time.perf_counter() - t0:.1f} s) {label}")


if __name__ == "__main__":
    _smoke()
