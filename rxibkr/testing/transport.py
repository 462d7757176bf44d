"""A fake transport for virtual-time tests: the "gateway" is scripted, the client is real.

``FakeTransport(scheduler)`` opens :class:`FakeConnection` objects instead of sockets. Opening,
greeting, pongs and scripted frames happen on the given scheduler (normally a ``TestScheduler``),
and everything the client sends is recorded with its virtual time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from reactivex import abc

from rxibkr.transport import ConnectionClosedError, ConnectOptions, TransportListener


@dataclass(frozen=True, slots=True)
class SentFrame:
    """A frame the client sent: when (scheduler seconds), on which connection, what."""

    time: float
    connection: int
    text: str


def greeting_frames(username: str = "testuser", account: str = "DU1234567") -> list[bytes | str]:
    """What a gateway sends once the session is confirmed: ``system`` success, ``act``, ``sts``."""
    return [
        orjson.dumps({"topic": "system", "success": username, "isFT": False, "isPaper": True}),
        orjson.dumps({"topic": "act", "args": {"accounts": [account], "selectedAccount": account}}),
        orjson.dumps(
            {
                "topic": "sts",
                "args": {"connected": True, "authenticated": True, "established": True, "competing": False},
            }
        ),
    ]


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

    def receive(self, frame: bytes | str | dict[str, Any]) -> None:
        """Deliver one frame from the gateway (a dict is JSON-encoded into a binary frame)."""
        if self.closed:
            return
        data = orjson.dumps(frame) if isinstance(frame, dict) else frame
        self.listener.on_frame(self, data)

    def drop(self, error: BaseException | None = None, code: int | None = None) -> None:
        """The server side goes away (TCP reset by default, or a close frame with ``code``)."""
        if self.closed:
            return
        self.closed = True
        self.listener.on_close(
            self, code, "", error if error is not None or code is not None else ConnectionResetError("reset")
        )


class FakeTransport:
    """Transport for virtual-time tests. Connections open ``open_delay`` after the client asks.

    ``refuse``: how many upcoming connection attempts fail (connection refused) before one succeeds.
    ``greeting``: frames sent right after opening (default: ``greeting_frames()``); ``None`` for none.
    """

    def __init__(
        self,
        scheduler: abc.SchedulerBase,
        *,
        open_delay: float = 0.0,
        greeting: Iterable[bytes | str] | None = (),
        auto_pong: bool = True,
        refuse: int = 0,
        heartbeat_interval: float | None = 10.0,
    ) -> None:
        self.scheduler = scheduler
        self.open_delay = open_delay
        self.greeting: list[bytes | str] | None = (
            greeting_frames() if greeting == () else (list(greeting) if greeting is not None else None)
        )
        self.auto_pong = auto_pong
        self.refuse = refuse
        self.connections: list[FakeConnection] = []
        self.sent: list[SentFrame] = []
        self.stall = False
        self.heartbeat_interval = heartbeat_interval
        self.heartbeats = True  # set False to make the gateway go quiet (heartbeat watchdog tests)

    # -- Transport protocol ------------------------------------------------------------------------
    def open(self, options: ConnectOptions, listener: TransportListener) -> FakeConnection:
        connection = FakeConnection(self, len(self.connections) + 1, options, listener)
        self.connections.append(connection)
        if self.refuse > 0:
            self.refuse -= 1
            self._schedule(self.open_delay, lambda: connection.drop(ConnectionRefusedError("refused")))
        elif not self.stall:
            self._schedule(self.open_delay, lambda: self._open(connection))
        return connection

    def _open(self, connection: FakeConnection) -> None:
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
                connection.receive({"topic": "system", "hb": int(self._now() * 1000)})
            self._heartbeat(connection)

        assert self.heartbeat_interval is not None
        self._schedule(self.heartbeat_interval, beat)

    # -- the gateway's side -------------------------------------------------------------------------
    @property
    def current(self) -> FakeConnection:
        """The newest connection (the one the client uses)."""
        if not self.connections:
            raise LookupError("the client has opened no connection yet")
        return self.connections[-1]

    def receive(self, frame: bytes | str | dict[str, Any]) -> None:
        """Deliver a frame on the current connection."""
        self.current.receive(frame)

    def at(self, time: float, frame: bytes | str | dict[str, Any]) -> None:
        """Deliver a frame on whatever connection is current at absolute virtual ``time``."""
        self.scheduler.schedule_absolute(time, lambda *_: self.receive(frame))

    def texts(self, connection: int | None = None) -> list[str]:
        """What the client sent, in order (of one connection, or all)."""
        return [f.text for f in self.sent if connection is None or f.connection == connection]

    def _record(self, connection: FakeConnection, text: str) -> None:
        self.sent.append(SentFrame(self._now(), connection.id, text))

    def _now(self) -> float:
        return (
            float(self.scheduler.now.timestamp())
            if not hasattr(self.scheduler, "_clock")
            else float(self.scheduler._clock)
        )

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        self.scheduler.schedule_relative(delay, lambda *_: fn())
