"""Typed table rows from recorded frames: what the client's typed streams deliver, one row each.

:class:`RowBuilder` turns incoming frames into rows of the dataset tables with the streams' own code:
``MarketDataUpdate.from_message`` and the ``QuoteBook`` merge of ``operators.snapshots()`` for quotes
(the gateway's duplicated first update dropped as ``client.market_data()`` drops it), ``History``
bars (a bar re-sent unchanged is left out), the ``OrderBook`` of ``order_state()``, the
``ExecutionLog`` of ``dedupe_executions()``, and P&L rows merged per key. The same builder serves the
live recorder and :func:`rxibkr.record.to_parquet`, so both give the same rows. Pure Python: no pyarrow.

Timestamps are UTC nanoseconds (int): ``recv_time`` is when the frame was received (the recording's
``t``), ``updated`` the gateway's ``_updated``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rxibkr.protocol import IbkrWsKey, Message, MessageKind, decode
from rxibkr.record.reader import Recording
from rxibkr.streams.models import Bar, History, MarketDataUpdate, Quote, _args_items
from rxibkr.streams.operators import ExecutionLog, OrderBook, QuoteBook

SCHEMA_VERSION = 1
"""Version of the tables' schemas (columns and types); written into every Parquet file."""

TABLES = ("quotes", "bars", "orders", "executions", "pnl")

# column name -> type: "ts" (UTC ns), "i64", "i32", "f64", "str", "bool"
COLUMNS: dict[str, dict[str, str]] = {
    "quotes": {
        "recv_time": "ts",
        "updated": "ts",
        "conid": "i64",
        "symbol": "str",
        "bid": "f64",
        "ask": "f64",
        "last": "f64",
        "bid_size": "f64",
        "ask_size": "f64",
        "last_size": "f64",
        "volume": "f64",
        "open": "f64",
        "high": "f64",
        "low": "f64",
        "prior_close": "f64",
        "change": "f64",
        "change_percent": "f64",
        "is_close": "bool",
        "is_halted": "bool",
        "availability": "str",
        "changed": "str",
        "conn": "i32",
    },
    "bars": {
        "recv_time": "ts",
        "time": "ts",
        "conid": "i64",
        "symbol": "str",
        "open": "f64",
        "high": "f64",
        "low": "f64",
        "close": "f64",
        "volume": "f64",
        "bar_length": "i32",
        "server_id": "str",
    },
    "orders": {
        "recv_time": "ts",
        "order_id": "i64",
        "conid": "i64",
        "account": "str",
        "status": "str",
        "ticker": "str",
        "side": "str",
        "order_type": "str",
        "time_in_force": "str",
        "price": "f64",
        "avg_price": "f64",
        "filled": "f64",
        "remaining": "f64",
        "total_size": "f64",
        "order_ref": "str",
        "changed": "str",
    },
    "executions": {
        "recv_time": "ts",
        "execution_id": "str",
        "revision": "i32",
        "conid": "i64",
        "symbol": "str",
        "side": "str",
        "size": "f64",
        "price": "f64",
        "commission": "f64",
        "net_amount": "f64",
        "order_id": "i64",
        "order_ref": "str",
        "account": "str",
        "exchange": "str",
        "trade_time": "ts",
    },
    "pnl": {
        "recv_time": "ts",
        "key": "str",
        "account": "str",
        "row_type": "i32",
        "daily": "f64",
        "unrealized": "f64",
        "net_liquidity": "f64",
        "excess_liquidity": "f64",
        "market_value": "f64",
    },
}

PARTITIONED_BY_CONID = frozenset({"quotes", "bars", "orders", "executions"})

Row = dict[str, Any]
Partition = tuple[str, str, int | None]  # (table, UTC date "YYYY-MM-DD", conid or None)


_BOOKKEEPING = frozenset({"conid", "conidEx", "server_id", "_updated", "topic"})


