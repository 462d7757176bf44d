"""Frame factories: server -> client frames for every topic, shaped as the protocol reference says.

Each function returns the frame as a ``dict`` (what :meth:`FakeTransport.receive` and marble scripts
take; they JSON-encode it into a binary frame as the gateway does) -- :func:`encode` gives the bytes.
Shapes follow ``protocol/README.md`` section 3 and the live captures in ``frames.jsonl``: ``ntf`` and
``blt`` carry ``args`` arrays, ``smd`` prices are strings while ``83`` (change %) and ``87_raw`` are
numbers, ``_updated`` is epoch milliseconds and ``ssd``/``sld`` timestamps are epoch seconds.

Market data fields can be given by id (``smd(265598, {"31": "271.5"})``), by the field table's names
(``last_price=271.5``, see :data:`rxibkr.protocol.FIELDS`) or by the short aliases of :data:`ALIASES`
(``smd(265598, last=271.5, bid=271.4)``).

Defaults are fixed (``EPOCH_MS``, ``DEFAULT_ACCOUNT``...) so that a frame built twice is the same frame:
tests stay deterministic. Pass ``updated=``/``ms=`` explicitly to model time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from rxibkr.protocol.fields import FIELD_IDS, FIELDS

Frame = dict[str, Any]
"""One server frame as a JSON object."""

DEFAULT_ACCOUNT = "DU1234567"
"""A paper-account-shaped placeholder (not a real account)."""
DEFAULT_USERNAME = "testuser"
EPOCH_MS = 1_700_000_000_000
"""The default ``_updated`` / ``hb`` / ``lastAccessed`` value (epoch milliseconds)."""
EPOCH_S = EPOCH_MS // 1000
"""The default ``timestamp`` of ``ssd`` / ``sld`` entries (epoch seconds)."""
SERVER_NAME = "testserver"
SERVER_VERSION = "Build 10.45.1a, Apr 22, 2026 1:39:05 PM"

ALIASES: Mapping[str, str] = {
    "last": "31",
    "bid": "84",
    "ask": "86",
    "bid_size": "88",
    "ask_size": "85",
    "last_size": "7059",
    "volume": "87",
    "volume_raw": "87_raw",
    "high": "70",
    "low": "71",
    "open": "7295",
    "close": "7296",
    "prior_close": "7741",
    "change": "82",
    "change_pct": "83",
    "mark": "7635",
    "symbol": "55",
    "availability": "6509",
}
"""Short names accepted by :func:`smd` besides the field table's names and the numeric ids."""

_NUMERIC_ON_WIRE = frozenset({"83", "87_raw"})
"""Fields the gateway sends as JSON numbers; every other field value is a string."""


def encode(frame: Frame) -> bytes:
    """The frame as the gateway puts it on the wire: compact UTF-8 JSON (sent as a binary frame)."""
    return orjson.dumps(frame)


# -- system / session ------------------------------------------------------------------------------------
def system(username: str = DEFAULT_USERNAME, *, is_ft: bool = False, is_paper: bool = True) -> Frame:
    """The login confirmation: ``{"topic":"system","success":<username>,"isFT":..,"isPaper":..}``."""
    return {"topic": "system", "success": username, "isFT": is_ft, "isPaper": is_paper}


def hb(ms: int = EPOCH_MS) -> Frame:
    """The gateway heartbeat (every 10 s): ``{"topic":"system","hb":<epoch ms>}``."""
    return {"topic": "system", "hb": int(ms)}


heartbeat = hb


def sts(
    authenticated: bool = True,
    *,
    competing: bool = False,
    connected: bool = True,
    established: bool = True,
    message: str = "",
    fail: str = "",
    server_name: str = SERVER_NAME,
    server_version: str = SERVER_VERSION,
    username: str = DEFAULT_USERNAME,
) -> Frame:
    """Authentication status, the full 2026 shape (§3.10). ``sts(False, competing=True)`` is auth loss."""
    return {
        "topic": "sts",
        "args": {
            "connected": connected,
            "authenticated": authenticated,
            "established": established,
            "competing": competing,
            "message": message,
            "fail": fail,
            "serverName": server_name,
            "serverVersion": server_version,
            "username": username,
        },
    }


