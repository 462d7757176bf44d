"""``GatewaySimulator``: the public face of the simulator — lifecycle on its own thread, faults,
test helpers and inspection, all callable from any thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Literal, TypeVar

from aiohttp import web

from rxibkr.sim.app import WS_PATH, build_app
from rxibkr.sim.config import (
    DEFAULT_MAX_CONID,
    DEFAULT_UNAVAILABLE_CONIDS,
    PROFILES,
    SimConfig,
    greeting_from_environment,
)
from rxibkr.sim.gateway import Gateway, ReceivedFrame, address_filter
from rxibkr.sim.oauth import SimOAuth, make_sim_oauth
from rxibkr.sim.orders import full_object
from rxibkr.sim.rest import PREFIX
from rxibkr.sim.tls import TlsMaterial

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Default of the keywords whose None means "off": take the value from the profile.
PROFILE: Literal["profile"] = "profile"


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    value = float(value)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


class GatewaySimulator:
    """A local stand-in for the IBKR Client Portal gateway: REST and WebSocket on one port.

    Runs aiohttp on a daemon thread with its own asyncio loop. ``start()`` returns once listening;
    ``stop()`` is idempotent and bounded. Usable as a context manager. Everything is deterministic
    for a given ``seed`` except wall-clock timestamps.

    Main knobs:
        host, port: where to listen (``port=0`` picks a free port; see :attr:`port`).
        tls: serve ``https``/``wss`` with a certificate signed by a throwaway trustme CA
            (:attr:`cacert`); ``False`` serves plain ``http``/``ws``.
        seed: drives the session id, the market model, ids and the seeded execution history.
        heartbeat_interval: seconds between ``{"topic":"system","hb":ms}`` frames (default 10).
        binary_frames: send server frames as binary WebSocket frames (as the gateway does);
            ``False`` sends text frames.
        tic_replies: how many identical replies a ``tic`` gets (the 2026 gateway sends 4).
        drop_early_frames: ignore client frames received before the confirmation burst (they are
            recorded as dropped), like the real gateway.
        greeting_delay: seconds between authentication and the ``system``/``act``/``sts`` burst
            (the gap in which client frames are dropped; fast 0.05, live 0.15).
        md_interval: seconds between market ticks on the gateway-wide grid (``smd`` deltas, limit
            order fills; fast 0.25, live 0.5).
        smd_expiry: an ``smd`` stream silently ends this many seconds after its last ``smd``.
        ledger_interval: seconds between ``sld`` frames (also ``ssd`` updates unless
            ``summary_interval`` is given).
        pnl_interval: seconds between ``spl`` frames.
        max_history: concurrent ``smh`` per connection; one more gets
            ``{"error":"Exceeded the maximum of 5 concurrent historical data subscriptions",
            "code":429,"topic":"smh+<conid>"}``.
        account, username: the simulated login.
        number_frames: add ``"_seq": n`` (per-connection counter from 1) to every JSON frame the
            simulator sends (not to ``send_raw`` payloads), so tests can prove nothing was lost.
        allowed_hosts: caller addresses (or CIDR networks, or ``"*"``) that may connect; others get
            ``404 Access Denied`` like ``ips.allow`` on the real gateway.

    Extra knobs (keyword-only):
        umh_confirmation: answer ``umh+<serverId>`` with ``{"message":"Unsubscribed <serverId>"}``
            (default True; the official docs promise nothing, ibind expects this text).
        echo_hb: echo ``ech+hb`` back as the text ``ech+hb`` (old doc behaviour; default False).
        is_paper: value of ``isPaper`` in ``system``/``act``.
        volatility, trade_probability: per-step relative sd of the mid and chance of a trade print.
        order_step_delay: seconds between the lifecycle frames of an order (live: all within 50 ms).
        fill_delay: seconds from ``Submitted`` to the fill of a marketable order.
        commission_delay: seconds before an execution is re-sent on ``str`` with ``commission``.
        summary_interval: seconds between ``ssd`` updates (default: ``ledger_interval``).
        sbd_interval: seconds between ``sbd`` ladder frames (default: ``md_interval``).
        unavailable_conids: conids answered with ``"31":"N/A","55":"-"`` (default 8595, 104747).
        require_accounts_preflight: ``smd`` answers ``{"error":"No accounts","code":500,
            "topic":"smd"}`` until REST ``/iserver/accounts`` was called (live behaviour; default off).
        snapshot_preflight: the first REST snapshot of a conid carries no field values (live; off).
        order_confirmations: order placement first answers with confirmation prompts (one reply id
            each, ``order_prompts``) that must be confirmed via ``POST /iserver/reply/{id}``
            ``{"confirmed":true}`` (fast off, live on).
        orders_filter_mutes_sor: ``GET /iserver/account/orders?filters=...`` mutes ``sor`` until a
            call with ``force=true`` (live quirk; default on).
        reauthenticate_delay: if set, ``POST /iserver/reauthenticate`` restores authentication after
            that many seconds; default None = only :meth:`set_authenticated` restores it.
        initial_cash: starting USD cash of the account.
        history_days: how many days of seeded executions (and positions) exist at start.
        max_history_bars: cap on the bars of one ``smh`` answer.
        record_sent: keep every sent frame for :meth:`sent_frames` (costs memory; default off).
        session_id: use this 32-hex session id instead of the seed-derived one.
        session_timeout: if set, the brokerage session lapses when neither ``/tickle`` nor ``tic``
            was seen for that many seconds: REST then says unauthenticated and every stream stops
            without any frame (the socket "goes quiet", as observed live). Default None = never.
        oauth: serve IBKR's OAuth instead of a logged-in gateway: ``"1.0a"``, ``"2.0"``, True (both)
            or a :class:`rxibkr.sim.oauth.SimOAuth`; :attr:`oauth` then hands out matching client
            configs (``sim.oauth.oauth1a_config`` / ``oauth2_config``). See ``rxibkr/sim/oauth.py``.

    Profile and fidelity switches (docs/simulator.md; keywords left out take the profile's value):
        profile: ``"fast"`` (default: quick timing for tests) or ``"live"`` (the timing of live
            gateways: 500 ms grid, ~3 frames/s for 25 conids, delayed first updates, prompts...).
        greeting: send ``system``/``act``/``sts`` after the session (default: on, or the
            ``RXIBKR_SIM_GREETING`` environment variable); off, only heartbeats and data come.
        shared_heartbeat_clock: heartbeats on one gateway-wide clock (default on); off: per socket.
        md_rate: None (every subscribed conid every tick) or updates per second per active conid,
            shared by seeded liquidity weights.
        md_first_delay: None (first update at once) or ``(low, high)`` seconds of a seeded per-conid
            delay; the first update goes out on the next tick, in the order the gateway has data.
        priceless_first: share of instruments whose first two frames carry only ``6509``.
        c_prefix_before_trade: 31 shows ``C<prior close>`` until the first trade (fast); off, the
            market opens with a trade (live). market_closed: frozen values with the ``C`` prefix.
        global_server_id: ``server_id`` counts up across connections (live) instead of per socket.
        order_prompts: message ids of the confirmation prompts (with ``order_confirmations``).
        order_burst_delay: hold an order's ``sor`` updates this long after placing, then send them
            in one burst whose first frame is a full ``PendingSubmit`` object.
        str_days, str_day_frames, str_resend_after: default history days of ``str``; the history
            day by day with empty frames for days without trades; a resend pass after that long.
        trailing_slash: REST routes also answer with a trailing ``/`` (default on).
        max_conid: conids at or above are rejected with an error (default 900 000 000; None: never).
        pnl_follows_prices: held instruments tick with the market and ``spl`` skips repeated rows.

    Faults (any thread, while running): :meth:`drop_connections`, :meth:`pause_heartbeats`,
    :meth:`resume_heartbeats`, :meth:`stop_pongs`, :meth:`resume_pongs`, :meth:`set_authenticated`,
    :meth:`competing_session`, :meth:`maintenance`, :meth:`end_maintenance`, :meth:`stall_handshake`,
    :meth:`send_raw`, :meth:`latency`, :meth:`push_notification`, :meth:`push_bulletin`,
    :meth:`push_account_update`.

    Market and order helpers: :meth:`set_price`, :meth:`quote`, :meth:`market_step`,
    :meth:`place_order`, :meth:`fill_order`, :meth:`cancel_order`, :meth:`orders`, :meth:`burst`.

    Inspection: :meth:`received_frames`, :meth:`received_log`, :meth:`sent_frames`,
    :attr:`sent_count`, :attr:`connection_count`, :attr:`total_connections`, :attr:`authenticated`,
    :meth:`active_subscriptions`, :meth:`wait_for`.

    Choices where the sources are silent or disagree (see the protocol reference):
        * a sixth ``smh`` gets ``{"error":"Exceeded the maximum of 5 concurrent historical data
          subscriptions","code":429,"topic":"smh+<conid>"}``; ``umh`` answers
          ``{"message":"Unsubscribed <serverId>"}``;
        * a bad ``smd``/``smh`` target gets ``{"error":"invalid conid '<target>'","code":400,
          "topic":"smd"}``; unknown commands and a session message on an authenticated socket get
          ``{"error":"Topic unknown","code":1}``;
        * re-sending ``smd`` answers one frame with the current values of all its fields;
        * the ``smd`` topic stays ``smd+<conid>`` for ``<conid>@<exchange>`` (``conidEx`` carries the
          exchange);
        * ``points`` in ``smh`` is the number of bars minus one (as in the documented example);
        * order cancel answers ``conid: -1, account: null`` as recorded live;
        * ``act``'s internal ``sessionId`` is ``"<8 hex>.<connection id as 8 hex>"``, so a test can
          tell which connection a greeting came from (ids as in :meth:`received_frames`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        seed: int = 0,
        heartbeat_interval: float | None = None,
        *,
        profile: str = "fast",
        binary_frames: bool = True,
        tic_replies: int = 4,
        drop_early_frames: bool = True,
        greeting_delay: float | None = None,
        md_interval: float | None = None,
        smd_expiry: float = 600.0,
        ledger_interval: float = 10.0,
        pnl_interval: float | None = None,
        max_history: int = 5,
        account: str = "DU1234567",
        username: str = "simuser",
        number_frames: bool = False,
        allowed_hosts: Iterable[str] = ("127.0.0.1", "::1"),
        umh_confirmation: bool = True,
        echo_hb: bool = False,
        is_paper: bool = True,
        volatility: float = 0.0005,
        trade_probability: float = 0.5,
        order_step_delay: float = 0.005,
        fill_delay: float = 0.05,
        commission_delay: float = 0.05,
        summary_interval: float | None = None,
        sbd_interval: float | None = None,
        unavailable_conids: Iterable[int] = DEFAULT_UNAVAILABLE_CONIDS,
        require_accounts_preflight: bool = False,
        snapshot_preflight: bool = False,
        order_confirmations: bool | None = None,
        orders_filter_mutes_sor: bool = True,
        reauthenticate_delay: float | None = None,
        initial_cash: float = 1_000_000.0,
        history_days: int = 3,
        max_history_bars: int = 1000,
        record_sent: bool = False,
        session_id: str | None = None,
        session_timeout: float | None = None,
        oauth: SimOAuth | str | bool | None = None,
        greeting: bool | None = None,
        shared_heartbeat_clock: bool = True,
        md_rate: float | Literal["profile"] | None = PROFILE,
        md_first_delay: tuple[float, float] | Literal["profile"] | None = PROFILE,
        priceless_first: float | None = None,
        c_prefix_before_trade: bool | None = None,
        market_closed: bool = False,
        global_server_id: bool | None = None,
        order_prompts: Iterable[str] | None = None,
        order_burst_delay: float | Literal["profile"] | None = PROFILE,
        str_days: int | None = None,
        str_day_frames: bool | None = None,
        str_resend_after: float | Literal["profile"] | None = PROFILE,
        trailing_slash: bool = True,
        max_conid: int | None = DEFAULT_MAX_CONID,
        pnl_follows_prices: bool = True,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
        defaults = PROFILES[profile]

        def pick(name: str, value: Any) -> Any:
            return defaults[name] if value is None or value == PROFILE else value

        if greeting is None:
            env = greeting_from_environment()
            greeting = True if env is None else env
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port!r}")
        if session_id is not None and (
            len(session_id) != 32 or any(c not in "0123456789abcdef" for c in session_id)
        ):
            raise ValueError("session_id must be 32 lower-case hex characters")
        if not 0.0 <= float(trade_probability) <= 1.0:
            raise ValueError(f"trade_probability must be within 0..1, got {trade_probability!r}")
        if tic_replies < 1:
            raise ValueError(f"tic_replies must be >= 1, got {tic_replies!r}")
        if max_history < 0:
            raise ValueError(f"max_history must be >= 0, got {max_history!r}")
        if not account:
            raise ValueError("account must not be empty")
        rate = defaults["md_rate"] if md_rate == PROFILE else md_rate
        first_delay = defaults["md_first_delay"] if md_first_delay == PROFILE else md_first_delay
        if first_delay is not None:
            low, high = (float(x) for x in first_delay)
            if not 0.0 <= low <= high:
                raise ValueError(
                    f"md_first_delay must be (low, high) with 0 <= low <= high, got {first_delay!r}"
                )
            first_delay = (low, high)
        share = float(pick("priceless_first", priceless_first))
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"priceless_first must be within 0..1, got {share!r}")
        prompts = tuple(
            str(m) for m in pick("order_prompts", None if order_prompts is None else tuple(order_prompts))
        )
        days = int(pick("str_days", str_days))
        if not 1 <= days <= 7:
            raise ValueError(f"str_days must be within 1..7, got {days!r}")
        burst = defaults["order_burst_delay"] if order_burst_delay == PROFILE else order_burst_delay
        resend = defaults["str_resend_after"] if str_resend_after == PROFILE else str_resend_after
        if max_conid is not None and max_conid < 1:
            raise ValueError(f"max_conid must be >= 1 or None, got {max_conid!r}")
        self._config = SimConfig(
            host=host,
            port=int(port),
            tls=bool(tls),
            seed=int(seed),
            heartbeat_interval=_positive(
                "heartbeat_interval", pick("heartbeat_interval", heartbeat_interval)
            ),
            binary_frames=bool(binary_frames),
            tic_replies=int(tic_replies),
            drop_early_frames=bool(drop_early_frames),
            greeting_delay=_positive(
                "greeting_delay", pick("greeting_delay", greeting_delay), allow_zero=True
            ),
            md_interval=_positive("md_interval", pick("md_interval", md_interval)),
            smd_expiry=_positive("smd_expiry", smd_expiry),
            ledger_interval=_positive("ledger_interval", ledger_interval),
            pnl_interval=_positive("pnl_interval", pick("pnl_interval", pnl_interval)),
            max_history=int(max_history),
            account=account,
            username=username,
            number_frames=bool(number_frames),
            allowed_hosts=tuple(allowed_hosts),
            umh_confirmation=bool(umh_confirmation),
            echo_hb=bool(echo_hb),
            is_paper=bool(is_paper),
            volatility=_positive("volatility", volatility, allow_zero=True),
            trade_probability=float(trade_probability),
            order_step_delay=_positive("order_step_delay", order_step_delay, allow_zero=True),
            fill_delay=_positive("fill_delay", fill_delay, allow_zero=True),
            commission_delay=_positive("commission_delay", commission_delay, allow_zero=True),
            summary_interval=None
            if summary_interval is None
            else _positive("summary_interval", summary_interval),
            sbd_interval=None if sbd_interval is None else _positive("sbd_interval", sbd_interval),
            unavailable_conids=frozenset(int(c) for c in unavailable_conids),
            require_accounts_preflight=bool(require_accounts_preflight),
            snapshot_preflight=bool(snapshot_preflight),
            order_confirmations=bool(pick("order_confirmations", order_confirmations)),
            orders_filter_mutes_sor=bool(orders_filter_mutes_sor),
            reauthenticate_delay=None
            if reauthenticate_delay is None
            else _positive("reauthenticate_delay", reauthenticate_delay, allow_zero=True),
            initial_cash=float(initial_cash),
            history_days=int(history_days),
            max_history_bars=int(max_history_bars),
            record_sent=bool(record_sent),
            session_id=session_id or "",
            session_timeout=None
            if session_timeout is None
            else _positive("session_timeout", session_timeout),
            profile=profile,
            greeting=bool(greeting),
            shared_heartbeat_clock=bool(shared_heartbeat_clock),
            md_rate=None if rate is None else _positive("md_rate", rate),
            md_first_delay=first_delay,
            priceless_first=share,
            c_prefix_before_trade=bool(pick("c_prefix_before_trade", c_prefix_before_trade)),
            market_closed=bool(market_closed),
            global_server_id=bool(pick("global_server_id", global_server_id)),
            order_prompts=prompts,
            order_burst_delay=None
            if burst is None
            else _positive("order_burst_delay", burst, allow_zero=True),
            str_days=days,
            str_day_frames=bool(pick("str_day_frames", str_day_frames)),
            str_resend_after=None
            if resend is None
            else _positive("str_resend_after", resend, allow_zero=True),
            trailing_slash=bool(trailing_slash),
            max_conid=None if max_conid is None else int(max_conid),
            pnl_follows_prices=bool(pnl_follows_prices),
        )
        address_filter(self._config.allowed_hosts)
        self.oauth: SimOAuth | None = make_sim_oauth(oauth)  # OAuth hook (rxibkr/sim/oauth.py)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gateway: Gateway | None = None
        self._runner: web.AppRunner | None = None
        self._tls: TlsMaterial | None = None
        self._port = 0

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> GatewaySimulator:
        """Start listening (returns once the port is bound). Calling it again is a no-op."""
        with self._lock:
            if self._thread is not None:
                return self
            cfg = self._config
            self._tls = TlsMaterial.create(("127.0.0.1", "localhost", "::1", cfg.host)) if cfg.tls else None
            if self.oauth is not None:  # OAuth hook: key files for the client
                self.oauth.bind(self)
                self.oauth.write_files()
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            errors: list[BaseException] = []
            thread = threading.Thread(
                target=self._thread_main, args=(loop, ready, errors), name="rxibkr-sim", daemon=True
            )
            self._loop = loop
            thread.start()
            if not ready.wait(15.0):
                raise RuntimeError("simulator did not start within 15 s")
            if errors:
                thread.join(5.0)
                self._loop = None
                if self._tls is not None:
                    self._tls.cleanup()
                    self._tls = None
                raise errors[0]
            self._thread = thread
        log.info("gateway simulator listening on port %d", self._port)
        return self

    def _thread_main(
        self, loop: asyncio.AbstractEventLoop, ready: threading.Event, errors: list[BaseException]
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._astart(loop))
        except BaseException as exc:  # reported to start()
            errors.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
            loop.close()

    async def _astart(self, loop: asyncio.AbstractEventLoop) -> None:
        gateway = Gateway(self._config, loop)
        app = build_app(gateway)
        if self.oauth is not None:  # OAuth hook: middleware and a closed brokerage session
            self.oauth.install(app, gateway)
        # handler_cancellation: a client that hangs up ends its handler, so an upgrade held by
        # stall_handshake() and then abandoned is released (stalled_handshakes counts waiting clients)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(
            runner, self._config.host, self._config.port, ssl_context=self._tls.context if self._tls else None
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        gateway.start()
        self._gateway = gateway
        self._runner = runner
        addresses = runner.addresses
        self._port = int(addresses[0][1]) if addresses else self._config.port

    async def _astop(self) -> None:
        if self._gateway is not None:
            await self._gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        """Close every socket, stop listening, join the thread, remove the CA file. Idempotent."""
        with self._lock:
            thread, loop = self._thread, self._loop
            self._thread = None
            if thread is None or loop is None:
                return
            try:
                asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=5.0)
            except Exception:
                log.warning("simulator shutdown was not clean", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5.0)
            self._loop = None
            self._runner = None  # the gateway stays readable: inspection works after stop()
            if self._tls is not None:
                self._tls.cleanup()
                self._tls = None
            if self.oauth is not None:  # OAuth hook: remove the key files
                self.oauth.cleanup()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def __enter__(self) -> GatewaySimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- addresses -----------------------------------------------------------------------------------
    @property
    def config(self) -> SimConfig:
        return self._config

    @property
    def port(self) -> int:
        return self._port

    @property
    def host(self) -> str:
        return self._config.host

    def _url_host(self) -> str:
        host = self._config.host
        if host in ("0.0.0.0", ""):
            return "127.0.0.1"
        if host == "::":
            return "[::1]"
        return f"[{host}]" if ":" in host else host

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self._config.tls else "ws"
        return f"{scheme}://{self._url_host()}:{self._port}{WS_PATH}"

    @property
    def rest_url(self) -> str:
        scheme = "https" if self._config.tls else "http"
        return f"{scheme}://{self._url_host()}:{self._port}{PREFIX}"

    @property
    def cacert(self) -> str | None:
        """Path of the CA PEM that signed the server certificate (None without TLS or when stopped)."""
        return self._tls.cacert if self._tls is not None else None

    @property
    def session_id(self) -> str:
        return self._config.resolved_session_id()

    @property
    def account(self) -> str:
        return self._config.account

    @property
    def cookie(self) -> str:
        """A ready-made ``Cookie`` value for the upgrade: ``api={"session":"<id>"}``."""
        return 'api={"session":"' + self.session_id + '"}'

    # --- marshalling ---------------------------------------------------------------------------------
    def _gw(self) -> Gateway:
        gw = self._gateway
        if gw is None or self._loop is None or self._thread is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return gw

    def _in_loop(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _call(self, fn: Callable[[Gateway], T], timeout: float = 5.0) -> T:
        """Run ``fn(gateway)`` on the simulator's loop and return its result."""
        gw = self._gw()
        if self._in_loop():
            return fn(gw)
        loop = self._loop
        assert loop is not None
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(gw))
            except BaseException as exc:
                fut.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    def _await(self, fn: Callable[[Gateway], Awaitable[T]], timeout: float = 10.0) -> T | None:
        """Run coroutine ``fn(gateway)`` on the loop; wait for it unless called from the loop itself."""
        gw = self._gw()
        loop = self._loop
        assert loop is not None
        if self._in_loop():
            loop.create_task(_as_coroutine(fn(gw)))
            return None
        return asyncio.run_coroutine_threadsafe(_as_coroutine(fn(gw)), loop).result(timeout)

    # --- faults --------------------------------------------------------------------------------------
    def drop_connections(self) -> int:
        """Abort every TCP connection without a close frame; returns how many were dropped."""
        return self._call(lambda gw: gw.drop_connections())

    def pause_heartbeats(self, seconds: float | None = None) -> None:
        """Stop ``system`` heartbeats for ``seconds`` (None: until :meth:`resume_heartbeats`)."""
        self._call(lambda gw: gw.pause_heartbeats(seconds))

    def resume_heartbeats(self) -> None:
        self._call(lambda gw: gw.resume_heartbeats())

    def stop_pongs(self) -> None:
        """Stop answering WebSocket pings (the connection otherwise stays up)."""
        self._call(lambda gw: setattr(gw, "pongs_enabled", False))

    def resume_pongs(self) -> None:
        self._call(lambda gw: setattr(gw, "pongs_enabled", True))

    def set_authenticated(self, authenticated: bool) -> None:
        """False: push ``sts`` authenticated:false to every socket, stop all their streams for good,
        REST says unauthenticated (``/iserver/*`` -> 401). True: REST says authenticated again and
        nothing is pushed (recovery is silent); only new connections get data."""
        self._call(lambda gw: gw.set_authenticated(authenticated))

    def competing_session(self, competing: bool = True, *, lose_auth: bool = False) -> None:
        """Push ``sts`` with ``competing`` (REST reports it too); ``lose_auth`` also drops the brokerage
        session like ``set_authenticated(False)``."""
        self._call(lambda gw: gw.competing_session(competing, lose_auth))

    def maintenance(self, seconds: float) -> None:
        """Close every socket with code 1000 and answer 503 to upgrades and REST for ``seconds``."""
        _positive("seconds", seconds, allow_zero=True)
        self._await(lambda gw: gw.maintenance(seconds))

    def end_maintenance(self) -> None:
        self._call(lambda gw: gw.end_maintenance())

    def stall_handshake(self, stall: bool = True) -> None:
        """True: accept TCP/TLS and read the upgrade request but never answer it. False: answer the
        held requests (clients still waiting get upgraded) and new ones normally."""
        self._call(lambda gw: gw.stall_handshake(stall))

    @property
    def expired_market_data(self) -> int:
        """``smd`` streams the simulator has ended because no ``smd`` renewed them within
        ``smd_expiry`` (they end silently, as on a live gateway)."""
        return self._call(lambda gw: gw.md_expired)

    @property
    def stalled_handshakes(self) -> int:
        """Upgrade requests held by :meth:`stall_handshake` right now, from clients still connected
        (one that hangs up is released; a test waits for its client)."""
        return self._call(lambda gw: len(gw._stalled_requests))

    def send_raw(self, data: bytes | str, binary: bool | None = None) -> int:
        """Send ``data`` as-is to every open socket (binary or text opcode; default as configured).
        A text frame may carry invalid UTF-8. Returns the number of sockets."""
        return self._call(lambda gw: gw.send_raw(data, binary))

    def latency(self, ms: float) -> None:
        """Delay every outgoing frame (including pongs) by ``ms`` milliseconds; 0 disables."""
        seconds = _positive("ms", ms, allow_zero=True) / 1000.0
        self._call(lambda gw: setattr(gw, "latency", seconds))

    def push_notification(
        self,
        text: str | None = None,
        *,
        id: str | None = None,
        title: str | None = None,
        url: str | None = None,
        args: list[dict[str, Any]] | None = None,
    ) -> int:
        """Push ``{"topic":"ntf","args":[{"id","text","title","url"}]}`` (or the given ``args`` list)
        to every authenticated socket; returns the number of sockets."""
        if args is None:
            args = [{"id": id if id is not None else "1", "text": text or "", "title": title, "url": url}]
        frame = {"topic": "ntf", "args": args}
        return self._call(lambda gw: gw.broadcast(frame))

    def push_bulletin(self, message: str, *, id: int | None = None, exchanges: str | None = None) -> int:
        """Push ``{"topic":"blt","args":[{"id","exchanges","message"}]}`` (live shape)."""
        frame = {
            "topic": "blt",
            "args": [{"id": id if id is not None else 1, "exchanges": exchanges, "message": message}],
        }
        return self._call(lambda gw: gw.broadcast(frame))

    def push_account_update(self) -> int:
        """Re-send ``act`` to every authenticated socket (as on an account change)."""
        return self._call(lambda gw: gw.push_act())

    # --- market and order helpers ------------------------------------------------------------------------
    def set_price(self, conid: int, price: float, *, trade: bool = True) -> None:
        """Move an instrument's market to ``price`` (and print a trade there unless ``trade=False``);
        subscribers see it on the next market step, resting limit orders fill if crossed."""

        def run(gw: Gateway) -> None:
            gw.market.quote(conid).set_price(price, trade=trade)
            gw.orders.on_quote(conid)

        self._call(run)

    def quote(self, conid: int) -> dict[str, Any]:
        """The model's current quote: bid, ask, last (None before the first trade), mid, prior_close."""

        def run(gw: Gateway) -> dict[str, Any]:
            q = gw.market.quote(conid)
            return {
                "conid": conid,
                "symbol": q.inst.symbol,
                "available": q.inst.available,
                "bid": q.bid,
                "ask": q.ask,
                "last": q.last,
                "mid": q.mid,
                "prior_close": q.prior_close,
                "volume": q.volume,
                "bid_size": q.bid_size,
                "ask_size": q.ask_size,
            }

        return self._call(run)

    def market_step(self, count: int = 1) -> None:
        """Advance the market model ``count`` steps right now (pushing deltas as a timer step would)."""

        def run(gw: Gateway) -> None:
            for _ in range(count):
                gw.market_step()

        self._call(run)

    def place_order(
        self,
        conid: int,
        side: str,
        quantity: float,
        order_type: str = "MKT",
        price: float | None = None,
        tif: str = "DAY",
        coid: str | None = None,
    ) -> int:
        """Place an order exactly as ``POST .../orders`` would; returns the order id."""
        spec: dict[str, Any] = {
            "conid": conid,
            "side": side,
            "quantity": quantity,
            "orderType": order_type,
            "tif": tif,
        }
        if price is not None:
            spec["price"] = price
        if coid is not None:
            spec["cOID"] = coid
        return self._call(lambda gw: gw.orders.place(spec, gw.config.account).order_id)

    def fill_order(self, order_id: int, price: float | None = None, quantity: float | None = None) -> None:
        """Execute (part of) a working order now, at ``price`` (default: the market)."""
        self._call(lambda gw: gw.orders.fill(order_id, price=price, quantity=quantity))

    def cancel_order(self, order_id: int) -> None:
        self._call(lambda gw: gw.orders.cancel(order_id))

    def orders(self) -> list[dict[str, Any]]:
        """Full objects of every order of this session."""
        return self._call(lambda gw: [full_object(o) for o in gw.orders.orders.values()])

    def burst(self, conid: int, count: int) -> int:
        """Send ``count`` smd frames for ``conid`` to every subscribed socket as fast as the sockets
        take them (load tests); returns the number of frames queued."""
        return self._await(lambda gw: gw.burst(conid, count), timeout=600.0) or 0

    # --- inspection ----------------------------------------------------------------------------------
    def received_frames(self, dropped: bool | None = None) -> list[tuple[int, str]]:
        """``(connection_id, text)`` of every client frame, in order; ``dropped=True`` only those
        ignored as early (before the session/confirmation), ``False`` only those acted upon.
        The log keeps the last 100 000 frames and stays readable after :meth:`stop`."""
        return [
            (f.connection_id, f.text) for f in self.received_log() if dropped is None or f.dropped == dropped
        ]

    def received_log(self) -> list[ReceivedFrame]:
        """Like :meth:`received_frames` with the ``dropped`` flag and the arrival time."""
        gw = self._gateway
        return gw.received() if gw is not None else []

    def sent_frames(self) -> list[tuple[int, bytes]]:
        """``(connection_id, payload)`` of every frame handed to a socket (only with
        ``record_sent=True``). A frame still in the kernel buffer when the connection is dropped is
        recorded although the client never gets it."""
        gw = self._gateway
        return gw.sent_log() if gw is not None else []

    @property
    def sent_count(self) -> int:
        """Frames written to clients so far (pongs excluded)."""
        gw = self._gateway
        return gw.sent_count if gw is not None else 0

    @property
    def connection_count(self) -> int:
        """WebSocket connections currently open."""
        gw = self._gateway
        return len(gw.connections) if gw is not None and self._thread is not None else 0

    @property
    def total_connections(self) -> int:
        """WebSocket connections accepted since start."""
        gw = self._gateway
        return gw.total_connections if gw is not None else 0

    @property
    def authenticated(self) -> bool:
        gw = self._gateway
        return gw.authenticated if gw is not None else False

    def active_subscriptions(self) -> dict[int, dict[str, list[str]]]:
        """Per connection id: active topics and their targets, e.g.
        ``{1: {"smd": ["265598"], "smh": ["100123"], "sor": [""], "spl": [""], "ssd": ["DU1234567"]}}``."""
        return self._call(lambda gw: gw.subscriptions())

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
        """Poll ``predicate`` until it is true (returns True) or ``timeout`` passes (returns False)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
