"""Recording: the JSON Lines format, redaction of session ids, binary frames, the background writer."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from reactivex.testing import TestScheduler

from rxibkr.client.core import IbkrWsClient, WireEvent
from rxibkr.protocol import requests as rq
from rxibkr.record import Recorder, Recording, encode_line
from rxibkr.testing import FakeTransport, frames, run_due, virtual_client

SESSION = "0123456789abcdef0123456789abcdef"
INTERNAL = "69f03732.00000af0"


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def entries(path: Path) -> list[dict[str, Any]]:
    """The lines without the header."""
    return [x for x in lines(path) if "format" not in x]


def recorder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rxibkr-recorder"]


def test_format_of_frames_and_connection_events(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    vc = virtual_client(start=False)
    recorder = vc.client.record(path)
    vc.client.start()
    run_due(vc.scheduler)
    vc.client.subscribe("md+265598", {"fields": ["31"]})
    vc.gateway.play("-a--|", a=frames.smd(265598, last=1.5))
    vc.advance_by(5)
    recorder.dispose()
    vc.shutdown()
    header, *got = lines(path)
    assert header == {"format": "rxibkr-recording", "version": 2, "t": 0.0, "clock": "virtual"}
    assert got[0] == {"t": 0.0, "dir": "meta", "event": "open", "conn": 1}
    assert [(x["dir"], orjson.loads(x["frame"])["topic"]) for x in got[1:4]] == [
        ("in", "system"),
        ("in", "act"),
        ("in", "sts"),
    ]
    assert got[4] == {"t": 0.0, "dir": "out", "frame": 'smd+265598+{"fields": ["31"]}', "binary": False}
    assert got[5]["t"] == 1.0 and got[5]["binary"] is True
    assert orjson.loads(got[5]["frame"]) == frames.smd(265598, last=1.5)
    closed_by = "server" if "initiator" in WireEvent._fields else "unknown"  # the fake gateway closed it
    assert got[6] == {"t": 4.0, "dir": "meta", "event": "close", "conn": 1, "code": 1000, "by": closed_by}
    assert got[7] == {"t": 4.25, "dir": "meta", "event": "open", "conn": 2}
    assert isinstance(recorder, Recorder) and recorder.frames == len([x for x in got if x["dir"] != "meta"])


def test_session_ids_are_never_written(tmp_path: Path) -> None:
    class Rest:
        def tickle(self) -> dict[str, Any]:
            return {"session": SESSION}

    scheduler = TestScheduler()
    greeting = [frames.waiting_for_session()]
    gateway = FakeTransport(scheduler, cookies=True, answer_tic=True, greeting=greeting)
    client = IbkrWsClient(
        Rest(),
        url="ws://gateway.invalid/v1/api/ws",
        scheduler=scheduler,
        transport=gateway,
        tic_interval=30.0,
        tickle_interval=None,
    )
    path = tmp_path / "s.jsonl"
    with client.record(path):
        client.start()
        scheduler.advance_by(1)
        assert gateway.texts() == [rq.session(SESSION)]  # the in-band session message went out
        gateway.receive(frames.act(sessionId=INTERNAL))
        gateway.receive(frames.sts())
        gateway.receive({"topic": "system", "note": f"echo {SESSION}"})
        scheduler.advance_by(30)  # tic and its reply carrying the session id
    client.shutdown()
    text = path.read_text(encoding="utf-8")
    assert SESSION not in text and INTERNAL not in text
    got = entries(path)
    assert {"t": 0.0, "dir": "out", "frame": '{"session":"<session>"}', "binary": False} in got
    tic = next(orjson.loads(x["frame"]) for x in got if x["dir"] == "in" and '"tic"' in x["frame"])
    assert tic["id"] == "<session>"
    act = next(orjson.loads(x["frame"]) for x in got if x["dir"] == "in" and '"act"' in x["frame"])
    assert act["args"]["sessionId"] == "<session>"


def test_ids_learnt_from_frames_alone_are_redacted(tmp_path: Path) -> None:
    vc = virtual_client()  # no REST session: the client knows no session id
    path = tmp_path / "s.jsonl"
    with vc.client.record(path):
        vc.receive(frames.tic(SESSION))
        vc.receive({"topic": "system", "later": SESSION})
    text = path.read_text(encoding="utf-8")
    assert SESSION not in text and text.count("<session>") == 2


def test_invalid_utf8_and_lone_surrogates_survive_the_round_trip(tmp_path: Path) -> None:
    bad = b'{"topic":"smd+1","conid":1,"31":"1\x99"}'
    odd = '{"topic":"smd+1","conid":1,"55":"\udc99"}'
    vc = virtual_client()
    path = tmp_path / "s.jsonl"
    with vc.client.record(path):
        vc.receive(bad)
        vc.receive(odd)
        vc.receive("plain text frame")
    got = [x for x in entries(path) if x["dir"] == "in"]
    assert got[0]["binary"] is True and base64.b64decode(got[0]["b64"]) == bad
    assert "\ufffd" in got[0]["frame"]  # still readable
    assert got[1]["binary"] is False and "b64" in got[1]
    assert got[2] == {"t": 0.0, "dir": "in", "frame": "plain text frame", "binary": False}
    assert [f.data for f in Recording.load(path).frames()] == [bad, odd, "plain text frame"]


def test_encode_line_without_redaction() -> None:
    assert orjson.loads(encode_line(1.5, "in", b"{}")) == {
        "t": 1.5,
        "dir": "in",
        "frame": "{}",
        "binary": True,
    }


def test_dispose_flushes_and_ends_the_writer_thread(tmp_path: Path) -> None:
    vc = virtual_client()
    path = tmp_path / "s.jsonl"
    recorder = vc.client.record(path)
    assert len(recorder_threads()) == 1 and recorder.active
    for i in range(2000):
        vc.receive(frames.smd(1, last=i))
    recorder.dispose()
    recorder.dispose()  # idempotent
    assert not recorder.active and recorder_threads() == []
    assert len(lines(path)) == 2002 and recorder.frames == 2000  # header, attached-open line, the frames
    vc.shutdown()


def test_client_shutdown_stops_the_recording(tmp_path: Path) -> None:
    vc = virtual_client()
    path = tmp_path / "s.jsonl"
    recorder = vc.client.record(path)
    vc.receive(frames.smd(1, last=1))
    vc.shutdown()
    assert not recorder.active and recorder_threads() == []
    assert lines(path)[-1]["event"] == "close"


def test_recording_appends(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    for price in (1, 2):
        vc = virtual_client(start=False)
        with vc.client.record(path):
            vc.client.start()
            run_due(vc.scheduler)
            vc.receive(frames.smd(1, last=price))
        vc.shutdown()
    recording = Recording.load(path)
    assert [c.opened for c in recording.connections] == [True, True]
    assert [len(c.incoming) for c in recording.connections] == [4, 4]


def test_recording_a_started_client_marks_the_connection_attached(tmp_path: Path) -> None:
    vc = virtual_client()
    path = tmp_path / "s.jsonl"
    with vc.client.record(path):
        vc.receive(frames.smd(1, last=1))
    (conn,) = Recording.load(path).connections
    assert conn.attached and not conn.confirmed and conn.t_close is None


def test_recording_parse_errors_name_the_line() -> None:
    with pytest.raises(ValueError, match="line 2: not JSON"):
        Recording.parse(['{"t":0,"dir":"in","frame":"{}","binary":false}', "nope"])
    with pytest.raises(ValueError, match="line 1: 'dir'"):
        Recording.parse(['{"t":0,"dir":"sideways"}'])
    with pytest.raises(ValueError, match="numeric 't'"):
        Recording.parse(['{"dir":"in"}'])
    with pytest.raises(ValueError, match="unknown meta event"):
        Recording.parse(['{"t":0,"dir":"meta","event":"boom"}'])


def test_parse_connection_structure() -> None:
    recording = Recording.parse(
        [
            '{"t":1,"dir":"in","frame":"{}","binary":true}',  # before any open: attached
            '{"t":2,"dir":"meta","event":"close","conn":1}',
            '{"t":3,"dir":"meta","event":"close","conn":2}',  # a failed attempt
            '{"t":4,"dir":"meta","event":"open","conn":3}',
            '{"t":5,"dir":"out","frame":"tic","binary":false}',
            "",
            '{"t":6,"dir":"meta","event":"open","conn":4}',  # 3's close is missing
        ]
    )
    shape = [(c.opened, c.attached, c.t_open, c.t_close, len(c.frames)) for c in recording.connections]
    assert shape == [
        (True, True, 1.0, 2.0, 1),
        (False, False, 3.0, 3.0, 0),
        (True, False, 4.0, 6.0, 1),
        (True, False, 6.0, None, 0),
    ]
    assert recording.duration == 5.0 and len(recording) == 4
    assert [f.data for f in recording.frames("out")] == ["tic"]
    assert recording.connections[0].frames[0].binary
