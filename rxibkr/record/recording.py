"""Record a live session to JSON Lines, and replay it through the whole client without a gateway.

Recording (``client.record(path)`` or :class:`Recorder`) taps ``client.wire`` and appends one JSON object
per line:

* a frame: ``{"t": <seconds>, "dir": "in"|"out", "frame": "<text>", "binary": <bool>}``; ``t`` is the
  wall clock (``time.time()``; the scheduler's virtual clock when the client runs on a ``TestScheduler``).
  A frame whose bytes are not valid UTF-8 keeps a readable ``"frame"`` (invalid bytes replaced by U+FFFD)
  and carries the exact bytes base64-encoded in an extra key ``"b64"``; replay uses ``"b64"`` when present,
  so the invalid bytes survive the round trip.
* connection events: ``{"t": ..., "dir": "meta", "event": "open"|"close", "conn": <n>}``. ``conn`` numbers
  the client's connections (an extension: lines without it are accepted). A ``close`` without a matching
  ``open`` is a connection attempt that failed. When recording starts on an already open connection, the
  first line is ``{"dir": "meta", "event": "open", "attached": true}``.

Session ids are never written: the client's ``session_id``, the ``id`` of ``tic`` replies, the in-band
``{"session": ...}`` frame and ``act``'s ``sessionId`` are replaced by ``"<session>"`` wherever they
occur. Cookies never reach the wire tap. The reader thread only puts a tuple on a queue; a background
writer thread redacts, encodes and writes through a 64 KiB buffer, flushing when the stream has been
idle for half a second and on dispose.

Replay (:class:`ReplayTransport`): ``IbkrWsClient(transport=ReplayTransport(path))`` opens no socket and
makes no REST call. Recorded connections are served, in order, to the client's successive connects (a
failed attempt is served as a refused connection), so the client's reconnect logic runs as it did live;
incoming frames are delivered with the recorded timing scaled by ``speed`` (None: as fast as possible),
outgoing frames the client sends are kept in ``transport.sent``. After the last recorded connection the
transport stalls (a connect that never completes) and ``transport.finished`` is set.
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
from reactivex import abc
from reactivex.scheduler import EventLoopScheduler
from reactivex.scheduler.virtualtimescheduler import VirtualTimeScheduler

from rxibkr.client.events import ConnectionState
from rxibkr.io.transport import ConnectionClosedError, ConnectOptions, TransportListener
from rxibkr.protocol import IbkrWsKey, Message, MessageKind, decode
from rxibkr.testing import frames as _frames
from rxibkr.testing.scheduler import scheduler_seconds
from rxibkr.testing.transport import SentFrame

if TYPE_CHECKING:
    from rxibkr.client.core import IbkrWsClient, WireEvent

_LOGGER = logging.getLogger(__name__)

REDACTED = "<session>"
"""What session ids are replaced with in recordings."""

_MIN_SECRET = 4  # ignore implausibly short "session ids" rather than redact every "1" in a file
_IDLE_FLUSH = 0.5
_BUFFER = 1 << 16
_CONNECTED = frozenset({ConnectionState.OPEN, ConnectionState.AUTHENTICATED, ConnectionState.UNAUTHENTICATED})


# =================================================================================================
# recording
# =================================================================================================
class _Redactor:
    """Finds session ids in frames and replaces every known one. Writer thread only."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self._secret_bytes: list[bytes] = []

    def learn(self, secret: object) -> None:
        if isinstance(secret, str) and len(secret) >= _MIN_SECRET and secret != REDACTED:
            if secret not in self.secrets:
                self.secrets.append(secret)
                self.secrets.sort(key=len, reverse=True)  # longest first: no partial replacement
                self._secret_bytes = [s.encode("utf-8", "surrogatepass") for s in self.secrets]

    def inspect(self, direction: str, data: bytes | str) -> None:
        """Learn the session ids a frame carries (tic reply, session message, act)."""
        probe = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        if direction == "in":
            if b'"tic"' not in probe and b'"sessionId"' not in probe:
                return
        elif b'"session"' not in probe:
            return
        try:
            obj = orjson.loads(probe)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict):
            return
        if direction == "out":
            self.learn(obj.get("session"))
        elif obj.get("topic") == "tic":
            self.learn(obj.get("id"))
        elif obj.get("topic") == "act" and isinstance(obj.get("args"), dict):
            self.learn(obj["args"].get("sessionId"))

    def redact_bytes(self, data: bytes) -> bytes:
        for secret in self._secret_bytes:
            if secret in data:
                data = data.replace(secret, b"<session>")
        return data

    def redact_str(self, data: str) -> str:
        for secret in self.secrets:
            if secret in data:
                data = data.replace(secret, REDACTED)
        return data


