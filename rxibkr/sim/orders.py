"""Orders and executions: placement, the live lifecycle, fills against the market model.

The engine knows nothing about sockets. It reports through three callables given by the gateway:
``on_order(order, payload, full)`` for every ``sor`` update (a full order object or a delta),
``on_execution(execution)`` for every ``str`` execution (first without commission, then again
with it), and ``schedule(delay, fn)`` to run a step later on the gateway's loop.

Lifecycle of a placed order, as recorded live: full object (``Inactive``, or ``PendingSubmit`` as
in the 2026 recordings: ``initial_status``) -> identity-only frame -> ``PendingSubmit`` ->
``PreSubmitted`` -> ``Submitted`` -> (fills) -> ``Filled``; a cancel sends a full object with
``PendingCancel`` and then ``Cancelled``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rxibkr.sim.account import Account
from rxibkr.sim.config import derive_int
from rxibkr.sim.instruments import UNIVERSE
from rxibkr.sim.market import Market, now_ms

# status -> (bgColor, fgColor) as seen in live frames
COLORS: dict[str, tuple[str, str]] = {
    "Inactive": ("#000000", "#AFAFAF"),
    "PendingSubmit": ("#000000", "#3399CC"),
    "PreSubmitted": ("#FFFFFF", "#997EE5"),
    "Submitted": ("#000000", "#00F000"),
    "PendingCancel": ("#000000", "#FF64FF"),
    "Cancelled": ("#FFFFFF", "#AA0000"),
    "Filled": ("#FFFFFF", "#000000"),
}
WORKING = frozenset({"PreSubmitted", "Submitted"})
DONE = frozenset({"Filled", "Cancelled"})
_TIF_TEXT = {"DAY": "Day", "GTC": "GTC", "IOC": "IOC", "OPG": "OPG", "FOK": "FOK"}


class OrderError(Exception):
    """A rejected request; the message is what the gateway answers in ``{"error": ...}``."""


@dataclass
class Order:
    order_id: int
    account: str
    conid: int
    conid_ex: str
    side: str  # "BUY" / "SELL"
    quantity: float
    order_type: str  # "LMT" / "MKT"
    price: float | None
    tif: str
    coid: str | None
    outside_rth: bool
    decimals: int
    symbol: str
    company: str
    sec_type: str
    listing_exchange: str
    status: str = "Inactive"
    filled: float = 0.0
    avg_price: float = 0.0
    last_ms: int = field(default_factory=now_ms)

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled

    def fmt(self, value: float) -> str:
        return f"{value:.{self.decimals}f}"


def _qty(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _exec_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%y%m%d%H%M%S")


def with_commission(execution: dict[str, Any], commission: float) -> dict[str, Any]:
    """A copy of an execution with ``commission`` filled in (placed after ``exchange``, as live)."""
    out: dict[str, Any] = {}
    for key, value in execution.items():
        if key == "commission":
            continue
        out[key] = value
        if key == "exchange":
            out["commission"] = f"{commission:.2f}"
    return out


def without_commission(execution: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in execution.items() if k != "commission"}


def order_description(o: Order) -> str:
    if o.status == "Filled":
        verb = "Bought" if o.side == "BUY" else "Sold"
    else:
        verb = "Buy" if o.side == "BUY" else "Sell"
    tif = _TIF_TEXT.get(o.tif, o.tif)
    if o.order_type == "MKT":
        return f"{verb} {_qty(o.quantity)} {o.symbol} Market, {tif}"
    return f"{verb} {_qty(o.quantity)} {o.symbol} Limit {o.fmt(o.price or 0.0)}, {tif}"


def size_and_fills(o: Order) -> str:
    if o.remaining <= 0:
        return _qty(o.filled)
    return f"{_qty(o.filled)}/{_qty(o.remaining)}"


def full_object(o: Order) -> dict[str, Any]:
    """The full order object (``sor`` snapshot frames and REST ``/iserver/account/orders``)."""
    bg, fg = COLORS.get(o.status, ("#000000", "#AFAFAF"))
    ccp = {
        "Inactive": "Pending Submit",
        "PendingSubmit": "Pending Submit",
        "PreSubmitted": "Submitted",
        "PendingCancel": "Submitted",
    }.get(o.status, o.status)
    obj: dict[str, Any] = {
        "acct": o.account,
        "conidex": o.conid_ex,
        "conid": o.conid,
        "account": o.account,
        "orderId": o.order_id,
        "cashCcy": "USD",
        "sizeAndFills": size_and_fills(o),
        "orderDesc": order_description(o),
        "description1": o.symbol,
        "ticker": o.symbol,
        "secType": o.sec_type,
        "listingExchange": o.listing_exchange,
        "remainingQuantity": float(o.remaining),
        "filledQuantity": float(o.filled),
        "totalSize": float(o.quantity),
        "companyName": o.company,
        "status": o.status,
        "order_ccp_status": ccp,
        "outsideRTH": o.outside_rth,
        "origOrderType": "MARKET" if o.order_type == "MKT" else "LIMIT",
        "supportsTaxOpt": "1" if o.sec_type == "STK" else "0",
        "lastExecutionTime": _exec_time(o.last_ms),
        "orderType": "Market" if o.order_type == "MKT" else "Limit",
        "bgColor": bg,
        "fgColor": fg,
        "isEventTrading": "0",
        "price": "" if o.order_type == "MKT" or o.price is None else o.fmt(o.price),
        "timeInForce": o.tif,
        "lastExecutionTime_r": o.last_ms // 1000 * 1000,
        "side": o.side,
    }
    if o.filled:
        obj["avgPrice"] = o.fmt(o.avg_price)
    if o.coid is not None:
        obj["order_ref"] = o.coid
    return obj


OnOrder = Callable[[Order, dict[str, Any], bool], None]
OnExecution = Callable[[dict[str, Any]], None]
Schedule = Callable[[float, Callable[[], None]], None]


class OrderEngine:
    """All orders and executions of the simulated account."""

    def __init__(
        self,
        *,
        seed: int,
        account: Account,
        market: Market,
        username: str,
        on_order: OnOrder,
        on_execution: OnExecution,
        schedule: Schedule,
        step_delay: float,
        fill_delay: float,
        commission_delay: float,
        history_days: int,
        initial_status: str = "Inactive",
        conid_exists: Callable[[int], bool] = lambda conid: True,
    ) -> None:
        self._account = account
        self._market = market
        self._username = username
        self._on_order = on_order
        self._on_execution = on_execution
        self._schedule = schedule
        self._step = step_delay
        self._fill_delay = fill_delay
        self._commission_delay = commission_delay
        self._initial_status = initial_status
        self._conid_exists = conid_exists
        self._rng = random.Random(f"orders:{seed}")
        self._next_id = derive_int(seed, "order-id", 100_000_000, 1_900_000_000)
        self.orders: dict[int, Order] = {}
        self.executions: list[dict[str, Any]] = []  # complete (with commission), in time order
        self._coids: set[str] = set()
        self._seed_history(history_days)

    # --- ids -------------------------------------------------------------------------------------
    def _new_order_id(self) -> int:
        self._next_id += self._rng.randint(1, 40)
        return self._next_id

    def _new_execution_id(self) -> str:
        return f"{self._rng.getrandbits(32):08x}.{self._rng.getrandbits(32):08x}.01.01"

    # --- history -------------------------------------------------------------------------------
    def _seed_history(self, days: int) -> None:
        """A few executions over the previous days (also the source of the initial positions)."""
        if days <= 0:
            return
        candidates = [265598, 272093, 4815747, 756733, 8314]
        now = now_ms()
        for k in range(days):
            conid = candidates[(k + self._rng.randint(0, 4)) % len(candidates)]
            inst = UNIVERSE[conid]
            q = self._market.quote(conid)
            price = round(q.prior_close * (1.0 + self._rng.uniform(-0.03, 0.01)), inst.decimals)
            size = float(self._rng.randint(1, 10) * 5)
            ts = (now - (2 * 3600 + k * 86400 + self._rng.randint(0, 3600)) * 1000) // 1000 * 1000
            commission = max(1.0, round(0.005 * size, 2))
            pos = self._account.apply_fill(
                conid, "B", size, price, commission, today=False, prior_close=q.prior_close
            )
            order_id = self._new_order_id()
            execution = self._execution_dict(
                conid=conid,
                side="B",
                size=size,
                price=price,
                ts=ts,
                order_id=order_id,
                coid=None,
                position=pos.quantity,
                exchange=inst.exchange,
            )
            self.executions.append(with_commission(execution, commission))
        self.executions.sort(key=lambda e: int(e["trade_time_r"]))

    def _execution_dict(
        self,
        *,
        conid: int,
        side: str,
        size: float,
        price: float,
        ts: int,
        order_id: int,
        coid: str | None,
        position: float,
        exchange: str,
    ) -> dict[str, Any]:
        inst = self._market.instrument(conid)
        verb = "Bot" if side == "B" else "Sold"
        acct = self._account.account_id
        price_text = f"{price:.{inst.decimals}f}"
        execution: dict[str, Any] = {
            "execution_id": self._new_execution_id(),
            "symbol": inst.symbol,
            "supports_tax_opt": "1" if inst.sec_type == "STK" else "0",
            "side": side,
            "order_description": f"{verb} {_qty(size)} @ {price_text} on {exchange}",
            "trade_time": datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y%m%d-%H:%M:%S"),
            "trade_time_r": ts,
            "size": float(size),
            "price": price_text,
            "exchange": exchange,
            "net_amount": round(size * price, 6),
            "account": acct,
            "accountCode": acct,
            "account_allocation_name": acct,
            "company_name": inst.company,
            "contract_description_1": inst.symbol,
            "sec_type": inst.sec_type,
            "listing_exchange": inst.listing_exchange,
            "conid": conid,
            "conidEx": str(conid),
            "position": _qty(position),
            "clearing_id": "IB",
            "clearing_name": "IB",
            "liquidation_trade": "0",
            "is_event_trading": "0",
            "order_id": order_id,
        }
        if coid is not None:
            execution["order_ref"] = coid
        return execution

    def history(self, days: int) -> list[dict[str, Any]]:
        """Executions of the last ``days`` (1 to 7) x 24 h, oldest first (complete, with commission)."""
        cutoff = now_ms() - max(1, min(7, days)) * 86_400_000
        return [e for e in self.executions if int(e["trade_time_r"]) >= cutoff]

    def history_by_day(self, days: int) -> list[list[dict[str, Any]]]:
        """:meth:`history` split into ``days`` (1 to 7) windows of 24 h, oldest first; a day
        without trades is an empty list."""
        count = max(1, min(7, days))
        now = now_ms()
        out: list[list[dict[str, Any]]] = [[] for _ in range(count)]
        for execution in self.history(count):
            age_days = (now - int(execution["trade_time_r"])) // 86_400_000
            out[count - 1 - min(count - 1, max(0, int(age_days)))].append(execution)
        return out

    # --- placement / cancel --------------------------------------------------------------------
    def place(self, spec: dict[str, Any], account: str) -> Order:
        """Validate and accept one order of a ``POST .../orders`` body; starts its lifecycle."""
        try:
            conid = int(spec.get("conid", 0))
        except (TypeError, ValueError):
            raise OrderError("invalid conid") from None
        if conid <= 0:
            raise OrderError("invalid conid")
        if not self._conid_exists(conid):
            raise OrderError(f"No security definition has been found for conid {conid}")
        inst = self._market.instrument(conid)
        if not inst.available:
            raise OrderError(f"No trading permissions or market data for conid {conid}")
        side = str(spec.get("side", "")).upper()
        if side not in ("BUY", "SELL"):
            raise OrderError("side must be BUY or SELL")
        order_type = str(spec.get("orderType", "")).upper()
        order_type = {"LIMIT": "LMT", "MARKET": "MKT"}.get(order_type, order_type)
        if order_type not in ("LMT", "MKT"):
            raise OrderError(f"unsupported orderType {spec.get('orderType')!r} (LMT or MKT)")
        try:
            quantity = float(spec.get("quantity", 0))
        except (TypeError, ValueError):
            raise OrderError("invalid quantity") from None
        if quantity <= 0:
            raise OrderError("quantity must be positive")
        price: float | None = None
        if order_type == "LMT":
            try:
                price = float(spec["price"])
            except (KeyError, TypeError, ValueError):
                raise OrderError("a LMT order needs a price") from None
            if price <= 0:
                raise OrderError("price must be positive")
        coid = spec.get("cOID")
        if coid is not None:
            coid = str(coid)
            if coid in self._coids:
                raise OrderError(f"Local order ID={coid} is already registered.")
            self._coids.add(coid)
        conid_ex = str(spec.get("conidex") or conid)
        order = Order(
            order_id=self._new_order_id(),
            account=account,
            conid=conid,
            conid_ex=conid_ex,
            side=side,
            quantity=quantity,
            order_type=order_type,
            price=price,
            tif=str(spec.get("tif", "DAY")).upper(),
            coid=coid,
            outside_rth=bool(spec.get("outsideRTH", False)),
            decimals=inst.decimals,
            symbol=inst.symbol,
            company=inst.company,
            sec_type=inst.sec_type,
            listing_exchange=inst.listing_exchange,
            status=self._initial_status,
        )
        self.orders[order.order_id] = order
        self._market.quote(conid)  # make sure the instrument exists (and will tick while working)
        self._publish(order, full_object(order), True)
        self._publish(
            order,
            {
                "acct": account,
                "conidex": conid_ex,
                "conid": conid,
                "orderId": order.order_id,
                "isEventTrading": "0",
            },
            False,
        )
        self._schedule(self._step, lambda: self._advance(order, "PendingSubmit"))
        return order

    def _advance(self, order: Order, status: str) -> None:
        if order.status in DONE or order.status == "PendingCancel":
            return
        order.status = status
        order.last_ms = now_ms()
        bg, fg = COLORS[status]
        delta: dict[str, Any] = {"acct": order.account, "orderId": order.order_id, "status": status}
        if status == "PendingSubmit":
            delta["fgColor"] = fg
        else:
            if status == "Submitted":
                delta["order_ccp_status"] = "Submitted"
            delta["bgColor"] = bg
            delta["fgColor"] = fg
        self._publish(order, delta, False)
        if status == "PendingSubmit":
            self._schedule(self._step, lambda: self._advance(order, "PreSubmitted"))
        elif status == "PreSubmitted":
            self._schedule(self._step, lambda: self._advance(order, "Submitted"))
        elif status == "Submitted":
            q = self._market.quote(order.conid)
            if order.order_type == "MKT" or self._crosses(order, q.bid, q.ask):
                self._schedule(self._fill_delay, lambda: self._fill_at_market(order))

    def cancel(self, order_id: int) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise OrderError(f"OrderID {order_id} doesn't exist")
        if order.status in DONE or order.status == "PendingCancel":
            raise OrderError(f"OrderID {order_id} cannot be cancelled, status: {order.status}")
        order.status = "PendingCancel"
        order.last_ms = now_ms()
        self._publish(order, full_object(order), True)

        def done() -> None:
            if order.status != "PendingCancel":
                return
            order.status = "Cancelled"
            order.last_ms = now_ms()
            bg, fg = COLORS["Cancelled"]
            self._publish(
                order,
                {
                    "acct": order.account,
                    "orderId": order.order_id,
                    "status": "Cancelled",
                    "order_ccp_status": "Cancelled",
                    "bgColor": bg,
                    "fgColor": fg,
                },
                False,
            )

        self._schedule(self._step, done)
        return order

    # --- fills -------------------------------------------------------------------------------------
    @staticmethod
    def _crosses(order: Order, bid: float, ask: float) -> bool:
        if order.price is None:
            return True
        return ask <= order.price if order.side == "BUY" else bid >= order.price

    def _fill_at_market(self, order: Order) -> None:
        if order.status not in WORKING:
            return
        q = self._market.quote(order.conid)
        price = q.ask if order.side == "BUY" else q.bid
        if order.order_type == "LMT" and order.price is not None:
            if not self._crosses(order, q.bid, q.ask):
                return  # the market moved away; rest until it crosses
            price = min(price, order.price) if order.side == "BUY" else max(price, order.price)
        self.fill(order.order_id, price=price)

    def on_quote(self, conid: int) -> None:
        """Called after an instrument ticked: fills resting limit orders the market crossed."""
        q = self._market.quote(conid)
        for order in list(self.orders.values()):
            if order.conid != conid or order.status not in WORKING or order.order_type != "LMT":
                continue
            if self._crosses(order, q.bid, q.ask):
                self.fill(order.order_id, price=order.price)

    def working_conids(self) -> set[int]:
        return {o.conid for o in self.orders.values() if o.status not in DONE}

    def fill(self, order_id: int, price: float | None = None, quantity: float | None = None) -> Order:
        """Execute ``quantity`` (default: all that remains) of an order at ``price`` (default: market)."""
        order = self.orders.get(order_id)
        if order is None:
            raise OrderError(f"OrderID {order_id} doesn't exist")
        if order.status in DONE:
            raise OrderError(f"OrderID {order_id} is {order.status}")
        q = self._market.quote(order.conid)
        if price is None:
            price = q.ask if order.side == "BUY" else q.bid
        qty = order.remaining if quantity is None else min(float(quantity), order.remaining)
        if qty <= 0:
            raise OrderError("nothing to fill")
        inst = self._market.instrument(order.conid)
        price = round(price, inst.decimals)
        order.avg_price = (order.avg_price * order.filled + price * qty) / (order.filled + qty)
        order.filled += qty
        ts = now_ms()
        order.last_ms = ts
        q.trade(round(price / inst.tick), max(1, round(qty)))
        commission = max(1.0, round(0.005 * qty, 2)) if inst.sec_type == "STK" else 2.0
        side = "B" if order.side == "BUY" else "S"
        pos = self._account.apply_fill(order.conid, side, qty, price, commission)
        delta: dict[str, Any] = {
            "acct": order.account,
            "orderId": order.order_id,
            "sizeAndFills": "",
            "remainingQuantity": float(order.remaining),
            "filledQuantity": float(order.filled),
            "avgPrice": order.fmt(order.avg_price),
            "lastExecutionTime": _exec_time(ts),
            "lastExecutionTime_r": ts // 1000 * 1000,
        }
        if order.remaining <= 0:
            order.status = "Filled"
            bg, fg = COLORS["Filled"]
            delta.update(
                {
                    "orderDesc": order_description(order),
                    "status": "Filled",
                    "order_ccp_status": "Filled",
                    "bgColor": bg,
                    "fgColor": fg,
                }
            )
        delta["sizeAndFills"] = size_and_fills(order)
        self._publish(order, delta, False)
        execution = self._execution_dict(
            conid=order.conid,
            side=side,
            size=qty,
            price=price,
            ts=ts // 1000 * 1000,
            order_id=order.order_id,
            coid=order.coid,
            position=pos.quantity,
            exchange=inst.exchange,
        )
        self._on_execution(execution)
        complete = with_commission(execution, commission)
        self.executions.append(complete)
        self._schedule(self._commission_delay, lambda: self._on_execution(complete))
        return order

    def _publish(self, order: Order, payload: dict[str, Any], full: bool) -> None:
        self._on_order(order, payload, full)
