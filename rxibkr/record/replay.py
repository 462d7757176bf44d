"""Replay a recording through the whole client, without a gateway: :class:`ReplayTransport`.

``IbkrWsClient(transport=ReplayTransport(path))`` opens no socket and makes no REST call. Recorded
connections are served, in order, to the client's successive connects (a failed attempt is served as a
refused connection), so the client's reconnect logic runs as it did live; incoming frames are delivered
with the recorded timing scaled by ``speed`` (None: as fast as possible); outgoing frames the client sends
are kept in ``transport.sent``. After the last recorded connection the transport stalls (a connect that
never completes) and ``transport.finished`` is set.

How a connection ended is replayed as recorded (format 2): a server close is served as a close with
the recorded code (the client sees a connection loss and reconnects, as it did); a client close is not
served at all -- the replay waits for the client to close the connection itself, as it did live, so no
``connection_lost`` and no reconnect happen. Format 1 closes ("unknown") are served like server closes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from reactivex import abc
from reactivex.scheduler import EventLoopScheduler
from reactivex.scheduler.virtualtimescheduler import VirtualTimeScheduler

from rxibkr.io.transport import ConnectionClosedError, ConnectOptions, TransportListener
from rxibkr.protocol import MessageKind, decode, parse_request
from rxibkr.protocol.requests import ClientRequest
from rxibkr.record.clock import scheduler_seconds
from rxibkr.record.reader import RecordedConnection, Recording, is_confirmation

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SentFrame:
    """A frame the client sent into a replay or a fake transport: when (scheduler seconds), on which
    connection, what."""

    time: float
    connection: int
    text: str

    @property
    def request(self) -> ClientRequest:
        """The frame parsed (``rxibkr.protocol.parse_request``); ValueError if it is not a request."""
        return parse_request(self.text)


def synthetic_greeting() -> list[bytes]:
    """What replay sends when a recorded connection lacks its session confirmation."""
    return [
        b'{"topic":"system","success":"replay","isFT":false,"isPaper":true}',
        b'{"topic":"sts","args":{"connected":true,"authenticated":true,"established":true,'
        b'"competing":false,"message":"","fail":"","serverName":"replay","serverVersion":"replay",'
        b'"username":"replay"}}',
    ]


_Step = tuple[float, str, "bytes | str | None"]  # (recorded t, action, data)


class _ReplayLoop(EventLoopScheduler):
    """An event loop whose ``dispose`` also drops pending timers.

    reactivex's loop keeps cancelled timers queued and, when disposed from one of its own actions, waits
    for the next one before it notices: a connection closed during a long recorded gap would keep its
    thread alive until then.
    """

    def dispose(self) -> None:
        with self._condition:
            self._queue.clear()
        super().dispose()


_CHUNK = 256  # frames delivered per scheduled action in as-fast-as-possible mode


class ReplayConnection:
    """One connection served from a recording (or a refused attempt, or a stall after the recording)."""

    def __init__(
        self,
        transport: ReplayTransport,
        conn_id: int,
        recorded: RecordedConnection | None,
        listener: TransportListener,
        scheduler: abc.SchedulerBase | None,
        next_open: float | None = None,
    ) -> None:
        self.transport = transport
        self._id = conn_id
        self.recorded = recorded
        self.listener = listener
        self.opened = False
        self.closed = False
        self._closing = False
        self._held = False
        self._threads: list[threading.Thread] = []
        self._own = scheduler is None
        self._scheduler: abc.SchedulerBase = (
            scheduler if scheduler is not None else _ReplayLoop(self._thread_factory, exit_if_empty=True)
        )
        self._confirm_step = -1
        self.next_open = next_open
        self.awaiting_client_close = False
        self._steps: list[_Step] = self._plan(recorded)
        self._next = 0
        self._pending: abc.DisposableBase | None = None
        self._lock = threading.RLock()

    @property
    def id(self) -> int:
        return self._id

    def _thread_factory(self, target: Callable[[], None]) -> threading.Thread:
        # named like a reader thread: the client then never blocks in subscribe() called from an observer
        thread = threading.Thread(target=target, name=f"rxibkr-reader-replay-{self._id}", daemon=True)
        self._threads.append(thread)
        return thread

    def _plan(self, recorded: RecordedConnection | None) -> list[_Step]:
        if recorded is None:
            return []
        if not recorded.opened:
            return [(recorded.t_open, "refuse", None)]
        steps: list[_Step] = [(recorded.t_open, "open", None)]
        if not recorded.confirmed and self.transport._synthesizes(recorded):
            self.transport.synthesized.append(recorded.index)
            steps.extend((recorded.t_open, "frame", frame) for frame in synthetic_greeting())
            self._confirm_step = len(steps) - 1
        last = recorded.t_open
        for frame in recorded.incoming:
            last = max(last, frame.t)  # never backwards: "in" and "out" lines come from two threads
            if self._confirm_step < 0 and is_confirmation(decode(frame.data)):
                self._confirm_step = len(steps)
            steps.append((last, "frame", frame.data))
        if recorded.t_close is not None:
            t_close = max(last, recorded.t_close)
            if recorded.closed_by == "client":
                # the client closed it live: wait for it to do so again (no close from here) ...
                steps.append((t_close, "client-close", None))
                if self.next_open is not None:  # ... until the next recorded connection is due
                    steps.append((max(t_close, self.next_open), "force-close", None))
            else:
                steps.append((t_close, "close", None))
        return steps

    # -- Connection protocol ---------------------------------------------------------------------
    def send(self, text: str) -> None:
        if self.closed or not self.opened:
            raise ConnectionClosedError("replay connection is not open")
        self.transport._record_sent(self, text)

    def ping(self) -> None:
        if self.opened and not self.closed and self.transport.auto_pong:
            self._schedule_now(self._pong)

    def close(self, code: int = 1000, reason: str = "") -> None:
        with self._lock:
            if self.closed or self._closing:
                return
            self._closing = True
            self._cancel_pending()
        self._schedule_now(lambda: self._finish(code, reason, None))

    def join(self, timeout: float | None = None) -> bool:
        current = threading.current_thread()
        for thread in list(self._threads):
            if thread is not current and thread.ident is not None:
                thread.join(timeout)
        return not any(t.is_alive() for t in self._threads if t is not current)

    # -- delivery ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin replaying (called by the client once it has recorded this connection)."""
        if not self._steps:
            self.transport._ended()  # nothing left to replay: this connect never completes
            return
        self._schedule_now(self._step)

    def _schedule_now(self, fn: Callable[[], None]) -> None:
        try:
            self._scheduler.schedule(lambda *_: fn())
        except Exception:  # disposed: the connection is finished
            _LOGGER.debug("replay connection %d: scheduler gone", self._id)

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.dispose()
            self._pending = None

    def _pong(self) -> None:
        if self.opened and not self.closed:
            self.listener.on_pong(self)

    def _step(self) -> None:
        transport = self.transport
        delivered = 0
        while True:
            with self._lock:
                if self.closed or self._closing or self._held or self._next >= len(self._steps):
                    break
                index = self._next
                t, action, data = self._steps[index]
                delay = transport._delay(t)
                if delay > 0:
                    self._pending = self._scheduler.schedule_relative(delay, lambda *_: self._step())
                    return
                if transport.speed is None and delivered >= _CHUNK:  # let pongs and closes in
                    self._pending = self._scheduler.schedule(lambda *_: self._step())
                    return
                self._next += 1
            delivered += 1
            if action == "open":
                self.opened = True
                self.listener.on_open(self)
            elif action == "frame":
                assert data is not None
                self.listener.on_frame(self, data)
                if index == self._confirm_step and transport._should_hold(self):
                    self._hold()
                    return
            elif action == "close":
                assert self.recorded is not None
                code = self.recorded.close_code
                self._finish(1000 if code is None else code, "replay: recorded close", None)
            elif action == "client-close":
                self.awaiting_client_close = True
                transport._connection_done(self)  # served to its end: the rest is the client's
            elif action == "force-close":
                self.awaiting_client_close = False
                transport.forced_closes += 1
                self._finish(1000, "replay: the client did not close as it did live", None)
            elif action == "refuse":
                self._finish(None, "", ConnectionAbortedError("replay: a recorded connect that failed"))
        if (
            not self.closed
            and not self._closing
            and not self._held
            and not self.awaiting_client_close
            and self._next >= len(self._steps)
        ):
            transport._connection_done(self)

    def _hold(self) -> None:
        """Pause after the first session confirmation until ``release()`` (or ``hold`` seconds)."""
        with self._lock:
            self._held = True
            hold = self.transport.hold
            if hold is not None:
                self._pending = self._scheduler.schedule_relative(hold, lambda *_: self._resume())

    def _resume(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
            self._cancel_pending()
            if self._next < len(self._steps):
                self.transport._restart_clock(self._steps[self._next][0])
        self._step()

    def _finish(self, code: int | None, reason: str, error: BaseException | None) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._held = False
            self._cancel_pending()
        self.listener.on_close(self, code, reason, error)
        self.transport._connection_done(self)
        if self._own:
            scheduler = self._scheduler
            assert isinstance(scheduler, _ReplayLoop)
            scheduler.dispose()


class ReplayTransport:
    """A transport that serves a recording: ``IbkrWsClient(transport=ReplayTransport(path))``.

    ``speed``: None replays as fast as possible; 1.0 in real time; 10.0 ten times faster. ``scheduler``:
    where frames are delivered and time is measured; with a virtual-time scheduler (``TestScheduler``) the
    replay runs in virtual time (``speed`` None then means 1.0, since virtual time costs nothing). When no
    scheduler is given and the client runs on a virtual-time scheduler, that one is used; otherwise each
    connection gets its own thread (``rxibkr-reader-replay-<n>``, like a socket's reader thread).

    ``hold`` (real time only): once the first recorded session is confirmed, the replay pauses until
    :meth:`wait` or :meth:`release` is called, or ``hold`` seconds have passed (None: no time limit). So
    ``client.start()`` reliably returns True, and what the strategy subscribes right after ``start()``
    sees the whole session; the recorded timing continues from the release. Pass ``hold=0`` for no pause.

    Greetings: a connection is replayed with the frames it had, so a gateway that sent no greeting
    replays as one. A recording that began on an open, authenticated connection (format 2 writes that
    state) gets a synthetic ``system`` success + ``sts`` authenticated right after it opens, since the
    session was confirmed before the file began. ``synthesize_greeting=True`` does the same for any
    recorded connection that has data but no confirmation -- for format 1 recordings, which do not say
    whether they began on a confirmed session. Indexes of such connections are in ``synthesized``.

    Closes (format 2): a server close is served with its recorded code; a client close is not served:
    the replay waits for the client to close the connection itself, as it did live (a client that
    reset and reconnected live gets until the next recorded connection is due, then the replay closes
    it, counted in ``forced_closes``). The last connection's client close ends the replay (``finished``).
    Timing: the whole recording is one timeline, anchored when the client first connects; a connection
    opens at its recorded time or, if the client reconnects later than it did live, at once, and its frames
    keep their recorded times (overdue ones are delivered at once). A recorded failed connect is served as
    a refused one. A connection the client closes itself before its recorded end loses the rest of its
    frames, as it would have live; the next connect gets the next recorded connection.

    ``auto_pong``: answer the client's pings (the recording has no pongs) so its ping watchdog stays calm.
    Replaying slower than real time (``speed < 1``) stretches the gaps between recorded heartbeats: give the
    client a larger ``max_ping_interval`` then.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Recording,
        speed: float | None = None,
        scheduler: abc.SchedulerBase | None = None,
        *,
        hold: float | None = 1.0,
        synthesize_greeting: bool = False,
        auto_pong: bool = True,
    ) -> None:
        if speed is not None and not (isinstance(speed, int | float) and speed > 0):
            raise ValueError(f"speed: expected None or a positive number, got {speed!r}")
        if hold is not None and not hold >= 0:
            raise ValueError(f"hold: expected None or a number of seconds >= 0, got {hold!r}")
        self.recording = path if isinstance(path, Recording) else Recording.load(path)
        self._speed = float(speed) if speed is not None else None
        self._scheduler = scheduler
        self.hold = hold
        self.synthesize_greeting = synthesize_greeting
        self.auto_pong = auto_pong
        self.connections: list[ReplayConnection] = []
        self.sent: list[SentFrame] = []
        self.synthesized: list[int] = []
        self.forced_closes = 0
        self._origin: tuple[float, float] | None = None  # (scheduler seconds, recorded t) of the timeline
        self._clock_scheduler: abc.SchedulerBase | None = scheduler
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._released = hold == 0
        self._held: ReplayConnection | None = None

    @property
    def speed(self) -> float | None:
        """The pace in use: None is as fast as possible (never in virtual time)."""
        if self._speed is None and self.virtual:
            return 1.0
        return self._speed

    @property
    def virtual(self) -> bool:
        """True when the replay runs on a virtual-time scheduler."""
        return isinstance(self._scheduler, VirtualTimeScheduler)

    @property
    def finished(self) -> bool:
        """True once every recorded connection has been served to its end."""
        return self._finished.is_set()

    def release(self) -> None:
        """End the pause after the first session confirmation (see ``hold``); idempotent."""
        with self._lock:
            self._released = True
            held, self._held = self._held, None
        if held is not None:
            held._schedule_now(held._resume)

    def wait(self, timeout: float | None = None) -> bool:
        """Release the pause, then block until the replay is finished (real time); True if it is."""
        self.release()
        return self._finished.wait(timeout)

    def texts(self) -> list[str]:
        """What the client sent during the replay, in order."""
        return [f.text for f in self.sent]

    # -- Transport protocol ------------------------------------------------------------------------
    def open(self, options: ConnectOptions, listener: TransportListener) -> ReplayConnection:
        scheduler = self._scheduler
        if scheduler is None:
            candidate = getattr(listener, "scheduler", None)
            if isinstance(candidate, VirtualTimeScheduler):
                scheduler = self._scheduler = self._clock_scheduler = candidate
        with self._lock:
            index = len(self.connections)
            recorded_connections = self.recording.connections
            recorded = recorded_connections[index] if index < len(recorded_connections) else None
            later = recorded_connections[index + 1] if index + 1 < len(recorded_connections) else None
            next_open = later.t_open if later is not None else None
            connection = ReplayConnection(self, index + 1, recorded, listener, scheduler, next_open)
            self.connections.append(connection)
            if self._clock_scheduler is None:
                self._clock_scheduler = connection._scheduler  # every own scheduler runs on the wall clock
            if self._origin is None and recorded is not None:
                self._origin = (scheduler_seconds(self._clock_scheduler), recorded.t_open)
        # Unstarted (Transport protocol): the client stores the connection, then calls start().
        return connection

    # -- internals ---------------------------------------------------------------------------------
    def _now(self) -> float:
        scheduler = self._clock_scheduler
        return scheduler_seconds(scheduler) if scheduler is not None else time.time()

    def _delay(self, t: float) -> float:
        speed = self.speed
        if speed is None or self._origin is None:
            return 0.0
        origin_now, origin_t = self._origin
        return origin_now + (t - origin_t) / speed - self._now()

    def _restart_clock(self, t: float) -> None:
        """After a pause: recorded time ``t`` is now."""
        self._origin = (self._now(), t)

    def _synthesizes(self, recorded: RecordedConnection) -> bool:
        """Whether a recorded connection without a confirmation gets a synthetic greeting."""
        if recorded.attached and recorded.state == "authenticated":
            return True  # the session was confirmed before the recording began
        if not self.synthesize_greeting:
            return False
        data_frames = any(decode(f.data).kind is not MessageKind.CONTROL for f in recorded.incoming)
        return recorded.attached or data_frames

    def _should_hold(self, connection: ReplayConnection) -> bool:
        if self.virtual:
            return False
        with self._lock:
            if self._released:
                return False
            self._released = True  # only the first confirmation is held
            self._held = connection
            return True

    def _record_sent(self, connection: ReplayConnection, text: str) -> None:
        self.sent.append(SentFrame(self._now(), connection.id, text))

    def _connection_done(self, connection: ReplayConnection) -> None:
        recorded = connection.recorded
        if recorded is None or recorded.index >= len(self.recording.connections) - 1:
            self._ended()

    def _ended(self) -> None:
        self._finished.set()


__all__ = ["ReplayConnection", "ReplayTransport", "SentFrame", "synthetic_greeting"]
