"""Typed values of the streams in :mod:`rxibkr.streams.hubs` and of :mod:`rxibkr.streams.operators`.

Every model is a frozen dataclass with slots: numbers are parsed (``"271.67"`` -> ``271.67``,
``""``/``"N/A"`` -> None), names follow Python conventions, and what came over the wire is kept
(``raw`` / ``fields`` / ``message``) so nothing the gateway sent is lost. Builders named
``from_...`` are pure functions of the frame data and never raise on odd input: a value that cannot
be parsed becomes None.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from rxibkr.protocol import FIELD_KINDS, FIELDS, FieldKind, Message, parse_number, parse_price, parse_value
from rxibkr.protocol.fields import _NUMBER_CHARS as NUMBER_CHARS
from rxibkr.protocol.fields import _UNWRAP as UNWRAPPED_NAMES
from rxibkr.protocol.fields import RAW_VOLUME_KEY, SENTINELS

EMPTY: Mapping[str, Any] = MappingProxyType({})
"""An empty, read-only mapping (shared default)."""

DONE_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Rejected"})
"""Order statuses after which an order changes no more. ``Inactive`` is not among them: every placed
order starts as ``Inactive`` in its first frame (the gateway also reports some rejections that way)."""


def _float(value: Any) -> float | None:
    number = parse_number(value)
    return None if number is None else float(number)


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = parse_number(value)
    if number is None or (isinstance(number, float) and not number.is_integer()):
        return None
    return int(number)


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _conid_of(message: Message) -> int | None:
    """The conid of an ``smd``/``smh`` message: ``data["conid"]``, else from the topic."""
    data = message.data
    if data is not None:
        conid = _int(data.get("conid"))
        if conid is not None:
            return conid
    target = message.target
    return _int(target.split("@", 1)[0]) if target else None


def _ms_to_datetime(ms: int | None) -> datetime | None:
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


# =================================================================================================
# market data
# =================================================================================================

# -- the market-data hot path: parse one smd frame's changed fields -------------------------------
# Same results as rxibkr.protocol.parse_value (a property test checks it). Field values repeat a lot
# (prices around the current level, sizes, codes), so parsed strings are memoised in small caches
# (cleared when they grow past _CACHE_MAX): a dict lookup instead of float() and the checks.

_SKIP, _PRICE, _TEXT, _NUMBER = 0, 1, 2, 3
_SPECS: dict[str, tuple[str, int]] = {
    fid: (
        name,
        _PRICE
        if FIELD_KINDS[fid] is FieldKind.PRICE
        else (_TEXT if FIELD_KINDS[fid] is FieldKind.TEXT else _NUMBER),
    )
    for fid, name in FIELDS.items()
}
_SPECS[RAW_VOLUME_KEY] = (UNWRAPPED_NAMES[RAW_VOLUME_KEY], _NUMBER)
for _key in ("conid", "conidEx", "server_id", "_updated", "topic"):  # bookkeeping, not fields
    _SPECS[_key] = (_key, _SKIP)
_SPECS_get = _SPECS.get
_CACHE_MAX = 4096
_PRICES: dict[str, tuple[float | None, str]] = {}
_PRICES_get = _PRICES.get
_NUMBERS: dict[str, Any] = {}
_NUMBERS_get = _NUMBERS.get
_is_plain = NUMBER_CHARS.issuperset
_isfinite = math.isfinite
_TEXT_SENTINELS = SENTINELS
_MISS: Any = object()


def _parse_price_text(value: str) -> tuple[float | None, str]:
    result: tuple[float | None, str]
    if value and _is_plain(value):
        try:
            number = float(value)
        except ValueError:
            result = (None, "")
        else:
            result = (number if _isfinite(number) else None, "")
    else:
        price = parse_price(value)
        result = (price.value, ("C" if price.is_close else "") + ("H" if price.is_halted else ""))
    if len(_PRICES) >= _CACHE_MAX:
        _PRICES.clear()
    _PRICES[value] = result
    return result


def _parse_number_text(value: str) -> Any:
    number: Any
    if value and _is_plain(value):
        try:
            if "." in value or "e" in value or "E" in value:
                number = float(value)
                if not _isfinite(number):
                    number = None
            else:
                number = int(value)
        except ValueError:
            number = None
    else:
        number = parse_number(value)
    if len(_NUMBERS) >= _CACHE_MAX:
        _NUMBERS.clear()
    _NUMBERS[value] = number
    return number


def parse_market_data(data: Mapping[str, Any]) -> tuple[dict[str, Any], Mapping[str, str]]:
    """The fields of one ``smd`` object by name with parsed values, and the C/H price prefixes.

    Bookkeeping keys (``conid``, ``conidEx``, ``server_id``, ``_updated``, ``topic``) are left out;
    unknown keys are kept under their own name with the raw value.
    """
    fields: dict[str, Any] = {}
    prefixes: dict[str, str] | None = None
    for key, value in data.items():
        spec = _SPECS_get(key)
        if spec is None:
            fields[key] = value
            continue
        name, kind = spec
        if kind == _SKIP:
            continue
        if type(value) is str:
            if kind == _PRICE:
                hit = _PRICES_get(value)
                number, prefix = hit if hit is not None else _parse_price_text(value)
                if prefix:
                    if prefixes is None:
                        prefixes = {}
                    prefixes[name] = prefix
            elif kind == _NUMBER:
                number = _NUMBERS_get(value, _MISS)
                if number is _MISS:
                    number = _parse_number_text(value)
            else:
                number = None if value.strip() in _TEXT_SENTINELS else value  # type: ignore[assignment]
        elif kind == _TEXT:
            number = value
        elif type(value) is float or type(value) is int:
            number = value if kind == _NUMBER else parse_price(value).value
        else:
            number = parse_value(key, value)
        fields[name] = number
    return fields, (EMPTY if prefixes is None else prefixes)


_IDS_BY_NAME: dict[str, str] = {name: fid for fid, (name, kind) in _SPECS.items() if kind != _SKIP}


def field_value(data: Mapping[str, Any], name: str, missing: Any = None) -> Any:
    """One field of a raw ``smd`` object by name, parsed as :func:`parse_market_data` parses it
    (``missing`` when the object does not carry it), without parsing the others."""
    fid = _IDS_BY_NAME.get(name)
    if fid is None:
        if name in _SPECS:  # a field id or a bookkeeping key: parse_market_data keys by name
            return missing
        return data.get(name, missing)  # an unknown key, kept under its own name
    value = data.get(fid, _MISS)
    if value is _MISS:
        return missing
    kind = _SPECS[fid][1]
    if type(value) is str:
        if kind == _PRICE:
            hit = _PRICES_get(value)
            return (hit if hit is not None else _parse_price_text(value))[0]
        if kind == _NUMBER:
            number = _NUMBERS_get(value, _MISS)
            return _parse_number_text(value) if number is _MISS else number
        return None if value.strip() in _TEXT_SENTINELS else value
    if kind == _TEXT:
        return value
    if type(value) is float or type(value) is int:
        return value if kind == _NUMBER else parse_price(value).value
    return parse_value(fid, value)


def _price_of(data: Mapping[str, Any], fid: str) -> float | None:
    """One price field of a raw ``smd`` object, parsed (memoised like :func:`parse_market_data`)."""
    value = data.get(fid)
    if type(value) is str:
        hit = _PRICES_get(value)
        return (hit if hit is not None else _parse_price_text(value))[0]
    return None if value is None else parse_price(value).value


def _prefix_of(data: Mapping[str, Any], fid: str) -> str:
    value = data.get(fid)
    if type(value) is not str:
        return ""
    hit = _PRICES_get(value)
    return (hit if hit is not None else _parse_price_text(value))[1]


def _number_of(data: Mapping[str, Any], fid: str) -> Any:
    value = data.get(fid)
    if type(value) is str:
        number = _NUMBERS_get(value, _MISS)
        return _parse_number_text(value) if number is _MISS else number
    return None if value is None else parse_number(value)


def _text_of(data: Mapping[str, Any], fid: str) -> str | None:
    value = data.get(fid)
    if value is None or (type(value) is str and value.strip() in _TEXT_SENTINELS):
        return None
    return value if type(value) is str else str(value)


@dataclass(frozen=True, slots=True)
class MarketDataUpdate:
    """One ``smd`` frame of one contract: only the fields that changed (IBKR sends deltas).

    ``conid``: the contract; ``updated``: the server time of the update (``_updated``, epoch ms);
    ``data``: the frame's JSON object (field ids as keys, raw values); ``message``: the decoded
    frame (``message.raw`` is the frame exactly as received). Parsed views, computed on first use:
    ``fields``, the changed fields by name (``"last_price"``, see :data:`rxibkr.protocol.FIELDS`)
    with parsed values (prices and numbers as float/int, text as str, ``"N/A"``/``"-"``/``""`` as
    None), and ``prefixes``, the price fields whose raw value carried a ``C`` (prior close, no
    trade yet) or ``H`` (halted) prefix (name -> ``"C"``, ``"H"`` or ``"CH"``).
    """

    conid: int
    updated: int | None
    data: Mapping[str, Any]
    message: Message
    _parsed: tuple[dict[str, Any], Mapping[str, str]] = field(init=False, repr=False, compare=False)

    def _parse(self) -> tuple[dict[str, Any], Mapping[str, str]]:
        try:
            return self._parsed
        except AttributeError:
            parsed = parse_market_data(self.data)
            object.__setattr__(self, "_parsed", parsed)
            return parsed

    @property
    def fields(self) -> Mapping[str, Any]:
        """The changed fields by name, parsed."""
        return self._parse()[0]

    @property
    def prefixes(self) -> Mapping[str, str]:
        """Price fields of this update that carried a ``C``/``H`` prefix (name -> prefix)."""
        return self._parse()[1]

    @property
    def raw(self) -> bytes | str:
        """The frame exactly as received."""
        return self.message.raw

    @property
    def time(self) -> datetime | None:
        """``updated`` as an aware UTC datetime."""
        return _ms_to_datetime(self.updated)

    def get(self, name: str, default: Any = None) -> Any:
        """A changed field by name (``"last_price"``), or ``default`` when it did not change
        (parses that field only, unless every field was parsed already)."""
        try:
            return self._parsed[0].get(name, default)
        except AttributeError:
            return field_value(self.data, name, default)

    def __repr__(self) -> str:
        return f"MarketDataUpdate(conid={self.conid}, updated={self.updated}, fields={dict(self.fields)})"

    @classmethod
    def from_message(cls, message: Message) -> MarketDataUpdate | None:
        """One ``smd`` message as an update; None when it names no contract."""
        data = message.data
        if data is None:
            return None
        conid = data.get("conid")
        if type(conid) is not int:
            conid = _conid_of(message)
            if conid is None:
                return None
        updated = data.get("_updated")
        return cls(conid, updated if type(updated) is int else _int(updated), data, message)


@dataclass(frozen=True, slots=True)
class Quote:
    """The full, merged market-data state of one contract after an update (see ``snapshots()``).

    ``data``: every field received so far, raw (field ids as keys; the bookkeeping keys of the
    latest frame too); ``fields``: the same by name, parsed (computed on first use); the properties
    give typed access to the usual fields, each parsed when read (None until the gateway sent it).
    ``is_close`` / ``is_halted``: the last price carries a ``C`` (it is the prior close, no trade
    yet) or ``H`` (trading halted) prefix. ``update``: the update that produced this quote.

    ``conid``: the contract; ``updated``: the server time of the latest update (epoch ms).
    """

    conid: int
    updated: int | None
    data: Mapping[str, Any]
    update: MarketDataUpdate | None = None
    _parsed: tuple[dict[str, Any], Mapping[str, str]] = field(init=False, repr=False, compare=False)

    @property
    def fields(self) -> Mapping[str, Any]:
        """Every field received so far, by name, parsed."""
        try:
            return self._parsed[0]
        except AttributeError:
            parsed = parse_market_data(self.data)
            object.__setattr__(self, "_parsed", parsed)
            return parsed[0]

    def get(self, name: str, default: Any = None) -> Any:
        """Any field by name (``"implied_vol_percent"``), or ``default`` when unknown or None
        (parses that field only, unless every field was parsed already)."""
        try:
            value = self._parsed[0].get(name)
        except AttributeError:
            value = field_value(self.data, name)
        return default if value is None else value

    def __repr__(self) -> str:
        return (
            f"Quote(conid={self.conid}, bid={self.bid}, ask={self.ask}, last={self.last}, "
            f"updated={self.updated})"
        )

    @property
    def time(self) -> datetime | None:
        """``updated`` as an aware UTC datetime."""
        return _ms_to_datetime(self.updated)

    @property
    def bid(self) -> float | None:
        """Bid price (field 84)."""
        value = self.data.get("84")  # _price_of inlined: the memo hit is the common case
        if type(value) is str:
            hit = _PRICES_get(value)
            if hit is not None:
                return hit[0]
        return _price_of(self.data, "84")

    @property
    def ask(self) -> float | None:
        """Ask price (field 86)."""
        value = self.data.get("86")  # _price_of inlined: the memo hit is the common case
        if type(value) is str:
            hit = _PRICES_get(value)
            if hit is not None:
                return hit[0]
        return _price_of(self.data, "86")

    @property
    def last(self) -> float | None:
        """Last price (field 31), without its ``C``/``H`` prefix (see ``is_close``, ``is_halted``)."""
        value = self.data.get("31")  # _price_of inlined: the memo hit is the common case
        if type(value) is str:
            hit = _PRICES_get(value)
            if hit is not None:
                return hit[0]
        return _price_of(self.data, "31")

    @property
    def is_close(self) -> bool:
        """The last price is the prior close (``C`` prefix): no trade yet today."""
        return "C" in _prefix_of(self.data, "31")

    @property
    def is_halted(self) -> bool:
        """The last price carries the ``H`` prefix: trading is halted."""
        return "H" in _prefix_of(self.data, "31")

    @property
    def bid_size(self) -> float | None:
        """Bid size (field 88)."""
        number: float | None = _number_of(self.data, "88")
        return number

    @property
    def ask_size(self) -> float | None:
        """Ask size (field 85)."""
        number: float | None = _number_of(self.data, "85")
        return number

    @property
    def last_size(self) -> float | None:
        """Size of the last trade (field 7059)."""
        number: float | None = _number_of(self.data, "7059")
        return number

    @property
    def volume(self) -> float | None:
        """Day volume: the precise ``87_raw`` twin when the gateway sends it, else field 87."""
        number: float | None = _number_of(self.data, "87_raw")
        if number is None:
            number = _number_of(self.data, "87")
        return number

    @property
    def open(self) -> float | None:
        """Today's opening price (field 7295)."""
        return _price_of(self.data, "7295")

    @property
    def high(self) -> float | None:
        """Today's high (field 70)."""
        return _price_of(self.data, "70")

    @property
    def low(self) -> float | None:
        """Today's low (field 71)."""
        return _price_of(self.data, "71")

    @property
    def prior_close(self) -> float | None:
        """The prior session's close (field 7741)."""
        return _price_of(self.data, "7741")

    @property
    def change(self) -> float | None:
        """Change since the prior close (field 82)."""
        return _price_of(self.data, "82")

    @property
    def change_percent(self) -> float | None:
        """Change since the prior close, in percent (field 83)."""
        number: float | None = _number_of(self.data, "83")
        return number

    @property
    def symbol(self) -> str | None:
        """The symbol (field 55)."""
        return _text_of(self.data, "55")

    @property
    def availability(self) -> str | None:
        """Field 6509 (``"RpB"``: real-time, ``"D.."``: delayed, ``"Z.."``: frozen, ...)."""
        return _text_of(self.data, "6509")

    @property
    def mid(self) -> float | None:
        """(bid + ask) / 2 when both are known."""
        bid = _price_of(self.data, "84")
        ask = _price_of(self.data, "86")
        if bid is None or ask is None:
            return None
        return (bid + ask) / 2.0

    @property
    def spread(self) -> float | None:
        """ask - bid when both are known."""
        bid = _price_of(self.data, "84")
        ask = _price_of(self.data, "86")
        if bid is None or ask is None:
            return None
        return ask - bid


