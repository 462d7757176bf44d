"""A seeded market model: one random walk with a spread per instrument.

Prices are kept as integer multiples of the instrument's tick so that formatting never shows float
noise. Each instrument has its own ``random.Random`` derived from (seed, conid), so the sequence of
states of an instrument depends only on the seed and on how many steps it has taken — not on the
other instruments or on wall-clock timing.

An open market (``opening_trade``) starts every instrument with a last trade near the prior close, as
a live market has one from earlier in the day; a closed market (``closed``) never moves: its values
are frozen and field 31 carries the ``C`` prefix.
"""

from __future__ import annotations

import math
import random
import time

from rxibkr.sim.instruments import Instrument, instrument_for


def now_ms() -> int:
    return int(time.time() * 1000)


class Quote:
    """Live state of one instrument."""

    __slots__ = (
        "_mid",
        "_p_trade",
        "_vol",
        "ask_size",
        "ask_t",
        "bid_size",
        "bid_t",
        "frozen",
        "high_t",
        "inst",
        "last_size",
        "last_t",
        "low_t",
        "open_t",
        "prior_close_t",
        "rng",
        "updated_ms",
        "volume",
    )

    def __init__(
        self,
        inst: Instrument,
        seed: int,
        volatility: float,
        trade_probability: float,
        *,
        opening_trade: bool = False,
        frozen: bool = False,
    ) -> None:
        self.inst = inst
        self.frozen = frozen
        self.rng = random.Random(f"market:{seed}:{inst.conid}")
        self._vol = volatility
        self._p_trade = trade_probability
        tick = inst.tick
        self.prior_close_t = max(1, round(inst.price / tick)) if inst.available else 0
        # pre-open: the first quote sits close to the prior close (small overnight gap)
        self._mid = self.prior_close_t * (1.0 + self.rng.gauss(0.0, 0.003))
        self.bid_t = 0
        self.ask_t = 0
        self.bid_size = 0
        self.ask_size = 0
        self._requote(force_sizes=True)
        self.last_t: int | None = None
        self.last_size = 0
        self.volume = 0
        self.high_t: int | None = None
        self.low_t: int | None = None
        self.open_t: int | None = None
        self.updated_ms = now_ms()
        if opening_trade and inst.available:
            lot = max(1, inst.lot // 100)
            self.trade((self.bid_t + self.ask_t) // 2, lot, extra_volume=self.rng.randint(2000, 40000) * lot)

    # --- prices as floats ----------------------------------------------------------------------
    def px(self, ticks: int) -> float:
        return round(ticks * self.inst.tick, self.inst.decimals)

    def fmt(self, ticks: int) -> str:
        return f"{ticks * self.inst.tick:.{self.inst.decimals}f}"

    @property
    def bid(self) -> float:
        return self.px(self.bid_t)

    @property
    def ask(self) -> float:
        return self.px(self.ask_t)

    @property
    def mid(self) -> float:
        return round((self.bid_t + self.ask_t) * self.inst.tick / 2.0, self.inst.decimals + 1)

    @property
    def last(self) -> float | None:
        return None if self.last_t is None else self.px(self.last_t)

    @property
    def prior_close(self) -> float:
        return self.px(self.prior_close_t)

    @property
    def mark(self) -> float:
        """The price used for valuation: last trade if any, else the mid."""
        return self.px(self.last_t) if self.last_t is not None else self.mid

    # --- evolution -----------------------------------------------------------------------------
    def _requote(self, force_sizes: bool = False) -> None:
        rng = self.rng
        spread = rng.choice((1, 1, 1, 2, 2, 3))
        bid = math.floor(self._mid - spread / 2.0)
        bid = max(1, bid)
        self.bid_t = bid
        self.ask_t = bid + spread
        lot = self.inst.lot
        if force_sizes or rng.random() < 0.6:
            self.bid_size = rng.randint(1, 20) * lot
        if force_sizes or rng.random() < 0.6:
            self.ask_size = rng.randint(1, 20) * lot

    def step(self, force_move: bool = False) -> None:
        """Advance the model by one interval (quote move, always with ``force_move``, and maybe a
        trade); a frozen quote stays."""
        if not self.inst.available or self.frozen:
            return
        rng = self.rng
        if rng.random() < 0.75 or force_move:
            self._mid *= math.exp(self._vol * rng.gauss(0.0, 1.0))
            self._mid = max(self._mid, 2.0)
            self._requote()
        if rng.random() < self._p_trade:
            r = rng.random()
            price_t = self.bid_t if r < 0.45 else self.ask_t if r < 0.9 else (self.bid_t + self.ask_t) // 2
            self.trade(
                price_t,
                rng.randint(1, 5) * max(1, self.inst.lot // 100),
                extra_volume=rng.randint(200, 4000) * max(1, self.inst.lot // 100),
            )
        self.updated_ms = now_ms()

    def trade(self, price_t: int, size: int, extra_volume: int = 0) -> None:
        """Record a trade print at ``price_t`` ticks."""
        self.last_t = price_t
        self.last_size = size
        self.volume += size + extra_volume
        if self.open_t is None:
            self.open_t = price_t
        self.high_t = price_t if self.high_t is None else max(self.high_t, price_t)
        self.low_t = price_t if self.low_t is None else min(self.low_t, price_t)
        self.updated_ms = now_ms()

    def set_price(self, price: float, *, trade: bool = True) -> None:
        """Move the market to ``price`` (mid); optionally print a trade there. For tests and demos."""
        self._mid = price / self.inst.tick
        self._requote()
        if trade:
            self.trade(round(price / self.inst.tick), self.inst.lot)
        self.updated_ms = now_ms()


class Market:
    """All instruments' quotes, created lazily on first use."""

    def __init__(
        self,
        seed: int,
        volatility: float,
        trade_probability: float,
        unavailable: frozenset[int],
        *,
        opening_trade: bool = False,
        closed: bool = False,
    ) -> None:
        self._seed = seed
        self._vol = volatility
        self._p_trade = trade_probability
        self._unavailable = unavailable
        self._opening_trade = opening_trade
        self.closed = closed
        self._quotes: dict[int, Quote] = {}

    def instrument(self, conid: int) -> Instrument:
        q = self._quotes.get(conid)
        return q.inst if q is not None else instrument_for(conid, self._unavailable)

    def quote(self, conid: int) -> Quote:
        q = self._quotes.get(conid)
        if q is None:
            q = Quote(
                instrument_for(conid, self._unavailable),
                self._seed,
                self._vol,
                self._p_trade,
                opening_trade=self._opening_trade,
                frozen=self.closed,
            )
            self._quotes[conid] = q
        return q

    def step(self, conids: list[int], force_move: bool = False) -> list[Quote]:
        """Step the given instruments in conid order; returns their quotes."""
        out = []
        for conid in sorted(conids):
            q = self.quote(conid)
            q.step(force_move)
            out.append(q)
        return out
