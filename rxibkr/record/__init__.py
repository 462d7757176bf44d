"""Record and replay: a session's frames to a file, and back through a client."""

from __future__ import annotations

from rxibkr.record.recording import (
    REDACTED,
    RecordedConnection,
    RecordedFrame,
    Recorder,
    Recording,
    ReplayConnection,
    ReplayTransport,
    encode_line,
    record,
    synthetic_greeting,
)

__all__ = [
    "REDACTED",
    "RecordedConnection",
    "RecordedFrame",
    "Recorder",
    "Recording",
    "ReplayConnection",
    "ReplayTransport",
    "encode_line",
    "record",
    "synthetic_greeting",
]
