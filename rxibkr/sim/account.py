"""The simulated brokerage account: cash, positions, P&L, summary (``ssd``) and ledger (``sld``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rxibkr.sim.fields import PositionView

EURUSD_CONID = 12087792

#: (mark price, prior close) of a conid
PriceLookup = Callable[[int], tuple[float, float]]


@dataclass
class Position:
    conid: int
    quantity: float = 0.0
    avg_cost: float = 0.0
    realized: float = 0.0
    day_basis: float = 0.0  # value at the start of the day, adjusted by today's cash flows

    def view(self) -> PositionView:
        return PositionView(self.quantity, self.avg_cost, self.realized, self.day_basis)


def sig_round(value: float, digits: int = 4) -> float:
    """Round to significant digits, the way live ``spl`` frames show nl/upl/el/mv."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    return float(round(value, digits - 1 - math.floor(math.log10(abs(value)))))


class Account:
    """One account's books. Every price comes from the market model through ``prices``."""

    def __init__(self, account_id: str, initial_cash: float, prices: PriceLookup) -> None:
        self.account_id = account_id
        self.cash: dict[str, float] = {"USD": initial_cash, "EUR": 1250.0}
        self.positions: dict[int, Position] = {}
        self.realized_today = 0.0
        self.commissions_today = 0.0
        self._prices = prices

    # --- bookkeeping ---------------------------------------------------------------------------
    def position_view(self, conid: int) -> PositionView | None:
        p = self.positions.get(conid)
        return None if p is None or p.quantity == 0 else p.view()

    def apply_fill(
        self,
        conid: int,
        side: str,
        quantity: float,
        price: float,
        commission: float,
        *,
        today: bool = True,
        prior_close: float | None = None,
    ) -> Position:
        """Book an execution (``side`` "B"/"S"); returns the resulting position."""
        signed = quantity if side == "B" else -quantity
        pos = self.positions.setdefault(conid, Position(conid))
        old_qty = pos.quantity
        realized = 0.0
        if old_qty == 0 or (old_qty > 0) == (signed > 0):
            total = old_qty + signed
            pos.avg_cost = (old_qty * pos.avg_cost + signed * price) / total if total else 0.0
            pos.quantity = total
        else:
            closing = min(abs(signed), abs(old_qty))
            direction = 1.0 if old_qty > 0 else -1.0
            realized = closing * (price - pos.avg_cost) * direction
            pos.quantity = old_qty + signed
            if pos.quantity == 0:
                pos.avg_cost = 0.0
            elif (pos.quantity > 0) != (old_qty > 0):  # flipped: the rest opens at this price
                pos.avg_cost = price
        pos.realized += realized - commission
        self.cash["USD"] -= signed * price + commission
        if today:
            pos.day_basis += signed * price + commission
            self.realized_today += realized
            self.commissions_today += commission
        else:
            close = price if prior_close is None else prior_close
            pos.day_basis = pos.quantity * close
        return pos

    def start_of_day(self) -> None:
        """Reset the day basis of every position to its value at the prior close."""
        for pos in self.positions.values():
            _, close = self._prices(pos.conid)
            pos.day_basis = pos.quantity * close

    # --- valuation -----------------------------------------------------------------------------
    def _eurusd(self) -> float:
        mark, _ = self._prices(EURUSD_CONID)
        return mark

    def valuation(self) -> dict[str, float]:
        mv = upl = dpl = gross = 0.0
        for pos in self.positions.values():
            mark, _ = self._prices(pos.conid) if pos.quantity or pos.day_basis else (0.0, 0.0)
            value = pos.quantity * mark
            mv += value
            gross += abs(value)
            upl += pos.quantity * (mark - pos.avg_cost)
            dpl += value - pos.day_basis
        eur = self.cash.get("EUR", 0.0) * self._eurusd()
        cash = self.cash.get("USD", 0.0) + eur
        nl = cash + mv
        maint = 0.25 * gross
        init = 0.25 * gross
        return {
            "mv": mv,
            "upl": upl,
            "dpl": dpl,
            "gross": gross,
            "cash": cash,
            "nl": nl,
            "maint": maint,
            "init": init,
            "el": nl - maint,
            "af": nl - init,
            "eur_value": eur,
        }

    def pnl_row(self) -> dict[str, Any]:
        """The ``spl`` row ``{"<acct>.Core": {...}}``."""
        v = self.valuation()
        return {
            f"{self.account_id}.Core": {
                "rowType": 1,
                "dpl": round(v["dpl"], 2),
                "nl": sig_round(v["nl"]),
                "upl": sig_round(v["upl"]),
                "el": sig_round(v["el"]),
                "uel": round(v["el"], 2),
                "mv": sig_round(v["mv"]),
            }
        }

    def summary_entries(self, timestamp_s: int) -> list[dict[str, Any]]:
        """Every ``ssd`` entry (money keys carry currency + monetaryValue, others a string value)."""
        v = self.valuation()
        money = {
            "NetLiquidation": v["nl"],
            "TotalCashValue": v["cash"],
            "SettledCash": v["cash"],
            "AccruedCash": 0.0,
            "BuyingPower": 4.0 * max(0.0, v["el"]),
            "EquityWithLoanValue": v["nl"],
            "GrossPositionValue": v["gross"],
            "InitMarginReq": v["init"],
            "MaintMarginReq": v["maint"],
            "AvailableFunds": v["af"],
            "ExcessLiquidity": v["el"],
            "FullInitMarginReq": v["init"],
            "FullMaintMarginReq": v["maint"],
            "FullAvailableFunds": v["af"],
            "FullExcessLiquidity": v["el"],
        }
        entries: list[dict[str, Any]] = [
            {"key": "AccountCode", "value": self.account_id, "severity": 0, "timestamp": timestamp_s},
            {"key": "AccountType", "value": "INDIVIDUAL", "severity": 0, "timestamp": timestamp_s},
            {
                "key": "Cushion",
                "value": f"{(v['el'] / v['nl']) if v['nl'] else 0.0:.4f}",
                "severity": 0,
                "timestamp": timestamp_s,
            },
            {
                "key": "Leverage-S",
                "value": f"{(v['gross'] / v['nl']) if v['nl'] else 0.0:.2f}",
                "severity": 0,
                "timestamp": timestamp_s,
            },
        ]
        for key, value in money.items():
            for suffix in ("", "-S"):
                entries.append(
                    {
                        "key": key + suffix,
                        "currency": "USD",
                        "monetaryValue": round(value, 2),
                        "severity": 0,
                        "timestamp": timestamp_s,
                    }
                )
        return entries

    def ledger_rows(self, timestamp_s: int) -> dict[str, dict[str, Any]]:
        """Full ``sld`` rows keyed ``LedgerListBASE``/``LedgerListUSD``/``LedgerListEUR``."""
        v = self.valuation()
        rate = self._eurusd()
        usd_cash = self.cash.get("USD", 0.0)
        eur_cash = self.cash.get("EUR", 0.0)
        realized = sum(p.realized for p in self.positions.values())

        def row(
            key: str, second: str, cash: float, rate_: float, stock_mv: float, upl: float, realized_: float
        ) -> dict[str, Any]:
            return {
                "acctCode": self.account_id,
                "cashbalance": round(cash, 2),
                "cashBalanceFXSegment": 0.0,
                "commodityMarketValue": 0.0,
                "corporateBondsMarketValue": 0.0,
                "dividends": 0.0,
                "exchangeRate": rate_,
                "funds": 0.0,
                "interest": 0.0,
                "issueOptionsMarketValue": 0.0,
                "key": key,
                "marketValue": round(stock_mv, 2),
                "moneyFunds": 0.0,
                "netLiquidationValue": round(cash + stock_mv, 2),
                "optionMarketValue": 0.0,
                "realizedPnl": round(realized_, 2),
                "secondKey": second,
                "settledCash": round(cash, 2),
                "severity": 0,
                "stockMarketValue": round(stock_mv, 2),
                "tBillsMarketValue": 0.0,
                "tBondsMarketValue": 0.0,
                "timestamp": timestamp_s,
                "unrealizedPnl": round(upl, 2),
                "warrantsMarketValue": 0.0,
            }

        return {
            "LedgerListBASE": row("LedgerListBASE", "BASE", v["cash"], 1.0, v["mv"], v["upl"], realized),
            "LedgerListUSD": row("LedgerListUSD", "USD", usd_cash, 1.0, v["mv"], v["upl"], realized),
            "LedgerListEUR": row("LedgerListEUR", "EUR", eur_cash, round(rate, 5), 0.0, 0.0, 0.0),
        }

    # --- REST shapes ---------------------------------------------------------------------------
    def portfolio_account(self, title: str) -> dict[str, Any]:
        """One element of ``GET /portfolio/accounts``."""
        return {
            "id": self.account_id,
            "PrepaidCrypto-Z": False,
            "PrepaidCrypto-P": False,
            "brokerageAccess": True,
            "accountId": self.account_id,
            "accountVan": self.account_id,
            "accountTitle": title,
            "displayName": self.account_id,
            "accountAlias": None,
            "accountStatus": 1_700_000_000_000,
            "currency": "USD",
            "type": "DEMO",
            "tradingType": "PMRGN",
            "businessType": "IB_PROSERVE",
            "ibEntity": "IBLLC-US",
            "faclient": False,
            "clearingStatus": "O",
            "covestor": False,
            "noClientTrading": False,
            "trackVirtualFXPortfolio": True,
            "parent": {
                "mmc": [],
                "accountId": "",
                "isMParent": False,
                "isMChild": False,
                "isMultiplex": False,
            },
            "desc": self.account_id,
        }
