"""Market data fields: the id -> name table of the protocol reference (section 9.1) and value parsing.

``smd`` frames carry field ids as string keys (``"31"``) and mostly string values (``"271.67"``,
``"12.2M"``, ``"C271.67"``, ``"N/A"``). Nothing here runs on the hot path: streams that want names or
numbers apply :func:`unwrap` / :func:`parse_fields` themselves.

Field kinds (see :data:`FIELD_KINDS`):

* PRICE -- parsed with :func:`parse_price` (``C``/``H`` prefixes): 31 70 71 74 82 84 86 7293 7294 7295
  7296 7635 7674-7677 7682 7741.
* SIZE -- sizes and volumes, parsed with :func:`parse_number` (K/M/B suffixes): 76 85 87 88 7059 7089
  7282 7636 7638 7697 7762 (and ``87_raw``).
* NUMBER -- other numbers (P&L, percentages, ratios, greeks, flags, ids), :func:`parse_number`.
* TEXT -- everything else stays text; the sentinels ``'N/A'``, ``'-'`` and ``''`` become None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any, NamedTuple


class FieldKind(Enum):
    """How a field's value is parsed by :func:`parse_fields`."""

    PRICE = "price"
    SIZE = "size"
    NUMBER = "number"
    TEXT = "text"


_P, _S, _N, _T = FieldKind.PRICE, FieldKind.SIZE, FieldKind.NUMBER, FieldKind.TEXT

