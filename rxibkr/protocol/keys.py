"""The channel keys of the IBKR WebSocket, compatible with IBind's ``IbkrWsKey``.

A key names one stream of messages: the eight solicited channels (``s``/``u`` + two letters) and the
unsolicited topics the server pushes on its own. Whether a channel confirms (un)subscribing follows the
acknowledgement matrix of the protocol reference (section 5).
"""

from __future__ import annotations

from enum import Enum


class IbkrWsKey(Enum):
    """Enumeration of the IBKR WebSocket channels (values equal names, as in IBind).

    Solicited: ACCOUNT_SUMMARY, ACCOUNT_LEDGER, MARKET_DATA, MARKET_HISTORY, PRICE_LADDER, ORDERS, PNL,
    TRADES. Unsolicited: ACCOUNT_UPDATES, AUTHENTICATION_STATUS (alias AUTHENTICATION), BULLETINS, ERROR,
    SYSTEM, NOTIFICATIONS.
    """

    # Members are singletons compared by identity: hash them by identity too, in C. (Enum's own
    # __hash__ is Python code hashing the name; the client looks keys up several times per frame.)
    __hash__ = object.__hash__

    # solicited (subscription based)
    ACCOUNT_SUMMARY = "ACCOUNT_SUMMARY"
    ACCOUNT_LEDGER = "ACCOUNT_LEDGER"
    MARKET_DATA = "MARKET_DATA"
    MARKET_HISTORY = "MARKET_HISTORY"
    PRICE_LADDER = "PRICE_LADDER"
    ORDERS = "ORDERS"
    PNL = "PNL"
    TRADES = "TRADES"

    # unsolicited
    ACCOUNT_UPDATES = "ACCOUNT_UPDATES"
    AUTHENTICATION_STATUS = "AUTHENTICATION_STATUS"
    AUTHENTICATION = "AUTHENTICATION_STATUS"  # alias of AUTHENTICATION_STATUS (same member)
    BULLETINS = "BULLETINS"
    ERROR = "ERROR"
    SYSTEM = "SYSTEM"
    NOTIFICATIONS = "NOTIFICATIONS"

    @classmethod
    def from_channel(cls, channel: str) -> IbkrWsKey:
        """Return the key of a channel: 'md', 'sd', ... or an unsolicited topic such as 'sts'.

        The match is exact (strip any '+target' first). Raises ValueError naming the channel otherwise.
        """
        try:
            return _CHANNEL_TO_KEY[channel]
        except (KeyError, TypeError):
            raise ValueError(f"No IbkrWsKey is associated with channel {channel!r}") from None

    @property
    def channel(self) -> str:
        """The channel string: 'md', 'sd', ... for solicited keys, the topic ('sts', ...) otherwise."""
        return _KEY_TO_CHANNEL[self]

    @property
    def solicited(self) -> bool:
        """True for the eight channels a client subscribes to."""
        return self in _SOLICITED

    @property
    def confirms_subscribing(self) -> bool:
        """True when the server's first data frame confirms a subscription (protocol section 5)."""
        return self in _CONFIRMS_SUBSCRIBING

    @property
    def confirms_unsubscribing(self) -> bool:
        """True when the server sends a message confirming an unsubscription (protocol section 5)."""
        return self in _CONFIRMS_UNSUBSCRIBING


_KEY_TO_CHANNEL: dict[IbkrWsKey, str] = {
    IbkrWsKey.ACCOUNT_SUMMARY: "sd",
    IbkrWsKey.ACCOUNT_LEDGER: "ld",
    IbkrWsKey.MARKET_DATA: "md",
    IbkrWsKey.MARKET_HISTORY: "mh",
    IbkrWsKey.PRICE_LADDER: "bd",
    IbkrWsKey.ORDERS: "or",
    IbkrWsKey.PNL: "pl",
    IbkrWsKey.TRADES: "tr",
    IbkrWsKey.ACCOUNT_UPDATES: "act",
    IbkrWsKey.AUTHENTICATION_STATUS: "sts",
    IbkrWsKey.BULLETINS: "blt",
    IbkrWsKey.ERROR: "error",
    IbkrWsKey.SYSTEM: "system",
    IbkrWsKey.NOTIFICATIONS: "ntf",
}

_CHANNEL_TO_KEY: dict[str, IbkrWsKey] = {channel: key for key, channel in _KEY_TO_CHANNEL.items()}

_SOLICITED = frozenset(
    {
        IbkrWsKey.ACCOUNT_SUMMARY,
        IbkrWsKey.ACCOUNT_LEDGER,
        IbkrWsKey.MARKET_DATA,
        IbkrWsKey.MARKET_HISTORY,
        IbkrWsKey.PRICE_LADDER,
        IbkrWsKey.ORDERS,
        IbkrWsKey.PNL,
        IbkrWsKey.TRADES,
    }
)

_CONFIRMS_SUBSCRIBING = frozenset(
    {
        IbkrWsKey.ACCOUNT_SUMMARY,
        IbkrWsKey.ACCOUNT_LEDGER,
        IbkrWsKey.MARKET_DATA,
        IbkrWsKey.MARKET_HISTORY,
        IbkrWsKey.PNL,
        IbkrWsKey.TRADES,
    }
)

_CONFIRMS_UNSUBSCRIBING = frozenset(
    {
        IbkrWsKey.ACCOUNT_SUMMARY,
        IbkrWsKey.ACCOUNT_LEDGER,
        IbkrWsKey.MARKET_HISTORY,
    }
)
