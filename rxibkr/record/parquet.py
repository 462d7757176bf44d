"""Parquet datasets of a session: ``quotes``, ``bars``, ``orders``, ``executions``, ``pnl``.

Layout (hive partitioning, which DuckDB, polars, pandas and pyarrow read directly)::

    DIR/_rxibkr.json                                   schema version and columns
    DIR/quotes/date=2026-12-02/conid=265598/part-....parquet
    DIR/pnl/date=2026-12-02/part-....parquet           (pnl has no conid)

Partition columns (``date``, ``conid``) live in the paths, not in the files; :func:`read` puts them back.
Timestamps are UTC nanoseconds (``timestamp[ns, tz=UTC]``); every file carries the schema version in
its metadata (``rxibkr.schema_version``). Written live (``rxibkr record --parquet DIR``,
``Recorder(client, path, parquet=DIR)``), each flush (every ``flush_interval`` seconds) writes every
partition's new rows as one more complete file (written under a temporary name, then renamed), so a
killed recorder loses at most the rows since the last flush. Built from a raw log with
:func:`to_parquet` (``rxibkr export``). Needs the ``data`` extra (pyarrow).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rxibkr.record.reader import Recording
from rxibkr.record.rows import (
    COLUMNS,
    PARTITIONED_BY_CONID,
    SCHEMA_VERSION,
    TABLES,
    Partition,
    Row,
    RowBuilder,
    rows_of,
    utc_date,
)

_META_FILE = "_rxibkr.json"


def _pa() -> Any:
    try:
        import pyarrow  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - the data extra is not installed
        raise ImportError("Parquet datasets need pyarrow: pip install 'rxibkr[data]'") from exc
    return pyarrow


def schema(table: str, *, partition_columns: bool = False) -> Any:
    """The pyarrow schema of ``table`` (without the partition columns, unless asked)."""
    pa = _pa()
    types = {
        "ts": pa.timestamp("ns", tz="UTC"),
        "i64": pa.int64(),
        "i32": pa.int32(),
        "f64": pa.float64(),
        "str": pa.string(),
        "bool": pa.bool_(),
    }
    fields = [
        pa.field(name, types[kind])
        for name, kind in COLUMNS[table].items()
        if partition_columns or name != "conid" or table not in PARTITIONED_BY_CONID
    ]
    if partition_columns:
        fields.append(pa.field("date", pa.string()))
    metadata = {b"rxibkr.table": table.encode(), b"rxibkr.schema_version": str(SCHEMA_VERSION).encode()}
    return pa.schema(fields, metadata=metadata)


def _partition_dir(directory: Path, partition: Partition) -> Path:
    table, date, conid = partition
    path = directory / table / f"date={date}"
    if table in PARTITIONED_BY_CONID:
        path = path / f"conid={0 if conid is None else conid}"
    return path


def _write_meta(directory: Path) -> None:
    meta = {
        "format": "rxibkr-dataset",
        "schema_version": SCHEMA_VERSION,
        "partitioning": {t: ["date", "conid"] if t in PARTITIONED_BY_CONID else ["date"] for t in TABLES},
        "timestamps": "UTC nanoseconds",
        "tables": COLUMNS,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / _META_FILE
    text = json.dumps(meta, indent=1)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        tmp = directory / f".{_META_FILE}.{os.getpid()}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def _write_file(path: Path, table: str, rows: list[Row]) -> None:
    pa = _pa()
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    sch = schema(table)
    columns = {name: [row[name] for row in rows] for name in sch.names}
    arrow = pa.table(columns, schema=sch)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(arrow, tmp, compression="zstd")
    os.replace(tmp, path)  # complete files only: a reader never sees a half-written one


class DatasetWriter:
    """Writes rows to a Parquet dataset directory in flushes; the live side of :func:`to_parquet`.

    ``add(t, frame, conn)`` takes incoming frames; rows are buffered per partition and written as one
    file per partition every ``flush_interval`` seconds (``due`` is when; the owner calls ``flush()``);
    ``close()`` writes the rest. One thread only (the recorder's writer thread)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        flush_interval: float = 5.0,
        symbols: Mapping[int, str] | None = None,
    ) -> None:
        _pa()  # fail at once, not in the writer thread, when pyarrow is missing
        if not flush_interval > 0:
            raise ValueError(
                f"parquet_interval: expected a positive number of seconds, got {flush_interval!r}"
            )
        self.directory = Path(directory)
        _write_meta(self.directory)
        self.builder = RowBuilder(symbols)
        self.flush_interval = float(flush_interval)
        self.due: float | None = None
        self.files = 0
        self._pending: dict[Partition, list[Row]] = {}
        self._stem = f"part-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"
        self._seq = itertools.count()

    def add(self, t: float, data: bytes | str, conn: int | None = None) -> None:
        for partition, row in self.builder.add(t, data, conn):
            self._pending.setdefault(partition, []).append(row)
            if self.due is None:
                self.due = time.monotonic() + self.flush_interval

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        self.due = None
        for partition, rows in pending.items():
            name = f"{self._stem}-{next(self._seq):06d}.parquet"
            _write_file(_partition_dir(self.directory, partition) / name, partition[0], rows)
            self.files += 1

    def close(self) -> None:
        self.flush()


