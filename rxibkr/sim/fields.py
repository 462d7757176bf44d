"""Market data field values, formatted the way the gateway formats them.

Prices are strings with the instrument's decimals (``"271.67"``), sizes are strings, ``87`` is a
K/M-suffixed string with a numeric ``87_raw`` twin, ``83`` (change %) is a JSON number. ``31`` carries
a ``C`` prefix when the value is frozen: always in a closed market (the last value, or the prior close),
and in an open market only before the instrument's first trade (the ``fast`` profile's market opens
without one; the ``live`` profile's opens with one, so no ``C`` there).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rxibkr.sim.instruments import UNIVERSE, Instrument
from rxibkr.sim.market import Quote

#: Service-params string (field 6508) as seen in live frames.
SERVICE_PARAMS = (
    "&serviceID1=122&serviceID2=123&serviceID3=203&serviceID4=775&serviceID5=204"
    "&serviceID6=206&serviceID7=108&serviceID8=109"
)


@dataclass(frozen=True)
class PositionView:
    """What the market-data fields 73-80 etc. need to know about a position."""

    quantity: float
    avg_cost: float
    realized: float
    prior_close_value: float  # quantity * prior close, for daily P&L


def fmt_number(value: float, decimals: int = 2) -> str:
    return f"{value:.{decimals}f}"


def fmt_size(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def fmt_volume(volume: float) -> tuple[str, float]:
    """``12_177_385 -> ("12.2M", 12200000.0)``: three significant digits with K/M/B suffix."""
    if volume < 1000:
        return str(int(volume)), float(int(volume))
    for unit, scale in (("K", 1e3), ("M", 1e6), ("B", 1e9)):
        scaled = volume / scale
        text = f"{scaled:.3g}"
        if float(text) < 1000 or unit == "B":
            if "e" in text:  # only reachable for absurd volumes
                text = f"{scaled:.0f}"
            return f"{text}{unit}", float(text) * scale
    raise AssertionError("unreachable")  # pragma: no cover


def fmt_big(value: float) -> str:
    """Large amounts (market cap, average volume) with a K/M/B/T suffix."""
    if value >= 1e12:
        return f"{value / 1e12:.3g}T"
    return fmt_volume(value)[0]


def availability(inst: Instrument, frozen: bool = False) -> str:
    """Field 6509: real-time for the built-in universe, delayed for generated instruments; frozen
    (``ZB``/``YB``, as seen live outside market hours) when the market is closed."""
    if frozen:
        return "ZB" if inst.conid in UNIVERSE else "YB"
    return "RpB" if inst.conid in UNIVERSE else "DPB"


@dataclass(frozen=True)
class Fundamentals:
    market_cap: float
    pe: float
    eps: float
    week52_high: float
    week52_low: float
    avg_volume: float
    hist_vol: float
    implied_vol: float
    dividend: float
    dividend_yield: float
    beta: float
    shortable_shares: float
    fee_rate: float
    ema: tuple[float, float, float, float]  # 200, 100, 50, 20


_FUNDAMENTALS: dict[int, Fundamentals] = {}


def fundamentals(inst: Instrument) -> Fundamentals:
    """Slow-moving reference values, stable per conid."""
    f = _FUNDAMENTALS.get(inst.conid)
    if f is not None:
        return f
    rng = random.Random(f"fundamentals:{inst.conid}")
    p = inst.price
    pe = rng.uniform(12.0, 45.0)
    f = Fundamentals(
        market_cap=p * rng.uniform(2e8, 1.5e10),
        pe=pe,
        eps=p / pe,
        week52_high=p * rng.uniform(1.05, 1.35),
        week52_low=p * rng.uniform(0.6, 0.92),
        avg_volume=rng.uniform(2e6, 8e7),
        hist_vol=rng.uniform(15.0, 55.0),
        implied_vol=rng.uniform(15.0, 60.0),
        dividend=round(p * rng.uniform(0.0, 0.02), 2),
        dividend_yield=rng.uniform(0.0, 2.5),
        beta=rng.uniform(0.6, 1.8),
        shortable_shares=rng.uniform(1e6, 5e8),
        fee_rate=rng.uniform(0.25, 0.5),
        ema=(
            p * rng.uniform(0.85, 1.05),
            p * rng.uniform(0.9, 1.05),
            p * rng.uniform(0.93, 1.05),
            p * rng.uniform(0.96, 1.04),
        ),
    )
    _FUNDAMENTALS[inst.conid] = f
    return f


Getter = Callable[[Quote, "PositionView | None"], Any]


def _last(q: Quote, _p: PositionView | None) -> Any:
    if q.last_t is None:
        return "C" + q.fmt(q.prior_close_t)
    if q.frozen:
        return "C" + q.fmt(q.last_t)
    return q.fmt(q.last_t)


def _change(q: Quote) -> float | None:
    """Change vs the prior close; zero until the first trade (31 shows the prior close then)."""
    if q.last_t is None:
        return 0.0
    return (q.last_t - q.prior_close_t) * q.inst.tick


def _chg(q: Quote, _p: PositionView | None) -> Any:
    c = _change(q)
    return None if c is None else fmt_number(c, q.inst.decimals)


def _chg_pct(q: Quote, _p: PositionView | None) -> Any:
    c = _change(q)
    if c is None or q.prior_close_t == 0:
        return None
    return round(100.0 * c / (q.prior_close_t * q.inst.tick), 2)


def _opt(q: Quote, ticks: int | None) -> Any:
    return None if ticks is None else q.fmt(ticks)


def _pos(fn: Callable[[Quote, PositionView], Any]) -> Getter:
    def getter(q: Quote, p: PositionView | None) -> Any:
        if p is None or p.quantity == 0:
            return None
        return fn(q, p)

    return getter


def _upl(q: Quote, p: PositionView) -> float:
    return p.quantity * (q.mark - p.avg_cost)


def _fund(attr: str, kind: str = "num") -> Getter:
    def getter(q: Quote, _p: PositionView | None) -> Any:
        if q.inst.sec_type != "STK":
            return None
        value = getattr(fundamentals(q.inst), attr)
        if kind == "price":
            return fmt_number(value, q.inst.decimals)
        if kind == "big":
            return fmt_big(value)
        if kind == "pct":
            return f"{value:.1f}%"
        return fmt_number(value, 2)

    return getter


def _ema(index: int) -> Getter:
    def getter(q: Quote, _p: PositionView | None) -> Any:
        return fmt_number(fundamentals(q.inst).ema[index], q.inst.decimals)

    return getter


def _ema_ratio(index: int) -> Getter:
    def getter(q: Quote, _p: PositionView | None) -> Any:
        ema = fundamentals(q.inst).ema[index]
        return f"{100.0 * (q.mark / ema - 1.0):.2f}%"

    return getter


GETTERS: dict[str, Getter] = {
    "31": _last,
    "55": lambda q, p: q.inst.symbol,
    "58": lambda q, p: None,
    "70": lambda q, p: _opt(q, q.high_t),
    "71": lambda q, p: _opt(q, q.low_t),
    "73": _pos(lambda q, p: fmt_number(p.quantity * q.mark)),
    "74": _pos(lambda q, p: fmt_number(p.avg_cost, q.inst.decimals)),
    "75": _pos(lambda q, p: fmt_number(_upl(q, p))),
    "76": _pos(lambda q, p: fmt_size(p.quantity)),
    "77": _pos(lambda q, p: fmt_number(_upl(q, p))),
    "78": _pos(lambda q, p: fmt_number(p.quantity * q.mark - p.prior_close_value)),
    "79": _pos(lambda q, p: fmt_number(p.realized)),
    "80": _pos(
        lambda q, p: f"{100.0 * _upl(q, p) / abs(p.quantity * p.avg_cost):.2f}%" if p.avg_cost else None
    ),
    "82": _chg,
    "83": _chg_pct,
    "84": lambda q, p: q.fmt(q.bid_t),
    "85": lambda q, p: fmt_size(q.ask_size),
    "86": lambda q, p: q.fmt(q.ask_t),
    "87": lambda q, p: fmt_volume(q.volume)[0],
    "88": lambda q, p: fmt_size(q.bid_size),
    "6004": lambda q, p: q.inst.exchange,
    "6008": lambda q, p: q.inst.conid,
    "6070": lambda q, p: q.inst.sec_type,
    "6457": lambda q, p: q.inst.conid if q.inst.sec_type == "STK" else None,
    "7051": lambda q, p: q.inst.company,
    "7057": lambda q, p: q.inst.exchange_code,
    "7058": lambda q, p: q.inst.exchange_code if q.last_t is not None else None,
    "7059": lambda q, p: fmt_size(q.last_size) if q.last_t is not None else None,
    "7068": lambda q, p: q.inst.exchange_code,
    "7087": _fund("hist_vol", "pct"),
    "7184": lambda q, p: "1",
    "7219": lambda q, p: q.inst.symbol,
    "7220": lambda q, p: f"{q.inst.symbol} {q.inst.listing_exchange}",
    "7221": lambda q, p: q.inst.listing_exchange,
    "7280": lambda q, p: q.inst.industry or None,
    "7281": lambda q, p: q.inst.category or None,
    "7282": _fund("avg_volume", "big"),
    "7283": _fund("implied_vol", "pct"),
    "7286": _fund("dividend"),
    "7287": _fund("dividend_yield", "pct"),
    "7289": _fund("market_cap", "big"),
    "7290": _fund("pe"),
    "7291": _fund("eps"),
    "7292": _pos(lambda q, p: fmt_number(p.quantity * p.avg_cost)),
    "7293": _fund("week52_high", "price"),
    "7294": _fund("week52_low", "price"),
    "7295": lambda q, p: _opt(q, q.open_t),
    "7296": lambda q, p: q.fmt(q.prior_close_t),
    "7635": lambda q, p: fmt_number(q.mark, q.inst.decimals),
    "7636": _fund("shortable_shares", "big"),
    "7637": _fund("fee_rate"),
    "7644": lambda q, p: "3.0000" if q.inst.sec_type == "STK" else None,
    "7674": _ema(0),
    "7675": _ema(1),
    "7676": _ema(2),
    "7677": _ema(3),
    "7678": _ema_ratio(0),
    "7679": _ema_ratio(1),
    "7724": _ema_ratio(2),
    "7681": _ema_ratio(3),
    "7682": lambda q, p: None if q.open_t is None or q.last_t is None else q.fmt(q.last_t - q.open_t),
    "7718": _fund("beta"),
    "7741": lambda q, p: q.fmt(q.prior_close_t),
    "7762": lambda q, p: str(q.volume),
    "7768": lambda q, p: "1",
    "7920": _pos(lambda q, p: round(p.quantity * q.mark - p.prior_close_value, 2)),
    "7921": _pos(lambda q, p: round(p.quantity * p.avg_cost, 2)),
}


def field_values(q: Quote, wanted: Iterable[str], position: PositionView | None = None) -> dict[str, Any]:
    """Current values of the wanted fields (those without a value are left out).

    For an unavailable instrument the answer is always ``{"31": "N/A", "55": "-"}``.
    Asking for ``87`` also yields ``87_raw``.
    """
    if not q.inst.available:
        return {"31": "N/A", "55": "-"}
    out: dict[str, Any] = {}
    for fid in wanted:
        getter = GETTERS.get(fid)
        if getter is None:
            continue
        value = getter(q, position)
        if value is None:
            continue
        out[fid] = value
        if fid == "87":
            out["87_raw"] = fmt_volume(q.volume)[1]
    return out
