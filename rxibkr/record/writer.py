"""Recording a client's wire traffic: a background writer thread, bounded loss, optional Parquet tables.

The reader thread only puts a tuple on a queue (O(1)); the writer thread redacts, encodes and writes.
It flushes on a schedule of its own: whatever was received more than ``flush_interval`` seconds ago
(plus the writer's lag, see ``queue_depth``) has reached the OS as complete lines -- a ``.zst`` file as
complete zstandard frames -- so a killed process (SIGKILL included) loses at most that. The writer
blocks on its queue with a timeout set to the next flush; it never polls.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reactivex import abc
from reactivex.scheduler.virtualtimescheduler import VirtualTimeScheduler

from rxibkr.client.events import ConnectionState
from rxibkr.record.clock import scheduler_seconds
from rxibkr.record.files import Sink, open_sink
from rxibkr.record.format import Redactor, encode_line, header_line, meta_line

if TYPE_CHECKING:
    from rxibkr.client.core import IbkrWsClient, WireEvent
    from rxibkr.record.parquet import DatasetWriter

_LOGGER = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5
"""Default seconds between the writer's flushes (the bound on what a killed recorder loses)."""

_CONNECTED = frozenset({ConnectionState.OPEN, ConnectionState.AUTHENTICATED, ConnectionState.UNAUTHENTICATED})

_Item = tuple[float, str, "bytes | str | None", int | None, "str | None", int | None, "str | None"]
_STOP = None
_NONE = object()