def _ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def _ms_ns(ms: int | None) -> int | None:
    return None if ms is None else ms * 1_000_000


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def utc_date(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d")


def quote_row(quote: Quote, recv_ns: int, conn: int | None, symbol: str | None = None) -> Row:
    """The ``quotes`` row of a merged quote (its ``update`` tells which fields changed)."""
    update = quote.update
    changed = None if update is None else ",".join(k for k in update.data if k not in _BOOKKEEPING)
    return {
        "recv_time": recv_ns,
        "updated": _ms_ns(quote.updated),
        "conid": quote.conid,
        "symbol": quote.symbol or symbol,
        "bid": quote.bid,
        "ask": quote.ask,
        "last": quote.last,
        "bid_size": _f(quote.bid_size),
        "ask_size": _f(quote.ask_size),
        "last_size": _f(quote.last_size),
        "volume": _f(quote.volume),
        "open": quote.open,
        "high": quote.high,
        "low": quote.low,
        "prior_close": quote.prior_close,
        "change": quote.change,
        "change_percent": _f(quote.change_percent),
        "is_close": quote.is_close,
        "is_halted": quote.is_halted,
        "availability": quote.availability,
        "changed": changed,
        "conn": conn,
    }


class RowBuilder:
    """Incoming frames -> ``(partition, row)`` for the dataset tables. One thread only.

    ``symbols``: conid -> symbol, used when the frames carry no field 55."""

    def __init__(self, symbols: Mapping[int, str] | None = None) -> None:
        self.symbols: dict[int, str] = dict(symbols or {})
        self._book = QuoteBook()
        self._latest: dict[int, MarketDataUpdate] = {}
        self._bars: dict[int | None, dict[int, Bar]] = {}
        self._orders = OrderBook()
        self._executions = ExecutionLog()
        self._pnl: dict[str, dict[str, Any]] = {}
        self.rows = dict.fromkeys(TABLES, 0)

    def add(self, t: float, data: bytes | str, conn: int | None = None) -> list[tuple[Partition, Row]]:
        """The rows one incoming frame (received at ``t`` seconds) makes."""
        message = decode(data)
        if message.kind is not MessageKind.DATA:
            return []
        key = message.key
        if key is IbkrWsKey.MARKET_DATA:
            return self._quote(message, _ns(t), conn)
        if key is IbkrWsKey.MARKET_HISTORY:
            return self._history(message, _ns(t))
        if key is IbkrWsKey.ORDERS:
            return self._order(message, _ns(t))
        if key is IbkrWsKey.TRADES:
            return self._trades(message, _ns(t))
        if key is IbkrWsKey.PNL:
            return self._pnl_rows(message, _ns(t))
        return []

    def _out(self, table: str, recv: int, conid: int | None, row: Row) -> tuple[Partition, Row]:
        self.rows[table] += 1
        return (table, utc_date(recv), conid if table in PARTITIONED_BY_CONID else None), row

    def _quote(self, message: Message, recv: int, conn: int | None) -> list[tuple[Partition, Row]]:
        update = MarketDataUpdate.from_message(message)
        if update is None:
            return []
        conid = update.conid
        latest = self._latest.get(conid)
        # the gateway's duplicated first update: dropped as client.market_data() drops it
        if latest is not None and update.updated == latest.updated and update.data == latest.data:
            return []
        self._latest[conid] = update
        quote = self._book.apply(update)
        symbol = quote.symbol
        if symbol is not None:
            self.symbols[conid] = symbol
        return [self._out("quotes", recv, conid, quote_row(quote, recv, conn, self.symbols.get(conid)))]

    def _history(self, message: Message, recv: int) -> list[tuple[Partition, Row]]:
        history = History.from_message(message)
        known = self._bars.setdefault(history.conid, {})
        out: list[tuple[Partition, Row]] = []
        symbol = history.symbol or (self.symbols.get(history.conid) if history.conid is not None else None)
        for bar in history.bars:
            if known.get(bar.time) == bar:
                continue
            known[bar.time] = bar
            row = {
                "recv_time": recv,
                "time": _ms_ns(bar.time),
                "conid": history.conid,
                "symbol": symbol,
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "volume": bar.volume,
                "bar_length": history.bar_length,
                "server_id": history.server_id,
            }
            out.append(self._out("bars", recv, history.conid, row))
        return out

    def _order(self, message: Message, recv: int) -> list[tuple[Partition, Row]]:
        out: list[tuple[Partition, Row]] = []
        for delta in _args_items(message.args):
            update = self._orders.apply(delta)
            if update is None:
                continue
            row = {
                "recv_time": recv,
                "order_id": update.order_id,
                "conid": update.conid,
                "account": update.account,
                "status": update.status,
                "ticker": update.ticker,
                "side": update.side,
                "order_type": update.order_type,
                "time_in_force": update.time_in_force,
                "price": update.price,
                "avg_price": update.avg_price,
                "filled": update.filled,
                "remaining": update.remaining,
                "total_size": update.total_size,
                "order_ref": update.order_ref,
                "changed": ",".join(sorted(update.changed)),
            }
            out.append(self._out("orders", recv, update.conid, row))
        return out

    def _trades(self, message: Message, recv: int) -> list[tuple[Partition, Row]]:
        out: list[tuple[Partition, Row]] = []
        for execution in self._executions.apply_message(message):
            trade_time = execution.trade_time
            row = {
                "recv_time": recv,
                "execution_id": execution.execution_id,
                "revision": execution.revision,
                "conid": execution.conid,
                "symbol": execution.symbol,
                "side": execution.side,
                "size": execution.size,
                "price": execution.price,
                "commission": execution.commission,
                "net_amount": execution.net_amount,
                "order_id": execution.order_id,
                "order_ref": execution.order_ref,
                "account": execution.account,
                "exchange": execution.exchange,
                "trade_time": None if trade_time is None else _ns(trade_time.timestamp()),
            }
            out.append(self._out("executions", recv, execution.conid, row))
        return out

    def _pnl_rows(self, message: Message, recv: int) -> list[tuple[Partition, Row]]:
        from rxibkr.streams.models import PnlRow

        args = message.args
        if not isinstance(args, Mapping):
            return []
        out: list[tuple[Partition, Row]] = []
        for key, values in args.items():  # merged per key, as client.pnl() merges them
            if not isinstance(values, Mapping):
                continue
            merged = {**self._pnl.get(key, {}), **values}
            self._pnl[key] = merged
            pnl = PnlRow(str(key), merged)
            row = {
                "recv_time": recv,
                "key": pnl.key,
                "account": pnl.account,
                "row_type": pnl.row_type,
                "daily": pnl.daily,
                "unrealized": pnl.unrealized,
                "net_liquidity": pnl.net_liquidity,
                "excess_liquidity": pnl.excess_liquidity,
                "market_value": pnl.market_value,
            }
            out.append(self._out("pnl", recv, None, row))
        return out


def rows_of(
    recording: Recording, symbols: Mapping[int, str] | None = None
) -> Iterable[tuple[Partition, Row]]:
    """Every row a recording's incoming frames make, in order."""
    builder = RowBuilder(symbols)
    for conn in recording.connections:
        for frame in conn.frames:
            if frame.direction == "in":
                yield from builder.add(frame.t, frame.data, conn.conn)


__all__ = ["COLUMNS", "SCHEMA_VERSION", "TABLES", "RowBuilder", "quote_row", "rows_of", "utc_date"]
