"""``rxibkr record`` against the simulator and ``rxibkr replay`` of the file it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from rxibkr.cli.main import main
from rxibkr.record import Recording
from rxibkr.testing import frames, run_due, virtual_client

pytest.importorskip("aiohttp")


def test_record_then_replay(ibkr_sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.jsonl"
    code = main(
        [
            "record",
            "--url",
            ibkr_sim.ws_url,
            "--cacert",
            ibkr_sim.cacert,
            "--account",
            ibkr_sim.account,
            "--duration",
            "0.6",
            "--out",
            str(out),
            "--fields",
            "31,84",
            "265598",
            "8314",
        ]
    )
    assert code == 0
    assert "frames written to" in capsys.readouterr().err
    recording = Recording.load(out)
    sent = [f.data for f in recording.frames("out")]
    assert 'smd+265598+{"fields": ["31", "84"]}' in sent and 'smd+8314+{"fields": ["31", "84"]}' in sent
    topics = {orjson.loads(f.data).get("topic") for f in recording.frames("in")}
    assert {"system", "sts", "smd+265598", "smd+8314"} <= topics
    assert ibkr_sim.session_id not in out.read_text(encoding="utf-8")

    assert main(["replay", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == sum(1 for _ in recording.frames("in"))
    assert any("MARKET_DATA" in line and "smd+8314" in line for line in lines)

    assert main(["replay", str(out), "--summary", "--speed", "50"]) == 0
    summary = capsys.readouterr().out
    assert "1 connection(s), 0 failed attempt(s)" in summary and "smd+265598" in summary


def test_replay_prints_malformed_frames_and_rejects_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.jsonl"
    vc = virtual_client(start=False)
    with vc.client.record(path):
        vc.client.start()
        run_due(vc.scheduler)
        vc.receive(b"\x99 not json")
        vc.receive(frames.smd(1, last=1))
    vc.shutdown()
    assert main(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert "[malformed:" in out and "smd+1" in out
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 2
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["replay", str(tmp_path / "empty.jsonl")]) == 1
    assert main(["replay", str(path), "--speed", "0"]) == 2
    assert main(["record", "--duration", "-1", "1"]) == 2


def test_record_reports_an_unreachable_gateway(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "record",
            "--url",
            "ws://127.0.0.1:1/v1/api/ws",
            "--timeout",
            "0.2",
            "--duration",
            "1",
            "--out",
            str(tmp_path / "x.jsonl"),
            "265598",
        ]
    )
    assert code == 3 and "cannot connect to ws://127.0.0.1:1/v1/api/ws: connection refused" in (
        capsys.readouterr().err
    )


def test_record_symbols_to_parquet_then_export(
    ibkr_sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pyarrow")
    pytest.importorskip("zstandard")
    import rxibkr.record as r

    data = tmp_path / "out"
    common = ["--url", ibkr_sim.ws_url, "--cacert", ibkr_sim.cacert, "--account", ibkr_sim.account]
    assert main(["record", *common, "--parquet", str(data), "--duration", "1", "AAPL", "MSFT"]) == 0
    err = capsys.readouterr().err
    assert "recording AAPL MSFT to" in err
    stopped = err.splitlines()[-1]
    assert stopped.startswith("rxibkr record: stopped (duration reached)") and "file closed" in stopped
    delivered = dict(
        (int(conid), int(n))
        for conid, n in (p.split(": ") for p in stopped.split("delivered: ")[1].split(", "))
    )
    quotes = r.read(data, table="quotes")
    assert quotes.groupby("conid").size().to_dict() == delivered and set(delivered) == {265598, 272093}
    assert set(quotes["symbol"]) == {"AAPL", "MSFT"}
    (raw,) = (data / "raw").glob("rxibkr-*.jsonl.zst")

    exported = tmp_path / "exported"
    assert main(["export", str(raw), "--parquet", str(exported)]) == 0
    assert "quotes " + str(len(quotes)) in capsys.readouterr().err
    assert r.read(exported, "quotes").equals(quotes)

    assert main(["export", str(tmp_path / "missing.jsonl"), "--parquet", str(exported)]) == 2
    assert (
        main(["record", *common, "--out", str(tmp_path / "x.jsonl"), "--duration", "1", "NOSUCHSYMBOL"]) == 2
    )
    assert "unknown symbol" in capsys.readouterr().err
