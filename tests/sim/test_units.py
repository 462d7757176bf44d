"""Pure parts of the simulator: command parsing, formatting, history sizing, cookies, addresses."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxibkr.sim.account import sig_round
from rxibkr.sim.commands import parse, parse_conid
from rxibkr.sim.config import derive_hex
from rxibkr.sim.fields import field_values, fmt_volume
from rxibkr.sim.gateway import address_filter, decode_api_cookie
from rxibkr.sim.history import bar_count, build_history, parse_period
from rxibkr.sim.instruments import UNIVERSE, generated_symbol, instrument_for, search
from rxibkr.sim.market import Market

SESSION = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "topic", "targets", "args"),
    [
        ('smd+265598+{"fields":["31","84"]}', "smd", ("265598",), {"fields": ["31", "84"]}),
        ("smd+265598@ISLAND+{}", "smd", ("265598@ISLAND",), {}),
        ("umd+265598+{}", "umd", ("265598",), {}),
        ("umh+341115", "umh", ("341115",), {}),
        ("utr", "utr", (), {}),
        ("utr+{}", "utr", (), {}),
        ("upl{}", "upl", (), {}),
        ("spl", "spl", (), {}),
        ("usd+DU1234567", "usd", ("DU1234567",), {}),
        ("usd+DU1234567+{}", "usd", ("DU1234567",), {}),
        ("sbd+DU1234567+265598+ISLAND", "sbd", ("DU1234567", "265598", "ISLAND"), {}),
        ('sor+{"filters":["Submitted"]}', "sor", (), {"filters": ["Submitted"]}),
        (
            'ssd+DU1234567+{\n"keys":["A"],\n"fields":["b"]\n}',
            "ssd",
            ("DU1234567",),
            {"keys": ["A"], "fields": ["b"]},
        ),
        ("tic", "tic", (), {}),
        ("ech+hb", "ech", ("hb",), {}),
    ],
)
def test_parse_spelling_variants(
    text: str, topic: str, targets: tuple[str, ...], args: dict[str, object]
) -> None:
    cmd = parse(text)
    assert (cmd.topic, cmd.targets, cmd.args, cmd.error) == (topic, targets, args, None)


def test_parse_session_message_and_garbage() -> None:
    assert parse(f'{{"session":"{SESSION}"}}').topic == "session"
    assert parse(f'{{"session": "{SESSION}"}}').args["session"] == SESSION
    assert parse("").topic == "unknown"
    assert parse("{not json").topic == "unknown"
    assert parse("hello world").topic == "unknown"
    assert parse("smd+1+{bad").error == "malformed JSON arguments"
    assert parse('smd+1+{"a":1} trailing').error == "malformed JSON arguments"


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_parse_never_raises(text: str) -> None:
    parse(text)


def test_parse_conid() -> None:
    assert parse_conid("265598") == (265598, "265598")
    assert parse_conid("265598@ISLAND") == (265598, "265598@ISLAND")
    assert parse_conid("0") is None
    assert parse_conid("-5") is None
    assert parse_conid("abc") is None
    assert parse_conid("") is None


@pytest.mark.parametrize(
    ("volume", "text", "raw"),
    [
        (0, "0", 0.0),
        (999, "999", 999.0),
        (1000, "1K", 1000.0),
        (1340, "1.34K", 1340.0),
        (12_177_385, "12.2M", 1.22e7),
        (999_999, "1M", 1e6),
        (2_500_000_000, "2.5B", 2.5e9),
    ],
)
def test_volume_format(volume: int, text: str, raw: float) -> None:
    assert fmt_volume(volume) == (text, raw)


def test_sig_round() -> None:
    assert sig_round(1017353.16) == 1017000.0
    assert sig_round(37910.67) == 37910.0
    assert sig_round(0.0) == 0.0


def test_history_period_and_bar_sizing() -> None:
    assert parse_period("2h") == (2, "h")
    assert parse_period("31min") is None  # outside the documented 1-30 range
    assert parse_period("bogus") is None
    assert bar_count(2, "h", 300, False, 1000) == 24
    assert bar_count(1, "d", 3600, False, 1000) == 7  # 6.5 trading hours
    assert bar_count(1, "d", 3600, True, 1000) == 24
    assert bar_count(1, "w", 86400, False, 1000) == 5
    assert bar_count(1000, "d", 60, True, 1000) == 1000  # capped


def test_history_body_is_deterministic_and_ends_at_the_price() -> None:
    inst = UNIVERSE[265598]
    args = {"period": "2h", "bar": "5min", "outsideRth": False, "format": "%o/%c/%h/%l"}
    a = build_history(inst, 271.5, args, seed=3, server_id="1", now_ms=1_777_000_000_000, max_bars=1000)
    b = build_history(inst, 271.5, args, seed=3, server_id="1", now_ms=1_777_000_000_000, max_bars=1000)
    assert a == b
    assert len(a["data"]) == 24 and a["points"] == 23
    assert set(a["data"][0]) == {"o", "c", "h", "l", "t"}  # %v not asked for
    assert a["data"][-1]["c"] == 271.5
    assert all(
        bar["l"] <= min(bar["o"], bar["c"]) <= max(bar["o"], bar["c"]) <= bar["h"] for bar in a["data"]
    )
    times = [bar["t"] for bar in a["data"]]
    assert times == sorted(times) and all(t2 - t1 == 300_000 for t1, t2 in itertools.pairwise(times))
    assert a["timePeriod"] == "7200s" and a["barLength"] == 300 and a["priceFactor"] == 100
    empty = build_history(inst, 271.5, {"period": "nope"}, seed=3, server_id="2", now_ms=0, max_bars=10)
    assert empty["data"] == [] and empty["points"] == 0


@pytest.mark.parametrize(
    "value",
    [
        f'{{"session":"{SESSION}"}}',
        f'{{"session": "{SESSION}"}}',
        f'{{ "session" : "{SESSION}" }}',
        "%7B%22session%22%3A%22" + SESSION + "%22%7D",
        "%7B%22session%22%3A%20%22" + SESSION + "%22%7D",
        SESSION,
        f'"{SESSION}"',
    ],
)
def test_api_cookie_variants(value: str) -> None:
    assert decode_api_cookie(value) == SESSION


def test_api_cookie_garbage() -> None:
    assert decode_api_cookie('{"session": 1}') is None
    assert decode_api_cookie("{broken") is None
    assert decode_api_cookie("") is None


def test_address_filter() -> None:
    loopback = address_filter(("127.0.0.1", "::1"))
    assert loopback("127.0.0.1") and loopback("::1") and loopback("::ffff:127.0.0.1")
    assert not loopback("10.0.0.8") and not loopback(None) and not loopback("garbage")
    assert address_filter(("10.0.0.0/8",))("10.1.2.3")
    assert address_filter(("*",))("192.0.2.1")


def test_instruments() -> None:
    assert UNIVERSE[265598].symbol == "AAPL" and UNIVERSE[8314].symbol == "IBM"
    assert {i.symbol for i in UNIVERSE.values()} >= {
        "AAPL",
        "MSFT",
        "AMZN",
        "GOOGL",
        "TSLA",
        "NVDA",
        "META",
        "SPY",
        "QQQ",
        "IBM",
    }
    generated = instrument_for(999_001, frozenset())
    assert generated.available and generated.symbol == generated_symbol(999_001) and generated.price > 0
    assert instrument_for(999_001, frozenset()) == generated  # stable
    assert not instrument_for(8595, frozenset({8595})).available
    assert [i.symbol for i in search("AAPL")] == ["AAPL"]
    assert [i.symbol for i in search("apple", by_name=True)] == ["AAPL"]
    assert search("ZZZZZZ") == []


def test_market_model_is_deterministic_per_seed_and_independent_of_others() -> None:
    def walk(seed: int, conids: list[int], steps: int = 30) -> list[tuple[int, int, int | None]]:
        m = Market(seed, 0.0005, 0.5, frozenset())
        out = []
        for _ in range(steps):
            m.step(conids)
            q = m.quote(265598)
            out.append((q.bid_t, q.ask_t, q.last_t))
        return out

    assert walk(1, [265598]) == walk(1, [265598])
    assert walk(1, [265598]) == walk(1, [265598, 272093, 8314])  # other instruments do not interfere
    assert walk(1, [265598]) != walk(2, [265598])


def test_market_fields_formats() -> None:
    m = Market(0, 0.0005, 1.0, frozenset({8595}))
    q = m.quote(265598)
    first = field_values(q, ["31", "82", "83", "84", "85", "86", "87", "88", "55", "7295"])
    assert first["31"].startswith("C") and first["31"][1:] == "271.10"  # prior close before any trade
    assert "7295" not in first  # no open before the first trade
    assert first["83"] == 0.0 and isinstance(first["83"], float)
    m.step([265598])  # trade_probability 1.0: a trade happens
    values = field_values(q, ["31", "83", "84", "85", "86", "87", "88", "7295"])
    for fid in ("31", "84", "86", "7295"):
        text = values[fid]
        assert isinstance(text, str) and len(text.split(".")[1]) == 2, (fid, text)
    assert values["85"].isdigit() and values["88"].isdigit()
    assert isinstance(values["83"], float)
    assert isinstance(values["87_raw"], float)
    assert field_values(m.quote(8595), ["31", "84"]) == {"31": "N/A", "55": "-"}


def test_derived_values_depend_on_seed() -> None:
    assert derive_hex(1, "session", 32) == derive_hex(1, "session", 32)
    assert derive_hex(1, "session", 32) != derive_hex(2, "session", 32)
    assert len(derive_hex(5, "x", 100)) == 100
