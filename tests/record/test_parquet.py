"""Parquet datasets: the rows are the typed streams' values of the same session, live and exported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("aiohttp")
pytest.importorskip("zstandard")

from waiting import wait_for  # noqa: E402

from rxibkr import operators as rxo  # noqa: E402
from rxibkr.client.core import IbkrWsClient  # noqa: E402
from rxibkr.record import SCHEMA_VERSION, Recorder, read, to_parquet  # noqa: E402
from rxibkr.streams.models import Bar, Execution, OrderUpdate, PnlRow, Quote  # noqa: E402
from rxibkr.testing import frames, virtual_client  # noqa: E402

CONIDS = (265598, 8314)


def rows(source: Any, table: str) -> list[dict[str, Any]]:
    """A table as dicts, timestamps as int nanoseconds."""
    arrow = read(source, table, backend="arrow")
    columns = {
        name: (col.cast(pa.int64()) if pa.types.is_timestamp(col.type) else col).to_pylist()
        for name, col in zip(arrow.column_names, arrow.columns, strict=True)
    }
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def quote_values(q: Quote) -> dict[str, Any]:
    return {
        "conid": q.conid,
        "updated": None if q.updated is None else q.updated * 1_000_000,
        "bid": q.bid,
        "ask": q.ask,
        "last": q.last,
        "bid_size": q.bid_size,
        "ask_size": q.ask_size,
        "last_size": q.last_size,
        "volume": q.volume,
        "is_close": q.is_close,
        "symbol": q.symbol,
    }


@pytest.mark.ibkr_sim(pnl_interval=0.1)
def test_live_tables_equal_the_typed_streams_and_the_export(
    ibkr_sim: Any, ibkr_client: IbkrWsClient, tmp_path: Path
) -> None:
    raw, live, exported = tmp_path / "s.jsonl.zst", tmp_path / "live", tmp_path / "exported"
    recorder = Recorder(ibkr_client, raw, parquet=live, parquet_interval=0.2)
    delivered: dict[int, list[Quote]] = {c: [] for c in CONIDS}
    pnl: list[PnlRow] = []
    fields = ["31", "55", "84", "85", "86", "88", "7059", "87"]
    subscriptions = [
        ibkr_client.market_data(c, fields).pipe(rxo.snapshots()).subscribe(delivered[c].append)
        for c in CONIDS
    ]
    subscriptions.append(ibkr_client.pnl().subscribe(pnl.append))
    wait_for(lambda: all(len(q) >= 20 for q in delivered.values()) and len(pnl) >= 3)
    files_while_live = list(live.glob("quotes/date=*/conid=*/*.parquet"))
    ibkr_client.shutdown()  # nothing arrives any more: every recorded frame was delivered
    for subscription in subscriptions:
        subscription.dispose()
    recorder.dispose()
    assert files_while_live  # flushed while recording, not only at the end

    got = rows(live, "quotes")
    for conid in CONIDS:
        mine = [{k: r[k] for k in quote_values(delivered[conid][0])} for r in got if r["conid"] == conid]
        assert mine == [quote_values(q) for q in delivered[conid]]
    assert [r["daily"] for r in rows(live, "pnl")] == [p.daily for p in pnl]
    assert [r["net_liquidity"] for r in rows(live, "pnl")] == [p.net_liquidity for p in pnl]

    # the export of the raw log, and reading the raw log directly, give the same rows
    counts = to_parquet(raw, exported)
    assert counts["quotes"] == len(got) and counts["pnl"] == len(pnl)
    assert rows(exported, "quotes") == got == rows(raw, "quotes")
    assert rows(exported, "pnl") == rows(live, "pnl")

    # the files: partitioned by table, date, conid; UTC nanoseconds; the schema version
    parts = sorted(p.relative_to(live).parts[:3] for p in live.glob("quotes/*/*/*.parquet"))
    assert {p[2] for p in parts} == {f"conid={c}" for c in CONIDS} and parts[0][1].startswith("date=20")
    schema = pq.read_schema(next(live.glob("quotes/*/*/*.parquet")))
    assert schema.metadata[b"rxibkr.schema_version"] == str(SCHEMA_VERSION).encode()
    assert schema.field("recv_time").type == pa.timestamp("ns", tz="UTC")
    assert not list(live.rglob(".*.tmp"))


def test_duckdb_and_polars_read_the_dataset(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    vc = virtual_client()
    with Recorder(vc.client, None, parquet=tmp_path):
        for i in range(30):
            vc.receive(frames.smd(CONIDS[i % 2], last=100 + i, bid=99 + i, ask=101 + i))
    vc.shutdown()
    quotes = f"read_parquet('{tmp_path}/quotes/**/*.parquet', hive_partitioning=true)"
    counts = dict(duckdb.sql(f"select conid, count(*) from {quotes} group by conid").fetchall())
    assert counts == {265598: 15, 8314: 15}
    spreads = duckdb.sql(f"select distinct ask - bid from {quotes}").fetchall()
    assert spreads == [(2.0,)]
    frame = read(tmp_path, "quotes", backend="polars")
    assert isinstance(frame, polars.DataFrame) and frame.height == 30
    pandas_frame = read(tmp_path, "quotes")
    assert list(pandas_frame.groupby("conid").size()) == [15, 15]
    assert str(pandas_frame["recv_time"].dtype).startswith("datetime64[ns")
    assert len(read(tmp_path, "bars")) == 0  # a table the session did not have: empty, with its columns
    with pytest.raises(ValueError, match="table"):
        read(tmp_path, "ticks")


def test_orders_executions_and_bars_equal_the_typed_streams(tmp_path: Path) -> None:
    vc = virtual_client()
    orders: list[OrderUpdate] = []
    executions: list[Execution] = []
    bars: list[Bar] = []
    recorder = Recorder(vc.client, tmp_path / "s.jsonl", parquet=tmp_path / "data")
    vc.client.orders().subscribe(orders.append)
    vc.client.trades().subscribe(executions.append)
    vc.client.market_history(265598, "1d", "1min").subscribe(bars.append)
    vc.receive(frames.sor(frames.order(7, status="PreSubmitted")))
    vc.receive(frames.sor(frames.order_delta(7, status="Submitted")))
    vc.receive(frames.sor(frames.order_delta(7, status="Submitted")))  # changes nothing
    vc.receive(frames.sor(frames.order_delta(7, status="Filled", filledQuantity=1)))
    vc.receive(frames.str_(frames.execution("e1")))
    vc.receive(frames.str_(frames.execution("e1")))  # a re-send: nothing new
    vc.receive(frames.str_(frames.execution("e1", commission="1.05")))
    day = 1_767_225_600_000
    vc.receive(
        frames.smh(265598, [frames.bar(day, 1, 2, 3, 0.5, 10), frames.bar(day + 60_000, 2, 3, 4, 1, 20)])
    )
    vc.receive(
        frames.smh(265598, [frames.bar(day + 60_000, 2, 3, 4, 1, 20), frames.bar(day + 120_000, 3, 2, 4, 1)])
    )
    vc.shutdown()
    recorder.dispose()
    data = tmp_path / "data"
    assert [(r["order_id"], r["status"], r["filled"]) for r in rows(data, "orders")] == [
        (o.order_id, o.status, o.filled) for o in orders
    ]
    assert len(orders) == 3
    assert (
        [(r["execution_id"], r["revision"], r["commission"]) for r in rows(data, "executions")]
        == [(e.execution_id, e.revision, e.commission) for e in executions]
        == [("e1", 0, None), ("e1", 1, 1.05)]
    )
    assert [(r["time"], r["open"], r["close"], r["volume"]) for r in rows(data, "bars")] == [
        (b.time * 1_000_000, b.open, b.close, b.volume) for b in bars
    ]
    assert len(bars) == 3