class Recorder(abc.DisposableBase):
    """Records a client's wire traffic until disposed (or the client shuts down); a context manager too.

    ``path``: the raw log, JSON Lines appended to (zstandard-compressed when it ends in ``.zst``); None
    for none (then ``parquet`` is required). ``parquet``: a directory to write typed Parquet tables to
    while recording (see :mod:`rxibkr.record.parquet`; needs the ``data`` extra), ``parquet_interval``
    seconds between their flushes, ``symbols``: conid -> symbol for the tables when the frames carry
    no field 55. ``flush_interval``: seconds between flushes of the raw log. ``clock``: seconds for
    ``t`` (default ``time.time``, or the virtual clock when the client runs on a virtual-time scheduler).
    """

    def __init__(
        self,
        client: IbkrWsClient,
        path: str | os.PathLike[str] | None,
        *,
        clock: Callable[[], float] | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        parquet: str | os.PathLike[str] | None = None,
        parquet_interval: float = 5.0,
        symbols: Mapping[int, str] | None = None,
    ) -> None:
        if path is None and parquet is None:
            raise ValueError("path: a file to record to is required (or a parquet directory)")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval: expected a positive number of seconds, got {flush_interval!r}")
        self._client = client
        self._path = Path(path) if path is not None else None
        virtual = isinstance(client.scheduler, VirtualTimeScheduler)
        if clock is None:
            scheduler = client.scheduler
            if virtual:

                def clock() -> float:
                    return scheduler_seconds(scheduler)

            else:
                clock = time.time
        self._clock: Callable[[], float] = clock
        self._flush_interval = float(flush_interval)
        self._dataset: DatasetWriter | None = None
        if parquet is not None:
            from rxibkr.record.parquet import DatasetWriter

            self._dataset = DatasetWriter(parquet, flush_interval=parquet_interval, symbols=symbols)
        self._sink: Sink | None = open_sink(self._path) if self._path is not None else None
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopped = False
        self._frames = 0
        self._flushes = 0
        self._max_depth = 0
        self._opened: set[int | None] = set()
        self._open: int | object | None = _NONE  # the connection open in the file (None: attached)
        self._error: BaseException | None = None
        t0 = clock()
        if self._sink is not None:
            self._sink.write(header_line(t0, "virtual" if virtual else "wall"))
        self._thread = threading.Thread(target=self._run, name="rxibkr-recorder", daemon=True)
        self._thread.start()
        state = client.state.value
        if state in _CONNECTED:
            self._queue.put((t0, "attached", None, None, None, None, state.value))
        self._subscription = client.wire.subscribe(self._on_wire, on_completed=self._on_completed)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def parquet(self) -> Path | None:
        """The Parquet directory, when recording tables."""
        return self._dataset.directory if self._dataset is not None else None

    @property
    def frames(self) -> int:
        """Frames written so far (complete after dispose)."""
        return self._frames

    @property
    def flushes(self) -> int:
        """How many times the writer has flushed the raw log."""
        return self._flushes

    @property
    def queue_depth(self) -> int:
        """Items received but not yet written (the writer's lag)."""
        return self._queue.qsize()

    @property
    def max_queue_depth(self) -> int:
        """The deepest the writer's queue has been when the writer looked (a measure of falling behind)."""
        return self._max_depth

    @property
    def active(self) -> bool:
        return not self._stopped

    # -- producer side (reader / control threads): O(1) ----------------------------------------------
    def _on_wire(self, event: WireEvent) -> None:
        initiator: str | None = getattr(event, "initiator", None)
        self._queue.put(
            (
                self._clock(),
                event.direction,
                event.data,
                event.connection,
                self._client.session_id,
                event.code,
                initiator,
            )
        )

    def _on_completed(self) -> None:
        # the client shut down: a connection still open in the file was closed by the client
        self._queue.put((self._clock(), "shutdown", None, None, None, None, None))
        self._stop(join=threading.current_thread() is not self._thread)

    # -- writer thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        redactor = Redactor()
        sink = self._sink
        dataset = self._dataset
        interval = self._flush_interval
        get = self._queue.get
        qsize = self._queue.qsize
        monotonic = time.monotonic
        due: float | None = None  # when the raw log must be flushed next (something unflushed)
        try:
            while True:
                now = monotonic()
                deadline = due
                if dataset is not None and dataset.due is not None:
                    deadline = dataset.due if deadline is None else min(deadline, dataset.due)
                try:
                    item = get() if deadline is None else get(timeout=max(0.0, deadline - now))
                except queue.Empty:
                    item = ()  # type: ignore[assignment]  # a flush is due
                if item is _STOP:
                    break
                if item:
                    depth = qsize()
                    if depth > self._max_depth:
                        self._max_depth = depth
                    self._write(item, sink, dataset, redactor)  # type: ignore[arg-type]
                    if due is None and sink is not None:
                        due = monotonic() + interval
                now = monotonic()
                if due is not None and now >= due:
                    assert sink is not None
                    sink.flush()
                    self._flushes += 1
                    due = None
                if dataset is not None and dataset.due is not None and now >= dataset.due:
                    dataset.flush()
        except Exception as exc:  # a full disk must not go unnoticed, nor kill the client
            self._error = exc
            _LOGGER.error("recording to %s failed: %r", self._path or self.parquet, exc)
        finally:
            for closing in (sink, dataset):
                if closing is not None:
                    try:
                        closing.close()
                    except Exception as exc:
                        self._error = self._error or exc

    def _write(
        self, item: _Item, sink: Sink | None, dataset: DatasetWriter | None, redactor: Redactor
    ) -> None:
        t, direction, data, conn, session_id, code, initiator = item
        line: bytes
        if direction == "open":
            self._opened.add(conn)
            self._open = conn
            line = meta_line(t, "open", conn)
        elif direction == "close":
            if self._open is None or conn == self._open:  # None: the attached one, its id unknown
                self._open = _NONE
            line = meta_line(t, "close", conn, code=code, by=initiator if initiator else "unknown")
        elif direction == "attached":
            self._open = None
            line = meta_line(t, "open", None, attached=True, state=initiator)
        elif direction == "shutdown":
            if self._open is _NONE:
                return
            open_conn = self._open if isinstance(self._open, int) else None
            line = meta_line(t, "close", open_conn, code=None, by="client")
            self._open = _NONE
        elif data is not None:
            redactor.learn(session_id)
            redactor.inspect(direction, data)
            line = encode_line(t, direction, data, redactor)
            self._frames += 1
            if dataset is not None and direction == "in":
                dataset.add(t, data, conn if conn in self._opened else None)  # as a reader numbers them
        else:
            return
        if sink is not None:
            sink.write(line)

    # -- stopping ---------------------------------------------------------------------------------------
    def _stop(self, join: bool) -> None:
        with self._lock:
            first = not self._stopped
            self._stopped = True
        if first:
            self._subscription.dispose()
            self._queue.put(_STOP)
        if join and self._thread is not threading.current_thread():
            self._thread.join(30.0)

    def dispose(self) -> None:
        """Stop recording: everything recorded so far is written and the files closed when this returns."""
        self._stop(join=True)
        if self._error is not None:
            raise OSError(f"recording to {self._path or self.parquet} failed: {self._error}") from self._error

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        where = str(self._path) if self._path is not None else str(self.parquet)
        return f"Recorder({where!r}, {state}, frames={self._frames})"


def record(client: IbkrWsClient, path: str | os.PathLike[str] | None, **options: Any) -> Recorder:
    """Start recording ``client``'s wire traffic to ``path`` (appended); dispose the result to stop.
    ``options``: see :class:`Recorder` (``parquet=DIR`` for typed tables too)."""
    return Recorder(client, path, **options)


__all__ = ["FLUSH_INTERVAL", "Recorder", "record"]
