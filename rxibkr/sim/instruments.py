"""The simulator's instrument universe: well-known contracts with their real conids, plus
generated instruments for any other positive conid."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    """Static description of a contract (what secdef would return)."""

    conid: int
    symbol: str
    company: str
    price: float  # prior close; the level the random walk starts from
    sec_type: str = "STK"
    listing_exchange: str = "NASDAQ.NMS"
    exchange: str = "NASDAQ"
    currency: str = "USD"
    decimals: int = 2
    tick: float = 0.01
    lot: int = 100  # displayed size granularity
    industry: str = "Technology"
    category: str = "Computers"
    available: bool = True

    @property
    def exchange_code(self) -> str:
        """One-letter venue code used in fields 7057/7058/7068."""
        return {"NASDAQ": "Q", "NYSE": "N", "ARCA": "P", "IDEALPRO": "I"}.get(self.exchange, "Z")


#: Built-in universe (real conids, plausible 2026 price levels).
UNIVERSE: dict[int, Instrument] = {
    i.conid: i
    for i in (
        Instrument(265598, "AAPL", "APPLE INC", 271.10),
        Instrument(272093, "MSFT", "MICROSOFT CORP", 423.85, category="Software"),
        Instrument(3691937, "AMZN", "AMAZON.COM INC", 231.40, industry="Communications", category="Internet"),
        Instrument(
            208813719, "GOOGL", "ALPHABET INC-CL A", 178.25, industry="Communications", category="Internet"
        ),
        Instrument(
            76792991,
            "TSLA",
            "TESLA INC",
            402.60,
            industry="Consumer, Cyclical",
            category="Auto Manufacturers",
        ),
        Instrument(4815747, "NVDA", "NVIDIA CORP", 188.75, category="Semiconductors"),
        Instrument(
            107113386,
            "META",
            "META PLATFORMS INC-CLASS A",
            702.30,
            industry="Communications",
            category="Internet",
        ),
        Instrument(
            756733,
            "SPY",
            "SPDR S&P 500 ETF TRUST",
            681.45,
            listing_exchange="ARCA",
            exchange="ARCA",
            industry="Funds",
            category="Equity Fund",
        ),
        Instrument(
            320227571, "QQQ", "INVESCO QQQ TRUST SERIES 1", 604.20, industry="Funds", category="Equity Fund"
        ),
        Instrument(
            8314, "IBM", "INTL BUSINESS MACHINES CORP", 262.15, listing_exchange="NYSE", exchange="NYSE"
        ),
        Instrument(
            conid=12087792,
            symbol="EUR.USD",
            company="European Monetary Union Euro",
            price=1.16833,
            sec_type="CASH",
            listing_exchange="IDEALPRO",
            exchange="IDEALPRO",
            decimals=5,
            tick=0.00005,
            lot=100_000,
            industry="",
            category="",
        ),
    )
}


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def generated_symbol(conid: int) -> str:
    """A stable four-letter pseudo ticker for a conid outside the universe."""
    n = conid
    letters = []
    for _ in range(4):
        n, r = divmod(n, 26)
        letters.append(_LETTERS[r])
    return "".join(reversed(letters))


def instrument_for(conid: int, unavailable: frozenset[int]) -> Instrument:
    """The instrument for a positive conid: built-in, unavailable, or generated (stable per conid)."""
    known = UNIVERSE.get(conid)
    if known is not None:
        return known
    symbol = generated_symbol(conid)
    if conid in unavailable:
        return Instrument(conid=conid, symbol=symbol, company="", price=0.0, available=False)
    rng = random.Random(f"instrument:{conid}")
    price = round(math.exp(rng.uniform(math.log(5.0), math.log(500.0))), 2)
    exchange = rng.choice(("NASDAQ", "NYSE"))
    listing = "NASDAQ.NMS" if exchange == "NASDAQ" else "NYSE"
    return Instrument(
        conid=conid,
        symbol=symbol,
        company=f"{symbol} SIMULATED HOLDINGS INC",
        price=price,
        listing_exchange=listing,
        exchange=exchange,
        industry="Industrial",
        category="Misc",
    )


def search(symbol: str, *, by_name: bool = False) -> list[Instrument]:
    """Instruments matching a symbol (exact first, then prefix), or a company-name substring."""
    needle = symbol.strip().upper()
    if not needle:
        return []
    if by_name:
        return [i for i in UNIVERSE.values() if needle in i.company.upper()]
    exact = [i for i in UNIVERSE.values() if i.symbol == needle]
    prefix = [i for i in UNIVERSE.values() if i.symbol.startswith(needle) and i.symbol != needle]
    return exact + sorted(prefix, key=lambda i: i.symbol)
