"""All knobs of the simulator in one immutable record, shared by every part of it, and the two
profiles that set their defaults: ``fast`` (tests) and ``live`` (timing recorded on live gateways)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

# Conids that the simulated gateway knows but has no data for: market data answers
# ``"31":"N/A"`` / ``"55":"-"``. 8595 comes from a live capture, 104747 from a live REST snapshot.
DEFAULT_UNAVAILABLE_CONIDS: frozenset[int] = frozenset({8595, 104747})

#: Conids at or above this do not exist: the gateway rejects them (real conids are below 800 million
#: in 2026; 999999999 is the classic probe).
DEFAULT_MAX_CONID = 900_000_000

#: Confirmation prompts of a live placement (price cap, no market data, mandatory cap price).
LIVE_ORDER_PROMPTS: tuple[str, ...] = ("o163", "o354", "o10153")

#: Environment variable giving the default of ``greeting`` when the caller passes none
#: (``0``/``off``/``false``/``no`` or ``1``/``on``/``true``/``yes``).
GREETING_ENV = "RXIBKR_SIM_GREETING"

PROFILES: dict[str, dict[str, Any]] = {
    # today's timing: everything quick and every conid ticking, for tests
    "fast": {
        "heartbeat_interval": 10.0,
        "greeting_delay": 0.05,
        "md_interval": 0.25,
        "md_rate": None,
        "md_first_delay": None,
        "priceless_first": 0.0,
        "c_prefix_before_trade": True,
        "global_server_id": False,
        "order_confirmations": False,
        "order_prompts": ("o354",),
        "order_burst_delay": None,
        "str_days": 1,
        "str_day_frames": False,
        "str_resend_after": None,
        "pnl_interval": 1.0,
    },
    # the numbers of live 2026 recordings (issue 14; docs/simulator.md)
    "live": {
        "heartbeat_interval": 10.0,
        "greeting_delay": 0.15,
        "md_interval": 0.5,
        "md_rate": 0.135,  # updates per second per subscribed conid: ~3 frames/s for 25 conids
        "md_first_delay": (0.2, 0.6),  # + the 0.5 s grid: first update 0.2-1.1 s after smd
        "priceless_first": 0.2,
        "c_prefix_before_trade": False,
        "global_server_id": True,
        "order_confirmations": True,
        "order_prompts": LIVE_ORDER_PROMPTS,
        "order_burst_delay": 0.35,
        "str_days": 7,
        "str_day_frames": True,
        "str_resend_after": 5.0,
        "pnl_interval": 1.0,
    },
}


@dataclass(frozen=True)
class SimConfig:
    """Configuration of one simulated gateway. See :class:`rxibkr.sim.GatewaySimulator`."""

    host: str = "127.0.0.1"
    port: int = 0
    tls: bool = True
    seed: int = 0
    heartbeat_interval: float = 10.0
    binary_frames: bool = True
    tic_replies: int = 4
    drop_early_frames: bool = True
    greeting_delay: float = 0.05
    md_interval: float = 0.25
    smd_expiry: float = 600.0
    ledger_interval: float = 10.0
    pnl_interval: float = 1.0
    max_history: int = 5
    account: str = "DU1234567"
    username: str = "simuser"
    number_frames: bool = False
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    # --- extra knobs -------------------------------------------------------------------------
    umh_confirmation: bool = True
    echo_hb: bool = False
    is_paper: bool = True
    volatility: float = 0.0005
    trade_probability: float = 0.5
    order_step_delay: float = 0.005
    fill_delay: float = 0.05
    commission_delay: float = 0.05
    summary_interval: float | None = None
    sbd_interval: float | None = None
    unavailable_conids: frozenset[int] = DEFAULT_UNAVAILABLE_CONIDS
    require_accounts_preflight: bool = False
    snapshot_preflight: bool = False
    order_confirmations: bool = False
    orders_filter_mutes_sor: bool = True
    reauthenticate_delay: float | None = None
    initial_cash: float = 1_000_000.0
    history_days: int = 3
    max_history_bars: int = 1000
    record_sent: bool = False
    session_timeout: float | None = None
    session_id: str = field(default="")
    # --- fidelity switches (issue 14) ----------------------------------------------------------
    profile: str = "fast"
    greeting: bool = True
    shared_heartbeat_clock: bool = True
    md_rate: float | None = None
    md_first_delay: tuple[float, float] | None = None
    priceless_first: float = 0.0
    c_prefix_before_trade: bool = True
    market_closed: bool = False
    global_server_id: bool = False
    order_prompts: tuple[str, ...] = ("o354",)
    order_burst_delay: float | None = None
    str_days: int = 1
    str_day_frames: bool = False
    str_resend_after: float | None = None
    trailing_slash: bool = True
    max_conid: int | None = DEFAULT_MAX_CONID
    pnl_follows_prices: bool = True

    def resolved_session_id(self) -> str:
        """The 32-hex-char session id: the explicit one, or one derived from the seed."""
        if self.session_id:
            return self.session_id
        return derive_hex(self.seed, "session", 32)

    @property
    def effective_summary_interval(self) -> float:
        return self.ledger_interval if self.summary_interval is None else self.summary_interval

    @property
    def effective_sbd_interval(self) -> float:
        return self.md_interval if self.sbd_interval is None else self.sbd_interval

    def conid_exists(self, conid: int) -> bool:
        """False for conids the gateway rejects as unknown (at or above ``max_conid``)."""
        return self.max_conid is None or conid < self.max_conid


def greeting_from_environment(environ: dict[str, str] | None = None) -> bool | None:
    """The ``RXIBKR_SIM_GREETING`` setting: True/False, or None when unset or empty."""
    value = (os.environ if environ is None else environ).get(GREETING_ENV, "").strip().lower()
    if not value:
        return None
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ValueError(f"{GREETING_ENV} must be 0/1, on/off, true/false or yes/no, got {value!r}")


def derive_hex(seed: int, purpose: str, length: int) -> str:
    """Deterministic hex string derived from the seed and a purpose label."""
    digest = hashlib.sha256(f"rxibkr-sim:{purpose}:{seed}".encode()).hexdigest()
    while len(digest) < length:
        digest += hashlib.sha256(digest.encode()).hexdigest()
    return digest[:length]


def derive_int(seed: int, purpose: str, low: int, high: int) -> int:
    """Deterministic integer in ``[low, high]`` derived from the seed and a purpose label."""
    value = int(derive_hex(seed, purpose, 16), 16)
    return low + value % (high - low + 1)


def derive_unit(seed: int, purpose: str) -> float:
    """Deterministic float in ``[0, 1)`` derived from the seed and a purpose label."""
    return int(derive_hex(seed, purpose, 13), 16) / float(16**13)
