"""Compatibility: the names of the former single module, now in :mod:`rxibkr.record`'s modules."""

from __future__ import annotations

from rxibkr.record.format import REDACTED, encode_line
from rxibkr.record.reader import RecordedConnection, RecordedFrame, Recording
from rxibkr.record.replay import ReplayConnection, ReplayTransport, SentFrame, synthetic_greeting
from rxibkr.record.writer import Recorder, record

__all__ = [
    "REDACTED",
    "RecordedConnection",
    "RecordedFrame",
    "Recorder",
    "Recording",
    "ReplayConnection",
    "ReplayTransport",
    "SentFrame",
    "encode_line",
    "record",
    "synthetic_greeting",
]
