"""The simulated gateway's shared state, living on one asyncio loop: connections, the market,
the account, orders, the fault switches and the inspection logs.

Nothing here is thread-safe by itself; :class:`rxibkr.sim.GatewaySimulator` marshals every call
from other threads onto the loop. The only exception is the received-frames log, which has its
own lock because tests read it from their own thread.

Clocks are gateway-wide: heartbeats (``shared_heartbeat_clock``) and market ticks run on grids that
start with the gateway, so every connection sees the same phase.

Imports go one way: gateway -> topics -> connection; the connection and the topic handlers know the
gateway only through the protocols they declare (``ConnectionHost``, ``TopicHost``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import WSMsgType, web

from rxibkr.sim import frames, topics
from rxibkr.sim.account import Account
from rxibkr.sim.commands import parse
from rxibkr.sim.config import SimConfig, derive_hex, derive_int
from rxibkr.sim.connection import CLOSED, GREETING, READY, WAITING, Connection
from rxibkr.sim.fields import field_values
from rxibkr.sim.history import build_history
from rxibkr.sim.market import Market, Quote, now_ms
from rxibkr.sim.orders import Order, OrderEngine, full_object

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedFrame:
    """One text frame received from a client."""

    connection_id: int
    text: str
    dropped: bool  # received before the confirmation burst (or before the session) and ignored
    time: float  # time.time()


#: How many received client frames the inspection log keeps (oldest dropped first).
RECEIVED_LOG_SIZE = 100_000


@dataclass
class PendingPlacement:
    """An order placement waiting for its confirmation prompts to be answered."""

    specs: list[dict[str, Any]]
    account: str
    prompts: list[str] = field(default_factory=list)  # message ids still to confirm, in order


AddressFilter = Callable[[str | None], bool]


def address_filter(allowed: Iterable[str]) -> AddressFilter:
    """``ips.allow`` emulation: exact addresses, CIDR networks, or ``"*"``."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    allow_all = False
    for item in allowed:
        if item.strip() == "*":
            allow_all = True
            continue
        networks.append(ipaddress.ip_network(item.strip(), strict=False))

    def check(remote: str | None) -> bool:
        if allow_all:
            return True
        if not remote:
            return False
        try:
            addr = ipaddress.ip_address(remote.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr.version == net.version and addr in net for net in networks)

    return check


