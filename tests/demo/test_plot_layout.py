"""Plots never clip their labels: every tick label, axis label and title of every axes lies inside the
figure in the PNG the notebook shows, even after prices moved to wider numbers."""

from __future__ import annotations

from typing import Any

import pytest
from reactivex.subject import Subject

pytest.importorskip("matplotlib")

from rxibkr.plot import LivePlot


def outside(fig: Any) -> list[str]:
    """Labels of the last draw whose bounding box is not inside the figure."""
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    bad = []
    for ax in fig.axes:
        labels = [*ax.get_yticklabels(), *ax.get_xticklabels(), ax.yaxis.label, ax.xaxis.label, ax.title]
        ymin, ymax = sorted(ax.get_ylim())
        xmin, xmax = sorted(ax.get_xlim())
        for label in labels:
            if not label.get_visible() or not label.get_text():
                continue
            if label in ax.get_yticklabels() and not ymin <= label.get_position()[1] <= ymax:
                continue  # a tick outside the view is not drawn
            if label in ax.get_xticklabels() and not xmin <= label.get_position()[0] <= xmax:
                continue
            box = label.get_window_extent(renderer)
            if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
                bad.append(f"{label.get_text()!r} at x {box.x0:.1f}..{box.x1:.1f} of {width:.0f}")
    return bad


def test_y_labels_stay_inside_the_figure_when_prices_widen() -> None:
    plot = LivePlot(display=False, title="prices")
    prices: Subject[float] = Subject()
    plot.feed(prices, label="AAPL", panel="AAPL")
    for i in range(3):  # narrow labels when the layout is made: 0, 10, 20
        prices.on_next(20 * i)
        plot.redraw()
    assert plot.png().startswith(b"\x89PNG")
    assert outside(plot.fig) == []
    for i in range(12):  # then five-digit prices: wider labels
        prices.on_next(12345.5 + 50 * i)
        plot.redraw()
    assert plot.png().startswith(b"\x89PNG")
    assert outside(plot.fig) == []
    assert any(len(t.get_text()) >= 5 for t in plot.fig.axes[0].get_yticklabels())  # they did widen
    plot.stop()
    plot.fig.savefig(__import__("io").BytesIO(), format="png")  # a savefig after stop() lays out too
    assert outside(plot.fig) == []


def test_two_panels_whose_labels_gain_a_decimal_keep_them_inside() -> None:
    # as in README's quotes.png: laid out with labels like 271.2, later 271.75 needs a digit more
    plot = LivePlot(display=False)
    aapl: Subject[float] = Subject()
    msft: Subject[float] = Subject()
    plot.feed(aapl, label="AAPL", panel="AAPL")
    plot.feed(msft, label="MSFT", panel="MSFT")
    aapl.on_next(271.1)
    aapl.on_next(271.9)
    msft.on_next(423.85)
    msft.on_next(423.0)
    plot.redraw()
    plot.png()
    assert outside(plot.fig) == []
    for step in range(12):
        aapl.on_next(270.7 + 0.11 * step)
        msft.on_next(423.0 + 0.07 * step)
        plot.redraw()
        plot.png()
        assert outside(plot.fig) == [], step
    plot.stop()
