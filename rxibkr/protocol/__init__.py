"""The pure protocol core: channel keys, request payloads, frame decoding, market data fields.

No sockets, threads, Rx or clocks here: every function is a function of its inputs.
"""

from __future__ import annotations

from .decode import Message, MessageKind, decode
from .errors import ArgumentTypeError
from .fields import (
    FIELD_IDS,
    FIELD_KINDS,
    FIELDS,
    FieldKind,
    Price,
    parse_fields,
    parse_number,
    parse_price,
    parse_value,
    unwrap,
)
from .keys import IbkrWsKey
from .payloads import IbkrSubscriptionProcessor, SubscriptionProcessor
from .requests import (
    ClientRequest,
    account_summary,
    echo_heartbeat,
    ledger,
    market_data,
    market_history,
    orders,
    parse_request,
    pnl,
    price_ladder,
    session,
    tic,
    trades,
    unsubscribe_account_summary,
    unsubscribe_ledger,
    unsubscribe_market_data,
    unsubscribe_market_history,
    unsubscribe_orders,
    unsubscribe_pnl,
    unsubscribe_price_ladder,
    unsubscribe_trades,
)

__all__ = [
    "FIELDS",
    "FIELD_IDS",
    "FIELD_KINDS",
    "ArgumentTypeError",
    "ClientRequest",
    "FieldKind",
    "IbkrSubscriptionProcessor",
    "IbkrWsKey",
    "Message",
    "MessageKind",
    "Price",
    "SubscriptionProcessor",
    "account_summary",
    "decode",
    "echo_heartbeat",
    "ledger",
    "market_data",
    "market_history",
    "orders",
    "parse_fields",
    "parse_number",
    "parse_price",
    "parse_request",
    "parse_value",
    "pnl",
    "price_ladder",
    "session",
    "tic",
    "trades",
    "unsubscribe_account_summary",
    "unsubscribe_ledger",
    "unsubscribe_market_data",
    "unsubscribe_market_history",
    "unsubscribe_orders",
    "unsubscribe_pnl",
    "unsubscribe_price_ladder",
    "unsubscribe_trades",
    "unwrap",
]