def encode_line(t: float, direction: str, data: bytes | str, redactor: _Redactor | None = None) -> bytes:
    """One frame line of the recording format (redacted when a redactor is given)."""
    binary = not isinstance(data, str)
    b64: str | None = None
    if isinstance(data, str):
        text = redactor.redact_str(data) if redactor is not None else data
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: keep them exactly
            b64 = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")
            text = text.encode("utf-8", "replace").decode("utf-8")
    else:
        raw = bytes(data)
        if redactor is not None:
            raw = redactor.redact_bytes(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            b64 = base64.b64encode(raw).decode("ascii")
    obj: dict[str, Any] = {"t": t, "dir": direction, "frame": text, "binary": binary}
    if b64 is not None:
        obj["b64"] = b64
    return orjson.dumps(obj) + b"\n"


def _meta_line(t: float, event: str, conn: int | None, **extra: Any) -> bytes:
    obj: dict[str, Any] = {"t": t, "dir": "meta", "event": event}
    if conn is not None:
        obj["conn"] = conn
    obj.update(extra)
    return orjson.dumps(obj) + b"\n"


_Item = tuple[float, str, "bytes | str | None", int | None, "str | None"]
_STOP = None


class Recorder(abc.DisposableBase):
    """Records a client's wire traffic to a JSON Lines file until disposed (or the client shuts down).

    Use ``client.record(path)``; a context manager as well. ``clock``: seconds for ``t`` (default
    ``time.time``, or the virtual clock when the client runs on a virtual-time scheduler).
    """

    def __init__(
        self, client: IbkrWsClient, path: str | os.PathLike[str], *, clock: Callable[[], float] | None = None
    ) -> None:
        self._client = client
        self._path = Path(path)
        if clock is None:
            scheduler = client.scheduler
            if isinstance(scheduler, VirtualTimeScheduler):

                def clock() -> float:
                    return scheduler_seconds(scheduler)

            else:
                clock = time.time
        self._clock: Callable[[], float] = clock
        self._file: BinaryIO = open(self._path, "ab", buffering=_BUFFER)
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopped = False
        self._frames = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rxibkr-recorder", daemon=True)
        self._thread.start()
        if client.state.value in _CONNECTED:
            self._queue.put((clock(), "attached", None, None, None))
        self._subscription = client.wire.subscribe(self._on_wire, on_completed=self._on_completed)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def frames(self) -> int:
        """Frames written so far (complete after dispose)."""
        return self._frames

    @property
    def active(self) -> bool:
        return not self._stopped

    # -- producer side (reader / control threads): O(1) ----------------------------------------------
    def _on_wire(self, event: WireEvent) -> None:
        self._queue.put(
            (self._clock(), event.direction, event.data, event.connection, self._client.session_id)
        )

    def _on_completed(self) -> None:
        self._stop(join=threading.current_thread() is not self._thread)

    # -- writer thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        redactor = _Redactor()
        out = self._file
        dirty = False
        try:
            while True:
                try:
                    item = self._queue.get(timeout=_IDLE_FLUSH) if dirty else self._queue.get()
                except queue.Empty:
                    out.flush()
                    dirty = False
                    continue
                if item is _STOP:
                    break
                t, direction, data, conn, session_id = item
                if direction in ("open", "close"):
                    out.write(_meta_line(t, direction, conn))
                elif direction == "attached":
                    out.write(_meta_line(t, "open", None, attached=True))
                elif data is not None:
                    redactor.learn(session_id)
                    redactor.inspect(direction, data)
                    out.write(encode_line(t, direction, data, redactor))
                    self._frames += 1
                dirty = True
        except Exception as exc:  # a full disk must not go unnoticed, nor kill the client
            self._error = exc
            _LOGGER.error("recording to %s failed: %r", self._path, exc)
        finally:
            try:
                out.close()
            except Exception as exc:
                self._error = self._error or exc

    # -- stopping ---------------------------------------------------------------------------------------
    def _stop(self, join: bool) -> None:
        with self._lock:
            first = not self._stopped
            self._stopped = True
        if first:
            self._subscription.dispose()
            self._queue.put(_STOP)
        if join and self._thread is not threading.current_thread():
            self._thread.join(10.0)

    def dispose(self) -> None:
        """Stop recording: everything recorded so far is written and the file closed when this returns."""
        self._stop(join=True)
        if self._error is not None:
            raise OSError(f"recording to {self._path} failed: {self._error}") from self._error

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        return f"Recorder({str(self._path)!r}, {state}, frames={self._frames})"


def record(client: IbkrWsClient, path: str | os.PathLike[str]) -> Recorder:
    """Start recording ``client``'s wire traffic to ``path`` (appended); dispose the result to stop."""
    return Recorder(client, path)


# =================================================================================================
# reading a recording
# =================================================================================================
@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One recorded frame: ``t`` seconds, ``direction`` "in"/"out", ``data`` as it crossed the wire."""

    t: float
    direction: str
    data: bytes | str

    @property
    def binary(self) -> bool:
        return isinstance(self.data, bytes)


@dataclass(slots=True)
class RecordedConnection:
    """One recorded connection attempt: opened (with its frames) or failed (``opened`` False).

    ``attached``: the recording began while this connection was already open (or its open line is
    missing): its greeting is probably not in the file. ``t_close`` is None when the recording ended
    while the connection was still open.
    """

    index: int
    t_open: float
    opened: bool = True
    t_close: float | None = None
    conn: int | None = None
    attached: bool = False
    frames: list[RecordedFrame] = field(default_factory=list)

    @property
    def incoming(self) -> list[RecordedFrame]:
        return [f for f in self.frames if f.direction == "in"]

    @property
    def outgoing(self) -> list[RecordedFrame]:
        return [f for f in self.frames if f.direction == "out"]

    @property
    def confirmed(self) -> bool:
        """True if a session confirmation (``system`` success or ``sts`` authenticated) was received."""
        return any(_is_confirmation(decode(f.data)) for f in self.incoming)


def _is_confirmation(message: Message) -> bool:
    data = message.data
    if message.kind is not MessageKind.DATA or data is None:
        return False
    if message.key is IbkrWsKey.SYSTEM:
        return "success" in data
    if message.key is IbkrWsKey.AUTHENTICATION_STATUS:
        args = data.get("args")
        return isinstance(args, dict) and args.get("authenticated") is True
    return False


def _decode_frame(obj: dict[str, Any], lineno: int) -> bytes | str:
    text = obj.get("frame")
    b64 = obj.get("b64")
    binary = bool(obj.get("binary", False))
    if b64 is not None:
        raw = base64.b64decode(b64)
        return raw if binary else raw.decode("utf-8", "surrogatepass")
    if not isinstance(text, str):
        raise ValueError(f"line {lineno}: 'frame' must be a string")
    return text.encode("utf-8") if binary else text


@dataclass(slots=True)
class Recording:
    """A parsed recording: its connection attempts in order."""

    connections: list[RecordedConnection]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recording:
        with open(path, "rb") as f:
            return cls.parse(f)

    @classmethod
    def parse(cls, lines: Iterable[bytes | str]) -> Recording:
        """Parse recording lines; ValueError naming the line for anything that is not the format."""
        connections: list[RecordedConnection] = []
        current: RecordedConnection | None = None

        def new(t: float, **kwargs: Any) -> RecordedConnection:
            conn = RecordedConnection(len(connections), t, **kwargs)
            connections.append(conn)
            return conn

        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"line {lineno}: not JSON ({exc})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("t"), int | float):
                raise ValueError(f"line {lineno}: expected an object with a numeric 't'")
            t = float(obj["t"])
            direction = obj.get("dir")
            if direction == "meta":
                event = obj.get("event")
                conn_id = obj.get("conn")
                if event == "open":
                    if current is not None and current.t_close is None:
                        current.t_close = t  # its close line is missing
                    current = new(t, conn=conn_id, attached=bool(obj.get("attached", False)))
                elif event == "close":
                    if current is not None and (
                        conn_id is None or current.conn is None or current.conn == conn_id
                    ):
                        current.t_close = t
                        current = None
                    else:  # no open connection: an attempt that failed
                        new(t, opened=False, t_close=t, conn=conn_id)
                else:
                    raise ValueError(f"line {lineno}: unknown meta event {event!r}")
            elif direction in ("in", "out"):
                if current is None:  # frames before any open line: the recording began mid-connection
                    current = new(t, attached=True)
                current.frames.append(RecordedFrame(t, direction, _decode_frame(obj, lineno)))
            else:
                raise ValueError(f"line {lineno}: 'dir' must be 'in', 'out' or 'meta', got {direction!r}")
        return cls(connections)

    def frames(self, direction: str = "in") -> Iterator[RecordedFrame]:
        """Every recorded frame of one direction ("in", "out"), across connections, in order."""
        for conn in self.connections:
            for frame in conn.frames:
                if frame.direction == direction:
                    yield frame

    def messages(self) -> list[Message]:
        """The incoming frames decoded, in order (what the client's streams saw live)."""
        return [decode(f.data) for f in self.frames("in")]

    @property
    def duration(self) -> float:
        times = (
            [c.t_open for c in self.connections]
            + [f.t for c in self.connections for f in c.frames]
            + [c.t_close for c in self.connections if c.t_close is not None]
        )
        return max(times) - min(times) if times else 0.0

    def __len__(self) -> int:
        return len(self.connections)


# =================================================================================================
# replay
# =================================================================================================
def synthetic_greeting() -> list[bytes]:
    """What replay sends when a recorded connection lacks its session confirmation."""
    return [
        _frames.encode(_frames.system("replay")),
        _frames.encode(_frames.sts(True, username="replay")),
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
        if not recorded.confirmed:
            data_frames = any(decode(f.data).kind is not MessageKind.CONTROL for f in recorded.incoming)
            if self.transport.synthesize_greeting and (recorded.attached or data_frames):
                self.transport.synthesized.append(recorded.index)
                steps.extend((recorded.t_open, "frame", frame) for frame in synthetic_greeting())
                self._confirm_step = len(steps) - 1
        last = recorded.t_open
        for frame in recorded.incoming:
            last = max(last, frame.t)  # never backwards: "in" and "out" lines come from two threads
            if self._confirm_step < 0 and _is_confirmation(decode(frame.data)):
                self._confirm_step = len(steps)
            steps.append((last, "frame", frame.data))
        if recorded.t_close is not None:
            steps.append((max(last, recorded.t_close), "close", None))
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
                self._finish(1000, "replay: recorded close", None)
            elif action == "refuse":
                self._finish(None, "", ConnectionRefusedError("replay: a recorded connect that failed"))
        if not self.closed and not self._closing and not self._held and self._next >= len(self._steps):
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

    ``synthesize_greeting``: a recorded connection without its session confirmation (recording began after
    the greeting, or a hand-made file) gets a synthetic ``system`` success + ``sts`` authenticated right
    after it opens, so ``start()`` does not wait in vain; their indexes are in ``synthesized``. A recorded
    connection with nothing but control frames, never confirmed live, replays as it was.
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
        synthesize_greeting: bool = True,
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
            recorded = self.recording.connections[index] if index < len(self.recording.connections) else None
            connection = ReplayConnection(self, index + 1, recorded, listener, scheduler)
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


__all__ = [
    "REDACTED",
    "RecordedConnection",
    "RecordedFrame",
    "Recorder",
    "Recording",
    "ReplayConnection",
    "ReplayTransport",
    "encode_line",
    "record",
    "synthetic_greeting",
]
