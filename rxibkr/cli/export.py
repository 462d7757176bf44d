"""``rxibkr export``: build the typed Parquet tables of a raw recording.

    rxibkr export session.jsonl.zst --parquet out/

Tables ``quotes``, ``bars``, ``orders``, ``executions``, ``pnl`` (see :mod:`rxibkr.record.parquet`);
the same rows ``rxibkr record --parquet`` writes live. Read them with ``rxibkr.record.read("out/")``,
DuckDB, polars or pandas.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from rxibkr.cli.options import add_logging, setup_logging


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", metavar="RECORDING", help="a raw recording (.jsonl or .jsonl.zst)")
    parser.add_argument("--parquet", required=True, metavar="DIR", help="dataset directory to write to")
    add_logging(parser)


def run(args: argparse.Namespace) -> int:
    from rxibkr.record import Recording, TruncatedRecordingWarning, to_parquet

    setup_logging(args)
    err = sys.stderr
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TruncatedRecordingWarning)
            recording = Recording.load(args.recording)
        for warning in caught:
            err.write(f"rxibkr export: warning: {warning.message}\n")
        counts = to_parquet(recording, args.parquet)
    except (OSError, ValueError, ImportError) as exc:
        err.write(f"rxibkr export: {exc}\n")
        return 2
    rows = ", ".join(f"{table} {n}" for table, n in counts.items())
    err.write(f"rxibkr export: {args.recording} -> {args.parquet}: {rows} rows\n")
    return 0
