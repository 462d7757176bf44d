"""Strict framing (RFC 6455 section 5): a server that breaks the rules gets close 1002 and the listener
gets a ProtocolViolation; a valid close code is echoed. Hand-written frames from a raw-socket server."""

from __future__ import annotations

import pytest

from rxibkr.io.transport import ConnectOptions, ProtocolViolation

from .support import RawServer, close_frame, frame, run_until_closed

OK = frame(b'{"topic":"system","hb":1}')  # delivered before any violation

VIOLATIONS = {
    "data frame inside a fragmented message": (
        frame(b'{"a":', 0x01) + frame(b"{}", 0x82),
        "inside a fragmented message",
    ),
    "text frame inside a fragmented message": (
        frame(b'{"a":', 0x02) + frame(b"{}", 0x81),
        "inside a fragmented message",
    ),
    "continuation without a start": (frame(b"1}", 0x80), "continuation frame without a message"),
    "reserved data opcode": (frame(b"x", 0x83), "reserved data opcode 0x3"),
    "reserved control opcode": (frame(b"x", 0x8B), "reserved control opcode 0xB"),
    "RSV1 set": (frame(b"{}", 0xC2), "RSV bits 100"),
    "RSV3 set on a text frame": (frame(b"{}", 0x91), "RSV bits 001"),
    "fragmented ping": (frame(b"p", 0x09), "fragmented control frame"),
    "oversize ping": (frame(b"p" * 126, 0x89), "126 bytes"),
    "masked server frame": (frame(b"{}", 0x82, mask=True), "masked frame"),
    "invalid close code": (close_frame(1005), "invalid close code 1005"),
    "one-byte close payload": (frame(b"\x03", 0x88), "1-byte payload"),
}


@pytest.mark.parametrize("name", list(VIOLATIONS))
def test_a_protocol_violation_fails_the_connection_with_1002(name: str) -> None:
    script, expected = VIOLATIONS[name]
    server = RawServer(OK + script + OK)
    recorder = run_until_closed(ConnectOptions(url=server.url, timeout=5))
    assert recorder.close is not None
    code, reason, error = recorder.close
    assert code == 1002
    assert isinstance(error, ProtocolViolation), recorder.close
    assert expected in str(error) and expected in reason
    assert recorder.frames == [OK[2:]]  # the frame before the violation, nothing after it
    assert server.done.wait(5)
    frames = server.client_frames()
    assert frames and frames[-1][0] == 0x8, frames
    assert int.from_bytes(frames[-1][1][:2], "big") == 1002


def test_valid_fragments_with_a_ping_between_are_joined_and_the_close_code_is_echoed() -> None:
    script = (
        frame(b'{"topic":', 0x01)
        + frame(b"hello", 0x89)  # a control frame may come between fragments
        + frame(b'"sts",', 0x00)
        + frame(b'"x":1}', 0x80)
        + frame(b"\x00\x01", 0x02)
        + frame(b"\x02", 0x80)
        + OK
        + close_frame(4001, b"going away for a bit")
    )
    server = RawServer(script)
    recorder = run_until_closed(ConnectOptions(url=server.url, timeout=5))
    assert recorder.frames == ['{"topic":"sts","x":1}', b"\x00\x01\x02", OK[2:]]
    assert recorder.close == (4001, "going away for a bit", None)
    assert server.done.wait(5)
    frames = server.client_frames()
    assert (0xA, b"hello") in frames  # the ping was answered
    assert frames[-1][0] == 0x8 and int.from_bytes(frames[-1][1][:2], "big") == 4001


def test_a_close_without_a_code_is_answered_with_1000() -> None:
    server = RawServer(OK + close_frame(None))
    recorder = run_until_closed(ConnectOptions(url=server.url, timeout=5))
    assert recorder.close == (None, "", None)
    assert server.done.wait(5)
    frames = server.client_frames()
    assert frames[-1][0] == 0x8 and int.from_bytes(frames[-1][1][:2], "big") == 1000


def test_large_frames_with_extended_lengths_still_pass() -> None:
    big = b"[" + b"1," * 40_000 + b"1]"
    server = RawServer(frame(b"x" * 200, 0x82) + frame(big, 0x82) + close_frame(1000))
    recorder = run_until_closed(ConnectOptions(url=server.url, timeout=5))
    assert recorder.frames == [b"x" * 200, big]
    assert recorder.close == (1000, "", None)
