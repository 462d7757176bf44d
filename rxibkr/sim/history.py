"""Historical bars for ``smh`` (and REST ``/iserver/marketdata/history``), derived from the model.

The bars are a backward random walk that ends at the instrument's current price, seeded by
(seed, conid, period, bar) so the same request gives the same shape. Bar times are contiguous
multiples of the bar length ending now (nights and weekends are not skipped); without
``outsideRth`` a "day" of period counts as 6.5 trading hours.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime
from typing import Any

from rxibkr.sim.instruments import Instrument

_PERIOD_RE = re.compile(r"^\s*(\d+)\s*(min|h|d|w|m|y)\s*$")
_UNIT_SECONDS = {"min": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}
_UNIT_LIMITS = {"min": 30, "h": 8, "d": 1000, "w": 792, "m": 182, "y": 15}
_TRADING_DAYS = {"d": 1, "w": 5, "m": 21, "y": 252}
_RTH_SECONDS = 23_400  # 6.5 h

BAR_SECONDS: dict[str, int] = {
    "1min": 60,
    "2min": 120,
    "3min": 180,
    "5min": 300,
    "10min": 600,
    "15min": 900,
    "30min": 1800,
    "1h": 3600,
    "2h": 7200,
    "3h": 10800,
    "4h": 14400,
    "8h": 28800,
    "1d": 86400,
    "1w": 7 * 86400,
    "1m": 30 * 86400,
}

DEFAULT_PERIOD = "1d"
DEFAULT_BAR = "5min"


def parse_period(text: str) -> tuple[int, str] | None:
    """``"2h" -> (2, "h")``; None when malformed or out of the documented range."""
    m = _PERIOD_RE.match(text)
    if m is None:
        return None
    n, unit = int(m.group(1)), m.group(2)
    if not 1 <= n <= _UNIT_LIMITS[unit]:
        return None
    return n, unit


def bar_count(n: int, unit: str, bar_seconds: int, outside_rth: bool, cap: int) -> int:
    calendar = n * _UNIT_SECONDS[unit]
    if bar_seconds >= 86400:
        days = n * _TRADING_DAYS.get(unit, 0)
        count = max(1, days) if bar_seconds == 86400 else math.ceil(calendar / bar_seconds)
    elif not outside_rth and unit in _TRADING_DAYS:
        count = math.ceil(n * _TRADING_DAYS[unit] * _RTH_SECONDS / bar_seconds)
    else:
        count = math.ceil(calendar / bar_seconds)
    return max(1, min(count, cap))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def build_history(
    inst: Instrument,
    last_price: float,
    args: dict[str, Any],
    *,
    seed: int,
    server_id: str,
    now_ms: int,
    max_bars: int,
) -> dict[str, Any]:
    """The §3.2 ``smh`` response body (without ``topic``).

    Malformed ``period``/``bar`` give the documented "default (empty) response": the same object
    with ``data: []`` and ``points: 0``.
    """
    period_text = str(args.get("period", DEFAULT_PERIOD))
    bar_text = str(args.get("bar", DEFAULT_BAR))
    outside_rth = _truthy(args.get("outsideRth", args.get("outsideRTH", False)))
    fmt = str(args.get("format", "%o/%c/%h/%l/%v"))
    keys = [k for k, code in (("o", "%o"), ("c", "%c"), ("h", "%h"), ("l", "%l"), ("v", "%v")) if code in fmt]
    if not keys:
        keys = ["o", "c", "h", "l", "v"]
    period = parse_period(period_text)
    bar_seconds = BAR_SECONDS.get(bar_text.strip())
    decimals = inst.decimals
    price_factor = 10**decimals

    bars: list[dict[str, Any]] = []
    if period is not None and bar_seconds is not None and inst.available and last_price > 0:
        n, unit = period
        count = bar_count(n, unit, bar_seconds, outside_rth, max_bars)
        rng = random.Random(f"history:{seed}:{inst.conid}:{period_text}:{bar_text}")
        sigma = 0.015 * math.sqrt(bar_seconds / _RTH_SECONDS)
        closes = [last_price]
        for _ in range(count):
            closes.append(closes[-1] / math.exp(sigma * rng.gauss(0.0, 1.0)))
        closes.reverse()  # closes[0] is the open of the first bar
        end_s = (now_ms // 1000) // bar_seconds * bar_seconds
        per_bar_volume = 4e7 * bar_seconds / _RTH_SECONDS / 100.0
        for i in range(count):
            o, c = closes[i], closes[i + 1]
            h = max(o, c) * (1.0 + abs(rng.gauss(0.0, sigma / 2.0)))
            low = min(o, c) * (1.0 - abs(rng.gauss(0.0, sigma / 2.0)))
            full = {
                "o": round(o, decimals),
                "c": round(c, decimals),
                "h": round(h, decimals),
                "l": round(low, decimals),
                "v": round(per_bar_volume * rng.uniform(0.4, 1.6), 2),
            }
            bar = {k: full[k] for k in keys}
            bar["t"] = (end_s - (count - 1 - i) * bar_seconds) * 1000
            bars.append(bar)

    period_seconds = 0 if period is None else period[0] * _UNIT_SECONDS[period[1]]
    if bars:
        start = datetime.fromtimestamp(bars[0]["t"] / 1000, tz=UTC).strftime("%Y%m%d-%H:%M:%S")
        hi_i = max(range(len(bars)), key=lambda i: bars[i].get("h", bars[i].get("c", 0.0)))
        lo_i = min(range(len(bars)), key=lambda i: bars[i].get("l", bars[i].get("c", 0.0)))
        hi_bar, lo_bar = bars[hi_i], bars[lo_i]
        high_text = f"{round(hi_bar.get('h', 0.0) * price_factor)}/{round(hi_bar.get('v', 0.0))}/{hi_i}"
        low_text = f"{round(lo_bar.get('l', 0.0) * price_factor)}/{round(lo_bar.get('v', 0.0))}/{lo_i}"
    else:
        start = datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y%m%d-%H:%M:%S")
        high_text = low_text = "0/0/0"
    return {
        "serverId": server_id,
        "symbol": inst.symbol,
        "text": inst.company,
        "priceFactor": price_factor,
        "startTime": start,
        "high": high_text,
        "low": low_text,
        "timePeriod": f"{period_seconds}s",
        "barLength": bar_seconds or 0,
        "mdAvailability": "S",
        "mktDataDelay": 0,
        "outsideRth": outside_rth,
        "volumeFactor": 1,
        "priceDisplayRule": 1,
        "priceDisplayValue": str(decimals),
        "negativeCapable": False,
        "messageVersion": 2,
        "data": bars,
        "points": max(0, len(bars) - 1),
    }