def act(
    accounts: Sequence[str] = (DEFAULT_ACCOUNT,),
    *,
    selected: str | None = None,
    is_paper: bool = True,
    is_ft: bool = False,
    **extra: Any,
) -> Frame:
    """The accounts description sent at connect (§3.11); ``extra`` keys are added to ``args``."""
    accounts = list(accounts)
    args: dict[str, Any] = {
        "accounts": accounts,
        "acctProps": {
            acct: {
                "hasChildAccounts": False,
                "supportsCashQty": True,
                "liteUnderPro": False,
                "noFXConv": False,
                "isProp": False,
                "supportsFractions": True,
                "allowCustomerTime": False,
                "autoFx": False,
            }
            for acct in accounts
        },
        "aliases": {acct: acct for acct in accounts},
        "allowFeatures": {"showGFIS": True, "allowedAssetTypes": "STK,OPT,FUT,CASH"},
        "chartPeriods": {"STK": ["*"]},
        "groups": [],
        "profiles": [],
        "selectedAccount": selected if selected is not None else (accounts[0] if accounts else ""),
        "serverInfo": {"serverName": SERVER_NAME, "serverVersion": SERVER_VERSION},
        "sessionId": "00000000.00000000",
        "isFT": is_ft,
        "isPaper": is_paper,
    }
    args.update(extra)
    return {"topic": "act", "args": args}


def greeting(username: str = DEFAULT_USERNAME, account: str = DEFAULT_ACCOUNT) -> list[Frame]:
    """What a gateway sends right after a cookie-authenticated connect (§1.3): system, act, sts."""
    return [system(username), act([account]), sts(username=username)]


def tic(session: str = "<session>", *, alive: bool = True, last_accessed: int = EPOCH_MS) -> Frame:
    """The reply to the client's ``tic``; ``id`` is the session id (recordings redact it)."""
    return {"topic": "tic", "alive": alive, "id": session, "lastAccessed": int(last_accessed)}


def waiting_for_session() -> Frame:
    """What a socket opened without a usable cookie gets (§3.16)."""
    return {"message": "waiting for session"}


# -- market data ---------------------------------------------------------------------------------------
def _field_id(name: str) -> str:
    if name in FIELDS or name == "87_raw":
        return name
    fid = ALIASES.get(name) or FIELD_IDS.get(name)
    if fid is None:
        raise TypeError(
            f"smd(): unknown field {name!r}; use a field id ('31'), a name of rxibkr.protocol.FIELDS "
            f"('last_price') or an alias ({', '.join(sorted(ALIASES))})"
        )
    return fid


def _wire_value(fid: str, value: Any) -> Any:
    if fid in _NUMERIC_ON_WIRE or value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    return value


def smd(
    conid: int,
    fields: Mapping[str, Any] | None = None,
    /,
    *,
    updated: int = EPOCH_MS,
    server_id: str = "q0",
    conid_ex: str | None = None,
    **named: Any,
) -> Frame:
    """A market data update ``smd+<conid>`` with the always-present bookkeeping keys (§3.1).

    Fields by id or name in ``fields`` or as keywords (``last=271.5``, ``last_price=271.5``). Numbers
    become strings as on the wire, except ``83`` and ``87_raw`` which the gateway sends as numbers.
    Later updates carry only changed fields: pass only those.
    """
    frame: Frame = {
        "server_id": server_id,
        "conidEx": conid_ex if conid_ex is not None else str(conid),
        "conid": int(conid),
        "_updated": int(updated),
        "6119": server_id,
    }
    for source in (fields or {}, named):
        for name, value in source.items():
            fid = _field_id(str(name))
            frame[fid] = _wire_value(fid, value)
    frame["topic"] = f"smd+{conid}"
    return frame


def bar(t: int, o: float, c: float, h: float, l: float, v: float = 0) -> dict[str, Any]:  # noqa: E741
    """One historical bar of :func:`smh` (``t`` epoch ms)."""
    return {"o": o, "c": c, "h": h, "l": l, "v": v, "t": int(t)}


