"""``rxibkr.plot``: data collected from any thread, redraws conflated on the displaying thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import reactivex
from reactivex.subject import Subject

pytest.importorskip("matplotlib")

from rxibkr import operators as rxo
from rxibkr.client.core import IbkrWsClient
from rxibkr.plot import LivePlot, live_plot
from rxibkr.protocol import decode
from rxibkr.streams.models import MarketDataUpdate, Quote
from rxibkr.testing import frames


def quotes_of(*updates: dict[str, Any]) -> list[Quote]:
    """Merged quotes for a sequence of smd frames (as ``snapshots()`` makes them)."""
    parsed = [MarketDataUpdate.from_message(decode(frames.encode(f))) for f in updates]
    out: list[Quote] = []
    reactivex.from_iterable(parsed).pipe(rxo.snapshots()).subscribe(out.append)
    return out


def test_quotes_become_one_panel_per_instrument_with_bid_ask_last() -> None:
    source: Subject[Quote] = Subject()
    plot = live_plot(source, display=False)
    assert not plot.displayed and not plot.background  # no kernel, no running loop
    for quote in quotes_of(
        frames.smd(265598, symbol="AAPL", bid=271.0, ask=271.2),
        frames.smd(272093, symbol="MSFT", bid=423.0, ask=423.1, last=423.05),
        frames.smd(265598, last=271.1),
    ):
        source.on_next(quote)
    assert plot.redraw() is True
    assert plot.redraw() is False  # nothing new: no redraw

    data = plot.data
    assert set(data) == {"AAPL bid", "AAPL ask", "AAPL last", "MSFT bid", "MSFT ask", "MSFT last"}
    assert data["AAPL bid"].y == (271.0, 271.0)  # the merged quote repeats the bid
    assert data["AAPL last"].y == (271.1,)
    assert data["MSFT ask"].panel == "MSFT"
    assert [ax.get_title(loc="left") for ax in plot.fig.axes] == ["AAPL", "MSFT"]
    assert plot.summary()["panels"] == ["AAPL", "MSFT"]
    assert plot.png().startswith(b"\x89PNG")
    plot.stop()
    assert not source.observers  # stop() disposed the subscription


def test_numbers_mappings_and_markers_share_a_panel() -> None:
    plot = LivePlot(display=False)
    prices: Subject[float] = Subject()
    signals: Subject[dict[str, Any]] = Subject()
    plot.feed(prices, "mid", label="AAPL", panel="AAPL")
    plot.feed(signals, "price", name="buy", panel="AAPL", marker="^", linestyle="")
    for p in (1.0, 2.0, float("nan"), 3.0):
        prices.on_next(p)
    signals.on_next({"price": 2.0, "side": "BUY"})
    signals.on_next({"price": None})  # skipped
    plot.redraw()
    assert plot.data["AAPL mid"].y == (1.0, 2.0, 3.0)  # NaN skipped
    assert plot.data["buy"].y == (2.0,)
    (ax,) = plot.fig.axes
    buy = next(line for line in ax.get_lines() if line.get_label() == "buy")
    assert buy.get_marker() == "^" and buy.get_linestyle() == "None"
    with pytest.raises(ValueError, match="single field"):
        plot.feed(signals, ("a", "b"), name="x")
    plot.stop()


def test_values_from_another_thread_are_all_kept_and_redraws_conflated() -> None:
    source: Subject[float] = Subject()
    plot = live_plot(source, "price", label="x", display=False, max_points=10_000)

    def reader() -> None:  # stands in for the client's reader thread
        for i in range(2000):
            source.on_next(float(i))

    thread = threading.Thread(target=reader)
    thread.start()
    plot.run(10, until=lambda p: p.points >= 2000)
    thread.join(5)
    assert plot.points == 2000
    assert plot.data["x price"].y == tuple(float(i) for i in range(2000))
    assert 1 <= plot.redraws < 100
    assert plot.conflated >= 2000 - plot.redraws
    plot.stop()


def test_max_points_keeps_the_newest() -> None:
    plot = LivePlot(display=False, max_points=3)
    for i in range(5):
        plot.append("s", float(i), x=float(i))
    assert plot.data["s"].x == (2.0, 3.0, 4.0)
    assert plot.points == 5


def test_a_failing_source_is_reported_not_raised() -> None:
    plot = live_plot(reactivex.throw(ValueError("boom")), display=False)
    assert [repr(e) for e in plot.errors] == ["ValueError('boom')"]
    assert plot.summary()["errors"] == ["ValueError('boom')"]
    plot.stop()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"interval": 0}, "interval"), ({"max_points": 0}, "max_points"), ({"max_busy": 0}, "max_busy")],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LivePlot(display=False, **kwargs)


def test_in_an_asyncio_loop_it_redraws_in_the_background_on_the_loop_thread() -> None:
    async def main() -> tuple[LivePlot, set[str]]:
        source: Subject[float] = Subject()
        plot = live_plot(source, "v", label="s", interval=0.05, display=False)
        assert plot.background
        drew_on: set[str] = set()
        original = plot.redraw

        def spy(force: bool = False) -> bool:
            drew_on.add(threading.current_thread().name)
            return original(force)

        plot.redraw = spy  # type: ignore[method-assign]

        done = threading.Event()

        def reader() -> None:
            i = 0
            while not done.wait(0.005):
                source.on_next(float(i))
                i += 1

        thread = threading.Thread(target=reader, name="fake-reader")
        thread.start()
        deadline = time.monotonic() + 10
        while plot.redraws < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # the cell "returned": only the loop's timer draws
        redraws = plot.redraws
        done.set()
        thread.join(5)
        plot.stop()
        assert redraws >= 3
        return plot, drew_on

    plot, drew_on = asyncio.run(main())
    assert drew_on == {threading.current_thread().name}  # never the reader thread
    assert not plot.background


@pytest.fixture
def sim() -> Iterator[Any]:
    sim_module = pytest.importorskip("rxibkr.sim")
    with sim_module.GatewaySimulator(md_interval=0.02, heartbeat_interval=0.5) as simulator:
        yield simulator


def test_live_quotes_from_the_simulator(sim: Any) -> None:
    client = IbkrWsClient(url=sim.ws_url, cacert=sim.cacert, account_id=sim.account)
    try:
        assert client.start()
        quotes = reactivex.merge(client.market_data(265598), client.market_data(4815747)).pipe(
            rxo.snapshots()
        )
        with live_plot(quotes, interval=0.1, display=False) as plot:
            plot.run(10, until=lambda p: min((len(s) for s in p.data.values()), default=0) >= 20)
        summary = plot.summary()
        assert summary["panels"] == ["AAPL", "NVDA"]
        assert all(count >= 20 for count in summary["series"].values()), summary
        assert summary["redraws"] >= 2
    finally:
        client.shutdown()