def write_rows(directory: str | os.PathLike[str], rows: Iterable[tuple[Partition, Row]]) -> dict[str, int]:
    """Write rows to a dataset directory, one file per partition; rows per table."""
    out = Path(directory)
    _write_meta(out)
    grouped: dict[Partition, list[Row]] = {}
    counts = dict.fromkeys(TABLES, 0)
    for partition, row in rows:
        grouped.setdefault(partition, []).append(row)
        counts[partition[0]] += 1
    stem = f"part-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-export"
    for partition, part_rows in grouped.items():
        _write_file(_partition_dir(out, partition) / f"{stem}.parquet", partition[0], part_rows)
    return counts


def to_parquet(
    recording: str | os.PathLike[str] | Recording,
    directory: str | os.PathLike[str],
    *,
    symbols: Mapping[int, str] | None = None,
) -> dict[str, int]:
    """Build the Parquet tables of a raw recording (``.jsonl`` or ``.jsonl.zst``) in ``directory``.

    Returns the number of rows per table. The rows are those the live recorder writes for the same
    session (same builder). Existing files in ``directory`` are kept (a dataset can hold many sessions)."""
    rec = recording if isinstance(recording, Recording) else Recording.load(recording)
    return write_rows(directory, rows_of(rec, symbols))


def read(
    source: str | os.PathLike[str] | Recording,
    table: str = "quotes",
    *,
    backend: str = "pandas",
    symbols: Mapping[int, str] | None = None,
) -> Any:
    """One table of a dataset directory, or of a raw recording (built in memory), as a DataFrame.

    ``backend``: ``"pandas"`` (default), ``"polars"`` or ``"arrow"`` (a ``pyarrow.Table``). Rows are in
    receive order; ``conid`` and ``date`` columns included. A directory without that table gives an
    empty frame with the table's columns."""
    if table not in TABLES:
        raise ValueError(f"table: expected one of {TABLES}, got {table!r}")
    if backend not in ("pandas", "polars", "arrow"):
        raise ValueError(f"backend: expected 'pandas', 'polars' or 'arrow', got {backend!r}")
    pa = _pa()
    if isinstance(source, Recording) or not Path(source).is_dir():
        rec = source if isinstance(source, Recording) else Recording.load(source)
        rows = [row for partition, row in rows_of(rec, symbols) if partition[0] == table]
        sch = schema(table, partition_columns=True)

        columns = {name: [row.get(name) for row in rows] for name in sch.names}
        columns["date"] = [utc_date(row["recv_time"]) for row in rows]
        arrow = pa.table(columns, schema=sch)
    else:
        arrow = _read_dir(Path(source), table)
    if backend == "arrow":
        return arrow
    if backend == "polars":
        import polars

        return polars.from_arrow(arrow)
    return arrow.to_pandas()


def _read_dir(directory: Path, table: str) -> Any:
    pa = _pa()
    import pyarrow.dataset as ds  # type: ignore[import-untyped]

    base = directory / table
    full = schema(table, partition_columns=True)
    if not base.is_dir():
        return full.empty_table()
    keys = [pa.field("date", pa.string())]
    if table in PARTITIONED_BY_CONID:
        keys.append(pa.field("conid", pa.int64()))
    dataset = ds.dataset(
        base,
        format="parquet",
        partitioning=ds.partitioning(pa.schema(keys), flavor="hive"),
        exclude_invalid_files=False,
        ignore_prefixes=[".", "_"],
    )
    arrow = dataset.to_table().select(full.names)
    return arrow.sort_by([("recv_time", "ascending")]).cast(full)


__all__ = ["DatasetWriter", "read", "schema", "to_parquet", "write_rows"]
