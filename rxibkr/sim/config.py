"""All knobs of the simulator in one immutable record, shared by every part of it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

# Conids that the simulated gateway knows but has no data for: market data answers
# ``"31":"N/A"`` / ``"55":"-"``. 8595 comes from a live capture, 104747 from a live REST snapshot.
DEFAULT_UNAVAILABLE_CONIDS: frozenset[int] = frozenset({8595, 104747})


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
