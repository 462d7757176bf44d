"""Typed builders for every client -> server message (protocol reference section 2), and their inverse.

Each builder returns the exact text to send, with compact JSON, e.g. ``market_data(265598, ['31'])``
-> ``'smd+265598+{"fields":["31"]}'``. Arguments are checked here, at the call, so a typo raises a
ValueError naming the argument instead of being silently ignored by the gateway.
:func:`parse_request` parses such a text back into a :class:`ClientRequest`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ArgumentTypeError
from .fields import FIELD_IDS
from .keys import IbkrWsKey

# Characters that may not appear in a '+'-separated target (conid, account, exchange, server id).
_FORBIDDEN_IN_TOKEN = frozenset('+{}[]"\\@/ ')

PERIOD_UNITS: dict[str, int] = {"min": 30, "h": 8, "d": 1000, "w": 792, "m": 182, "y": 15}
"""``smh`` period unit -> largest allowed count (``{1-30}min``, ``{1-8}h``, ...)."""

BARS = tuple("1min 2min 3min 5min 10min 15min 30min 1h 2h 3h 4h 8h 1d 1w 1m".split())
"""The ``smh`` bar sizes."""

SOURCES = ("midpoint", "trades", "bid_ask", "bid", "ask")
"""The ``smh`` data sources."""

FORMAT_CODES = ("%o", "%c", "%h", "%l", "%v")
"""The ``smh`` format codes (open, close, high, low, volume), joined with ``/``."""

"""The two-letter channels that take an ``s``/``u`` prefix."""


def _dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def _type_error(name: str, expected: str, value: object) -> ArgumentTypeError:
    return ArgumentTypeError(f"{name} must be {expected}, got {type(value).__name__}")


def _token(name: str, value: object, *, allow_int: bool = False) -> str:
    """A '+'-separated target: non-empty printable ASCII without separators or brackets."""
    if not (isinstance(value, str) or (allow_int and isinstance(value, int) and not isinstance(value, bool))):
        raise _type_error(name, "a str", value)
    text = str(value)
    if not text:
        raise ValueError(f"{name} must not be empty")
    if not (text.isascii() and text.isprintable()) or not _FORBIDDEN_IN_TOKEN.isdisjoint(text):
        raise ValueError(f"{name} must be printable ASCII without '+@/', brackets or spaces: {text!r}")
    return text


def plain_conid(name: str, value: object) -> str:
    """A positive contract id as text (ValueError/TypeError naming ``name`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _type_error(name, "an int or a numeric str", value)
    text = str(value)
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise ValueError(f"{name} must be a positive contract id, got {value!r}")
    return text


def _conid(name: str, value: object, exchange: str | None = None) -> str:
    """A conid, optionally as 'conid@EXCHANGE' (given inline or as ``exchange``)."""
    if isinstance(value, str) and "@" in value:
        if exchange is not None:
            raise ValueError(f"{name} already names an exchange ({value!r}); do not also pass exchange")
        conid, _, venue = value.partition("@")
        return plain_conid(name, conid) + "@" + _token(f"{name} exchange", venue)
    text = plain_conid(name, value)
    if exchange is not None:
        text += "@" + _token("exchange", exchange)
    return text


def _account(value: object) -> str:
    return _token("account", value)


def strings(name: str, values: str | Iterable[str]) -> list[str]:
    """A non-empty list of non-empty strings; a single str counts as a list of one."""
    items: list[Any] = [values] if isinstance(values, str) else _as_list(name, values)
    for item in items:
        if not isinstance(item, str):
            raise _type_error(f"{name} items", "str", item)
        if not item:
            raise ValueError(f"{name} items must not be empty")
    if not items:
        raise ValueError(f"{name} must not be empty (pass None for no filter)")
    return items


def _as_list(name: str, values: object) -> list[Any]:
    if isinstance(values, bytes | bytearray | dict) or not isinstance(values, Iterable):
        raise _type_error(name, "a str or a sequence of str", values)
    return list(values)


def field_ids(fields: str | int | Iterable[str | int]) -> list[str]:
    """Field ids as strings; names from :data:`FIELD_IDS` (``'last_price'``) are translated.

    ValueError for an empty list or an unknown name, a TypeError (``ArgumentTypeError``) for items
    that are neither str nor int."""
    items: list[Any] = [fields] if isinstance(fields, str | int) else _as_list("fields", fields)
    if not items:
        raise ValueError("fields must not be empty (pass None for the server's default)")
    ids: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise _type_error("fields items", "a field id (str or int) or a field name", item)
        text = str(item)
        if text.isascii() and text.isdigit():
            ids.append(text)
        elif text in FIELD_IDS:
            ids.append(FIELD_IDS[text])
        else:
            raise ValueError(f"fields: {item!r} is neither a numeric field id nor a known field name")
    return ids


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _type_error(name, "a bool", value)
    return value


# --- market data -----------------------------------------------------------------------------------


def market_data(
    conid: int | str, fields: Sequence[str | int] | None = None, exchange: str | None = None
) -> str:
    """``smd+<conid>[@<exchange>]+{"fields":[...]}`` (``{}`` when fields is None).

    ``conid`` may be ``'265598@ISLAND'``; ``fields`` are ids (``'31'``, ``31``) or names (``'last_price'``),
    always sent as id strings.
    """
    args = {} if fields is None else {"fields": field_ids(fields)}
    return f"smd+{_conid('conid', conid, exchange)}+{_dumps(args)}"


def unsubscribe_market_data(conid: int | str) -> str:
    """``umd+<conid>+{}``."""
    return f"umd+{_conid('conid', conid)}+{{}}"


def _check_period(period: object) -> str:
    if not isinstance(period, str):
        raise _type_error("period", "a str such as '1d'", period)
    digits = 0
    while digits < len(period) and period[digits].isascii() and period[digits].isdigit():
        digits += 1
    unit = period[digits:]
    limit = PERIOD_UNITS.get(unit)
    if digits == 0 or limit is None or not 1 <= int(period[:digits]) <= limit:
        expected = "{1-30}min, {1-8}h, {1-1000}d, {1-792}w, {1-182}m or {1-15}y"
        raise ValueError(f"period must be {expected}, got {period!r}")
    return period


def _check_format(fmt: object) -> str:
    if not isinstance(fmt, str):
        raise _type_error("format", "a str such as '%o/%c/%h/%l'", fmt)
    parts = fmt.split("/")
    if not all(part in FORMAT_CODES for part in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"format must join distinct codes of {FORMAT_CODES} with '/', got {fmt!r}")
    return fmt


def market_history_args(
    *,
    period: str = "1d",
    bar: str = "5min",
    exchange: str | None = None,
    outside_rth: bool = False,
    source: str = "trades",
    format: str | None = None,
) -> dict[str, Any]:
    """The JSON arguments of ``smh``, validated; ``exchange`` and ``format`` only when given (the key
    order follows the IBKR example)."""
    args: dict[str, Any] = {}
    if exchange is not None:
        args["exchange"] = _token("exchange", exchange)
    args["period"] = _check_period(period)
    if bar not in BARS:
        raise ValueError(f"bar must be one of {', '.join(BARS)}; got {bar!r}")
    args["bar"] = bar
    args["outsideRth"] = _bool("outside_rth", outside_rth)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
    args["source"] = source
    if format is not None:
        args["format"] = _check_format(format)
    return args


def market_history(
    conid: int | str,
    *,
    period: str = "1d",
    bar: str = "5min",
    exchange: str | None = None,
    outside_rth: bool = False,
    source: str = "trades",
    format: str | None = None,
) -> str:
    """``smh+<conid>+{"exchange":..,"period":..,"bar":..,"outsideRth":..,"source":..,"format":..}``."""
    args = market_history_args(
        period=period, bar=bar, exchange=exchange, outside_rth=outside_rth, source=source, format=format
    )
    return f"smh+{plain_conid('conid', conid)}+{_dumps(args)}"


def unsubscribe_market_history(server_id: str | int) -> str:
    """``umh+<serverId>``: the server id from the ``smh`` reply, not the conid; no JSON part."""
    return f"umh+{_token('server_id', server_id, allow_int=True)}"


def price_ladder(account: str, conid: int | str, exchange: str | None = None) -> str:
    """``sbd+<account>+<conid>[+<exchange>]`` (no exchange = all deep exchanges)."""
    payload = f"sbd+{_account(account)}+{plain_conid('conid', conid)}"
    if exchange is not None:
        payload += "+" + _token("exchange", exchange)
    return payload


def unsubscribe_price_ladder(account: str) -> str:
    """``ubd+<account>``."""
    return f"ubd+{_account(account)}"


# --- orders, trades, P&L ------------------------------------------------------------------------------


def orders(filters: str | Sequence[str] | None = None) -> str:
    """``sor+{}`` or ``sor+{"filters":["Submitted"]}``."""
    args = {} if filters is None else {"filters": strings("filters", filters)}
    return f"sor+{_dumps(args)}"


def unsubscribe_orders() -> str:
    """``uor+{}``."""
    return "uor+{}"


def trades(days: int | None = None, realtime_only: bool = False) -> str:
    """``str+{}``, ``str+{"realtimeUpdatesOnly":true}``, ``str+{"days":3}`` (days 1..7)."""
    args: dict[str, Any] = {}
    if _bool("realtime_only", realtime_only):
        args["realtimeUpdatesOnly"] = True
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, int):
            raise _type_error("days", "an int from 1 to 7", days)
        if not 1 <= days <= 7:
            raise ValueError(f"days must be from 1 to 7, got {days}")
        args["days"] = days
    return f"str+{_dumps(args)}"


def unsubscribe_trades() -> str:
    """``utr`` (bare, as IBKR Campus and IBind send it)."""
    return "utr"


def pnl() -> str:
    """``spl+{}``."""
    return "spl+{}"


def unsubscribe_pnl() -> str:
    """``upl+{}``."""
    return "upl+{}"


# --- account summary and ledger -------------------------------------------------------------------


def _account_args(keys: str | Sequence[str] | None, fields: str | Sequence[str] | None) -> str:
    args: dict[str, Any] = {}
    if keys is not None:
        args["keys"] = strings("keys", keys)
    if fields is not None:
        args["fields"] = strings("fields", fields)
    return _dumps(args)


def account_summary(
    account: str, keys: str | Sequence[str] | None = None, fields: str | Sequence[str] | None = None
) -> str:
    """``ssd+<account>+{"keys":[...],"fields":[...]}`` (``{}`` = everything)."""
    return f"ssd+{_account(account)}+{_account_args(keys, fields)}"


def unsubscribe_account_summary(account: str) -> str:
    """``usd+<account>+{}``; the server confirms with ``{"result":"unsubscribed from summary"}``."""
    return f"usd+{_account(account)}+{{}}"


def ledger(
    account: str, keys: str | Sequence[str] | None = None, fields: str | Sequence[str] | None = None
) -> str:
    """``sld+<account>+{"keys":["LedgerListBASE",...],"fields":[...]}`` (``{}`` = everything)."""
    return f"sld+{_account(account)}+{_account_args(keys, fields)}"


def unsubscribe_ledger(account: str) -> str:
    """``uld+<account>+{}``; the server confirms with ``{"result":"unsubscribed from ledger"}``."""
    return f"uld+{_account(account)}+{{}}"


# --- session ------------------------------------------------------------------------------------------


def tic() -> str:
    """``tic``: keeps the brokerage session alive (send at least once a minute)."""
    return "tic"


def echo_heartbeat() -> str:
    """``ech+hb``: the legacy socket heartbeat."""
    return "ech+hb"


def session(session_id: str) -> str:
    """``{"session":"<id>"}``: the in-band authentication after ``waiting for session``."""
    if not isinstance(session_id, str):
        raise _type_error("session_id", "a str", session_id)
    if not session_id or not session_id.isprintable() or any(ch.isspace() for ch in session_id):
        raise ValueError("session_id must be a non-empty str without spaces or control characters")
    return _dumps({"session": session_id})


# --- parsing ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A parsed client -> server message.

    ``action``: 's', 'u', 'tic', 'ech' or 'session'; ``channel``: the two-letter channel ('md') or
    'tic' / 'ech' / 'session'; ``targets``: the '+'-separated parts between channel and JSON;
    ``args``: the JSON object (``{"session": id}`` for a session message), None when absent.
    """

    action: str
    channel: str
    targets: tuple[str, ...] = ()
    args: dict[str, Any] | None = None

    @property
    def key(self) -> IbkrWsKey | None:
        """The channel's key for 's'/'u' requests, None for tic/ech/session."""
        if self.action in ("s", "u"):
            return IbkrWsKey.from_channel(self.channel)
        return None


def _json_object(what: str, text: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not a JSON object")
    return obj


# channel -> allowed target counts, for (subscribe, unsubscribe)
_ARITY: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "md": ((1,), (1,)),
    "mh": ((1,), (1,)),
    "bd": ((2, 3), (1,)),
    "or": ((0,), (0,)),
    "tr": ((0,), (0,)),
    "pl": ((0,), (0,)),
    "sd": ((1,), (1,)),
    "ld": ((1,), (1,)),
}


def _check_targets(action: str, channel: str, targets: tuple[str, ...]) -> None:
    allowed = _ARITY[channel][action == "u"]
    if len(targets) not in allowed:
        raise ValueError(
            f"{action}{channel} takes {' or '.join(map(str, allowed))} target(s), got {len(targets)}"
        )
    for target in targets:
        if channel == "md":
            _conid("conid", target)
        elif channel == "mh" and action == "s":
            plain_conid("conid", target)
        else:
            _token("target", target)
    if channel == "bd" and action == "s":
        plain_conid("conid", targets[1])


def parse_request(payload: str) -> ClientRequest:
    """Parse a client -> server text into a :class:`ClientRequest`; ValueError if it breaks the grammar.

    Grammar: ``tic``; ``ech+<token>``; ``{"session":"<id>"}``; or ``(s|u)<channel>[+<target>]*[+<json>]``
    with the per-channel targets of section 2 (``smd+<conid>``, ``sbd+<acct>+<conid>[+<exch>]``, ...).
    """
    if not isinstance(payload, str):
        raise _type_error("payload", "a str", payload)
    if payload == "tic":
        return ClientRequest("tic", "tic")
    if payload.startswith("{"):
        obj = _json_object("session message", payload)
        session_id = obj.get("session")
        if len(obj) != 1 or not isinstance(session_id, str) or not session_id:
            raise ValueError('a JSON payload must be {"session": "<id>"}')
        return ClientRequest("session", "session", (), {"session": session_id})
    if payload.startswith("ech+"):
        return ClientRequest("ech", "ech", (_token("ech target", payload[4:]),))
    action, channel, rest = payload[:1], payload[1:3], payload[3:]
    if action not in ("s", "u") or channel not in _ARITY:
        raise ValueError(f"unknown request topic {payload[:3]!r}")
    targets: tuple[str, ...] = ()
    args: dict[str, Any] | None = None
    if rest:
        if rest[0] != "+" or len(rest) == 1:
            raise ValueError(f"expected '+' and a target or JSON after {payload[:3]!r}")
        body = rest[1:]
        brace = body.find("{")
        if brace < 0:
            target_part = body
        elif brace == 0:
            target_part = ""
            args = _json_object("request arguments", body)
        elif body[brace - 1] == "+":
            target_part = body[: brace - 1]
            args = _json_object("request arguments", body[brace:])
        else:
            raise ValueError("the JSON arguments must follow a '+'")
        if target_part:
            targets = tuple(target_part.split("+"))
    _check_targets(action, channel, targets)
    return ClientRequest(action, channel, targets, args)
