"""IBIND_FIELDS is IBind's own table: its ``snapshot_by_id``, built as IBind builds it from
``snapshot_by_key`` (tests/protocol/data/ibind_snapshot_by_key.json, transcribed from IBind 0.1.14).
IBind-compatible queue items carry exactly these names, so a changed name breaks IBind programs."""

from __future__ import annotations

import json
from pathlib import Path

from rxibkr.protocol.fields import FIELDS, IBIND_FIELDS

DATA = Path(__file__).resolve().parent / "data" / "ibind_snapshot_by_key.json"


def test_ibind_fields_are_ibinds_snapshot_by_id() -> None:
    pairs = json.loads(DATA.read_text(encoding="utf-8"))["snapshot_by_key"]
    snapshot_by_id = {str(value): key for key, value in pairs}  # as IBind computes it (last one wins)
    assert dict(IBIND_FIELDS) == snapshot_by_id
    assert list(IBIND_FIELDS) == list(snapshot_by_id)  # the same order, too


def test_every_numeric_ibind_field_is_a_known_field() -> None:
    assert {fid for fid in IBIND_FIELDS if fid.isdigit()} <= set(FIELDS)