def smh(
    conid: int,
    bars: Sequence[Mapping[str, Any]] = (),
    *,
    server_id: str = "1",
    symbol: str = "",
    text: str = "",
    start_time: str = "20260101-14:30:00",
    time_period: str = "1d",
    bar_length: int = 60,
    price_factor: int = 100,
    outside_rth: bool = False,
) -> Frame:
    """The historical-bars reply ``smh+<conid>`` (§3.2) with ``serverId`` (the handle ``umh`` needs)."""
    data = [dict(b) for b in bars]

    def extreme(key: str, pick: Any) -> str:
        if not data:
            return "0/0/0"
        index, best = pick(enumerate(data), key=lambda item: item[1][key])
        return f"{round(best[key] * price_factor)}/{round(best.get('v', 0))}/{index}"

    return {
        "serverId": str(server_id),
        "symbol": symbol,
        "text": text,
        "priceFactor": price_factor,
        "startTime": start_time,
        "high": extreme("h", max),
        "low": extreme("l", min),
        "timePeriod": time_period,
        "barLength": bar_length,
        "mdAvailability": "S",
        "mktDataDelay": 0,
        "outsideRth": outside_rth,
        "volumeFactor": 1,
        "priceDisplayRule": 1,
        "priceDisplayValue": "2",
        "negativeCapable": False,
        "messageVersion": 2,
        "data": data,
        "points": len(data),
        "topic": f"smh+{conid}",
    }


def unsubscribed_history(server_id: str) -> Frame:
    """The topic-less ``umh`` confirmation IBind expects (§3.16, uncertain text)."""
    return {"message": f"Unsubscribed {server_id}"}


def ladder_row(
    row: int, price: str, *, bid: str | None = None, ask: str | None = None, focus: int = 0
) -> dict[str, Any]:
    """One row of a price ladder (:func:`sbd`); ``bid``/``ask`` are sizes as strings."""
    entry: dict[str, Any] = {"row": row, "focus": focus, "price": price}
    if bid is not None:
        entry["bid"] = bid
    if ask is not None:
        entry["ask"] = ask
    return entry


def sbd(account: str, conid: int, rows: Sequence[Mapping[str, Any]], *, exchange: str | None = None) -> Frame:
    """A price ladder ``sbd+<acct>+<conid>[+<exch>]`` (§3.3): ``data`` is a list of rows."""
    topic = f"sbd+{account}+{conid}" + (f"+{exchange}" if exchange else "")
    return {"topic": topic, "data": [dict(r) for r in rows]}


# -- orders and trades -------------------------------------------------------------------------------------
def order(
    order_id: int,
    *,
    status: str = "Submitted",
    acct: str = DEFAULT_ACCOUNT,
    conid: int = 265598,
    ticker: str = "AAPL",
    side: str = "BUY",
    quantity: float = 1.0,
    filled: float = 0.0,
    order_type: str = "Limit",
    price: str = "1.00",
    tif: str = "DAY",
    **extra: Any,
) -> dict[str, Any]:
    """A full order object for :func:`sor` (§3.4); ``price`` is a string ("" for market orders)."""
    entry: dict[str, Any] = {
        "acct": acct,
        "conidex": str(conid),
        "conid": conid,
        "account": acct,
        "orderId": order_id,
        "cashCcy": "USD",
        "sizeAndFills": f"{filled:g}/{quantity:g}",
        "orderDesc": f"{'Buy' if side == 'BUY' else 'Sell'} {quantity:g} {ticker} {order_type}, {tif}",
        "description1": ticker,
        "ticker": ticker,
        "secType": "STK",
        "listingExchange": "NASDAQ.NMS",
        "remainingQuantity": quantity - filled,
        "filledQuantity": filled,
        "totalSize": quantity,
        "companyName": ticker,
        "status": status,
        "order_ccp_status": status,
        "outsideRTH": False,
        "origOrderType": order_type.upper(),
        "supportsTaxOpt": "1",
        "lastExecutionTime": "260101143000",
        "lastExecutionTime_r": EPOCH_MS,
        "orderType": order_type,
        "side": side,
        "timeInForce": tif,
        "price": price,
        "bgColor": "#000000",
        "fgColor": "#00F000",
        "isEventTrading": "0",
    }
    entry.update(extra)
    return entry


