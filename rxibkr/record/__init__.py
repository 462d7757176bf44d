"""Record and replay: a session's frames to a file (JSON Lines, ``.zst``), Parquet tables, and back.

* :class:`Recorder` (``client.record(path)``) -- the raw log, with bounded loss on a kill
  (:mod:`rxibkr.record.writer`); its format, versioned, in :mod:`rxibkr.record.format`.
* :class:`Recording` -- a raw log read back (:mod:`rxibkr.record.reader`).
* :class:`ReplayTransport` -- a recording replayed through a client (:mod:`rxibkr.record.replay`).
* :func:`to_parquet`, :func:`read` -- typed tables (:mod:`rxibkr.record.parquet`, the ``data`` extra).
"""

from __future__ import annotations

from rxibkr.record.files import TruncatedRecordingWarning
from rxibkr.record.format import FORMAT_VERSION, REDACTED, encode_line
from rxibkr.record.parquet import read, to_parquet
from rxibkr.record.reader import RecordedConnection, RecordedFrame, Recording
from rxibkr.record.replay import ReplayConnection, ReplayTransport, SentFrame, synthetic_greeting
from rxibkr.record.rows import SCHEMA_VERSION, TABLES
from rxibkr.record.writer import Recorder, record

__all__ = [
    "FORMAT_VERSION",
    "REDACTED",
    "SCHEMA_VERSION",
    "TABLES",
    "RecordedConnection",
    "RecordedFrame",
    "Recorder",
    "Recording",
    "ReplayConnection",
    "ReplayTransport",
    "SentFrame",
    "TruncatedRecordingWarning",
    "encode_line",
    "read",
    "record",
    "synthetic_greeting",
    "to_parquet",
]
