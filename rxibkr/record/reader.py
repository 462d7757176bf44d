"""Reading a recording: its connection attempts, their frames and how each ended."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from rxibkr.protocol import IbkrWsKey, Message, MessageKind, decode
from rxibkr.record.files import TruncatedRecordingWarning, read_lines
from rxibkr.record.format import CLOSED_BY, FORMAT, FORMAT_VERSION, decode_frame


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
    missing): its greeting is not in the file; ``state``: the client's state then (format 2), e.g.
    ``"authenticated"``. ``t_close`` is None when the recording ended while the connection was open;
    ``closed_by``: ``"client"``, ``"server"`` or ``"unknown"`` (format 1, or not known), ``close_code``
    the WebSocket close code when there was one.
    """

    index: int
    t_open: float
    opened: bool = True
    t_close: float | None = None
    conn: int | None = None
    attached: bool = False
    state: str | None = None
    closed_by: str | None = None
    close_code: int | None = None
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
        return any(is_confirmation(decode(f.data)) for f in self.incoming)


def is_confirmation(message: Message) -> bool:
    data = message.data
    if message.kind is not MessageKind.DATA or data is None:
        return False
    if message.key is IbkrWsKey.SYSTEM:
        return "success" in data
    if message.key is IbkrWsKey.AUTHENTICATION_STATUS:
        args = data.get("args")
        return isinstance(args, dict) and args.get("authenticated") is True
    return False


@dataclass(slots=True)
class Recording:
    """A parsed recording: its connection attempts in order; ``version``: the format version (1 when
    the file has no header line; the highest when recorders of several versions appended to it)."""

    connections: list[RecordedConnection]
    version: int = 1
    name: str = "<lines>"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recording:
        """Read a recording file (JSON Lines, or zstandard-compressed when it ends in ``.zst``).

        A file cut short by a killed recorder loads up to its last complete line, with a
        :class:`~rxibkr.record.TruncatedRecordingWarning`; anything else that is not the format raises
        ValueError naming the file and the line."""
        return cls.parse(read_lines(path), name=str(path))

    @classmethod
    def parse(cls, lines: Iterable[bytes | str | tuple[int, bytes]], name: str = "<lines>") -> Recording:
        """Parse recording lines (or ``(line number, line)`` pairs); ValueError naming the line for anything
        that is not the format."""
        parser = _Parser(name)
        for index, item in enumerate(lines, 1):
            line: bytes | str
            lineno, line = item if isinstance(item, tuple) else (index, item)
            parser.feed(lineno, line)
        parser.end()
        return cls(parser.connections, parser.version, name)

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


class _Parser:
    def __init__(self, name: str) -> None:
        self.name = name
        self.connections: list[RecordedConnection] = []
        self.current: RecordedConnection | None = None
        self.version = 1
        self._bad: tuple[int, str] | None = None  # an unparseable line: a cut line if a header follows

    def _where(self, lineno: int) -> str:
        return f"line {lineno}" if self.name == "<lines>" else f"{self.name}, line {lineno}"

    def new(self, t: float, **kwargs: Any) -> RecordedConnection:
        conn = RecordedConnection(len(self.connections), t, **kwargs)
        self.connections.append(conn)
        return conn

    def feed(self, lineno: int, line: bytes | str) -> None:
        if not line.strip():
            return
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if self._bad is not None:
                self._raise_bad()
            self._bad = (lineno, str(exc))
            return
        if self._bad is not None:
            if isinstance(obj, dict) and obj.get("format") == FORMAT:
                bad_line = self._bad[0]
                warnings.warn(
                    TruncatedRecordingWarning(
                        f"{self.name}: line {bad_line} is incomplete (a recorder was killed there and "
                        "another appended); skipped"
                    ),
                    stacklevel=4,
                )
                self._bad = None
            else:
                self._raise_bad()
        self._line(lineno, obj)

    def _raise_bad(self) -> None:
        assert self._bad is not None
        lineno, error = self._bad
        raise ValueError(f"{self._where(lineno)}: not JSON ({error})")

    def end(self) -> None:
        if self._bad is not None:
            self._raise_bad()

    def _line(self, lineno: int, obj: Any) -> None:
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            version = obj.get("version")
            if not isinstance(version, int) or version < 1:
                raise ValueError(f"{self._where(lineno)}: bad format version {version!r}")
            if version > FORMAT_VERSION:
                raise ValueError(
                    f"{self._where(lineno)}: format version {version} is newer than this rxibkr reads "
                    f"({FORMAT_VERSION}); upgrade rxibkr"
                )
            self.version = max(self.version, version)
            if self.current is not None and self.current.t_close is None:
                self.current = None  # a new recorder: the previous one's connection ended with it
            return
        if not isinstance(obj, dict) or not isinstance(obj.get("t"), int | float):
            raise ValueError(f"{self._where(lineno)}: expected an object with a numeric 't'")
        t = float(obj["t"])
        direction = obj.get("dir")
        current = self.current
        if direction == "meta":
            event = obj.get("event")
            conn_id = obj.get("conn")
            if event == "open":
                if current is not None and current.t_close is None:
                    current.t_close = t  # its close line is missing
                state = obj.get("state")
                self.current = self.new(
                    t,
                    conn=conn_id,
                    attached=bool(obj.get("attached", False)),
                    state=state if isinstance(state, str) else None,
                )
            elif event == "close":
                by = obj.get("by", "unknown")
                if by not in CLOSED_BY:
                    raise ValueError(f"{self._where(lineno)}: 'by' must be one of {CLOSED_BY}, got {by!r}")
                code = obj.get("code")
                code = code if isinstance(code, int) and not isinstance(code, bool) else None
                if current is not None and (
                    conn_id is None or current.conn is None or current.conn == conn_id
                ):
                    current.t_close = t
                    current.closed_by = by
                    current.close_code = code
                    self.current = None
                else:  # no open connection: an attempt that failed
                    self.new(t, opened=False, t_close=t, conn=conn_id, closed_by=by, close_code=code)
            else:
                raise ValueError(f"{self._where(lineno)}: unknown meta event {event!r}")
        elif direction in ("in", "out"):
            if current is None:  # frames before any open line: the recording began mid-connection
                current = self.current = self.new(t, attached=True)
            current.frames.append(RecordedFrame(t, direction, decode_frame(obj, self._where(lineno))))
        else:
            raise ValueError(f"{self._where(lineno)}: 'dir' must be 'in', 'out' or 'meta', got {direction!r}")


__all__ = ["RecordedConnection", "RecordedFrame", "Recording", "is_confirmation"]