# id: (name, kind) -- every row of protocol README section 9.1, including the IBind-only ones.
_TABLE: dict[str, tuple[str, FieldKind]] = {
    "31": ("last_price", _P),
    "55": ("symbol", _T),
    "58": ("text", _T),
    "70": ("high", _P),
    "71": ("low", _P),
    "73": ("market_value", _N),
    "74": ("average_cost", _P),
    "75": ("unrealized_pnl", _N),
    "76": ("formatted_position", _S),
    "77": ("formatted_unrealized_pnl", _N),
    "78": ("daily_pnl", _N),
    "79": ("realized_pnl", _N),
    "80": ("unrealized_pnl_percent", _N),
    "82": ("change", _P),
    "83": ("change_percent", _N),
    "84": ("bid_price", _P),
    "85": ("ask_size", _S),
    "86": ("ask_price", _P),
    "87": ("volume", _S),
    "88": ("bid_size", _S),
    "201": ("option_right", _T),
    "6004": ("exchange", _T),
    "6008": ("contract_id", _N),
    "6070": ("sec_type", _T),
    "6072": ("months", _T),
    "6073": ("regular_expiry", _T),
    "6119": ("quote_server", _T),
    "6457": ("underlying_conid", _N),
    "6508": ("service_params", _T),
    "6509": ("market_data_availability", _T),
    "7051": ("company_name", _T),
    "7057": ("ask_exchange", _T),
    "7058": ("last_exchange", _T),
    "7059": ("last_size", _S),
    "7068": ("bid_exchange", _T),
    "7084": ("implied_vol_hist_vol_percent", _N),
    "7085": ("put_call_interest", _N),
    "7086": ("put_call_volume", _N),
    "7087": ("historical_vol_percent", _N),
    "7088": ("historical_vol_close_percent", _N),
    "7089": ("option_volume", _S),
    "7094": ("conid_exchange", _T),
    "7184": ("can_be_traded", _N),
    "7219": ("contract_description", _T),
    "7220": ("contract_description_alt", _T),
    "7221": ("listing_exchange", _T),
    "7280": ("industry", _T),
    "7281": ("category", _T),
    "7282": ("average_volume", _S),
    "7283": ("option_implied_vol_percent", _N),
    "7284": ("historical_vol_percent_deprecated", _N),
    "7285": ("put_call_ratio", _N),
    "7286": ("dividend_amount", _N),
    "7287": ("dividend_yield_percent", _N),
    "7288": ("ex_dividend_date", _T),
    "7289": ("market_cap", _N),
    "7290": ("pe_ratio", _N),
    "7291": ("eps", _N),
    "7292": ("cost_basis", _N),
    "7293": ("week52_high", _P),
    "7294": ("week52_low", _P),
    "7295": ("open", _P),
    "7296": ("close", _P),
    "7308": ("delta", _N),
    "7309": ("gamma", _N),
    "7310": ("theta", _N),
    "7311": ("vega", _N),
    "7607": ("option_volume_change_percent", _N),
    "7633": ("implied_vol_percent", _N),
    "7635": ("mark_price", _P),
    "7636": ("shortable_shares", _S),
    "7637": ("fee_rate", _N),
    "7638": ("option_open_interest", _S),
    "7639": ("percent_of_mark_value", _N),
    "7644": ("shortable", _T),
    "7655": ("morningstar_rating", _T),
    "7671": ("dividends_next_12m", _N),
    "7672": ("dividends_trailing_12m", _N),
    "7674": ("ema_200", _P),
    "7675": ("ema_100", _P),
    "7676": ("ema_50", _P),
    "7677": ("ema_20", _P),
    "7678": ("price_vs_ema_200_percent", _N),
    "7679": ("price_vs_ema_100_percent", _N),
    "7680": ("price_vs_ema_50_percent_legacy", _N),
    "7681": ("price_vs_ema_20_percent", _N),
    "7682": ("change_since_open", _P),
    "7683": ("upcoming_event", _T),
    "7684": ("upcoming_event_date", _T),
    "7685": ("upcoming_analyst_meeting", _T),
    "7686": ("upcoming_earnings", _T),
    "7687": ("upcoming_misc_event", _T),
    "7688": ("recent_analyst_meeting", _T),
    "7689": ("recent_earnings", _T),
    "7690": ("recent_misc_event", _T),
    "7694": ("probability_of_max_return", _N),
    "7695": ("break_even", _T),
    "7696": ("spx_delta", _N),
    "7697": ("futures_open_interest", _S),
    "7698": ("last_yield", _N),
    "7699": ("bid_yield", _N),
    "7700": ("probability_of_max_return_alt", _N),
    "7702": ("probability_of_max_loss", _N),
    "7703": ("profit_probability", _N),
    "7704": ("organization_type", _T),
    "7705": ("debt_class", _T),
    "7706": ("ratings", _T),
    "7707": ("bond_state_code", _T),
    "7708": ("bond_type", _T),
    "7714": ("last_trading_date", _T),
    "7715": ("issue_date", _T),
    "7718": ("beta", _N),
    "7720": ("ask_yield", _N),
    "7724": ("price_vs_ema_50_percent", _N),
    "7741": ("prior_close", _P),
    "7762": ("volume_long", _S),
    "7768": ("has_trading_permissions", _N),
    "7920": ("daily_pnl_raw", _N),
    "7921": ("cost_basis_raw", _N),
    "7943": ("rebate_rate", _N),
}

FIELDS: Mapping[str, str] = MappingProxyType({fid: name for fid, (name, _) in _TABLE.items()})
"""Field id (``"31"``) -> snake_case name (``"last_price"``)."""

FIELD_IDS: Mapping[str, str] = MappingProxyType({name: fid for fid, name in FIELDS.items()})
"""Name (``"last_price"``) -> field id (``"31"``)."""

FIELD_KINDS: Mapping[str, FieldKind] = MappingProxyType({fid: kind for fid, (_, kind) in _TABLE.items()})
"""Field id -> :class:`FieldKind`, which decides how :func:`parse_fields` parses the value."""


