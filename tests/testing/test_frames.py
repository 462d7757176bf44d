"""Frame factories: every topic decodes as the protocol says, and matches the golden captures' shapes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from rxibkr.protocol import IbkrWsKey, MessageKind, decode
from rxibkr.testing import frames

GOLDEN = Path(__file__).resolve().parents[1] / "protocol" / "data" / "frames.jsonl"


def golden(topic: str, *, valid_only: bool = True) -> list[Any]:
    """Incoming golden frames of one topic: parsed objects (or raw text with valid_only=False)."""
    out: list[Any] = []
    for line in GOLDEN.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["direction"] != "in" or entry["topic"] != topic:
            continue
        try:
            out.append(json.loads(entry["frame"]))
        except json.JSONDecodeError:
            if not valid_only:
                out.append(entry["frame"])
    return out


def roundtrip(frame: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(frames.encode(frame))  # type: ignore[no-any-return]


# -- every factory decodes to the right stream --------------------------------------------------------
CASES: list[tuple[str, dict[str, Any], MessageKind, IbkrWsKey, str | None]] = [
    ("system", frames.system(), MessageKind.DATA, IbkrWsKey.SYSTEM, "system"),
    ("hb", frames.hb(1), MessageKind.DATA, IbkrWsKey.SYSTEM, "system"),
    ("sts", frames.sts(), MessageKind.DATA, IbkrWsKey.AUTHENTICATION_STATUS, "sts"),
    ("act", frames.act(), MessageKind.DATA, IbkrWsKey.ACCOUNT_UPDATES, "act"),
    ("tic", frames.tic(), MessageKind.DATA, IbkrWsKey.SYSTEM, "tic"),
    ("smd", frames.smd(265598, last=1.5), MessageKind.DATA, IbkrWsKey.MARKET_DATA, "smd+265598"),
    (
        "smh",
        frames.smh(265598, [frames.bar(1, 1, 2, 3, 0.5, 10)]),
        MessageKind.DATA,
        IbkrWsKey.MARKET_HISTORY,
        "smh+265598",
    ),
    (
        "sbd",
        frames.sbd("DU1", 265598, [frames.ladder_row(0, "1.00", bid="100")]),
        MessageKind.DATA,
        IbkrWsKey.PRICE_LADDER,
        "sbd+DU1+265598",
    ),
    ("sor", frames.sor(frames.order(1)), MessageKind.DATA, IbkrWsKey.ORDERS, "sor"),
    ("str", frames.str_(frames.execution("x.1")), MessageKind.DATA, IbkrWsKey.TRADES, "str"),
    ("spl", frames.spl(), MessageKind.DATA, IbkrWsKey.PNL, "spl"),
    ("ssd", frames.ssd(), MessageKind.DATA, IbkrWsKey.ACCOUNT_SUMMARY, "ssd+DU1234567"),
    ("sld", frames.sld(), MessageKind.DATA, IbkrWsKey.ACCOUNT_LEDGER, "sld+DU1234567"),
    ("ntf", frames.ntf("hello"), MessageKind.DATA, IbkrWsKey.NOTIFICATIONS, "ntf"),
    ("blt", frames.blt("news"), MessageKind.DATA, IbkrWsKey.BULLETINS, "blt"),
    ("error", frames.error("No accounts", 500, topic="smd"), MessageKind.ERROR, IbkrWsKey.ERROR, "smd"),
    ("waiting", frames.waiting_for_session(), MessageKind.CONTROL, IbkrWsKey.SYSTEM, None),
    ("usd", frames.unsubscribed_summary(), MessageKind.CONTROL, IbkrWsKey.ACCOUNT_SUMMARY, None),
    ("uld", frames.unsubscribed_ledger(), MessageKind.CONTROL, IbkrWsKey.ACCOUNT_LEDGER, None),
    ("umh", frames.unsubscribed_history("7"), MessageKind.CONTROL, IbkrWsKey.MARKET_HISTORY, None),
]


@pytest.mark.parametrize(("name", "frame", "kind", "key", "topic"), CASES, ids=[c[0] for c in CASES])
def test_every_factory_decodes_to_its_stream(
    name: str, frame: dict[str, Any], kind: MessageKind, key: IbkrWsKey, topic: str | None
) -> None:
    message = decode(frames.encode(frame))
    assert (message.kind, message.key, message.topic) == (kind, key, topic)
    assert message.data == frame


def test_umh_confirmation_names_its_server_id() -> None:
    assert decode(frames.encode(frames.unsubscribed_history("341115"))).target == "341115"


def test_greeting_is_system_act_sts() -> None:
    assert [f["topic"] for f in frames.greeting()] == ["system", "act", "sts"]


# -- shapes against the golden captures -----------------------------------------------------------------
def test_smd_has_the_live_bookkeeping_keys_and_wire_types() -> None:
    live = golden("smd")[-3]  # 2023 futures capture with conidEx
    frame = roundtrip(
        frames.smd(495512572, last=3989.5, change_pct=0.56, volume_raw=1.22e7, availability="RB")
    )
    assert (
        {"server_id", "conidEx", "conid", "_updated", "6119", "topic"}
        <= set(live)
        <= set(frame) | {"86", "84"}
    )
    assert isinstance(frame["conid"], int) and isinstance(frame["_updated"], int)
    assert frame["31"] == "3989.5" and frame["6509"] == "RB"
    assert frame["83"] == 0.56 and frame["87_raw"] == 1.22e7  # numbers on the wire, as live
    assert frame["server_id"] == frame["6119"]


def test_smd_fields_by_id_name_and_alias() -> None:
    by_alias = frames.smd(1, last=1.5, bid=1.4, ask="1.6", bid_size=100)
    by_name = frames.smd(1, last_price=1.5, bid_price=1.4, ask_price="1.6", bid_size=100)
    by_id = frames.smd(1, {"31": 1.5, "84": "1.4", "86": "1.6", "88": "100"})
    assert by_alias == by_name == by_id
    assert frames.smd(1, last="C271.50")["31"] == "C271.50"  # prefixes and sentinels pass through
    assert frames.smd(1, last="N/A", symbol="-")["55"] == "-"
    with pytest.raises(TypeError, match="unknown field 'lastt'"):
        frames.smd(1, lastt=1.0)


def test_sts_args_cover_every_live_key() -> None:
    live_keys = set().union(*(set(f["args"]) for f in golden("sts")))
    assert live_keys <= set(frames.sts()["args"])
    assert frames.sts(False, competing=True)["args"]["authenticated"] is False


def test_system_and_heartbeat_match_live_shapes() -> None:
    live = next(f for f in golden("system") if "isFT" in f)
    assert set(frames.system()) == set(live)
    live_hb = next(f for f in golden("system") if "hb" in f)
    assert set(frames.hb()) == set(live_hb) and isinstance(frames.hb(5)["hb"], int)


def test_account_frames_equal_live_captures() -> None:
    ssd = golden("ssd")[0]
    assert frames.ssd("DUO123456", {"ExcessLiquidity-S": 1005353.88}, timestamp=1783031080) == ssd
    sld = golden("sld")[-1]
    values = {
        k: v for k, v in sld["result"][0].items() if k not in ("key", "secondKey", "acctCode", "timestamp")
    }
    assert frames.sld("DUO123456", {"BASE": values}, timestamp=1783031080) == sld
    spl = golden("spl")[-1]
    assert (
        frames.spl(
            "DUO123456", dpl=-58.28, nl=1020000.0, upl=4600.0, el=1010000.0, uel=1005353.88, mv=37910.0
        )
        == spl
    )


def test_blank_ledger_row_as_documented() -> None:
    documented = golden("sld")[0]["result"]
    blank = frames.sld("DU1234567", {"USD": {}}, timestamp=1700248325)["result"][0]
    assert blank == next(row for row in documented if row["key"] == "LedgerListUSD")


def test_notifications_and_bulletins_equal_live_captures() -> None:
    notice, prompt = golden("ntf")
    text = notice["args"][0]["text"]
    assert frames.ntf(frames.notice("118", text)) == notice
    p = prompt["args"][0]
    assert frames.ntf(frames.prompt(p["orderId"], p["reqId"], p["text"], p["options"])) == prompt
    live_blt = golden("blt")[0]
    entry = live_blt["args"][0]
    assert frames.blt(frames.bulletin(entry["id"], entry["message"])) == live_blt


def test_orders_trades_errors_match_live_captures() -> None:
    delta, full = golden("sor")[-2:]
    assert (
        frames.sor(
            frames.order_delta(
                656804954, acct="DUO123456", conidex="756733", conid=756733, isEventTrading="0"
            )
        )
        == delta
    )
    assert set(full["args"][0]) <= set(frames.order(1)) | {"order_ref"}
    assert frames.order(1, order_type="Market", price="")["price"] == ""
    assert frames.str_() == golden("str")[-1]  # the first, empty str frame
    assert frames.error("No accounts", 500, topic="smd") == golden("error")[0]


def test_trades_execution_keys_cover_the_documented_ones() -> None:
    documented = set(golden("str")[0]["args"][0])
    mine = set(frames.execution("x", commission="0.35", order_ref="r", submitter="u"))
    assert documented - mine <= {"conidex"}  # we write conidEx, the 2026 spelling


def test_history_keys_match_the_documented_reply() -> None:
    doc = golden("smh", valid_only=False)[0]  # not valid JSON as published ("data": [...])
    documented = set(re.findall(r'"(\w+)"\s*:', doc))
    assert documented == set(frames.smh(265598))
    reply = frames.smh(265598, [frames.bar(1, 1.0, 2.0, 3.0, 0.5, 10), frames.bar(2, 2.0, 1.0, 2.5, 0.9, 5)])
    assert reply["points"] == 2 and reply["high"] == "300/10/0" and reply["low"] == "50/10/0"


def test_ladder_shape_as_documented() -> None:
    frame = frames.sbd(
        "DU1",
        265598,
        [frames.ladder_row(0, "1.00", bid="100"), frames.ladder_row(1, "1.01", ask="200")],
        exchange="ISLAND",
    )
    assert frame["topic"] == "sbd+DU1+265598+ISLAND"
    assert frame["data"][0] == {"row": 0, "focus": 0, "price": "1.00", "bid": "100"}
    assert decode(frames.encode(frame)).target == "DU1+265598+ISLAND"


def test_tic_and_act_shapes() -> None:
    assert set(frames.tic("abc")) == {"topic", "alive", "id", "lastAccessed"}
    args = frames.act(["DU1", "DU2"], selected="DU2")["args"]
    assert args["accounts"] == ["DU1", "DU2"] and args["selectedAccount"] == "DU2"
    assert {
        "acctProps",
        "aliases",
        "allowFeatures",
        "chartPeriods",
        "groups",
        "profiles",
        "serverInfo",
        "sessionId",
        "isFT",
        "isPaper",
    } <= set(args)