# Fast constructors for the hot path. The __init__ that dataclasses generate for a frozen class
# sets each field through object.__setattr__ (about 3x the cost of setting the slots directly).
# These build the same objects (same fields, same lazy caches left unset): an instance of a plain
# class with the same slots (same memory layout) gets its slots stored directly (the interpreter's
# specialised slot stores; the frozen class's __setattr__ forbids them), then the frozen class as
# its class. About 40% fewer instructions than storing through the slot descriptors.
_new = object.__new__


def _shape_of(cls: type) -> Any:
    """A plain class with ``cls``'s slots, whose instances may become ``cls`` instances."""
    return type(f"_{cls.__name__}Shape", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]


_UpdateShape = _shape_of(MarketDataUpdate)
_QuoteShape = _shape_of(Quote)


def new_update(
    conid: int, updated: int | None, data: Mapping[str, Any], message: Message
) -> MarketDataUpdate:
    """``MarketDataUpdate(conid, updated, data, message)``, faster."""
    update = _new(_UpdateShape)
    update.conid = conid
    update.updated = updated
    update.data = data
    update.message = message
    update.__class__ = MarketDataUpdate
    return update  # type: ignore[no-any-return]


def new_quote(
    conid: int, updated: int | None, data: Mapping[str, Any], update: MarketDataUpdate | None
) -> Quote:
    """``Quote(conid, updated, data, update)``, faster."""
    quote = _new(_QuoteShape)
    quote.conid = conid
    quote.updated = updated
    quote.data = data
    quote.update = update
    quote.__class__ = Quote
    return quote  # type: ignore[no-any-return]