IBIND_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "55": "symbol",
        "6008": "conid",
        "6070": "sec_type",
        "6457": "underlying_conid",
        "6509": "market_data_availability",
        "7094": "conid_exchange",
        "7057": "ask_codes",
        "7068": "bid_codes",
        "7058": "last_exch_codes",
        "7295": "open",
        "70": "high",
        "71": "low",
        "7296": "close",
        "31": "last_price",
        "84": "bid_price",
        "86": "ask_price",
        "7059": "last_size",
        "88": "bid_size",
        "85": "ask_size",
        "7741": "prior_close",
        "7635": "mark_price",
        "87": "volume",
        "7762": "volume_long",
        "82": "change",
        "7682": "change_since_open",
        "83": "change_percent",
        "7084": "implied_vol_hist_vol_percent",
        "7088": "hist_vol_close_percent",
        "7696": "spx_delta",
        "7718": "beta",
        "7087": "hist_vol_percent",
        "7282": "average_volume_90",
        "7286": "dividend_amount",
        "7287": "dividend_yield_percent",
        "7288": "ex_date_dividend",
        "7289": "market_cap",
        "7290": "p_e",
        "7291": "eps",
        "7293": "52_week_high",
        "7294": "52_week_low",
        "7674": "ema_200",
        "7675": "ema_100",
        "7676": "ema_50",
        "7677": "ema_20",
        "7678": "price_to_ema_200_percent",
        "7679": "price_to_ema_100_percent",
        "7680": "price_to_ema_50_percent",
        "7681": "price_to_ema_20_percent",
        "73": "market_value",
        "74": "avg_price",
        "75": "unrealized_pnl",
        "76": "formatted_position",
        "77": "formatted_unrealized_pnl",
        "78": "daily_pnl",
        "79": "realized_pnl",
        "80": "unrealized_pnl_percent",
        "7920": "daily_pnl_raw",
        "7921": "cost_basis_raw",
        "7292": "cost_basis",
        "7051": "company_name",
        "6004": "exchange",
        "7221": "listing_exchange",
        "7280": "industry",
        "7281": "category",
        "7706": "ratings",
        "7707": "bond_state_code",
        "7708": "bond_type",
        "7714": "last_trading_date",
        "7715": "issue_date",
        "7704": "organization_type",
        "7705": "debt_class",
        "7089": "opt_volume",
        "7285": "put_call_ratio",
        "7638": "option_open_interest",
        "7639": "percent_of_mark_value",
        "7694": "probability_of_max_return",
        "7695": "break_even",
        "7702": "probability_of_max_loss",
        "7703": "profit_probability",
        "7698": "last_yield",
        "7699": "bid_yield",
        "7697": "futures_open_interest",
        "7085": "put_call_interest",
        "7086": "put_call_volume",
        "7283": "option_implied_vol_percent",
        "7308": "delta",
        "7309": "gamma",
        "7310": "theta",
        "7311": "vega",
        "7633": "implied_vol_percent",
        "7683": "upcoming_event",
        "7684": "upcoming_event_date",
        "7685": "upcoming_analyst_meeting",
        "7686": "upcoming_earnings",
        "7687": "upcoming_misc_event",
        "7688": "recent_analyst_meeting",
        "7689": "recent_earnings",
        "7690": "recent_misc_event",
        "7644": "shortable",
        "6508": "service_params",
        "6119": "market_data_marker",
        "6072": "months",
        "6073": "regular_expiry",
        "7768": "has_trading_permissions",
        "string": "server_id",
        "integer_str": "_updated_str",
    }
)
"""Field id -> the name IBind 0.1.14 gives it in its market-data queue items (its
``ibkr_definitions.snapshot_by_id``, copied verbatim, its two placeholder rows ``"string"`` and
``"integer_str"`` included). Only IBind-compatible queue items use it; :data:`FIELDS` (the names of the
typed models and of :func:`unwrap`) keeps its own readable names. IBind drops every key of an ``smd`` frame
that is not in this table (``server_id``, ``conidEx``, ``6509``'s neighbours it does not know, ...)."""

RAW_VOLUME_KEY = "87_raw"
"""The numeric twin of field 87 that ``smd`` frames may carry; unwrapped as ``volume_raw``."""

