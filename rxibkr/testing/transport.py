"""A fake transport for virtual-time tests: the "gateway" is scripted, the client is real.

``FakeTransport(scheduler)`` opens :class:`FakeConnection` objects instead of sockets. Opening,
greeting, heartbeats, pongs and scripted frames happen on the given scheduler (normally a
``TestScheduler``), and everything the client sends is recorded with its virtual time in ``sent``.

Scripts (:meth:`FakeTransport.play`) are marble diagrams or timed lists:

* marble: ``"-a--b|"`` with ``a=frame, b=frame``. Each character is ``timespan`` virtual seconds
  (default 1.0); the first character is at the moment ``play`` is called (or at ``at=``). The grammar is
  reactivex's (``reactivex.observable.marbles``, same tokens and timing): ``-`` advances time, a name
  is a frame from the lookup, ``(a,b)`` delivers several frames at the time of its ``(`` (time then goes
  on after the group's width, parentheses and commas included), spaces are ignored. A run of letters
  that is not itself a name is read letter by letter as in RxJS: ``"-abc"`` is a, b, c on three
  consecutive ticks and ``"(ab)"`` is a and b at once. ``|`` means the gateway closes the connection
  (close code 1000) and ``#`` that the connection drops (TCP reset); the script goes on after them, on
  whatever connection the client has reconnected by then.
* timed list: ``[(0.0, frame), (2.5, frame), (9.0, CLOSE)]``, times in seconds from the start.

Frames are dicts (sent as compact JSON in a binary frame, like the gateway), bytes (binary) or str
(text); :class:`Close` and :class:`Drop` values end the connection. A frame is delivered on the
connection that is current when it is due; if that connection is not open, it goes to ``undelivered``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from reactivex import abc
from reactivex.disposable import CompositeDisposable
from reactivex.observable.marbles import tokens as _MARBLE_TOKENS

from rxibkr.io.transport import ConnectionClosedError, ConnectOptions, TransportListener
from rxibkr.record.replay import SentFrame  # one class for what a fake or a replay was sent
from rxibkr.testing import frames as _frames
from rxibkr.testing.scheduler import scheduler_seconds

_LOGGER = logging.getLogger(__name__)

FrameLike = bytes | str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """Script value: the gateway closes the connection with a close frame (``|`` in marbles)."""

    code: int = 1000
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Drop:
    """Script value: the connection drops without a close frame (``#`` in marbles)."""

    error: BaseException | None = None


CLOSE = Close()
DROP = Drop()

ScriptItem = FrameLike | Close | Drop


def greeting_frames(username: str = "testuser", account: str = "DU1234567") -> list[bytes | str]:
    """What a gateway sends once the session is confirmed: ``system`` success, ``act``, ``sts``."""
    return [_frames.encode(frame) for frame in _frames.greeting(username, account)]


def _session_of(cookie: str | None) -> str | None:
    """The session id in an ``api={"session": "<id>"}`` cookie (or a raw ``api=<id>``)."""
    if not cookie or not cookie.startswith("api="):
        return None
    value = cookie[4:]
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value or None
    session = obj.get("session") if isinstance(obj, dict) else None
    return session if isinstance(session, str) else None


def _encode(frame: FrameLike) -> bytes | str:
    if isinstance(frame, bytes | str):
        return frame
    if isinstance(frame, bytearray | memoryview):
        return bytes(frame)
    return _frames.encode(dict(frame))


class FakeConnection:
    """One scripted connection. The test plays the gateway through :class:`FakeTransport`."""

    def __init__(
        self, transport: FakeTransport, conn_id: int, options: ConnectOptions, listener: TransportListener
    ) -> None:
        self.transport = transport
        self._id = conn_id
        self.options = options
        self.listener = listener
        self.opened = False
        self.closed = False
        self.close_code: int | None = None
        self.pings = 0
        self.cookie: str | None = None

    @property
    def id(self) -> int:
        return self._id

    def send(self, text: str) -> None:
        if self.closed or not self.opened:
            raise ConnectionClosedError("fake connection is not open")
        self.transport._record(self, text)

    def ping(self) -> None:
        if self.closed:
            return
        self.pings += 1
        if self.transport.auto_pong:
            self.transport._schedule(0.0, lambda: self.pong())

    def pong(self) -> None:
        if not self.closed:
            self.listener.on_pong(self)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.listener.on_close(self, code, reason, None)

    def join(self, timeout: float | None = None) -> bool:
        return True

    # -- the gateway's side ----------------------------------------------------------------------
    def open(self) -> None:
        if self.closed or self.opened:
            return
        self.opened = True
        self.listener.on_open(self)

    def receive(self, frame: FrameLike) -> None:
        """Deliver one frame from the gateway (a dict is JSON-encoded into a binary frame)."""
        if self.closed:
            return
        self.listener.on_frame(self, _encode(frame))

    def receive_part(self) -> None:
        """Part of a frame larger than one read arrives, not its end: the real transport tells the
        listener (``on_progress``), and the client's watchdogs wait again from now."""
        on_progress = getattr(self.listener, "on_progress", None)
        if not self.closed and on_progress is not None:
            on_progress(self)

    def drop(self, error: BaseException | None = None, code: int | None = None) -> None:
        """The server side goes away (TCP reset by default, or a close frame with ``code``)."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.listener.on_close(
            self, code, "", error if error is not None or code is not None else ConnectionResetError("reset")
        )


class FakeTransport:
    """Transport for virtual-time tests. Connections open ``open_delay`` after the client asks.

    ``greeting``: frames sent right after opening (default: ``greeting_frames()``); ``None`` for none.
    ``refuse``: how many upcoming connection attempts fail before one succeeds, raising ``refusal``
    (default ``ConnectionRefusedError``: a failure no retry can fix, so ``start()`` ends at once; a
    ``TimeoutError`` is one worth retrying).
    ``heartbeat_interval``: seconds between ``system`` heartbeats (None: none); ``heartbeats = False``
    silences them at any time. ``auto_pong``: answer the client's pings. ``timespan``: virtual seconds per
    marble character. ``answer_tic``: reply to the client's ``tic`` like the gateway (with the session id
    of the cookie when ``cookies`` is on, else ``"<session>"``). ``cookies``: call the client's cookie
    provider when a connection opens, as the real transport does before its handshake (the client then
    tickles its REST session and learns the session id); the cookie is kept in ``connection.cookie``.
    """

    def __init__(
        self,
        scheduler: abc.SchedulerBase,
        *,
        open_delay: float = 0.0,
        greeting: Iterable[FrameLike] | None = (),
        auto_pong: bool = True,
        refuse: int = 0,
        heartbeat_interval: float | None = 10.0,
        timespan: float = 1.0,
        answer_tic: bool = False,
        cookies: bool = False,
        refusal: BaseException | None = None,
    ) -> None:
        if not timespan > 0:
            raise ValueError(f"timespan: expected a positive number of seconds, got {timespan!r}")
        self.scheduler = scheduler
        self.open_delay = open_delay
        self.greeting: list[bytes | str] | None = (
            greeting_frames()
            if greeting == ()
            else ([_encode(f) for f in greeting] if greeting is not None else None)
        )
        self.auto_pong = auto_pong
        self.refuse = refuse
        self.refusal: BaseException = refusal if refusal is not None else ConnectionRefusedError("refused")
        self.connections: list[FakeConnection] = []
        self.sent: list[SentFrame] = []
        self.undelivered: list[tuple[float, ScriptItem]] = []
        self.stall = False
        self.heartbeat_interval = heartbeat_interval
        self.heartbeats = True  # set False to make the gateway go quiet (heartbeat watchdog tests)
        self.timespan = timespan
        self.answer_tic = answer_tic
        self.cookies = cookies

    # -- Transport protocol ------------------------------------------------------------------------
    def open(self, options: ConnectOptions, listener: TransportListener) -> FakeConnection:
        connection = FakeConnection(self, len(self.connections) + 1, options, listener)
        self.connections.append(connection)
        if self.refuse > 0:
            self.refuse -= 1
            refusal = self.refusal
            self._schedule(self.open_delay, lambda: connection.drop(refusal))
        elif not self.stall:
            self._schedule(self.open_delay, lambda: self._open(connection))
        return connection

    def _open(self, connection: FakeConnection) -> None:
        provider = connection.options.cookie_provider
        if self.cookies and provider is not None:
            try:
                connection.cookie = provider()
            except Exception as exc:  # the REST call failed: so does the connect
                connection.drop(exc)
                return
        connection.open()
        for frame in self.greeting or ():
            connection.receive(frame)
        if self.heartbeat_interval:
            self._heartbeat(connection)

    def _heartbeat(self, connection: FakeConnection) -> None:
        def beat() -> None:
            if connection.closed:
                return
            if self.heartbeats:
                connection.receive(_frames.hb(int(self.now * 1000)))
            self._heartbeat(connection)

        assert self.heartbeat_interval is not None
        self._schedule(self.heartbeat_interval, beat)

    # -- the gateway's side -------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """The scheduler's clock in seconds."""
        return scheduler_seconds(self.scheduler)

    @property
    def current(self) -> FakeConnection:
        """The newest connection (the one the client uses)."""
        if not self.connections:
            raise LookupError("the client has opened no connection yet")
        return self.connections[-1]

    def receive(self, frame: FrameLike) -> None:
        """Deliver a frame on the current connection."""
        self.current.receive(frame)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """The gateway closes the current connection with a close frame."""
        self.current.drop(code=code)

    def drop(self, error: BaseException | None = None) -> None:
        """The current connection drops (TCP reset by default)."""
        self.current.drop(error)

    def at(self, time: float, frame: FrameLike) -> None:
        """Deliver a frame on whatever connection is current at absolute virtual ``time``."""
        self.scheduler.schedule_absolute(time, lambda *_: self.receive(frame))

    def play(
        self,
        script: str | Iterable[tuple[float, ScriptItem]],
        lookup: Mapping[str, ScriptItem] | None = None,
        /,
        *,
        timespan: float | None = None,
        at: float | None = None,
        **frames: ScriptItem,
    ) -> abc.DisposableBase:
        """Schedule what the gateway sends: a marble diagram or a list of ``(seconds, frame)``.

        ``"--a--b|"`` with ``a=..., b=...`` (or a ``lookup`` dict): ``a`` at 2 x ``timespan`` (default
        ``self.timespan``, 1 virtual second), ``b`` at 5, the gateway closes the connection at 6.
        Times count from now, or from absolute virtual time ``at``. Returns a Disposable that cancels
        what has not been delivered yet.
        """
        start = self.now if at is None else float(at)
        if start < self.now:
            raise ValueError(f"at: {at!r} is in the past (the virtual clock is at {self.now!r})")
        timed = (
            self._parse_marbles(script, {**(lookup or {}), **frames}, timespan)
            if isinstance(script, str)
            else self._check_timed(script, lookup, frames)
        )
        disposables = CompositeDisposable()
        for offset, item in timed:

            def deliver(_s: Any, _st: Any, item: ScriptItem = item) -> None:
                self._deliver(item)

            disposables.add(self.scheduler.schedule_absolute(start + offset, deliver))
        return disposables

    def _parse_marbles(
        self, script: str, lookup: Mapping[str, ScriptItem], timespan: float | None
    ) -> list[tuple[float, ScriptItem]]:
        span = self.timespan if timespan is None else float(timespan)
        if not span > 0:
            raise ValueError(f"timespan: expected a positive number of seconds, got {timespan!r}")

        def frames_of(name: str) -> list[ScriptItem] | None:
            if name in lookup:
                return [lookup[name]]
            if len(name) > 1 and all(ch in lookup for ch in name):
                return [lookup[ch] for ch in name]  # "ab" = a then b, as in RxJS
            return None

        def missing(name: str) -> ValueError:
            return ValueError(
                f"marble {script!r}: element {name!r} has no frame; pass it as a keyword "
                f"({name}=frames.smd(...)) or in the lookup dict"
            )

        timed: list[tuple[float, ScriptItem]] = []
        tick = 0
        for group, dashes, comma, element in _MARBLE_TOKENS.findall(script.replace(" ", "")):
            time = tick * span
            if group:
                for name in group[1:-1].split(","):
                    if name in ("|", "#"):
                        timed.append((time, CLOSE if name == "|" else DROP))
                    elif name:
                        items = frames_of(name)
                        if items is None:
                            raise missing(name)
                        timed.extend((time, item) for item in items)  # a group: all at once
                tick += len(group)
            elif dashes:
                tick += len(dashes)
            elif comma:
                raise ValueError(f"marble {script!r}: a comma only separates the frames of a group: (a,b)")
            elif element:
                if element in ("|", "#"):
                    timed.append((time, CLOSE if element == "|" else DROP))
                else:
                    items = frames_of(element)
                    if items is None:
                        raise missing(element)
                    if len(items) == 1:
                        timed.append((time, items[0]))
                    else:
                        timed.extend((time + i * span, item) for i, item in enumerate(items))
                tick += len(element)
        return timed

    @staticmethod
    def _check_timed(
        script: Iterable[tuple[float, ScriptItem]],
        lookup: Mapping[str, ScriptItem] | None,
        frames: Mapping[str, ScriptItem],
    ) -> list[tuple[float, ScriptItem]]:
        if lookup or frames:
            raise TypeError("play(): a lookup or frame keywords only go with a marble string")
        timed: list[tuple[float, ScriptItem]] = []
        for entry in script:
            try:
                time, item = entry
                time = float(time)
            except (TypeError, ValueError):
                raise TypeError(f"play(): expected (seconds, frame) pairs, got {entry!r}") from None
            if time < 0:
                raise ValueError(f"play(): negative time {time!r}")
            timed.append((time, item))
        return timed

    def _deliver(self, item: ScriptItem) -> None:
        connection = self.connections[-1] if self.connections else None
        if connection is None or connection.closed or not connection.opened:
            _LOGGER.debug("no open connection at %.3f: %r not delivered", self.now, item)
            self.undelivered.append((self.now, item))
            return
        if isinstance(item, Close):
            connection.drop(code=item.code)
        elif isinstance(item, Drop):
            connection.drop(item.error)
        else:
            connection.receive(item)

    # -- what the client sent ------------------------------------------------------------------------
    def texts(self, connection: int | None = None) -> list[str]:
        """What the client sent, in order (of one connection, or all)."""
        return [f.text for f in self.sent if connection is None or f.connection == connection]

    def sent_matching(self, prefix: str) -> list[SentFrame]:
        """The sent frames whose text starts with ``prefix`` (``"smd"``, ``"umd+265598"``, ``"tic"``)."""
        return [f for f in self.sent if f.text.startswith(prefix)]

    def _record(self, connection: FakeConnection, text: str) -> None:
        self.sent.append(SentFrame(self.now, connection.id, text))
        if self.answer_tic and text == "tic":
            session = _session_of(connection.cookie) or "<session>"
            self._schedule(
                0.0, lambda: connection.receive(_frames.tic(session, last_accessed=int(self.now * 1000)))
            )

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        self.scheduler.schedule_relative(delay, lambda *_: fn())


__all__ = [
    "CLOSE",
    "DROP",
    "Close",
    "Drop",
    "FakeConnection",
    "FakeTransport",
    "FrameLike",
    "ScriptItem",
    "SentFrame",
    "greeting_frames",
]