# =================================================================================================
# bars and history
# =================================================================================================


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLC bar. ``time``: the start of the bar, epoch ms (UTC).

    History bars (``market_history``) carry the gateway's ``v`` as ``volume`` and the raw object
    as ``raw``; bars built by ``ohlc()`` carry ``count`` (ticks aggregated), ``interval`` (seconds)
    and, when a size was given, the summed ``volume``.

    ``open``, ``high``, ``low``, ``close``: prices; ``conid``: the contract (None when unknown).
    """

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None
    count: int = 0
    conid: int | None = None
    interval: float | None = None
    raw: Mapping[str, Any] | None = None

    @property
    def datetime(self) -> datetime | None:
        """``time`` as an aware UTC datetime."""
        return _ms_to_datetime(self.time)

    @classmethod
    def from_history(cls, obj: Mapping[str, Any], conid: int | None = None) -> Bar | None:
        """A bar of an ``smh`` ``data`` array (``{"o","c","h","l","v","t"}``); None when it has no
        time or no price at all. Missing prices (a ``format`` without them) fall back to the close."""
        time = _int(obj.get("t"))
        if time is None:
            return None
        o, h, low, c = (_float(obj.get(k)) for k in ("o", "h", "l", "c"))
        known = [p for p in (c, o, h, low) if p is not None]
        if not known:
            return None
        fallback = known[0]
        return cls(
            time=time,
            open=fallback if o is None else o,
            high=fallback if h is None else h,
            low=fallback if low is None else low,
            close=fallback if c is None else c,
            volume=_float(obj.get("v")),
            conid=conid,
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class History:
    """One ``smh`` reply: the gateway's description of the series and its bars (oldest first).

    ``server_id`` is the gateway's handle (the client sends ``umh+<server_id>`` on dispose);
    ``price_factor``: prices in ``high``/``low`` summary strings are multiplied by it (the bars are
    not); ``bar_length``: seconds.

    ``conid``: the contract; ``symbol``: its symbol; ``text``: the gateway's description of the
    contract; ``start_time``: the first bar's time as the gateway writes it
    (``"20250101-14:30:00"``); ``points``: the number of bars minus one, as the gateway counts;
    ``bars``: the bars, oldest first; ``message``: the decoded frame.
    """

    conid: int | None
    server_id: str | None
    symbol: str | None
    text: str | None
    price_factor: float | None
    start_time: str | None
    bar_length: int | None
    points: int | None
    bars: tuple[Bar, ...]
    message: Message

    @classmethod
    def from_message(cls, message: Message) -> History:
        """One ``smh`` message as a History (bars that have no time or price are skipped)."""
        data = message.data or {}
        conid = _conid_of(message)
        rows = data.get("data")
        bars: list[Bar] = []
        if isinstance(rows, list):
            for row in rows:
                if isinstance(row, Mapping):
                    bar = Bar.from_history(row, conid)
                    if bar is not None:
                        bars.append(bar)
        return cls(
            conid=conid,
            server_id=_str(data.get("serverId")),
            symbol=_str(data.get("symbol")),
            text=_str(data.get("text")),
            price_factor=_float(data.get("priceFactor")),
            start_time=_str(data.get("startTime")),
            bar_length=_int(data.get("barLength")),
            points=_int(data.get("points")),
            bars=tuple(bars),
            message=message,
        )


# =================================================================================================
# orders and executions
# =================================================================================================


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """The full merged state of one order after an update (``sor`` deltas merged, see
    ``order_state()``).

    ``fields``: every key received so far for this order, as sent (``orderId``, ``status``,
    ``sizeAndFills``...); ``changed``: the keys the latest delta carried; ``delta``: that delta;
    ``source``: ``"rest"`` for the initial REST snapshot, ``"ws"`` for ``sor`` updates.
    Typed views: ``price`` (``""`` -> None), ``avg_price``, quantities as floats.

    ``order_id``: the gateway's order id.
    """

    order_id: int
    fields: Mapping[str, Any]
    changed: frozenset[str]
    delta: Mapping[str, Any]
    source: str = "ws"

    @property
    def account(self) -> str | None:
        """The account the order belongs to (``acct``)."""
        return _str(self.fields.get("acct", self.fields.get("account")))

    @property
    def status(self) -> str | None:
        """The order status as the gateway words it (``"PreSubmitted"``, ``"Submitted"``, ``"Filled"``,
        ``"Cancelled"``, ...)."""
        return _str(self.fields.get("status"))

    @property
    def conid(self) -> int | None:
        """The contract."""
        return _int(self.fields.get("conid"))

    @property
    def ticker(self) -> str | None:
        """The symbol."""
        return _str(self.fields.get("ticker"))

    @property
    def side(self) -> str | None:
        """``"BUY"`` or ``"SELL"``."""
        return _str(self.fields.get("side"))

    @property
    def order_type(self) -> str | None:
        """``orderType``: ``"Limit"``, ``"Market"``, ..."""
        return _str(self.fields.get("orderType"))

    @property
    def time_in_force(self) -> str | None:
        """``timeInForce``: ``"DAY"``, ``"GTC"``, ..."""
        return _str(self.fields.get("timeInForce"))

    @property
    def price(self) -> float | None:
        """The limit price; None for market orders (the gateway sends ``""``)."""
        return _float(self.fields.get("price"))

    @property
    def avg_price(self) -> float | None:
        """Average fill price (``avgPrice``); None before the first fill."""
        return _float(self.fields.get("avgPrice"))

    @property
    def filled(self) -> float | None:
        """Filled quantity (``filledQuantity``)."""
        return _float(self.fields.get("filledQuantity"))

    @property
    def remaining(self) -> float | None:
        """Quantity still to fill (``remainingQuantity``)."""
        return _float(self.fields.get("remainingQuantity"))

    @property
    def total_size(self) -> float | None:
        """The order's quantity (``totalSize``)."""
        return _float(self.fields.get("totalSize"))

    @property
    def order_ref(self) -> str | None:
        """The client order id (``cOID`` at placement)."""
        return _str(self.fields.get("order_ref"))

    @property
    def description(self) -> str | None:
        """The gateway's one-line description (``orderDesc``)."""
        return _str(self.fields.get("orderDesc"))

    @property
    def last_execution_time(self) -> datetime | None:
        """``lastExecutionTime_r`` (epoch ms) as an aware UTC datetime."""
        return _ms_to_datetime(_int(self.fields.get("lastExecutionTime_r")))

    @property
    def is_done(self) -> bool:
        """Filled, cancelled or otherwise final (see :data:`DONE_STATUSES`)."""
        return self.fields.get("status") in DONE_STATUSES

    @property
    def is_filled(self) -> bool:
        """The status is ``Filled``."""
        return self.fields.get("status") == "Filled"


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution (``str``), parsed. ``revision`` is 0 the first time an ``execution_id`` is
    seen and counts up each time the gateway re-sends it with different content (typically once,
    when the ``commission`` becomes known). ``fields``: the object as sent."""

    execution_id: str
    fields: Mapping[str, Any]
    revision: int = 0

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any], revision: int = 0) -> Execution | None:
        """One ``str`` object as an Execution; None without an ``execution_id``."""
        execution_id = obj.get("execution_id")
        if execution_id is None:
            return None
        return cls(str(execution_id), obj, revision)

    @property
    def symbol(self) -> str | None:
        """The symbol."""
        return _str(self.fields.get("symbol"))

    @property
    def side(self) -> str | None:
        """``"B"`` (bought) or ``"S"`` (sold)."""
        return _str(self.fields.get("side"))

    @property
    def size(self) -> float | None:
        """Quantity executed."""
        return _float(self.fields.get("size"))

    @property
    def price(self) -> float | None:
        """Execution price."""
        return _float(self.fields.get("price"))

    @property
    def commission(self) -> float | None:
        """None until the gateway knows it (it re-sends the execution then)."""
        return _float(self.fields.get("commission"))

    @property
    def net_amount(self) -> float | None:
        """``net_amount``: size x price as the gateway computes it."""
        return _float(self.fields.get("net_amount"))

    @property
    def conid(self) -> int | None:
        """The contract."""
        return _int(self.fields.get("conid"))

    @property
    def order_id(self) -> int | None:
        """The order this execution fills."""
        return _int(self.fields.get("order_id"))

    @property
    def order_ref(self) -> str | None:
        """The client order id (``cOID`` at placement)."""
        return _str(self.fields.get("order_ref"))

    @property
    def account(self) -> str | None:
        """The account (``account`` or ``accountCode``)."""
        return _str(self.fields.get("account", self.fields.get("accountCode")))

    @property
    def exchange(self) -> str | None:
        """Where it executed."""
        return _str(self.fields.get("exchange"))

    @property
    def trade_time(self) -> datetime | None:
        """``trade_time_r`` (epoch ms) as an aware UTC datetime."""
        return _ms_to_datetime(_int(self.fields.get("trade_time_r")))


# =================================================================================================
# account
# =================================================================================================


@dataclass(frozen=True, slots=True)
class PnlRow:
    """One ``spl`` row (``"<account>.Core"``), merged with the previous rows of the same key.

    ``daily`` (dpl), ``unrealized`` (upl), ``net_liquidity`` (nl), ``excess_liquidity`` (el),
    ``excess_liquidity_unrounded`` (uel), ``market_value`` (mv); None when never sent.

    ``key``: ``"<account>.Core"``; ``fields``: the merged row as sent (``dpl``, ``upl``, ``nl``,
    ...).
    """

    key: str
    fields: Mapping[str, Any]

    @property
    def account(self) -> str:
        """The account id (``key`` before the dot)."""
        return self.key.split(".", 1)[0]

    @property
    def row_type(self) -> int | None:
        """``rowType`` (1 for the account's core row)."""
        return _int(self.fields.get("rowType"))

    @property
    def daily(self) -> float | None:
        """Daily P&L (``dpl``)."""
        return _float(self.fields.get("dpl"))

    @property
    def unrealized(self) -> float | None:
        """Unrealized P&L (``upl``)."""
        return _float(self.fields.get("upl"))

    @property
    def net_liquidity(self) -> float | None:
        """Net liquidity (``nl``)."""
        return _float(self.fields.get("nl"))

    @property
    def excess_liquidity(self) -> float | None:
        """Excess liquidity (``el``)."""
        return _float(self.fields.get("el"))

    @property
    def excess_liquidity_unrounded(self) -> float | None:
        """Excess liquidity, unrounded (``uel``)."""
        return _float(self.fields.get("uel"))

    @property
    def market_value(self) -> float | None:
        """Market value (``mv``)."""
        return _float(self.fields.get("mv"))


@dataclass(frozen=True, slots=True)
class SummaryItem:
    """One ``ssd`` entry. Money keys carry ``monetary_value`` + ``currency``; others a text
    ``value``. ``timestamp``: epoch **seconds** (protocol §7.13).

    ``account``: the account id; ``key``: the summary key (``"netliquidation"``,
    ``"availablefunds"``, ...); ``severity``: the gateway's severity of the item; ``raw``: the
    object as sent.
    """

    account: str
    key: str
    value: str | None
    monetary_value: float | None
    currency: str | None
    severity: int | None
    timestamp: int | None
    raw: Mapping[str, Any]

    @classmethod
    def from_mapping(cls, account: str, obj: Mapping[str, Any]) -> SummaryItem | None:
        """One ``ssd`` entry of ``account`` as a SummaryItem; None without a ``key``."""
        key = obj.get("key")
        if not isinstance(key, str):
            return None
        value = obj.get("value")
        return cls(
            account=account,
            key=key,
            value=None if value is None else _str(value),
            monetary_value=_float(obj.get("monetaryValue")),
            currency=_str(obj.get("currency")),
            severity=_int(obj.get("severity")),
            timestamp=_int(obj.get("timestamp")),
            raw=obj,
        )

    @property
    def number(self) -> float | None:
        """``monetary_value``, or ``value`` parsed as a number (``"0.9913"`` -> 0.9913)."""
        return self.monetary_value if self.monetary_value is not None else _float(self.value)

    @property
    def time(self) -> datetime | None:
        """``timestamp`` as an aware UTC datetime."""
        return None if self.timestamp is None else _ms_to_datetime(self.timestamp * 1000)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One ``sld`` row per currency (``LedgerListUSD``, ``LedgerListBASE``...), merged with the
    previous rows of the same key: the gateway sends a currency that did not change as a "blank"
    row (only ``key`` and ``timestamp``), flagged here as ``blank`` with the last known values kept.
    ``timestamp``: epoch seconds.

    ``account``: the account id; ``fields``: the merged row as sent (``cashbalance``,
    ``netLiquidationValue``, ...).
    """

    account: str
    key: str
    fields: Mapping[str, Any]
    blank: bool = False

    @property
    def currency(self) -> str:
        """The row's currency (``secondKey``, else ``key`` without ``LedgerList``; ``BASE`` for the base
        currency row)."""
        second = self.fields.get("secondKey")
        if isinstance(second, str) and second:
            return second
        return self.key.removeprefix("LedgerList")

    def _f(self, name: str) -> float | None:
        return _float(self.fields.get(name))

    @property
    def cash_balance(self) -> float | None:
        """Cash balance (``cashbalance``)."""
        return self._f("cashbalance")

    @property
    def net_liquidation_value(self) -> float | None:
        """Net liquidation value (``netLiquidationValue``)."""
        return self._f("netLiquidationValue")

    @property
    def exchange_rate(self) -> float | None:
        """Exchange rate to the base currency (``exchangeRate``)."""
        return self._f("exchangeRate")

    @property
    def settled_cash(self) -> float | None:
        """Settled cash (``settledCash``)."""
        return self._f("settledCash")

    @property
    def stock_market_value(self) -> float | None:
        """Market value of stocks (``stockMarketValue``)."""
        return self._f("stockMarketValue")

    @property
    def market_value(self) -> float | None:
        """Market value (``marketValue``)."""
        return self._f("marketValue")

    @property
    def unrealized_pnl(self) -> float | None:
        """Unrealized P&L (``unrealizedPnl``)."""
        return self._f("unrealizedPnl")

    @property
    def realized_pnl(self) -> float | None:
        """Realized P&L (``realizedPnl``)."""
        return self._f("realizedPnl")

    @property
    def timestamp(self) -> int | None:
        """The row's time, epoch seconds."""
        return _int(self.fields.get("timestamp"))


