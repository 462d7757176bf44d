"""Live charts of rxibkr streams in Jupyter (and anywhere else matplotlib runs).

``live_plot(observable)`` returns a :class:`LivePlot`: a matplotlib figure and the data collected
from the observable, redrawn at most once per ``interval`` seconds::

    from rxibkr import operators as rxo
    from rxibkr.plot import live_plot

    plot = live_plot(quotes, fields=("bid", "ask", "last"))   # quotes: an Observable of Quotes
    plot.run(10)        # keep the cell running 10 s, the chart updating live
    plot.stop()

How the data gets from the reader thread to the chart:

* Values arrive on the client's reader thread. There they are only appended to per-series buffers
  under a lock (every point is kept, up to ``max_points`` per series) and the plot is marked dirty:
  no drawing, no I/O, so the hot path stays short.
* Drawing happens on the thread that owns the output: in Jupyter, the kernel's main thread. Inside
  a kernel (ipykernel runs an asyncio loop) a periodic timer on that loop
  (``AsyncIOThreadSafeScheduler``) redraws when dirty, so the chart keeps updating after the cell
  returned while the kernel stays free for other cells. While a cell blocks in :meth:`LivePlot.run`
  (or awaits :meth:`LivePlot.wait`), that call redraws itself, in the cell, every ``interval``.
* Redraws are conflated: however many values arrived within an interval, there is one redraw.
  ``points`` counts the values, ``redraws`` the redraws, ``conflated`` the values that did not get
  a redraw of their own.

The chart is a PNG re-rendered on each redraw and shown through an IPython display handle
(``display(..., display_id=True)`` then ``handle.update(...)``): that works in JupyterLab, Notebook,
VS Code and in headless execution (nbclient), needs no widget extension, and the executed notebook
keeps the last picture. Outside IPython nothing is displayed: use ``plot.fig`` (``savefig``).

Needs the ``notebook`` extra (matplotlib; IPython when displayed in a notebook).
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable

try:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "rxibkr.plot needs matplotlib: python -m pip install 'rxibkr[notebook]' (or pip install matplotlib)"
    ) from exc

_LOGGER = logging.getLogger(__name__)

DEFAULT_FIELDS: tuple[str, ...] = ("bid", "ask", "last")
"""What :func:`live_plot` draws from each item when no ``fields`` are given (Quote attributes)."""


@dataclass(frozen=True, slots=True)
class SeriesData:
    """The points of one series so far: ``x`` in seconds since the plot started, ``y`` the values."""

    name: str
    panel: str
    x: tuple[float, ...]
    y: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.y)


class _Series:
    __slots__ = ("line", "linestyle", "marker", "name", "panel", "x", "y")

    def __init__(self, name: str, panel: str, marker: str | None, linestyle: str, max_points: int) -> None:
        self.name = name
        self.panel = panel
        self.marker = marker
        self.linestyle = linestyle
        self.x: collections.deque[float] = collections.deque(maxlen=max_points)
        self.y: collections.deque[float] = collections.deque(maxlen=max_points)
        self.line: Line2D | None = None


def _default_label(item: Any) -> str:
    symbol = getattr(item, "symbol", None)
    if isinstance(symbol, str) and symbol:
        return symbol
    conid = getattr(item, "conid", None)
    return "" if conid is None else str(conid)


def _value(item: Any, field: str) -> float | None:
    if isinstance(item, Mapping):
        value = item.get(field)
    elif isinstance(item, int | float) and not isinstance(item, bool):
        value = item
    else:
        value = getattr(item, field, None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number else None  # NaN: skipped


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LivePlot:
    """A matplotlib figure fed by observables, redrawn at most once per ``interval`` seconds.

    Create it with :func:`live_plot`. Thread-safe: :meth:`feed`/:meth:`append` from any thread;
    :meth:`redraw`, :meth:`run`, :meth:`wait` and :meth:`stop` from the thread that shows it.

    ``interval``: seconds between redraws at most; ``max_busy``: the share of the displaying
    thread's time redraws may take (0.25: after a redraw that took 0.2 s, the next one waits at
    least 0.6 s), so a big chart on a slow machine slows its redraws down instead of starving the
    kernel. ``max_points``: points kept per series (the oldest go first); ``display``: show it
    through IPython (default: when running in a Jupyter kernel); ``title``, ``figsize`` (inches;
    default 9 wide, 2.2 per panel), ``dpi``: of the PNG shown.
    """

    def __init__(
        self,
        *,
        interval: float = 0.5,
        max_points: int = 5000,
        title: str | None = None,
        figsize: tuple[float, float] | None = None,
        dpi: int = 80,
        display: bool | None = None,
        max_busy: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise ValueError(f"interval: expected a positive number of seconds, got {interval!r}")
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
            raise ValueError(f"max_points: expected a positive int, got {max_points!r}")
        if not 0 < max_busy <= 1:
            raise ValueError(f"max_busy: expected a share of time in (0, 1], got {max_busy!r}")
        self.max_busy = float(max_busy)
        self.interval = float(interval)
        self.max_points = max_points
        self.title = title
        self.dpi = dpi
        self._figsize = figsize
        self._clock = clock
        self._t0 = clock()
        self._lock = threading.Lock()
        self._draw_lock = threading.RLock()
        self._series: dict[str, _Series] = {}
        self._dirty = False
        self._points = 0
        self._conflated = 0
        self._redraws = 0
        self._stopped = False
        self._errors: list[BaseException] = []
        self._sources = CompositeDisposable()
        self._ticker: abc.DisposableBase | None = None
        self._panels: tuple[str, ...] = ()
        self._axes: dict[str, Axes] = {}
        self._layout_pending = True
        self._not_before = 0.0
        self.fig = Figure(figsize=figsize or (9.0, 2.6), dpi=dpi, layout="constrained")
        FigureCanvasAgg(self.fig)  # a renderer to measure labels with after each draw
        if title:
            self.fig.suptitle(title)
        self._handle: Any = None
        if display if display is not None else _in_kernel():
            from IPython.display import display as ipython_display

            show: Callable[..., Any] = ipython_display  # untyped in IPython
            self._handle = show(self._image(), display_id=True)

    # -- data in (any thread) -----------------------------------------------------------------------
    def feed(
        self,
        source: Observable[Any],
        fields: str | Sequence[str] = DEFAULT_FIELDS,
        *,
        label: str | Callable[[Any], str] | None = None,
        panel: str | None = None,
        name: str | None = None,
        marker: str | None = None,
        linestyle: str = "-",
    ) -> abc.DisposableBase:
        """Plot ``fields`` of every item of ``source`` from now on; returns the subscription.

        Items: objects with those attributes (``Quote``: ``bid``, ``ask``, ``last``, ``mid``...),
        mappings with those keys, or plain numbers (then ``fields`` names the series). A value that
        is None or not a number is skipped. Series are named ``"<label> <field>"`` (or ``name``, for
        one field); ``label`` defaults to the item's ``symbol`` (else ``conid``), so each instrument
        gets its own lines. Each label gets its own panel (subplot) unless ``panel`` names one.
        ``marker``/``linestyle``: matplotlib styles (``marker="^", linestyle=""`` for signal markers).
        """
        names = (fields,) if isinstance(fields, str) else tuple(fields)
        if not names:
            raise ValueError("fields: expected at least one field name")
        if name is not None and len(names) != 1:
            raise ValueError("name: names the series of a single field; give one field or no name")
        if label is None:
            label_of: Callable[[Any], str] = _default_label
        elif isinstance(label, str):
            fixed = label

            def label_of(_item: Any) -> str:
                return fixed

        elif callable(label):
            label_of = label
        else:
            raise TypeError(f"label: expected a str, a callable or None, got {type(label).__name__}")

        def on_next(item: Any) -> None:
            prefix = label_of(item)
            for field in names:
                value = _value(item, field)
                if value is not None:
                    series = name or (f"{prefix} {field}" if prefix else field)
                    self.append(
                        series, value, panel=panel or prefix or "main", marker=marker, linestyle=linestyle
                    )

        def on_error(error: Exception) -> None:
            _LOGGER.warning("live plot source failed: %r", error)
            with self._lock:
                self._errors.append(error)

        subscription = source.subscribe(on_next, on_error)
        self._sources.add(subscription)
        return subscription

    def append(
        self,
        name: str,
        value: float,
        *,
        panel: str = "main",
        x: float | None = None,
        marker: str | None = None,
        linestyle: str = "-",
    ) -> None:
        """Add one point to series ``name`` (created on first use in ``panel``); ``x`` defaults to
        the seconds since the plot started. Style arguments count when the series is created."""
        now = self._clock() - self._t0 if x is None else float(x)
        with self._lock:
            if self._stopped:
                return
            series = self._series.get(name)
            if series is None:
                series = self._series[name] = _Series(name, panel, marker, linestyle, self.max_points)
            series.x.append(now)
            series.y.append(float(value))
            self._points += 1
            if self._dirty:
                self._conflated += 1
            self._dirty = True

    # -- reading ------------------------------------------------------------------------------------
    @property
    def data(self) -> dict[str, SeriesData]:
        """Every series by name: a consistent copy of its points."""
        with self._lock:
            return {
                name: SeriesData(name, s.panel, tuple(s.x), tuple(s.y)) for name, s in self._series.items()
            }

    @property
    def points(self) -> int:
        """Values received so far (all series)."""
        return self._points

    @property
    def redraws(self) -> int:
        return self._redraws

    @property
    def conflated(self) -> int:
        """Values that arrived while a redraw was already due (they share that redraw)."""
        return self._conflated

    @property
    def errors(self) -> list[BaseException]:
        """Errors of the fed observables (a failed source stops feeding; the plot stays)."""
        with self._lock:
            return list(self._errors)

    @property
    def displayed(self) -> bool:
        """Shown through an IPython display handle."""
        return self._handle is not None

    def summary(self) -> dict[str, Any]:
        """Counts for logs and tests: points per series, totals, redraws."""
        data = self.data
        return {
            "series": {name: len(s) for name, s in data.items()},
            "panels": sorted({s.panel for s in data.values()}),
            "points": self.points,
            "redraws": self.redraws,
            "conflated": self.conflated,
            "errors": [repr(e) for e in self.errors],
            "displayed": self.displayed,
        }

    # -- drawing (the displaying thread) ------------------------------------------------------------
    def redraw(self, force: bool = False) -> bool:
        """Redraw now if new points arrived since the last redraw (or ``force``); True if it drew."""
        with self._lock:
            if not (self._dirty or force):
                return False
            self._dirty = False
            snapshot = [(s, list(s.x), list(s.y)) for s in self._series.values()]
        with self._draw_lock:
            started = time.monotonic()
            self._render(snapshot)
            if self._handle is not None:
                self._handle.update(self._image())
            self._redraws += 1
            took = time.monotonic() - started
            # the budget: drawing takes at most max_busy of the displaying thread's time
            self._not_before = time.monotonic() + took * (1.0 - self.max_busy) / self.max_busy
        return True

    def _due(self) -> bool:
        return self._dirty and time.monotonic() >= self._not_before

    def _render(self, snapshot: Iterable[tuple[_Series, list[float], list[float]]]) -> None:
        rows = list(snapshot)
        panels = tuple(dict.fromkeys(s.panel for s, _, _ in rows))
        if panels != self._panels:
            self._layout(panels)
        relayout = self._layout_pending or self._redraws % 20 == 0
        touched: set[str] = set()
        for series, xs, ys in rows:
            ax = self._axes[series.panel]
            if series.line is None or series.line.axes is not ax:
                (series.line,) = ax.plot(
                    xs, ys, label=series.name, marker=series.marker, linestyle=series.linestyle
                )
                # outside, right of the axes: never over the data, no costly "best" placement
                ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
                relayout = True
            else:
                series.line.set_data(xs, ys)
            touched.add(series.panel)
        for panel in touched:
            ax = self._axes[panel]
            ax.relim()
            ax.autoscale_view()
        if relayout:
            self._freeze_layout()

    def _freeze_layout(self) -> None:
        """Lay the figure out (constrained layout) once, then keep that layout: running the layout
        engine on every redraw would double the cost of each. Done when panels or legends change
        and every 20 redraws (tick labels change width as prices move)."""
        self.fig.set_layout_engine("constrained")
        self.fig.draw_without_rendering()
        if not self._stopped:  # once stopped, every draw lays out (see stop())
            self.fig.set_layout_engine("none")
        self._layout_pending = False

    def _layout(self, panels: tuple[str, ...]) -> None:
        self.fig.clear()
        if self.title:
            self.fig.suptitle(self.title)
        if self._figsize is None:
            self.fig.set_size_inches(9.0, max(2.6, 2.2 * len(panels)))
        self._axes = {}
        self._layout_pending = True
        with self._lock:
            for series in self._series.values():
                series.line = None
        if panels:
            axes = self.fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
            for panel, ax in zip(panels, axes, strict=True):
                ax.set_title(panel, loc="left", fontsize="medium")
                ax.grid(True, alpha=0.3)
                self._axes[panel] = ax
            axes[-1].set_xlabel("seconds")
        self._panels = panels

    def _image(self) -> Any:
        from IPython.display import Image

        image: Callable[..., Any] = Image  # untyped in IPython
        return image(data=self.png(), format="png")

    def png(self) -> bytes:
        """The figure as PNG bytes (what the notebook shows). Never clips a label: when tick labels grew
        past the frozen layout (prices moved to wider numbers), the layout is redone and drawn again."""
        with self._draw_lock:
            image = self._print_png()
            if self._clipped():
                self._freeze_layout()
                image = self._print_png()
            return image

    def _print_png(self) -> bytes:
        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def _clipped(self) -> bool:
        """True when the last draw put any axes' tick labels, axis labels, title or legend outside the
        figure (measured with the renderer of that draw)."""
        renderer = self.fig.canvas.get_renderer()  # type: ignore[attr-defined]
        width, height = self.fig.bbox.width, self.fig.bbox.height
        for ax in self.fig.axes:
            box = ax.get_tightbbox(renderer)
            if box is not None and (box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height):
                return True
        return False

    # -- running ------------------------------------------------------------------------------------
    def start(self) -> LivePlot:
        """Redraw in the background, on the asyncio loop running in this thread (a Jupyter kernel's).

        Without a running loop there is nothing to do it: call :meth:`run` (or :meth:`redraw`).
        """
        if self._ticker is not None or self._stopped:
            return self
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self
        from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler

        scheduler = AsyncIOThreadSafeScheduler(loop)

        def tick(_state: Any) -> None:
            try:
                if self._due():
                    self.redraw()
            except Exception:  # a failed redraw must not kill the timer or the kernel's loop
                _LOGGER.exception("live plot redraw failed")

        self._ticker = scheduler.schedule_periodic(self.interval, tick)
        return self

    @property
    def background(self) -> bool:
        """True while a background timer redraws it."""
        return self._ticker is not None

    def run(self, seconds: float, until: Callable[[LivePlot], bool] | None = None) -> None:
        """Block for ``seconds`` (or until ``until(plot)`` is true), redrawing every ``interval``.

        The way to watch a chart update "while the cell runs"; Ctrl-C (interrupt) ends it early.
        """
        end = time.monotonic() + float(seconds)
        pause = threading.Event()
        while not (until is not None and until(self)):
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            pause.wait(min(self.interval, remaining))
            if self._due():
                self.redraw()
        self.redraw()

    async def wait(self, seconds: float, until: Callable[[LivePlot], bool] | None = None) -> None:
        """Like :meth:`run`, but awaiting (``await plot.wait(10)`` in a cell) so the kernel's loop
        keeps running other tasks meanwhile."""
        end = time.monotonic() + float(seconds)
        while not (until is not None and until(self)):
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(self.interval, remaining))
            if self._due():
                self.redraw()
        self.redraw()

    def stop(self) -> None:
        """Stop feeding and redrawing (dispose every subscription and the timer); draw once more."""
        if self._stopped:
            return
        if self._ticker is not None:
            self._ticker.dispose()
            self._ticker = None
        self._sources.dispose()
        with self._lock:
            self._stopped = True
        self.redraw(force=True)
        with self._draw_lock:  # no more live redraws: lay out on every later draw (a savefig, say)
            self.fig.set_layout_engine("constrained")

    def __enter__(self) -> LivePlot:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LivePlot(series={len(self._series)}, points={self._points}, redraws={self._redraws})"


def live_plot(
    source: Observable[Any] | None = None,
    fields: str | Sequence[str] = DEFAULT_FIELDS,
    *,
    interval: float = 0.5,
    label: str | Callable[[Any], str] | None = None,
    panel: str | None = None,
    max_points: int = 5000,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = 80,
    display: bool | None = None,
    background: bool = True,
) -> LivePlot:
    """A :class:`LivePlot` of ``fields`` of ``source``'s items, shown now in a notebook.

    ``interval``: seconds between redraws (conflation; the data itself is never conflated).
    ``background``: inside a Jupyter kernel, keep redrawing on the kernel's asyncio loop after the
    cell returned. More sources: :meth:`LivePlot.feed`. See :meth:`LivePlot.feed` for ``fields``,
    ``label`` and ``panel``.
    """
    plot = LivePlot(
        interval=interval, max_points=max_points, title=title, figsize=figsize, dpi=dpi, display=display
    )
    if source is not None:
        plot.feed(source, fields, label=label, panel=panel)
    if background:
        plot.start()
    return plot


__all__ = ["DEFAULT_FIELDS", "LivePlot", "SeriesData", "live_plot"]