_UNWRAP: dict[str, str] = {**FIELDS, RAW_VOLUME_KEY: "volume_raw"}
_KIND_BY_NAME: dict[str, FieldKind] = {
    **{name: FIELD_KINDS[fid] for fid, name in FIELDS.items()},
    "volume_raw": FieldKind.SIZE,
}

SENTINELS = frozenset({"", "N/A", "n/a", "-"})
"""String values that mean "no value"."""

_SUFFIXES = {"K": "e3", "M": "e6", "B": "e9"}
_NUMBER_CHARS = frozenset("0123456789.+-eE")


def unwrap(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Rename known field ids to names (``'31'`` -> ``'last_price'``, ``'87_raw'`` -> ``'volume_raw'``).

    Every other key (``conid``, ``_updated``, ``server_id``, ``conidEx``, ``topic``, unknown ids) is kept
    unchanged: unlike IBind, nothing is dropped.
    """
    get = _UNWRAP.get
    return {get(key, key): value for key, value in obj.items()}


def parse_number(value: Any) -> float | int | None:
    """Parse a numeric field value; never raises.

    JSON numbers are returned as they are. Strings may use thousands separators (``'1,234.5'``), a
    K/M/B suffix (``'1.2M'`` -> ``1200000.0``) or a trailing ``%`` (``'0.56%'`` -> ``0.56``). Sentinels
    (``'N/A'``, ``'-'``, ``''``), None, booleans and anything unparseable give None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip().replace(",", "")
    if text in SENTINELS:
        return None
    if text.endswith("%"):
        text = text[:-1].rstrip()
    exponent = _SUFFIXES.get(text[-1:].upper())
    if exponent is not None:
        text = text[:-1].rstrip()
    if not text or not _NUMBER_CHARS.issuperset(text):
        return None
    has_exponent = "e" in text or "E" in text
    try:
        if exponent is None:
            if "." not in text and not has_exponent:
                return int(text)
            number = float(text)
        elif has_exponent:
            return None
        else:
            number = float(text + exponent)  # correctly rounded, unlike float(text) * 1e6
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return number


class Price(NamedTuple):
    """A parsed price: the number, and the flags of the ``C`` (prior close, no trade yet) and ``H``
    (trading halted) prefixes."""

    value: float | None
    is_close: bool = False
    is_halted: bool = False


def parse_price(value: Any) -> Price:
    """Parse a price field such as ``'271.67'``, ``'C271.67'`` or ``'H271.67'``; never raises."""
    is_close = is_halted = False
    if isinstance(value, str):
        text = value.strip()
        while text[:1] in ("C", "H"):
            if text[0] == "C":
                is_close = True
            else:
                is_halted = True
            text = text[1:].lstrip()
        value = text
    number = parse_number(value)
    return Price(None if number is None else float(number), is_close, is_halted)


def _parse_text(value: Any) -> Any:
    if isinstance(value, str) and value.strip() in SENTINELS:
        return None
    return value


def parse_value(key: str, value: Any) -> Any:
    """Parse one value by the kind of field ``key`` (an id such as ``'31'`` or a name such as
    ``'last_price'``); keys that are not fields are returned unchanged."""
    kind = FIELD_KINDS.get(key) or _KIND_BY_NAME.get(key)
    if kind is None:
        if key == RAW_VOLUME_KEY:
            return parse_number(value)
        return value
    if kind is FieldKind.PRICE:
        return parse_price(value).value
    if kind is FieldKind.TEXT:
        return _parse_text(value)
    return parse_number(value)


def parse_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`unwrap` plus value parsing: prices -> float (``C``/``H`` flags dropped, see
    :func:`parse_price`), sizes and numbers -> int/float, text stays text, sentinels -> None.

    Non-field keys (``conid``, ``topic``, unknown keys) are kept unchanged.
    """
    result: dict[str, Any] = {}
    for key, value in obj.items():
        name = _UNWRAP.get(key)
        if name is None:
            result[key] = value
        else:
            result[name] = parse_value(key, value)
    return result
