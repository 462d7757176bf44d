"""The benchmark harness runs end to end in quick mode and fills every row of its table.

No speed thresholds here: machines are noisy. The numbers are for ``python -m benchmarks.run``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _streams_available() -> bool:
    probe = "from benchmarks import harness; print(harness.streams_available() is None)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.strip() == "True"


def test_quick_run_prints_the_table_and_every_row_has_a_number(tmp_path: Path) -> None:
    out_file = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--silent", "--json", str(out_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    assert "x limit" in table and "firehose write rate" in table

    results = json.loads(out_file.read_text(encoding="utf-8"))
    assert results["server_write_rate"] > 0
    rows = results["throughput"]
    streams = _streams_available()
    for name in ("ceiling", "frames", "observe", "snapshots", "conids", "queue"):
        row = rows[name]
        if name in ("snapshots", "conids") and not streams:
            assert row["error"] == "n/a (streams not available)"
            assert "n/a (streams not available)" in table
            continue
        assert row["rate"] and row["rate"] > 0, (name, row)
        assert row["ratio"] and row["ratio"] > 0, (name, row)
    if streams:
        assert rows["conids"]["cpu_vs_snapshots"] > 0, rows["conids"]
        assert "over 1,000 conids" in table
    latencies = {lat["rate"]: lat for lat in results["latency"]}
    assert set(latencies) == {1000, 10000}
    for lat in latencies.values():
        assert lat["samples"] > 0 and lat["p50"] is not None and lat["p99"] is not None, lat
        assert lat["max"] is not None
    memory = results["memory"]
    assert memory["growth_mb"] is not None, memory
    churn = results["churn"]
    assert churn["channel_rate"] and churn["subscribe_rate"], churn
    assert churn["leftover_subscriptions"] == 0, churn


def test_rows_are_selectable_by_number_or_name() -> None:
    probe = (
        "from benchmarks.run import parse_rows; "
        "print(parse_rows('3,latency'), parse_rows('7'), parse_rows(None)[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.split("\n")[0] == "['observe', 'latency'] ['memory', 'churn'] ceiling"


def test_dispatch_micro_benchmark_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_dispatch", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "on_frame" in out.stdout and "ns/frame" in out.stdout


def test_quick_tls_row_runs_where_a_certificate_can_be_made(tmp_path: Path) -> None:
    out_file = tmp_path / "tls.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--rows", "tls", "-q", "--json", str(out_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wss" in proc.stdout
    results = json.loads(out_file.read_text(encoding="utf-8"))
    if results["tls"] is None:  # neither trustme nor openssl here: the row says so
        assert "n/a" in proc.stdout
        return
    assert results["tls"]["ceiling"]["rate"] > 0
    assert results["tls"]["observe"]["rate"] > 0
    assert results["tls_write_rate"] > 0


def test_instruction_count_program_runs_every_variant() -> None:
    """The program ``benchmarks.instructions`` runs under valgrind (valgrind itself is not needed here)."""
    for variant in ("loads", "observe", "observe_noq", "typed", "queue"):
        subprocess.run(
            [sys.executable, "-m", "benchmarks.instructions", "--run", variant, "200"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )


def test_hot_path_micro_benchmark_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_hotpath", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "typed" in out.stdout and "KiB per subscription" in out.stdout
