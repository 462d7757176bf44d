"""Golden frames (protocol/frames.jsonl): each server frame decodes to the kind and key the protocol
reference implies, and each client frame is reproduced by the builders where expressible.

The expectations are written per line number below, not derived from the decoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rxibkr.protocol import (
    ClientRequest,
    IbkrWsKey,
    MessageKind,
    account_summary,
    decode,
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

IN_REPO = Path(__file__).resolve().parent / "data" / "frames.jsonl"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "protocol" / "frames.jsonl"
FRAMES_FILE = IN_REPO if IN_REPO.is_file() else SHARED


def _load() -> dict[int, dict[str, str]]:
    lines = FRAMES_FILE.read_text(encoding="utf-8").splitlines()
    return {number: json.loads(line) for number, line in enumerate(lines, start=1) if line.strip()}


FRAMES = _load()

K = IbkrWsKey
DATA, CONTROL, ERROR, UNKNOWN, MALFORMED = (
    MessageKind.DATA,
    MessageKind.CONTROL,
    MessageKind.ERROR,
    MessageKind.UNKNOWN,
    MessageKind.MALFORMED,
)

# line -> (kind, key, topic, target, channel) for every server -> client frame.
# "?" in target means: not asserted (a real-looking account id we do not repeat in the code).
IN: dict[int, tuple[MessageKind, IbkrWsKey, str | None, str | None, str | None]] = {
    1: (CONTROL, K.SYSTEM, None, None, None),  # waiting for session
    3: (DATA, K.AUTHENTICATION_STATUS, "sts", None, "sts"),
    4: (DATA, K.SYSTEM, "system", None, "system"),
    6: (MALFORMED, K.ERROR, None, None, None),  # smd doc example with a trailing comma
    10: (DATA, K.ORDERS, "sor", None, "or"),
    11: (DATA, K.ORDERS, "sor", None, "or"),
    12: (MALFORMED, K.ERROR, None, None, None),  # sor doc example with trailing commas
    15: (DATA, K.PNL, "spl", None, "pl"),
    18: (MALFORMED, K.ERROR, None, None, None),  # 'ech+hb' echo: not JSON
    19: (DATA, K.SYSTEM, "system", None, "system"),
    20: (DATA, K.SYSTEM, "system", None, "system"),  # heartbeat
    21: (DATA, K.AUTHENTICATION_STATUS, "sts", None, "sts"),
    22: (MALFORMED, K.ERROR, None, None, None),  # ntf doc example, unquoted id
    23: (MALFORMED, K.ERROR, None, None, None),  # blt doc example, "array" with keys
    25: (MALFORMED, K.ERROR, None, None, None),  # smh doc example, "data": [...] and trailing comma
    28: (DATA, K.TRADES, "str", None, "tr"),
    33: (DATA, K.SYSTEM, "system", None, "system"),
    35: (DATA, K.MARKET_DATA, "smd+8314", "8314", "md+8314"),
    39: (CONTROL, K.ACCOUNT_SUMMARY, None, None, None),  # unsubscribed from summary
    41: (DATA, K.ACCOUNT_LEDGER, "sld+DU1234567", "DU1234567", "ld+DU1234567"),
    43: (CONTROL, K.ACCOUNT_LEDGER, None, None, None),  # unsubscribed from ledger
    49: (UNKNOWN, K.ERROR, "shs+exercise", "exercise", "shs+exercise"),  # not a topic we know
    52: (MALFORMED, K.ERROR, None, None, None),  # sbd template with "row":n
    53: (DATA, K.ACCOUNT_SUMMARY, "?", "?", "?"),
    54: (DATA, K.ACCOUNT_LEDGER, "?", "?", "?"),
    55: (DATA, K.PNL, "spl", None, "pl"),
    56: (DATA, K.ORDERS, "sor", None, "or"),
    57: (DATA, K.ORDERS, "sor", None, "or"),
    58: (DATA, K.BULLETINS, "blt", None, "blt"),
    59: (DATA, K.NOTIFICATIONS, "ntf", None, "ntf"),
    60: (DATA, K.NOTIFICATIONS, "ntf", None, "ntf"),
    61: (DATA, K.MARKET_DATA, "smd+495512572", "495512572", "md+495512572"),
    62: (DATA, K.MARKET_DATA, "smd+495512572", "495512572", "md+495512572"),
    63: (DATA, K.MARKET_DATA, "smd+265598", "265598", "md+265598"),
    64: (DATA, K.MARKET_DATA, "smd+265598", "265598", "md+265598"),
    66: (DATA, K.SYSTEM, "system", None, "system"),
    67: (DATA, K.AUTHENTICATION_STATUS, "sts", None, "sts"),
    72: (ERROR, K.ERROR, "smd", None, "md"),  # {"error":"No accounts","code":500,"topic":"smd"}
    74: (DATA, K.SYSTEM, "system", None, "system"),
    75: (DATA, K.AUTHENTICATION_STATUS, "sts", None, "sts"),
    76: (DATA, K.SYSTEM, "system", None, "system"),
    79: (DATA, K.TRADES, "str", None, "tr"),
}

Builder = Callable[[], str]

# line -> builder call whose output equals the frame exactly.
OUT_EXACT: dict[int, Builder] = {
    2: lambda: session("aeccc9d7515398c50fa894d967d099b1"),
    5: lambda: market_data(265598, ["31", "83"]),
    7: lambda: unsubscribe_market_data(265598),
    9: lambda: orders(),
    13: lambda: unsubscribe_orders(),
    14: lambda: pnl(),
    17: lambda: echo_heartbeat(),
    27: lambda: trades(),
    32: lambda: tic(),
    34: lambda: market_data(8314, ["31", "84", "85", "86", "88", "7059"]),
    36: lambda: unsubscribe_market_data(8314),
    38: lambda: unsubscribe_account_summary("DU1234567"),
    42: lambda: unsubscribe_ledger("DU1234567"),
    44: lambda: orders("Submitted"),
    45: lambda: unsubscribe_trades(),
    65: lambda: echo_heartbeat(),
    69: lambda: unsubscribe_market_data(46970422),
    70: lambda: unsubscribe_market_data(498843743),
    77: lambda: orders(),
    78: lambda: trades(),
}

# line -> builder call that sends the same request, modulo JSON whitespace (args compared parsed).
OUT_SAME_ARGS: dict[int, Builder] = {
    30: lambda: trades(realtime_only=True),
    31: lambda: trades(days=1),
    37: lambda: account_summary(
        "DU1234567", keys=["AccruedCash-S", "ExcessLiquidity-S"], fields=["currency", "monetaryValue"]
    ),
    40: lambda: ledger(
        "DU1234567", keys=["LedgerListBASE", "LedgerListEUR"], fields=["cashBalance", "exchangeRate"]
    ),
    71: lambda: market_data(713437851, ["31", "84", "85", "86", "88", "89"]),
    73: lambda: market_data(265598, ["55", "71", "84", "86", "88", "85", "87", "7295", "7296", "70"]),
}

# line -> (builder call, what differs in the args: the frame's args updated with this dict equal ours).
OUT_NEAR: dict[int, tuple[Builder, dict[str, Any]]] = {
    # the doc example uses source "t", not one of the documented sources
    8: (
        lambda: market_history(
            265598, exchange="ISLAND", period="2h", bar="5min", source="trades", format="%h/%l"
        ),
        {"source": "trades"},
    ),
    # the doc example leaves outsideRth out; the builder always sends it (default false)
    24: (
        lambda: market_history(265598, period="1d", bar="1min", format="%o/%c/%h/%l"),
        {"outsideRth": False},
    ),
}

# line -> (builder call, the request the frame parses to): the older "+{}" spelling of the same request.
OUT_SPELLING: dict[int, tuple[Builder, ClientRequest]] = {
    29: (lambda: unsubscribe_trades(), ClientRequest("u", "tr", (), {})),  # "utr+{}"; we send "utr"
}

# line -> why no builder: parse_request rejects the frame (doc templates, typos, unsupported topics).
OUT_REJECTED: dict[int, str] = {
    16: "the gateway doc's typo 'upl{}' (we send 'upl+{}')",
    26: "doc template 'umh+{serverId}'",
    46: "doc template 'sbd+acctId+conid+exchange'",
    47: "doc template 'ubd+{acctId}'",
    48: "option exercise dialog 'shs' is not supported",
    50: "option exercise dialog 'inp' is not supported",
    51: "option exercise dialog 'inp' is not supported",
}

# line -> the request a frame parses to that the builders cannot express (undocumented keys).
OUT_PARSE_ONLY: dict[int, ClientRequest] = {
    68: ClientRequest(
        "s",
        "md",
        ("270639",),
        {
            "tempo": 1000,
            "snapshot": True,
            "fields": [
                *"31 70 71 82 84 85 86 87 88 7295 7296 7674 7675 7676 7677".split(),
                "TimestampBase",
                "TimestampDelta",
                "6509",
            ],
        },
    ),
}

OUT_TABLES: list[dict[int, Any]] = [
    OUT_EXACT,
    OUT_SAME_ARGS,
    OUT_NEAR,
    OUT_SPELLING,
    OUT_REJECTED,
    OUT_PARSE_ONLY,
]


def test_the_tables_cover_every_frame_once() -> None:
    in_lines = {n for n, f in FRAMES.items() if f["direction"] == "in"}
    out_lines = {n for n, f in FRAMES.items() if f["direction"] == "out"}
    assert len(FRAMES) == 79
    assert set(IN) == in_lines
    covered = [n for table in OUT_TABLES for n in table]
    assert sorted(covered) == sorted(out_lines)
    assert len(covered) == len(set(covered))


# The in-repo copy replaces the account id of a public live capture with a placeholder of the same
# shape (no real account numbers in the repository); otherwise it is the shared file byte for byte.
REDACTIONS = ((b"DUO873728", b"DUO123456"),)


def test_in_repo_copy_matches_the_shared_file() -> None:
    if not (IN_REPO.is_file() and SHARED.is_file()):
        pytest.skip("needs both the in-repo copy and the shared file")
    shared = SHARED.read_bytes()
    for original, placeholder in REDACTIONS:
        shared = shared.replace(original, placeholder)
    assert IN_REPO.read_bytes() == shared


def _frame(line: int) -> str:
    return FRAMES[line]["frame"]


@pytest.mark.parametrize("line", sorted(IN))
@pytest.mark.parametrize("as_bytes", [True, False], ids=["binary", "text"])
def test_server_frames_decode_as_the_protocol_implies(line: int, as_bytes: bool) -> None:
    kind, key, topic, target, channel = IN[line]
    raw: bytes | str = _frame(line).encode() if as_bytes else _frame(line)
    message = decode(raw)
    assert message.kind is kind
    assert message.key is key
    assert message.raw is raw
    if topic != "?":
        assert message.topic == topic
        assert message.target == target
        assert message.channel == channel
    if kind is MALFORMED:
        assert message.data is None
        assert message.error
    else:
        assert message.data == json.loads(_frame(line))
    if kind in (UNKNOWN, ERROR):
        assert message.error


def test_error_frame_describes_the_error() -> None:
    message = decode(_frame(72).encode())
    assert message.error == "No accounts (code 500)"


def test_args_of_golden_frames() -> None:
    assert decode(_frame(79)).args == []
    assert decode(_frame(15)).args == {"DU1234.Core": {"rowType": 1, "dpl": -57520.0, "upl": 972100.0}}
    assert decode(_frame(35)).args is None
    assert decode(_frame(6)).args is None


@pytest.mark.parametrize("line", sorted(OUT_EXACT))
def test_client_frames_reproduced_exactly(line: int) -> None:
    built = OUT_EXACT[line]()
    assert built == _frame(line)
    assert parse_request(built) == parse_request(_frame(line))


@pytest.mark.parametrize("line", sorted(OUT_SAME_ARGS))
def test_client_frames_reproduced_modulo_json_whitespace(line: int) -> None:
    built = parse_request(OUT_SAME_ARGS[line]())
    frame = parse_request(_frame(line))
    assert built == frame
    assert built.args is not None


@pytest.mark.parametrize("line", sorted(OUT_NEAR))
def test_client_frames_reproduced_except_documented_differences(line: int) -> None:
    builder, difference = OUT_NEAR[line]
    built = parse_request(builder())
    frame = parse_request(_frame(line))
    assert (built.action, built.channel, built.targets) == (frame.action, frame.channel, frame.targets)
    assert built.args == {**(frame.args or {}), **difference}


@pytest.mark.parametrize("line", sorted(OUT_SPELLING))
def test_client_frames_in_an_older_spelling(line: int) -> None:
    builder, expected = OUT_SPELLING[line]
    frame = parse_request(_frame(line))
    assert frame == expected
    built = parse_request(builder())
    assert (built.action, built.channel, built.targets) == (frame.action, frame.channel, frame.targets)


@pytest.mark.parametrize("line", sorted(OUT_REJECTED))
def test_client_frames_that_are_not_requests_we_build(line: int) -> None:
    with pytest.raises(ValueError):
        parse_request(_frame(line))


def test_doc_templates_are_rejected_by_the_builders_too() -> None:
    with pytest.raises(ValueError, match="server_id"):
        unsubscribe_market_history("{serverId}")
    with pytest.raises(ValueError, match="conid"):
        price_ladder("acctId", "conid", "exchange")
    with pytest.raises(ValueError, match="account"):
        unsubscribe_price_ladder("{acctId}")
    assert unsubscribe_pnl() == "upl+{}"


@pytest.mark.parametrize("line", sorted(OUT_PARSE_ONLY))
def test_client_frames_that_only_parse(line: int) -> None:
    assert parse_request(_frame(line)) == OUT_PARSE_ONLY[line]