def order_delta(order_id: int, *, acct: str = DEFAULT_ACCOUNT, **changed: Any) -> dict[str, Any]:
    """An order delta: ``acct`` + ``orderId`` + only the changed keys (``status="Filled"``...)."""
    return {"acct": acct, "orderId": order_id, **changed}


def sor(*orders: Mapping[str, Any]) -> Frame:
    """Live orders ``{"topic":"sor","args":[...]}``: full orders (:func:`order`) and deltas."""
    return {"topic": "sor", "args": [dict(o) for o in orders]}


def execution(
    execution_id: str,
    *,
    conid: int = 265598,
    symbol: str = "AAPL",
    side: str = "B",
    size: float = 1,
    price: str = "1.00",
    account: str = DEFAULT_ACCOUNT,
    trade_time_r: int = EPOCH_MS,
    commission: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One execution for :func:`str_` (§3.5); ``commission`` is absent until known (then resent)."""
    entry: dict[str, Any] = {
        "execution_id": execution_id,
        "symbol": symbol,
        "supports_tax_opt": "1",
        "side": side,
        "order_description": f"{'Bot' if side == 'B' else 'Sold'} {size:g} @ {price} on ISLAND",
        "trade_time": "20260101-14:30:00",
        "trade_time_r": int(trade_time_r),
        "size": size,
        "price": price,
        "net_amount": round(float(size) * float(price or 0), 2),
        "exchange": "ISLAND",
        "account": account,
        "accountCode": account,
        "company_name": symbol,
        "contract_description_1": symbol,
        "sec_type": "STK",
        "listing_exchange": "NASDAQ.NMS",
        "conid": conid,
        "conidEx": str(conid),
        "clearing_id": "IB",
        "clearing_name": "IB",
        "liquidation_trade": "0",
        "is_event_trading": "0",
    }
    if commission is not None:
        entry["commission"] = commission
    entry.update(extra)
    return entry


def str_(*executions: Mapping[str, Any]) -> Frame:
    """Trades ``{"topic":"str","args":[...]}``; with no executions, the first (empty) frame."""
    return {"topic": "str", "args": [dict(e) for e in executions]}


trades = str_


# -- account ------------------------------------------------------------------------------------------------
def spl(
    account: str = DEFAULT_ACCOUNT,
    *,
    dpl: float = 0.0,
    upl: float = 0.0,
    nl: float = 1_000_000.0,
    el: float = 1_000_000.0,
    uel: float = 1_000_000.0,
    mv: float = 0.0,
    row_type: int = 1,
) -> Frame:
    """P&L ``{"topic":"spl","args":{"<acct>.Core":{...}}}`` (§3.6)."""
    core = {"rowType": row_type, "dpl": dpl, "nl": nl, "upl": upl, "el": el, "uel": uel, "mv": mv}
    return {"topic": "spl", "args": {f"{account}.Core": core}}


def ssd(
    account: str = DEFAULT_ACCOUNT,
    values: Mapping[str, float | str] | None = None,
    *,
    currency: str = "USD",
    timestamp: int = EPOCH_S,
) -> Frame:
    """Account summary ``ssd+<acct>`` (§3.7).

    Numbers become ``monetaryValue`` + ``currency`` entries, strings ``value`` entries.
    """
    result: list[dict[str, Any]] = []
    for key, value in (values if values is not None else {"NetLiquidation-S": 1_000_000.0}).items():
        entry: dict[str, Any] = {"key": key}
        if isinstance(value, str):
            entry["value"] = value
        else:
            entry["currency"] = currency
            entry["monetaryValue"] = value
        entry["severity"] = 0
        entry["timestamp"] = int(timestamp)
        result.append(entry)
    return {"result": result, "topic": f"ssd+{account}"}


def unsubscribed_summary() -> Frame:
    return {"result": "unsubscribed from summary"}


def sld(
    account: str = DEFAULT_ACCOUNT,
    ledgers: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    timestamp: int = EPOCH_S,
) -> Frame:
    """Account ledger ``sld+<acct>`` (§3.8): one ``LedgerList<CCY>`` entry per currency.

    An empty mapping for a currency gives the "blank" row the gateway sends when nothing changed.
    """
    result: list[dict[str, Any]] = []
    for ccy, values in (ledgers if ledgers is not None else {"BASE": {"cashbalance": 1_000_000.0}}).items():
        key = f"LedgerList{ccy}"
        if not values:
            result.append({"key": key, "timestamp": int(timestamp)})
            continue
        entry: dict[str, Any] = {"acctCode": account, "key": key, "secondKey": ccy}
        entry.update({"exchangeRate": 1.0, "severity": 0})
        entry.update(values)
        entry["timestamp"] = int(timestamp)
        result.append(entry)
    return {"result": result, "topic": f"sld+{account}"}


def unsubscribed_ledger() -> Frame:
    return {"result": "unsubscribed from ledger"}


# -- notifications, bulletins, errors -------------------------------------------------------------------
def notice(id: str, text: str, *, title: str | None = None, url: str | None = None) -> dict[str, Any]:
    """A notification entry of :func:`ntf`."""
    return {"id": id, "text": text, "title": title, "url": url}


def prompt(
    order_id: int,
    req_id: str,
    text: str,
    options: Sequence[str] = ("Yes", "No"),
    *,
    message_id: str = "p12",
    type: str = "M",
) -> dict[str, Any]:
    """A server prompt entry of :func:`ntf` (answered over REST ``/iserver/notification``)."""
    return {
        "orderId": order_id,
        "reqId": req_id,
        "dismissable": [],
        "text": text,
        "options": list(options),
        "type": type,
        "messageId": message_id,
        "prompt": True,
    }


def _entries(items: Iterable[Mapping[str, Any] | str], make: Any) -> list[dict[str, Any]]:
    return [make(str(i + 1), item) if isinstance(item, str) else dict(item) for i, item in enumerate(items)]


def ntf(*notices: Mapping[str, Any] | str) -> Frame:
    """Notifications, live shape (``args`` array, §3.12); a plain string becomes a :func:`notice`."""
    return {"topic": "ntf", "args": _entries(notices, notice)}


def bulletin(id: int, message: str, *, exchanges: str | None = None) -> dict[str, Any]:
    """A bulletin entry of :func:`blt` (numeric id, as live)."""
    return {"id": id, "exchanges": exchanges, "message": message}


def blt(*bulletins: Mapping[str, Any] | str) -> Frame:
    """Bulletins, live shape (``args`` array, §3.13); a plain string becomes a :func:`bulletin`."""
    return {"topic": "blt", "args": _entries(bulletins, lambda i, m: bulletin(int(i), m))}


def error(message: str, code: int = 500, *, topic: str | None = None) -> Frame:
    """An error frame (§3.15), e.g. ``error("No accounts", 500, topic="smd")``."""
    frame: Frame = {"error": message, "code": code}
    if topic is not None:
        frame["topic"] = topic
    return frame


__all__ = [
    "ALIASES",
    "DEFAULT_ACCOUNT",
    "DEFAULT_USERNAME",
    "EPOCH_MS",
    "EPOCH_S",
    "Frame",
    "act",
    "bar",
    "blt",
    "bulletin",
    "encode",
    "error",
    "execution",
    "greeting",
    "hb",
    "heartbeat",
    "ladder_row",
    "notice",
    "ntf",
    "order",
    "order_delta",
    "prompt",
    "sbd",
    "sld",
    "smd",
    "smh",
    "sor",
    "spl",
    "ssd",
    "str_",
    "sts",
    "system",
    "tic",
    "trades",
    "unsubscribed_history",
    "unsubscribed_ledger",
    "unsubscribed_summary",
    "waiting_for_session",
]
