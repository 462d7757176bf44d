"""The raw log on disk: versioned header, .zst, flushing under steady traffic, cut and corrupted files."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import orjson
import pytest

from rxibkr.client.core import WireEvent
from rxibkr.record import FORMAT_VERSION, Recorder, Recording, TruncatedRecordingWarning
from rxibkr.testing import frames, run_due, virtual_client

pytest.importorskip("zstandard")


def record_session(path: Path, prices: range = range(50)) -> None:
    vc = virtual_client(start=False)
    with vc.client.record(path):
        vc.client.start()
        run_due(vc.scheduler)
        for price in prices:
            vc.receive(frames.smd(265598, last=price))
    vc.shutdown()


def shape(recording: Recording) -> list[tuple[bool, int, list[bytes | str]]]:
    return [(c.opened, len(c.frames), [f.data for f in c.frames]) for c in recording.connections]


def test_zst_and_plain_logs_hold_the_same_session(tmp_path: Path) -> None:
    plain, packed = tmp_path / "s.jsonl", tmp_path / "s.jsonl.zst"
    record_session(plain)
    record_session(packed)
    assert packed.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # a zstandard frame
    assert packed.stat().st_size < plain.stat().st_size / 3
    a, b = Recording.load(plain), Recording.load(packed)
    assert shape(a) == shape(b) and a.version == b.version == FORMAT_VERSION
    assert [m.data for m in a.messages()] == [m.data for m in b.messages()]


def test_appending_to_a_zst_log_adds_frames(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl.zst"
    record_session(path, range(3))
    record_session(path, range(3, 6))
    recording = Recording.load(path)
    prices = [m.data["31"] for m in recording.messages() if m.topic == "smd+265598"]
    assert prices == [str(p) for p in range(6)] and len(recording.connections) == 2


def test_the_writer_flushes_on_its_own_schedule_under_steady_traffic(tmp_path: Path) -> None:
    """No pause ever comes: the file still fills, a flush every flush_interval."""
    vc = virtual_client()
    path = tmp_path / "steady.jsonl"
    recorder = Recorder(vc.client, path, flush_interval=0.05)
    deadline = time.monotonic() + 10
    sent = 0
    while recorder.flushes < 3:  # frames keep coming, never 0.05 s apart
        assert time.monotonic() < deadline
        vc.receive(frames.smd(265598, last=sent))
        sent += 1
        threading.Event().wait(0.002)
    on_disk = path.read_bytes()
    assert on_disk.endswith(b"\n") and on_disk.count(b'"dir":"in"') > 0  # complete lines, before dispose
    recorder.dispose()
    vc.shutdown()
    assert recorder.max_queue_depth < sent and recorder.queue_depth == 0


def test_a_plain_file_cut_mid_line_loads_up_to_its_last_complete_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    record_session(path, range(10))
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b'"dir":"in"') + 5])  # the last frame line, cut
    lines = data[: data.rindex(b'"dir":"in"')].count(b"\n")
    with pytest.warns(TruncatedRecordingWarning, match=rf"cut\.jsonl: line {lines + 1} is incomplete"):
        recording = Recording.load(path)
    assert [m.data["31"] for m in recording.messages() if m.topic == "smd+265598"] == [
        str(p) for p in range(9)
    ]


def test_a_cut_line_followed_by_a_new_recorder_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "appended.jsonl"
    record_session(path, range(3))
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # killed mid-line
    record_session(path, range(3, 5))  # the next recorder starts on a line of its own
    with pytest.warns(TruncatedRecordingWarning, match=r"appended\.jsonl: line \d+ is incomplete"):
        recording = Recording.load(path)
    assert len(recording.connections) == 2


def test_a_corrupted_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    record_session(path, range(3))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = b'{"t": 1, "dir": "in", "fr\x00\n'
    path.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 4: not JSON"):
        Recording.load(path)


def test_a_zst_file_cut_short_loads_its_complete_frames_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.zst"
    record_session(path, range(5))  # one zstandard frame per flush: at least the header's and the rest
    whole = Recording.load(path)
    data = path.read_bytes()
    cut = len(data) - 7
    path.write_bytes(data[:cut])
    with pytest.warns(
        TruncatedRecordingWarning, match=r"cut\.jsonl\.zst: the last zstandard frame \(from byte \d+\)"
    ):
        recording = Recording.load(path)
    assert len(list(recording.frames("in"))) <= len(list(whole.frames("in")))


def test_a_recorder_does_not_append_to_a_zst_file_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.zst"
    record_session(path, range(5))
    path.write_bytes(path.read_bytes()[:-7])
    vc = virtual_client()
    with pytest.raises(ValueError, match=r"cut\.jsonl\.zst: ends in an incomplete zstandard frame"):
        Recorder(vc.client, path)
    vc.shutdown()


def test_a_corrupted_zst_file_is_an_error_naming_file_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.zst"
    record_session(path, range(5))
    data = bytearray(path.read_bytes())
    data[12] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        ValueError, match=r"bad\.jsonl\.zst: corrupted zstandard data in the frame starting at byte 0"
    ):
        Recording.load(path)


def test_version_1_files_load_and_newer_versions_are_refused() -> None:
    v1 = Recording.parse(
        [
            '{"t":0,"dir":"meta","event":"open","conn":1}',
            '{"t":1,"dir":"meta","event":"close","conn":1}',
        ]
    )
    assert (
        v1.version == 1 and v1.connections[0].closed_by == "unknown" and v1.connections[0].close_code is None
    )
    header = {"format": "rxibkr-recording", "version": FORMAT_VERSION + 1, "t": 0, "clock": "wall"}
    with pytest.raises(ValueError, match=rf"line 1: format version {FORMAT_VERSION + 1} is newer"):
        Recording.parse([orjson.dumps(header)])
    with pytest.raises(ValueError, match="'by' must be one of"):
        Recording.parse(['{"t":0,"dir":"meta","event":"close","by":"gremlin"}'])


def test_closes_carry_who_closed_and_the_code() -> None:
    recording = Recording.parse(
        [
            '{"format":"rxibkr-recording","version":2,"t":0,"clock":"wall"}',
            '{"t":0,"dir":"meta","event":"open","conn":1}',
            '{"t":1,"dir":"meta","event":"close","conn":1,"code":1011,"by":"server"}',
            '{"t":2,"dir":"meta","event":"open","conn":2}',
            '{"t":3,"dir":"meta","event":"close","conn":2,"code":1000,"by":"client"}',
        ]
    )
    assert [(c.closed_by, c.close_code) for c in recording.connections] == [
        ("server", 1011),
        ("client", 1000),
    ]


def test_a_client_shutdown_is_recorded_as_the_clients_close(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    vc = virtual_client()
    recorder = vc.client.record(path)
    vc.receive(frames.smd(265598, last=1))
    vc.shutdown()
    recorder.dispose()
    (conn,) = Recording.load(path).connections
    # the lead's WireEvent.initiator says "client"; without it the close event reads "unknown"
    assert conn.t_close is not None and conn.closed_by in ("client", "unknown")


def test_recorder_needs_a_destination() -> None:
    vc = virtual_client()
    with pytest.raises(ValueError, match="path"):
        Recorder(vc.client, None)
    with pytest.raises(ValueError, match="flush_interval"):
        Recorder(vc.client, "x.jsonl", flush_interval=0)
    vc.shutdown()


def test_warnings_do_not_fire_for_complete_files(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl.zst"
    record_session(path, range(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Recording.load(path)


@pytest.mark.skipif(
    "initiator" not in WireEvent._fields, reason="client.wire's WireEvent has no initiator yet"
)
def test_who_closed_is_recorded(tmp_path: Path) -> None:
    vc = virtual_client()
    path = tmp_path / "closes.jsonl"
    with vc.client.record(path):
        vc.gateway.play("-|")  # the gateway closes; the client reconnects
        vc.advance_by(10)
        vc.client.hard_reset()  # the client closes; and reconnects
        vc.advance_by(10)
    vc.shutdown()
    closed = [(c.closed_by, c.close_code) for c in Recording.load(path).connections if c.t_close is not None]
    assert closed[0][0] == "server" and closed[1][0] == "client"