@dataclass(frozen=True, slots=True)
class LadderRow:
    """One row of a BookTrader price ladder (``sbd``). ``price`` parses both ``"12.34"`` and the
    ``"size @ price"`` form (then ``size`` is the traded size at that price); ``bid_size`` /
    ``ask_size`` are the resting sizes; ``focus`` marks the last-trade row.

    ``row``: the row number; ``raw``: the object as sent.
    """

    row: int | None
    price: float | None
    size: float | None
    bid_size: float | None
    ask_size: float | None
    focus: bool
    raw: Mapping[str, Any]

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any]) -> LadderRow:
        """One row object of an ``sbd`` frame."""
        price_text = obj.get("price")
        size: float | None = None
        if isinstance(price_text, str) and "@" in price_text:
            size_text, _, price_text = price_text.partition("@")
            size = _float(size_text)
        return cls(
            row=_int(obj.get("row")),
            price=_float(price_text),
            size=size,
            bid_size=_float(obj.get("bid")),
            ask_size=_float(obj.get("ask")),
            focus=bool(obj.get("focus")),
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class Ladder:
    """One ``sbd`` frame: the whole ladder of ``conid`` for ``account`` (rows in frame order).

    ``exchange``: the exchange of the ladder (None when not given); ``rows``: the rows; ``message``:
    the decoded frame.
    """

    account: str | None
    conid: int | None
    exchange: str | None
    rows: tuple[LadderRow, ...]
    message: Message

    def __iter__(self) -> Iterator[LadderRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def from_message(cls, message: Message) -> Ladder:
        """One ``sbd`` message as a Ladder (account, conid and exchange from its topic)."""
        data = message.data or {}
        parts = (message.target or "").split("+")
        account = parts[0] or None
        conid = _int(parts[1]) if len(parts) > 1 else None
        exchange = parts[2] if len(parts) > 2 and parts[2] else None
        rows = data.get("data")
        parsed = (
            tuple(LadderRow.from_mapping(r) for r in rows if isinstance(r, Mapping))
            if isinstance(rows, list)
            else ()
        )
        return cls(account, conid, exchange, parsed, message)


# =================================================================================================
# unsolicited
# =================================================================================================


def _args_items(args: Any) -> list[Mapping[str, Any]]:
    """``args`` as a list of objects: live frames send arrays, the docs show single objects."""
    if isinstance(args, Mapping):
        return [args]
    if isinstance(args, list):
        return [item for item in args if isinstance(item, Mapping)]
    return []


@dataclass(frozen=True, slots=True)
class Notification:
    """One ``ntf`` item: a notice (``id``, ``text``, ``title``, ``url``) or a server prompt
    (``prompt`` True, with ``order_id``, ``req_id``, ``options``, ``message_id``) that is answered
    over REST (``POST /iserver/notification``). ``id`` is always a str (numeric ids converted).

    ``type``: the notice's type as sent; ``raw``: the object as sent.
    """

    id: str | None
    text: str | None
    title: str | None
    url: str | None
    prompt: bool
    order_id: int | None
    req_id: str | None
    options: tuple[str, ...]
    message_id: str | None
    type: str | None
    raw: Mapping[str, Any]

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any]) -> Notification:
        """One ``ntf`` item."""
        options = obj.get("options")
        return cls(
            id=_str(obj.get("id")),
            text=_str(obj.get("text")),
            title=_str(obj.get("title")),
            url=_str(obj.get("url")),
            prompt=bool(obj.get("prompt")) or bool(options),
            order_id=_int(obj.get("orderId")),
            req_id=_str(obj.get("reqId")),
            options=tuple(str(o) for o in options) if isinstance(options, list) else (),
            message_id=_str(obj.get("messageId")),
            type=_str(obj.get("type")),
            raw=obj,
        )

    @classmethod
    def from_message(cls, message: Message) -> list[Notification]:
        """Every item of one ``ntf`` message (``args`` may be an object or an array)."""
        return [cls.from_mapping(item) for item in _args_items(message.args)]


