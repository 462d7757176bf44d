"""Helpers for the simulator tests: plain websocket-client / urllib3 clients with bounded waits.

The simulator is driven only through plain clients, never through rxibkr's own client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import urllib3
import websocket
from waiting import wait_until  # noqa: F401 (re-exported to the tests of this area)

from rxibkr.sim import GatewaySimulator

GOLDEN_PATH = Path(__file__).parent / "data" / "golden_frames.jsonl"

#: Tiny intervals for tests; individual tests override what they need.
FAST: dict[str, Any] = {
    "greeting": True,  # not from RXIBKR_SIM_GREETING: these tests pin the behaviour they test
    "heartbeat_interval": 0.1,
    "greeting_delay": 0.01,
    "md_interval": 0.02,
    "ledger_interval": 0.05,
    "pnl_interval": 0.05,
    "order_step_delay": 0.002,
    "fill_delay": 0.01,
    "commission_delay": 0.01,
}

Frame = dict[str, Any]


def load_golden() -> dict[str, Frame]:
    out: dict[str, Frame] = {}
    for line in GOLDEN_PATH.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["name"]] = row["frame"]
    return out


def make_sim(**kwargs: Any) -> GatewaySimulator:
    options = dict(FAST)
    options.update(kwargs)
    return GatewaySimulator(**options)


class Closed(Exception):
    """The server sent a close frame."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed by the server with code {code}")
        self.code = code


class WsClient:
    """A thin, bounded-wait wrapper around a websocket-client socket."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self.ws = ws
        self.opcodes: list[int] = []

    def send(self, text: str) -> None:
        self.ws.send(text)

    def recv_raw(self, timeout: float = 2.0) -> tuple[int, bytes]:
        self.ws.settimeout(timeout)
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise Closed(int.from_bytes(data[:2], "big") if len(data) >= 2 else None)
        self.opcodes.append(opcode)
        return opcode, data

    def recv(self, timeout: float = 2.0) -> Frame:
        _, data = self.recv_raw(timeout)
        obj = orjson.loads(data)
        assert isinstance(obj, dict), data
        return obj

    def recv_until(self, predicate: Callable[[Frame], bool], timeout: float = 2.0) -> Frame:
        """Skip frames until one matches; fails the test when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        seen: list[Frame] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching frame within {timeout}s; saw {seen[-5:]}")
            try:
                frame = self.recv(left)
            except websocket.WebSocketTimeoutException:
                raise AssertionError(f"no matching frame within {timeout}s; saw {seen[-5:]}") from None
            if predicate(frame):
                return frame
            seen.append(frame)

    def collect(self, duration: float, predicate: Callable[[Frame], bool] = lambda f: True) -> list[Frame]:
        """Every matching frame received during ``duration`` seconds."""
        deadline = time.monotonic() + duration
        out: list[Frame] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                frame = self.recv(left)
            except websocket.WebSocketTimeoutException:
                return out
            if predicate(frame):
                out.append(frame)

    def collect_n(self, n: int, predicate: Callable[[Frame], bool], timeout: float = 3.0) -> list[Frame]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            out.append(self.recv_until(predicate, max(0.01, deadline - time.monotonic())))
        return out

    def close(self) -> None:
        try:
            self.ws.close(timeout=0.2)
        except Exception:
            pass


def sslopt(sim: GatewaySimulator) -> dict[str, Any] | None:
    return {"ca_certs": sim.cacert} if sim.cacert else None


def open_ws(sim: GatewaySimulator, cookie: str | None = "default", **kwargs: Any) -> WsClient:
    """Open a socket; ``cookie="default"`` sends ``api={"session":"<id>"}``, None sends none."""
    if cookie == "default":
        cookie = sim.cookie
    ws = websocket.create_connection(
        sim.ws_url, sslopt=sslopt(sim), cookie=cookie, timeout=3, skip_utf8_validation=True, **kwargs
    )
    return WsClient(ws)


def is_topic(topic: str) -> Callable[[Frame], bool]:
    return lambda f: f.get("topic") == topic


class Rest:
    """urllib3 against the simulator's REST base URL; bodies are JSON."""

    def __init__(self, sim: GatewaySimulator) -> None:
        self.sim = sim
        if sim.cacert:
            self.http = urllib3.PoolManager(ca_certs=sim.cacert, retries=False, timeout=3.0)
        else:
            self.http = urllib3.PoolManager(retries=False, timeout=3.0)

    def call(self, method: str, path: str, body: Any = None, **fields: Any) -> urllib3.BaseHTTPResponse:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        return self.http.request(
            method, self.sim.rest_url + path, body=data, headers=headers, fields=fields or None
        )

    def json(self, method: str, path: str, body: Any = None, status: int = 200, **fields: Any) -> Any:
        resp = self.call(method, path, body, **fields)
        assert resp.status == status, (resp.status, resp.data[:300])
        return json.loads(resp.data)
