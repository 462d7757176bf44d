"""The C accelerator of the reader (``rxibkr.io._frames.scan``) against the pure-Python reader.

``scan`` takes the run of fast-path frames (0x82: a final binary frame, unmasked, no RSV bits) that are
whole in the buffer and stops at anything else; the Python loop takes the rest. Every test here runs
over both paths (tests/io/conftest.py): whatever bytes a server sends, and however the socket cuts
them, the listener gets the same frames, the client sends the same pongs and closes, and the loop
ends the same way.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_framing import BINARY, CONT, PING, PONG, TEXT, close, frame, read  # type: ignore[import-not-found]

from rxibkr.io import transport


def scan_or_skip() -> transport.Scan:
    scan = transport._c_scan
    if scan is None:
        pytest.skip("the C accelerator is not built here")
    return scan


# -- scan itself --------------------------------------------------------------------------------------
def test_scan_takes_the_whole_fast_path_frames_and_stops_at_the_first_other_one() -> None:
    scan = scan_or_skip()
    data = frame(b"a", BINARY) + frame(b"b" * 126, BINARY) + frame(b"c" * 65536, BINARY) + frame(b"t", TEXT)
    payloads, pos = scan(data, 0)
    assert payloads == [b"a", b"b" * 126, b"c" * 65536]
    assert data[pos:] == frame(b"t", TEXT)
    assert scan(data, pos) == ([], pos)


@pytest.mark.parametrize(
    "stop",
    [
        frame(b"x", BINARY, fin=False),  # a fragment
        frame(b"x", BINARY, mask=b"abcd"),  # masked: a violation
        frame(b"x", BINARY, rsv=1),  # RSV bits: a violation
        frame(b"x", PING),
        frame(b"x", PONG),
        frame(b"x", CONT),
        close(1000),
        bytes((0x82, 127)) + (1 << 63).to_bytes(8, "big"),  # a 64-bit length with the top bit set
    ],
)
def test_scan_leaves_every_other_frame_to_the_python_reader(stop: bytes) -> None:
    scan = scan_or_skip()
    data = frame(b"first", BINARY) + stop + frame(b"after", BINARY)
    payloads, pos = scan(data, 0)
    assert payloads == [b"first"]
    assert pos == len(frame(b"first", BINARY))


def test_scan_never_takes_a_frame_that_is_not_whole() -> None:
    scan = scan_or_skip()
    frames = [frame(b"p" * n, BINARY) for n in (0, 1, 125, 126, 65535, 65536)]
    data = b"".join(frames)
    ends = [sum(len(f) for f in frames[: i + 1]) for i in range(len(frames))]
    for cut in sorted({*range(0, 140), *(e + d for e in ends for d in (-9, -3, -1, 0, 1, 3, 9))}):
        if not 0 <= cut <= len(data):
            continue
        payloads, pos = scan(data[:cut], 0)
        whole = [e for e in ends if e <= cut]
        assert pos == (whole[-1] if whole else 0), cut
        assert len(payloads) == len(whole), cut


def test_scan_refuses_bad_arguments() -> None:
    scan = scan_or_skip()
    with pytest.raises(TypeError):
        scan(bytearray(b"\x82\x00"), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside"):
        scan(b"\x82\x00", 3)
    with pytest.raises(ValueError, match="outside"):
        scan(b"\x82\x00", -1)
    with pytest.raises(TypeError):
        scan(b"")  # type: ignore[call-arg]


def test_the_environment_turns_the_accelerator_off(reader_path: str) -> None:
    assert (transport.accelerator() is None) == (reader_path == "python")
    assert (os.environ.get("RXIBKR_PURE_PYTHON") == "1") == (reader_path == "python")


# -- the whole reader, both paths, any bytes ------------------------------------------------------------
_PAYLOADS = st.one_of(
    st.binary(max_size=140),
    st.sampled_from([b"x" * 125, b"y" * 126, b"z" * 65535, b"w" * 65536]),
)
_FRAMES = st.one_of(
    st.builds(lambda p: frame(p, BINARY), _PAYLOADS),
    st.builds(lambda p: frame(p, TEXT), st.text(max_size=40).map(str.encode)),
    st.builds(lambda p: frame(p, PING), st.binary(max_size=20)),
    st.builds(lambda p: frame(p, PONG), st.binary(max_size=20)),
    st.builds(lambda p: frame(p, BINARY, fin=False), st.binary(max_size=30)),
    st.builds(lambda p: frame(p, CONT, fin=False), st.binary(max_size=30)),
    st.builds(lambda p: frame(p, CONT), st.binary(max_size=30)),
    st.builds(lambda p: frame(p, BINARY, mask=b"k3y!"), st.binary(max_size=10)),
    st.builds(lambda p: frame(p, BINARY, rsv=2), st.binary(max_size=10)),
    st.just(bytes((0x82, 127)) + (1 << 63).to_bytes(8, "big")),
    st.just(close(1001, b"going")),
)


def outcome_of(data: bytes, chunk: int) -> tuple[Any, ...]:
    connection, ws, outcome = read(data, chunk)
    ended = outcome if isinstance(outcome, tuple) else (type(outcome).__name__, str(outcome))
    return connection.listener.frames, connection.listener.pongs, ws.pongs, ws.closes, ended


def outcome_on(path: str, data: bytes, chunk: int) -> tuple[Any, ...]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RXIBKR_PURE_PYTHON", "1" if path == "python" else "0")
        return outcome_of(data, chunk)


# the fixtures only pick the path; each example sets the path it reads with itself
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(_FRAMES, max_size=12), chunk=st.sampled_from([1, 2, 7, 64, 1000, 1 << 20]))
def test_any_stream_reads_the_same_over_both_paths(frames: list[bytes], chunk: int, reader_path: str) -> None:
    scan_or_skip()
    data = b"".join(frames) + close(1000, b"end")
    python = outcome_on("python", data, chunk)
    assert outcome_on("c", data, chunk) == python
    # the loop always ends: with the close it echoes (a tuple), or with a violation/end of stream
    ended = python[-1]
    assert isinstance(ended, tuple) and ended