@dataclass(frozen=True, slots=True)
class Bulletin:
    """One ``blt`` item. ``id`` is always a str (live ids are numbers, documented ones strings).

    ``message``: the bulletin's text; ``exchanges``: the exchanges it concerns, comma separated;
    ``raw``: the object as sent.
    """

    id: str | None
    message: str | None
    exchanges: str | None
    raw: Mapping[str, Any]

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any]) -> Bulletin:
        """One ``blt`` item."""
        exchanges = obj.get("exchanges")
        if isinstance(exchanges, list):
            exchanges = ",".join(str(e) for e in exchanges)
        return cls(_str(obj.get("id")), _str(obj.get("message")), _str(exchanges), obj)

    @classmethod
    def from_message(cls, message: Message) -> list[Bulletin]:
        """Every item of one ``blt`` message (``args`` may be an object or an array)."""
        return [cls.from_mapping(item) for item in _args_items(message.args)]


@dataclass(frozen=True, slots=True)
class AuthStatus:
    """One ``sts`` frame. Flags the frame did not carry are None (``{"competing":false}`` alone is
    a valid frame); ``raw``: the ``args`` object.

    ``authenticated``: the brokerage session is authenticated; ``competing``: another session
    competes for it; ``connected``: the gateway is connected to IBKR; ``established``: the session
    is established; ``message``: the gateway's message (``""`` usually); ``fail``: why
    authentication failed; ``server_name``, ``server_version``: the IBKR server; ``username``: the
    logged-in user.
    """

    authenticated: bool | None
    competing: bool | None
    connected: bool | None
    established: bool | None
    message: str | None
    fail: str | None
    server_name: str | None
    server_version: str | None
    username: str | None
    raw: Mapping[str, Any]

    @classmethod
    def from_message(cls, message: Message) -> AuthStatus | None:
        """One ``sts`` message; None when its ``args`` is not an object."""
        args = message.args
        if not isinstance(args, Mapping):
            return None

        def flag(name: str) -> bool | None:
            value = args.get(name)
            return value if isinstance(value, bool) else None

        return cls(
            authenticated=flag("authenticated"),
            competing=flag("competing"),
            connected=flag("connected"),
            established=flag("established"),
            message=_str(args.get("message")),
            fail=_str(args.get("fail")),
            server_name=_str(args.get("serverName")),
            server_version=_str(args.get("serverVersion")),
            username=_str(args.get("username")),
            raw=args,
        )


__all__ = [
    "DONE_STATUSES",
    "AuthStatus",
    "Bar",
    "Bulletin",
    "Execution",
    "History",
    "Ladder",
    "LadderRow",
    "LedgerRow",
    "MarketDataUpdate",
    "Notification",
    "OrderUpdate",
    "PnlRow",
    "Quote",
    "SummaryItem",
]
