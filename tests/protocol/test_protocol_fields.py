"""Market data fields: the complete id table, unwrap, and value parsing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from rxibkr.protocol import (
    FIELD_IDS,
    FIELD_KINDS,
    FIELDS,
    FieldKind,
    Price,
    parse_fields,
    parse_number,
    parse_price,
    unwrap,
)
from rxibkr.protocol.fields import parse_value

README = Path(__file__).resolve().parents[3] / "shared" / "protocol" / "README.md"

# Every id of protocol README section 9.1 (OpenAPI ids plus the IBind-only rows): 120 rows.
ALL_IDS = """
31 55 58 70 71 73 74 75 76 77 78 79 80 82 83 84 85 86 87 88 201 6004 6008 6070 6072 6073 6119 6457 6508 6509
7051 7057 7058 7059 7068 7084 7085 7086 7087 7088 7089 7094 7184 7219 7220 7221 7280 7281 7282 7283 7284 7285
7286 7287 7288 7289 7290 7291 7292 7293 7294 7295 7296 7308 7309 7310 7311 7607 7633 7635 7636 7637 7638 7639
7644 7655 7671 7672 7674 7675 7676 7677 7678 7679 7680 7681 7682 7683 7684 7685 7686 7687 7688 7689 7690 7694
7695 7696 7697 7698 7699 7700 7702 7703 7704 7705 7706 7707 7708 7714 7715 7718 7720 7724 7741 7762 7768 7920
7921 7943
""".split()

FIXED_NAMES = {
    "31": "last_price",
    "55": "symbol",
    "58": "text",
    "70": "high",
    "71": "low",
    "82": "change",
    "83": "change_percent",
    "84": "bid_price",
    "85": "ask_size",
    "86": "ask_price",
    "87": "volume",
    "88": "bid_size",
    "6004": "exchange",
    "6008": "contract_id",
    "6070": "sec_type",
    "6119": "quote_server",
    "6508": "service_params",
    "6509": "market_data_availability",
    "7051": "company_name",
    "7059": "last_size",
    "7295": "open",
    "7296": "close",
    "7635": "mark_price",
    "7741": "prior_close",
    "7762": "volume_long",
    "7293": "week52_high",
    "7294": "week52_low",
    "7308": "delta",
    "7309": "gamma",
    "7310": "theta",
    "7311": "vega",
}


def test_the_table_is_complete() -> None:
    assert list(FIELDS) == ALL_IDS
    assert len(ALL_IDS) == 120


def test_the_table_matches_the_protocol_readme() -> None:
    if not README.is_file():
        pytest.skip("the shared protocol README is not beside the repository")
    text = README.read_text(encoding="utf-8")
    section = text.split("### 9.1", 1)[1].split("### 9.2", 1)[0]
    ids = [
        line.split("|")[1].strip()
        for line in section.splitlines()
        if line.startswith("| ") and line[2].isdigit()
    ]
    assert ids == ALL_IDS


@pytest.mark.parametrize(("fid", "name"), sorted(FIXED_NAMES.items()))
def test_fixed_names(fid: str, name: str) -> None:
    assert FIELDS[fid] == name
    assert FIELD_IDS[name] == fid


def test_names_are_unique_snake_case_and_every_id_has_a_kind() -> None:
    assert len(set(FIELDS.values())) == len(FIELDS)
    assert all(name.isidentifier() and name == name.lower() for name in FIELDS.values())
    assert {FIELD_IDS[name] for name in FIELDS.values()} == set(FIELDS)
    assert set(FIELD_KINDS) == set(FIELDS)


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        FIELDS["1"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("fid", "kind"),
    [
        ("31", FieldKind.PRICE),
        ("84", FieldKind.PRICE),
        ("86", FieldKind.PRICE),
        ("7741", FieldKind.PRICE),
        ("85", FieldKind.SIZE),
        ("87", FieldKind.SIZE),
        ("7762", FieldKind.SIZE),
        ("83", FieldKind.NUMBER),
        ("7308", FieldKind.NUMBER),
        ("55", FieldKind.TEXT),
        ("6509", FieldKind.TEXT),
        ("6119", FieldKind.TEXT),
    ],
)
def test_kinds(fid: str, kind: FieldKind) -> None:
    assert FIELD_KINDS[fid] is kind


def test_unwrap_keeps_bookkeeping_and_unknown_keys() -> None:
    frame = {
        "server_id": "q0",
        "conidEx": "265598",
        "conid": 265598,
        "_updated": 1615300714892,
        "6119": "q0",
        "87": "12.2M",
        "87_raw": 1.22e7,
        "31": "119.46",
        "6509": "RpB",
        "9999": "new field",
        "TimestampBase": 5,
        "topic": "smd+265598",
    }
    assert unwrap(frame) == {
        "server_id": "q0",
        "conidEx": "265598",
        "conid": 265598,
        "_updated": 1615300714892,
        "quote_server": "q0",
        "volume": "12.2M",
        "volume_raw": 1.22e7,
        "last_price": "119.46",
        "market_data_availability": "RpB",
        "9999": "new field",
        "TimestampBase": 5,
        "topic": "smd+265598",
    }
    assert unwrap({}) == {}


NUMBERS: list[tuple[Any, float | int | None]] = [
    (0.56, 0.56),
    (265598, 265598),
    (1.22e7, 1.22e7),
    ("271.67", 271.67),
    ("-0.5", -0.5),
    ("+1.25", 1.25),
    ("100", 100),
    ("0", 0),
    ("1,234.5", 1234.5),
    ("1,234,567", 1234567),
    ("1.2M", 1200000.0),
    ("12.2M", 12200000.0),
    ("12.5K", 12500.0),
    ("3B", 3000000000.0),
    ("1.5k", 1500.0),
    ("0.56%", 0.56),
    ("-3.2 %", -3.2),
    ("  42  ", 42),
    ("1e3", 1000.0),
    ("N/A", None),
    ("n/a", None),
    ("-", None),
    ("", None),
    ("   ", None),
    (None, None),
    (True, None),
    ("C271.67", None),
    ("abc", None),
    ("1.2.3", None),
    ("1_000", None),
    ("nan", None),
    ("inf", None),
    ("1e999", None),
    ("1e3K", None),
    ("K", None),
    ("%", None),
    ("١٢", None),
    ("--1", None),
    ([1], None),
    ({"a": 1}, None),
]


@pytest.mark.parametrize(("value", "expected"), NUMBERS, ids=[repr(v) for v, _ in NUMBERS])
def test_parse_number(value: Any, expected: float | int | None) -> None:
    result = parse_number(value)
    assert result == expected
    assert type(result) is type(expected)


def test_parse_number_keeps_json_numbers_as_they_are() -> None:
    value = float("nan")
    assert math.isnan(parse_number(value))  # type: ignore[arg-type]


PRICES: list[tuple[Any, Price]] = [
    ("271.67", Price(271.67, False, False)),
    ("C271.67", Price(271.67, True, False)),
    ("H271.67", Price(271.67, False, True)),
    ("C 271.67", Price(271.67, True, False)),
    ("C419.00", Price(419.0, True, False)),
    ("1,234.50", Price(1234.5, False, False)),
    (271, Price(271.0, False, False)),
    (0.5, Price(0.5, False, False)),
    ("N/A", Price(None, False, False)),
    ("-", Price(None, False, False)),
    ("C", Price(None, True, False)),
    ("", Price(None, False, False)),
    (None, Price(None, False, False)),
    ("X1", Price(None, False, False)),
]


@pytest.mark.parametrize(("value", "expected"), PRICES, ids=[repr(v) for v, _ in PRICES])
def test_parse_price(value: Any, expected: Price) -> None:
    price = parse_price(value)
    assert price == expected
    assert price.value is None or type(price.value) is float


def test_parse_fields() -> None:
    frame = {
        "server_id": "q1",
        "conidEx": "265598",
        "conid": 265598,
        "_updated": 1777552110061,
        "6119": "q1",
        "6509": "DPB",
        "31": "C271.67",
        "84": "271.55",
        "85": "500",
        "86": "271.66",
        "88": "1,200",
        "83": 0.56,
        "87": "12.2M",
        "87_raw": 1.22e7,
        "55": "-",
        "7059": "100",
        "7308": "0.512",
        "7633": "25.3%",
        "6508": "&serviceID1=122&serviceID2=123",
        "9999": "kept",
        "topic": "smd+265598",
    }
    assert parse_fields(frame) == {
        "server_id": "q1",
        "conidEx": "265598",
        "conid": 265598,
        "_updated": 1777552110061,
        "quote_server": "q1",
        "market_data_availability": "DPB",
        "last_price": 271.67,
        "bid_price": 271.55,
        "ask_size": 500,
        "ask_price": 271.66,
        "bid_size": 1200,
        "change_percent": 0.56,
        "volume": 12200000.0,
        "volume_raw": 1.22e7,
        "symbol": None,
        "last_size": 100,
        "delta": 0.512,
        "implied_vol_percent": 25.3,
        "service_params": "&serviceID1=122&serviceID2=123",
        "9999": "kept",
        "topic": "smd+265598",
    }


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("31", "H10.5", 10.5),
        ("last_price", "C10.5", 10.5),
        ("volume", "1.5K", 1500.0),
        ("volume_raw", 1500, 1500),
        ("87_raw", "1500", 1500),
        ("symbol", "AAPL", "AAPL"),
        ("55", "N/A", None),
        ("58", "", None),
        ("6509", 5, 5),
        ("conid", "265598", "265598"),
        ("unknown", "N/A", "N/A"),
    ],
)
def test_parse_value(key: str, value: Any, expected: Any) -> None:
    assert parse_value(key, value) == expected


def test_the_field_kinds_public_values() -> None:
    assert [k.value for k in FieldKind] == ["price", "size", "number", "text"]


def test_the_raw_volume_is_a_size_and_an_upper_case_exponent_counts() -> None:
    assert parse_fields({"87_raw": "1.5K"}) == {"volume_raw": 1500.0}
    assert parse_number("1E5") == 100000.0 and parse_number("15E-1") == 1.5


def test_the_raw_volume_is_parsed_by_its_name_too() -> None:
    assert parse_value("volume_raw", "1.5K") == 1500.0