class Gateway:
    """Core of the simulator. Construct and use on the loop thread only."""

    def __init__(self, config: SimConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.ident = frames.Identity.from_config(config)
        self.market = Market(
            config.seed,
            config.volatility,
            config.trade_probability,
            config.unavailable_conids,
            opening_trade=not config.c_prefix_before_trade,
            closed=config.market_closed,
        )
        self.account = Account(config.account, config.initial_cash, self._price_of)
        self.orders = OrderEngine(
            seed=config.seed,
            account=self.account,
            market=self.market,
            username=config.username,
            on_order=self._publish_order,
            on_execution=self._publish_execution,
            schedule=self.schedule,
            step_delay=config.order_step_delay,
            fill_delay=config.fill_delay,
            commission_delay=config.commission_delay,
            history_days=config.history_days,
            initial_status="Inactive" if config.order_burst_delay is None else "PendingSubmit",
            conid_exists=config.conid_exists,
        )
        self.account.start_of_day()
        self.is_allowed = address_filter(config.allowed_hosts)
        self.sess_uuid = f"0.{derive_hex(config.seed, 'sess-uuid', 8)}.{derive_hex(config.seed, 'sess2', 8)}"
        self.connections: dict[int, Connection] = {}
        self.total_connections = 0
        self.sent_count = 0
        self._received: deque[ReceivedFrame] = deque(maxlen=RECEIVED_LOG_SIZE)
        self._received_lock = threading.Lock()
        self._sent_log: list[tuple[int, bytes]] = []
        self._next_connection_id = 1
        self._history_server_id = derive_int(config.seed, "smh-server-id", 100_000, 799_999)
        # switches
        self.authenticated = True
        self.competing = False
        self.maintenance_until = 0.0
        self.stalled = False
        self.md_expired = 0
        self._unstall = asyncio.Event()
        self._stalled_requests: dict[int, web.Request] = {}
        self.pongs_enabled = True
        self.hb_paused_until = 0.0
        self.latency = 0.0
        self.accounts_called = False
        self.sor_muted = False
        self.snapshot_seen: set[int] = set()
        self._snapshot_until: dict[int, float] = {}
        self.pending_replies: dict[str, PendingPlacement] = {}
        self._reply_counter = 0
        self._quote_servers = 0
        self._bursts: dict[int, list[tuple[dict[str, Any], bool, str]] | None] = {}
        self._activity_rng = random.Random(f"activity:{config.seed}")
        self._market_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._closing = False
        self.started_at = time.monotonic()
        self.started_loop_time = loop.time()
        self.last_keepalive = loop.time()

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._market_task = self.loop.create_task(self._market_loop(), name="sim-market")
        if self.config.shared_heartbeat_clock:
            self._heartbeat_task = self.loop.create_task(self._heartbeat_loop(), name="sim-heartbeat")

    async def close(self) -> None:
        """Stop timers and close every socket (close frame, then abort whatever lingers)."""
        self._closing = True
        for task in (self._market_task, self._heartbeat_task):
            if task is not None:
                task.cancel()
        self._unstall.set()
        for request in list(self._stalled_requests.values()):
            if request.transport is not None:
                request.transport.abort()
        conns = list(self.connections.values())
        if conns:
            await asyncio.wait([self.loop.create_task(self._close_ws(c, 1001)) for c in conns], timeout=0.5)
        for conn in conns:
            conn.abort()
            conn.shutdown()

    @staticmethod
    async def _close_ws(conn: Connection, code: int) -> None:
        try:
            await asyncio.wait_for(conn.ws.close(code=code), timeout=0.3)
        except Exception:
            conn.abort()

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        def run() -> None:
            try:
                fn()
            except Exception:
                log.exception("scheduled step failed")

        self.loop.call_later(max(0.0, delay), run)

    # --- connections -------------------------------------------------------------------------------
    def open_connection(self, ws: web.WebSocketResponse, request: web.Request) -> Connection:
        cid = self._next_connection_id
        self._next_connection_id += 1
        conn = Connection(self, cid, ws, request)
        self.connections[cid] = conn
        self.total_connections += 1
        return conn

    def close_connection(self, conn: Connection) -> None:
        conn.shutdown()
        self.connections.pop(conn.id, None)

    def ready_connections(self) -> list[Connection]:
        return [c for c in self.connections.values() if c.state == READY]

    def session_from_request(self, request: web.Request) -> bool:
        """True when a Cookie header carries the session (``api`` JSON/raw, or ``x-sess-uuid``)."""
        for header in request.headers.getall("Cookie", []):
            for part in header.split(";"):
                name, sep, value = part.partition("=")
                if not sep:
                    continue
                name = name.strip()
                if name == "api" and self.session_matches(decode_api_cookie(value)):
                    return True
                if name == "x-sess-uuid" and unquote(value.strip()) == self.sess_uuid:
                    return True
        return False

    def session_matches(self, candidate: str | None) -> bool:
        return candidate is not None and candidate == self.ident.session_id

    def on_text(self, conn: Connection, text: str) -> None:
        """A text frame from a client: record it, then act on it according to the login state."""
        state = conn.state
        if state == WAITING:
            cmd = parse(text)
            ok = cmd.topic == "session" and self.session_matches(_as_str(cmd.args.get("session")))
            self.record_received(conn.id, text, dropped=not ok)
            if ok:
                conn.authenticate()
            return
        if state == GREETING and self.config.drop_early_frames:
            self.record_received(conn.id, text, dropped=True)
            return
        self.record_received(conn.id, text, dropped=False)
        if state == CLOSED:
            return
        try:
            topics.handle(self, conn, parse(text))
        except Exception:
            log.exception("connection %d: command failed", conn.id)
            conn.send(frames.error("internal error", 500))

    def record_received(self, cid: int, text: str, *, dropped: bool) -> None:
        with self._received_lock:
            self._received.append(ReceivedFrame(cid, text, dropped, time.time()))

    def received(self) -> list[ReceivedFrame]:
        with self._received_lock:
            return list(self._received)

    def count_sent(self, connection_id: int, data: bytes) -> None:
        """A frame was written to a socket (pongs excluded)."""
        self.sent_count += 1
        if self.config.record_sent:
            self._sent_log.append((connection_id, data))

    def sent_log(self) -> list[tuple[int, bytes]]:
        return list(self._sent_log)

    # --- market ------------------------------------------------------------------------------------
    def _price_of(self, conid: int) -> tuple[float, float]:
        q = self.market.quote(conid)
        return (q.mark, q.prior_close) if q.inst.available else (0.0, 0.0)

    def active_conids(self) -> set[int]:
        """Instruments the market moves: subscribed, with working orders, recently snapshotted,
        and (``pnl_follows_prices``) those the account holds."""
        now = self.loop.time()
        active = set(self.orders.working_conids())
        for conn in self.connections.values():
            active.update(s.conid for s in conn.md.values())
            active.update(s.conid for s in conn.ladders.values())
        active.update(c for c, until in self._snapshot_until.items() if until > now)
        if self.config.pnl_follows_prices:
            active.update(c for c, p in self.account.positions.items() if p.quantity)
        return active

    def next_quote_server(self) -> str:
        """The next gateway-wide ``server_id``: ``q1``, ``q2``... across all connections."""
        self._quote_servers += 1
        return f"q{self._quote_servers}"

    def touch_snapshot(self, conid: int) -> None:
        """Keep an instrument ticking for a minute after a REST snapshot asked for it."""
        self._snapshot_until[conid] = self.loop.time() + 60.0

    async def _grid(self, interval: float, last: int) -> int:
        """Sleep until the next point of a gateway-wide grid (multiples of ``interval`` since the
        gateway started) after point ``last``, so every connection sees the same phase; returns the
        point's index. A late wake-up skips the points it missed; an early one cannot repeat one."""
        now = self.loop.time()
        point = max(last + 1, math.floor((now - self.started_loop_time) / interval) + 1)
        await asyncio.sleep(max(0.0, self.started_loop_time + point * interval - now))
        return point

    async def _market_loop(self) -> None:
        interval = self.config.md_interval
        point = 0
        while True:
            point = await self._grid(interval, point)
            try:
                self._check_session_timeout()
                self.market_step()
            except Exception:
                log.exception("market step failed")

    async def _heartbeat_loop(self) -> None:
        """Heartbeats on the gateway-wide clock: the same instant for every ready connection, so a
        new connection's first one comes anywhere from 0 to ``heartbeat_interval`` after it opens."""
        interval = self.config.heartbeat_interval
        point = 0
        while True:
            point = await self._grid(interval, point)
            if self.heartbeats_paused():
                continue
            frame = frames.heartbeat(now_ms())
            for conn in self.ready_connections():
                conn.send(frame)

    def market_step(self) -> dict[int, Quote]:
        """One market tick: step the active instruments, fill crossed orders, push first updates that
        came due and the changed fields. With ``md_rate`` the gateway's throughput is ``md_rate`` times
        the number of active instruments, per second, shared by their liquidity weights: each one
        steps (and its quote moves) with its own chance per tick."""
        active = sorted(self.active_conids())
        rate = self.config.md_rate
        if rate is not None and active:
            weights = [topics.activity_weight(self.config, c) for c in active]
            per_tick = rate * len(active) * self.config.md_interval / sum(weights)
            rng = self._activity_rng
            active = [c for c, w in zip(active, weights, strict=True) if rng.random() < per_tick * w]
        quotes = {q.inst.conid: q for q in self.market.step(active, force_move=rate is not None)}
        for conid in quotes:
            self.orders.on_quote(conid)
        topics.push_market_updates(self, quotes)
        return quotes

    def next_history_server_id(self) -> str:
        self._history_server_id += 1
        return str(self._history_server_id)

    def history(self, conid: int, args: dict[str, Any]) -> dict[str, Any]:
        """A history reply (protocol §3.2) with a fresh server id, for ``smh`` and for REST alike."""
        q = self.market.quote(conid)
        return build_history(
            q.inst,
            q.mark,
            args,
            seed=self.config.seed,
            server_id=self.next_history_server_id(),
            now_ms=now_ms(),
            max_bars=self.config.max_history_bars,
        )

    # --- orders ------------------------------------------------------------------------------------
    def _publish_order(self, order: Order, payload: dict[str, Any], full: bool) -> None:
        """Every ``sor`` update of an order. With ``order_burst_delay`` an order's updates during
        that long after placement are held and then sent in one burst (as recorded live)."""
        delay = self.config.order_burst_delay
        if delay is not None:
            if order.order_id not in self._bursts:
                # the order's first update: its placement opens the burst window
                self._bursts[order.order_id] = []
                self.schedule(delay, lambda: self._flush_burst(order))
            held = self._bursts[order.order_id]
            if held is not None:
                held.append((dict(payload), full, order.status))
                return
        self._fan_out(order, payload, full, order.status)

    def _flush_burst(self, order: Order) -> None:
        held = self._bursts.get(order.order_id) or []
        self._bursts[order.order_id] = None  # later updates go out as they happen
        for payload, full, status in held:
            self._fan_out(order, payload, full, status)

    def _fan_out(self, order: Order, payload: dict[str, Any], full: bool, status: str) -> None:
        if self.sor_muted:
            return
        for conn in self.ready_connections():
            sub = conn.orders
            if sub is None or not conn.data_enabled or not sub.accepts(status):
                continue
            if sub.filters and order.order_id not in sub.known and not full:
                payload_out = full_object(order)
            else:
                payload_out = payload
            sub.known.add(order.order_id)
            conn.send({"topic": "sor", "args": [payload_out]})

    def _publish_execution(self, execution: dict[str, Any]) -> None:
        frame = {"topic": "str", "args": [execution]}
        for conn in self.ready_connections():
            if conn.trades and conn.data_enabled:
                conn.send(frame)

    def next_reply_id(self) -> str:
        self._reply_counter += 1
        h = derive_hex(self.config.seed, f"reply:{self._reply_counter}", 32)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    # --- faults ------------------------------------------------------------------------------------
    def heartbeats_paused(self) -> bool:
        return self.loop.time() < self.hb_paused_until

    def maintenance_active(self) -> bool:
        return self.loop.time() < self.maintenance_until

    def drop_connections(self) -> int:
        conns = list(self.connections.values())
        for conn in conns:
            conn.abort()
        return len(conns)

    def pause_heartbeats(self, seconds: float | None) -> None:
        self.hb_paused_until = float("inf") if seconds is None else self.loop.time() + seconds

    def resume_heartbeats(self) -> None:
        self.hb_paused_until = 0.0

    def set_authenticated(self, authenticated: bool) -> None:
        if authenticated:
            # recovery is silent on the socket; REST says authenticated again
            self.authenticated = True
            self.competing = False
            self.touch_session()
            return
        self._lose_auth(competing=self.competing)

    def _lose_auth(self, *, competing: bool, announce: bool = True) -> None:
        self.authenticated = False
        self.accounts_called = False
        frame = frames.sts(self.ident, authenticated=False, competing=competing)
        for conn in self.connections.values():
            if announce and conn.state in (READY, GREETING):
                conn.send(frame)
            conn.stop_data()

    def touch_session(self) -> None:
        """``/tickle`` or ``tic``: the session was used (see ``session_timeout``)."""
        self.last_keepalive = self.loop.time()

    def _check_session_timeout(self) -> None:
        timeout = self.config.session_timeout
        if timeout is None or not self.authenticated:
            return
        if self.loop.time() - self.last_keepalive > timeout:
            log.info("session lapsed after %.1f s without tickle/tic", timeout)
            self._lose_auth(competing=False, announce=False)  # the socket just goes quiet

    def competing_session(self, competing: bool, lose_auth: bool) -> None:
        self.competing = competing
        if lose_auth and competing:
            self._lose_auth(competing=True)
            return
        self.broadcast(frames.sts(self.ident, authenticated=self.authenticated, competing=competing))

    async def maintenance(self, seconds: float) -> None:
        self.maintenance_until = self.loop.time() + seconds
        conns = list(self.connections.values())
        if conns:
            await asyncio.wait([self.loop.create_task(self._close_ws(c, 1000)) for c in conns], timeout=1.0)

    def end_maintenance(self) -> None:
        self.maintenance_until = 0.0

    def stall_handshake(self, stall: bool) -> None:
        self.stalled = stall
        if stall:
            self._unstall.clear()
        else:
            self._unstall.set()

    async def wait_while_stalled(self, request: web.Request) -> bool:
        """Hold an upgrade request while stalled; False if the simulator is stopping meanwhile."""
        self._stalled_requests[id(request)] = request
        try:
            while self.stalled and not self._closing:
                await self._unstall.wait()
        finally:
            self._stalled_requests.pop(id(request), None)
        return not self._closing

    def send_raw(self, data: bytes | str, binary: bool | None) -> int:
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if binary is None:
            binary = self.config.binary_frames
        opcode = WSMsgType.BINARY if binary else WSMsgType.TEXT
        conns = [c for c in self.connections.values() if c.state != CLOSED]
        for conn in conns:
            conn.send(payload, opcode)
        return len(conns)

    def push_act(self) -> int:
        conns = self.ready_connections()
        for conn in conns:
            conn.send(frames.act(self.ident, self.ident.internal_session_id(conn.id)))
        return len(conns)

    def broadcast(self, frame: dict[str, Any]) -> int:
        conns = self.ready_connections()
        for conn in conns:
            conn.send(frame)
        return len(conns)

    async def burst(self, conid: int, count: int) -> int:
        """Send ``count`` smd update frames to every socket subscribed to ``conid`` (benchmarks)."""
        targets = [(c, s) for c in self.ready_connections() for s in c.md.values() if s.conid == conid]
        if not targets:
            return 0
        q = self.market.quote(conid)
        for i in range(count):
            q.step()
            for conn, sub in targets:
                values = field_values(q, sub.fields, None) if q.inst.available else {}
                conn.send(topics.md_update_frame(sub, q, values))
                while conn.backlog() > 2000 and conn.state != CLOSED:
                    await asyncio.sleep(0.001)
            if i % 256 == 255:
                await asyncio.sleep(0)
        return count * len(targets)

    def subscriptions(self) -> dict[int, dict[str, list[str]]]:
        return {cid: conn.subscriptions() for cid, conn in self.connections.items()}


def _as_str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) else None


def decode_api_cookie(value: str) -> str | None:
    """``api`` cookie value -> session id: JSON ``{"session":"<id>"}`` (maybe URL-encoded, spaced or
    quoted) or the raw id."""
    text = unquote(value.strip()).strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"' and not text.startswith('"{'):
        text = text[1:-1]
    elif text.startswith('"{') and text.endswith('}"'):
        text = text[1:-1]
    if text.startswith("{"):
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        return _as_str(obj.get("session")) if isinstance(obj, dict) else None
    return text or None
