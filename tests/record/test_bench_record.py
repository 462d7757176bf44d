"""The recording benchmark runs (small numbers) and its writer keeps up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("zstandard")

from benchmarks import bench_record


def test_recording_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert bench_record.main(["--rate", "2000", "--seconds", "0.5", "--json", str(out)]) == 0
    results = {r["format"]: r for r in json.loads(out.read_text())}
    assert set(results) == set(bench_record.FORMATS)
    for r in results.values():
        assert r["messages"] >= r["expected"] == 1000
        assert r["max_queue_depth"] < 1000  # bounded: never a whole stream behind
    assert results["zst"]["raw_bytes_per_msg"] < results["jsonl"]["raw_bytes_per_msg"] / 3
    assert results["zst+parquet"]["parquet_rows"] == 1000
