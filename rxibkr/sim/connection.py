"""One WebSocket client of the simulated gateway: its outgoing queue, its login state and its
subscriptions.

Everything here runs on the gateway's event loop. Producers call :meth:`Connection.send`, which
only appends to a deque; a single writer task serialises (orjson), applies the injected latency and
writes, so frames keep their order and the hot path stays cheap.

A connection knows its gateway only through :class:`ConnectionHost` (what it reads of the gateway),
so this module imports nothing of the gateway or of the topic handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from aiohttp import WSMsgType, web

from rxibkr.sim import frames
from rxibkr.sim.config import SimConfig
from rxibkr.sim.market import now_ms
from rxibkr.sim.subscriptions import LadderSub, MarketDataSub, OrdersSub

log = logging.getLogger(__name__)

WAITING = "waiting"  # no session yet: only {"session": ...} is listened to
GREETING = "greeting"  # session accepted, confirmation burst not sent yet
READY = "ready"
CLOSED = "closed"

Payload = dict[str, Any] | bytes

#: A socket whose client stopped reading is dropped once this many frames are waiting for it.
MAX_BACKLOG = 100_000


class ConnectionHost(Protocol):
    """What a connection needs of its gateway (the gateway is one; tests may pass another)."""

    @property
    def config(self) -> SimConfig: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def ident(self) -> frames.Identity: ...
    @property
    def latency(self) -> float: ...
    @property
    def pongs_enabled(self) -> bool: ...
    @property
    def authenticated(self) -> bool: ...
    @property
    def competing(self) -> bool: ...
    def heartbeats_paused(self) -> bool: ...
    def count_sent(self, connection_id: int, data: bytes) -> None: ...


class Connection:
    """State of one accepted socket."""

    def __init__(
        self, gateway: ConnectionHost, connection_id: int, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        self.gw = gateway
        self.id = connection_id
        self.ws = ws
        self.request = request
        self.state = WAITING
        self.data_enabled = True
        self.seq = 0
        self._default_opcode = WSMsgType.BINARY if gateway.config.binary_frames else WSMsgType.TEXT
        self._out: deque[tuple[float, Payload | None, WSMsgType]] = deque()
        self._wake = asyncio.Event()
        self._writer = gateway.loop.create_task(self._write_loop(), name=f"sim-writer-{connection_id}")
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._greeting_handle: asyncio.TimerHandle | None = None
        # subscriptions
        self.md: dict[str, MarketDataSub] = {}
        self.history: dict[str, int] = {}  # serverId -> conid
        self.orders: OrdersSub | None = None
        self.trades = False
        self.ladders: dict[str, LadderSub] = {}
        self._quote_servers: dict[int, str] = {}
        self.opened_at = gateway.loop.time()
        self.ready_at: float | None = None

    # --- output ----------------------------------------------------------------------------------
    def send(self, frame: Payload, opcode: WSMsgType | None = None) -> None:
        """Queue a frame (a dict to serialise, or raw bytes) for this socket."""
        if self.state == CLOSED:
            return
        if len(self._out) >= MAX_BACKLOG:
            log.warning(
                "connection %d: client is not reading (%d frames queued); dropping it",
                self.id,
                len(self._out),
            )
            self.abort()
            self.shutdown()
            return
        due = self.gw.loop.time() + self.gw.latency if self.gw.latency else 0.0
        self._out.append((due, frame, self._default_opcode if opcode is None else opcode))
        self._wake.set()

    def backlog(self) -> int:
        return len(self._out)

    async def _write_loop(self) -> None:
        gw = self.gw
        out = self._out
        ws = self.ws
        loop = gw.loop
        number = gw.config.number_frames
        try:
            while True:
                if not out:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                due, payload, opcode = out.popleft()
                if payload is None:
                    return
                if due:
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if isinstance(payload, dict):
                    if number:
                        self.seq += 1
                        payload = {**payload, "_seq": self.seq}
                    data = orjson.dumps(payload)
                else:
                    data = payload
                if opcode is WSMsgType.PONG and not gw.pongs_enabled:
                    continue
                await ws.send_frame(data, opcode)
                if opcode is not WSMsgType.PONG:
                    gw.count_sent(self.id, data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away mid-write
            log.debug("connection %d: writer stopped: %r", self.id, exc)

    # --- login -----------------------------------------------------------------------------------
    def authenticate(self) -> None:
        """The session is known (cookie or in-band message): greet after ``greeting_delay``."""
        if self.state != WAITING:
            return
        self.state = GREETING
        delay = self.gw.config.greeting_delay
        if delay > 0:
            self._greeting_handle = self.gw.loop.call_later(delay, self._greet)
        else:
            self._greet()

    def _greet(self) -> None:
        """End of the gap after the session: the confirmation burst (unless ``greeting`` is off),
        then the socket is ready; client frames are acted upon from now on."""
        if self.state != GREETING:
            return
        gw = self.gw
        ident = gw.ident
        if gw.authenticated:
            if gw.config.greeting:
                self.send(frames.system_success(ident))
                self.send(frames.act(ident, ident.internal_session_id(self.id)))
                self.send(frames.sts(ident, authenticated=True, competing=gw.competing))
        else:
            # brokerage session not authenticated: say so, and never serve data on this socket
            self.send(frames.sts(ident, authenticated=False, competing=gw.competing))
            self.data_enabled = False
        self.state = READY
        self.ready_at = gw.loop.time()
        if not gw.config.shared_heartbeat_clock:
            self.start_task("heartbeat", self._heartbeats())

    async def _heartbeats(self) -> None:
        """Heartbeats on this connection's own clock (``shared_heartbeat_clock=False``); the
        gateway-wide clock lives in the gateway."""
        gw = self.gw
        interval = gw.config.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            if gw.heartbeats_paused():
                continue
            self.send(frames.heartbeat(now_ms()))

    # --- tasks -----------------------------------------------------------------------------------
    def start_task(self, key: str, coro: Any) -> None:
        """Run ``coro`` as this connection's task ``key`` (replacing one with the same key)."""
        self.stop_task(key)
        task: asyncio.Task[None] = self.gw.loop.create_task(coro, name=f"sim-{self.id}-{key}")
        self._tasks[key] = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("connection %d: task %s failed", self.id, task.get_name(), exc_info=task.exception())

    def stop_task(self, key: str) -> bool:
        task = self._tasks.pop(key, None)
        if task is None:
            return False
        task.cancel()
        return True

    def task_keys(self) -> list[str]:
        return [k for k, t in self._tasks.items() if not t.done()]

    def stop_tasks(self, predicate: Callable[[str], bool]) -> None:
        for key in [k for k in self._tasks if predicate(k)]:
            self.stop_task(key)

    # --- subscriptions ---------------------------------------------------------------------------
    def quote_server(self, conid: int, allocate: Callable[[], str] | None = None) -> str:
        """The ``server_id``/``6119`` value for a conid on this socket: from ``allocate`` (the
        gateway-wide counter) or, without one, counted per socket (``q0``, ``q1``...)."""
        sid = self._quote_servers.get(conid)
        if sid is None:
            sid = allocate() if allocate is not None else f"q{len(self._quote_servers) % 33}"
            self._quote_servers[conid] = sid
        return sid

    def stop_data(self) -> None:
        """Auth loss: every stream stops and this socket never serves data again."""
        self.data_enabled = False
        self.md.clear()
        self.history.clear()
        self.orders = None
        self.trades = False
        self.ladders.clear()
        self.stop_tasks(lambda key: key != "heartbeat")

    def subscriptions(self) -> dict[str, list[str]]:
        """What is active on this socket, per topic (targets as strings)."""
        out: dict[str, list[str]] = {}
        if self.md:
            out["smd"] = sorted(self.md)
        if self.history:
            out["smh"] = sorted(self.history)
        if self.orders is not None:
            out["sor"] = sorted(self.orders.filters) or [""]
        if self.trades:
            out["str"] = [""]
        for key in self.task_keys():
            topic, _, target = key.partition("+")
            if topic in ("spl", "ssd", "sld"):
                out.setdefault(topic, []).append(target)
        if self.ladders:
            out["sbd"] = sorted(k.partition("+")[2] for k in self.ladders)
        return out

    # --- teardown --------------------------------------------------------------------------------
    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def shutdown(self) -> None:
        """Forget everything; called when the socket is gone."""
        if self.state == CLOSED:
            return
        self.state = CLOSED
        if self._greeting_handle is not None:
            self._greeting_handle.cancel()
        for key in list(self._tasks):
            self.stop_task(key)
        self.md.clear()
        self.history.clear()
        self.ladders.clear()
        self._out.clear()
        self._out.append((0.0, None, WSMsgType.CLOSE))
        self._wake.set()
