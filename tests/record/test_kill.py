"""A recorder process under a steady stream from the simulator: killed (SIGKILL) it loses at most the
last second; stopped (SIGTERM, SIGHUP) it writes everything, closes the file and says so on stderr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from rxibkr.record import Recording

pytest.importorskip("aiohttp")

from waiting import wait_for

from rxibkr.sim import GatewaySimulator

BOUND = 1.0  # what a killed recorder may lose: the frames received in its last second


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    simulator = GatewaySimulator(
        port=0,
        tls=False,
        md_interval=0.02,
        heartbeat_interval=1.0,
        greeting_delay=0.0,
        number_frames=True,
        record_sent=True,
    )
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


def start_recorder(sim: GatewaySimulator, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "rxibkr", "record", "--url", sim.ws_url, "--out", str(out)]
    command += ["--fields", "31,84,86", "265598", "8314"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def seqs_in(path: Path) -> set[int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a killed recorder may leave an incomplete last line
        recording = Recording.load(path)
    out: set[int] = set()
    for frame in recording.frames("in"):
        obj = orjson.loads(frame.data)
        if isinstance(obj, dict) and "_seq" in obj:
            out.add(obj["_seq"])
    return out


def sent_seqs(sim: GatewaySimulator) -> set[int]:
    """The sequence numbers of what the simulator has sent so far (one connection)."""
    out: set[int] = set()
    for _cid, data in sim.sent_frames():
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "_seq" in obj:
            out.add(obj["_seq"])
    return out


def recording_steadily(sim: GatewaySimulator, out: Path, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the file holds market data while the stream goes on (no pause ever comes)."""

    def ready() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        return out.exists() and len(seqs_in(out)) > 100

    wait_for(ready)


@pytest.mark.parametrize("name", ["killed.jsonl", "killed.jsonl.zst"])
def test_sigkill_loses_at_most_the_last_second(sim: GatewaySimulator, tmp_path: Path, name: str) -> None:
    if name.endswith(".zst"):
        pytest.importorskip("zstandard")
    out = tmp_path / name
    proc = start_recorder(sim, out)
    try:
        recording_steadily(sim, out, proc)
        sent_before = sent_seqs(sim)  # everything sent by now must survive a kill 1 s later
        threading.Event().wait(BOUND + 0.1)  # the bound under test, not a synchronisation
        sent_at_kill = max(sent_seqs(sim))
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    recorded = seqs_in(out)
    missing = sent_before - recorded
    assert not missing, f"{len(missing)} frames sent more than {BOUND} s before the kill are not in the file"
    assert len(sent_before) > 100 and max(recorded) > max(sent_before)  # the stream went on, steadily
    assert max(recorded) <= sent_at_kill


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_cleanly(sim: GatewaySimulator, tmp_path: Path, signum: int) -> None:
    out = tmp_path / "stopped.jsonl.zst" if signum == signal.SIGHUP else tmp_path / "stopped.jsonl"
    proc = start_recorder(sim, out)
    try:
        recording_steadily(sim, out, proc)
        written_before = seqs_in(out)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    name = signal.Signals(signum).name
    lines = stderr.decode().splitlines()
    stopped = [line for line in lines if line.startswith("rxibkr record: stopped")]
    assert len(stopped) == 1 and f"stopped ({name})" in stopped[0] and "file closed" in stopped[0], lines
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # complete: no truncation warning
        recording = Recording.load(out)
    assert recording.version == 2
    assert recording.connections[-1].t_close is not None  # the close was recorded
    # everything the recorder received is in the file: it says how many frames it wrote, the file holds
    # them, and they are every frame the simulator sent up to the last one (no gap). Frames still in
    # flight when the signal came (a loaded machine) were never received: they are not asked for.
    written = int(stopped[0].split("; ", 1)[1].split(" frames written", 1)[0])
    assert written == sum(len(conn.frames) for conn in recording.connections)
    recorded = seqs_in(out)
    assert written_before <= recorded  # what it had written before the signal stays
    missing = {seq for seq in sent_seqs(sim) if seq <= max(recorded)} - recorded
    assert not missing, f"frames received but not in the file: {sorted(missing)[:10]}"
