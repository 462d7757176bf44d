"""IbkrWsKey: IBind-compatible values, channels and the acknowledgement matrix of protocol section 5."""

from __future__ import annotations

import pytest

from rxibkr.protocol import IbkrWsKey

SOLICITED = {
    "sd": IbkrWsKey.ACCOUNT_SUMMARY,
    "ld": IbkrWsKey.ACCOUNT_LEDGER,
    "md": IbkrWsKey.MARKET_DATA,
    "mh": IbkrWsKey.MARKET_HISTORY,
    "bd": IbkrWsKey.PRICE_LADDER,
    "or": IbkrWsKey.ORDERS,
    "pl": IbkrWsKey.PNL,
    "tr": IbkrWsKey.TRADES,
}
UNSOLICITED = {
    "act": IbkrWsKey.ACCOUNT_UPDATES,
    "sts": IbkrWsKey.AUTHENTICATION_STATUS,
    "blt": IbkrWsKey.BULLETINS,
    "ntf": IbkrWsKey.NOTIFICATIONS,
    "error": IbkrWsKey.ERROR,
    "system": IbkrWsKey.SYSTEM,
}
# protocol README section 5: (subscribe confirmed, unsubscribe confirmed)
CONFIRMS = {
    IbkrWsKey.MARKET_DATA: (True, False),
    IbkrWsKey.MARKET_HISTORY: (True, True),
    IbkrWsKey.PRICE_LADDER: (False, False),
    IbkrWsKey.ORDERS: (False, False),
    IbkrWsKey.TRADES: (True, False),
    IbkrWsKey.PNL: (True, False),
    IbkrWsKey.ACCOUNT_SUMMARY: (True, True),
    IbkrWsKey.ACCOUNT_LEDGER: (True, True),
}


def test_values_equal_names_as_in_ibind() -> None:
    names = [key.name for key in IbkrWsKey]
    assert names == [
        "ACCOUNT_SUMMARY",
        "ACCOUNT_LEDGER",
        "MARKET_DATA",
        "MARKET_HISTORY",
        "PRICE_LADDER",
        "ORDERS",
        "PNL",
        "TRADES",
        "ACCOUNT_UPDATES",
        "AUTHENTICATION_STATUS",
        "BULLETINS",
        "ERROR",
        "SYSTEM",
        "NOTIFICATIONS",
    ]
    assert all(key.value == key.name for key in IbkrWsKey)
    assert IbkrWsKey("MARKET_DATA") is IbkrWsKey.MARKET_DATA


def test_authentication_is_an_alias_of_authentication_status() -> None:
    assert IbkrWsKey.AUTHENTICATION is IbkrWsKey.AUTHENTICATION_STATUS  # type: ignore[comparison-overlap]
    assert IbkrWsKey["AUTHENTICATION"] is IbkrWsKey.AUTHENTICATION_STATUS
    assert len(list(IbkrWsKey)) == 14


@pytest.mark.parametrize(("channel", "key"), [*SOLICITED.items(), *UNSOLICITED.items()])
def test_from_channel_and_channel_are_inverse(channel: str, key: IbkrWsKey) -> None:
    assert IbkrWsKey.from_channel(channel) is key
    assert key.channel == channel


def test_every_key_has_a_channel() -> None:
    assert {key.channel for key in IbkrWsKey} == set(SOLICITED) | set(UNSOLICITED)


@pytest.mark.parametrize("channel", ["smd", "md+265598", "MD", "", "tic", "hb", "s", "ssd"])
def test_from_channel_rejects_anything_else_naming_the_channel(channel: str) -> None:
    with pytest.raises(ValueError, match=repr(channel).replace("+", r"\+")):
        IbkrWsKey.from_channel(channel)


@pytest.mark.parametrize("channel", [None, 3, ["md"]])
def test_from_channel_rejects_non_strings_with_value_error(channel: object) -> None:
    with pytest.raises(ValueError, match="channel"):
        IbkrWsKey.from_channel(channel)  # type: ignore[arg-type]


def test_solicited() -> None:
    assert {key for key in IbkrWsKey if key.solicited} == set(SOLICITED.values())


@pytest.mark.parametrize("key", list(IbkrWsKey))
def test_confirmation_matrix(key: IbkrWsKey) -> None:
    subscribe, unsubscribe = CONFIRMS.get(key, (False, False))
    assert key.confirms_subscribing is subscribe
    assert key.confirms_unsubscribing is unsubscribe
