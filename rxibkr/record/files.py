"""Opening recordings for writing and reading: plain JSON Lines, or zstandard-compressed (``.zst``).

Writing: :func:`open_sink` returns a :class:`Sink` whose ``flush()`` makes everything written so far
durable against a killed process (the OS has it): a plain file is flushed, a ``.zst`` file ends its
current zstandard frame, so the file decompresses up to there whatever happens next.

Reading: :func:`read_lines` yields ``(line number, line)``. A file cut short by a killed recorder (its
last line incomplete, or its last zstandard frame) loads up to its last complete line with a
:class:`TruncatedRecordingWarning` naming the file and the line; corrupted compressed data raises
ValueError naming the file and the byte offset of the frame.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

_CHUNK = 1 << 20
_BUFFER = 1 << 16


class TruncatedRecordingWarning(UserWarning):
    """A recording ends in an incomplete line or frame (its recorder was killed): loaded up to before it."""


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def is_zst(path: str | os.PathLike[str]) -> bool:
    return str(path).endswith(".zst")


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - the data extra is not installed
        raise ImportError(
            "reading or writing .zst recordings needs the zstandard package: pip install 'rxibkr[data]'"
        ) from exc
    return zstandard


class _PlainSink:
    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = open(path, "ab", buffering=_BUFFER)
        # a previous recorder killed mid-line: start ours on a line of its own
        if self._file.tell() > 0:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    self._file.write(b"\n")

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _ZstdSink:
    """Appends zstandard frames: each ``flush()`` ends one (checksummed), the next write starts another."""

    def __init__(self, path: Path, level: int = 3) -> None:
        zstandard = _zstandard()
        if path.exists() and path.stat().st_size > 0:
            _check_complete(path)
        self._flush_frame = zstandard.FLUSH_FRAME
        self._file: BinaryIO = open(path, "ab", buffering=_BUFFER)
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
        self._writer = compressor.stream_writer(self._file, closefd=False, write_return_read=True)
        self._dirty = False

    def write(self, data: bytes) -> None:
        self._writer.write(data)
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self._writer.flush(self._flush_frame)
            self._dirty = False
        self._file.flush()

    def close(self) -> None:
        try:
            self.flush()
            self._writer.close()
        finally:
            self._file.close()


def _check_complete(path: Path) -> None:
    """Appending after an incomplete frame would make the rest unreadable: refuse."""
    with warnings.catch_warnings(record=True) as caught, open(path, "rb") as f:
        warnings.simplefilter("always", TruncatedRecordingWarning)
        for _ in _zstd_chunks(f, str(path)):
            pass
    if any(issubclass(w.category, TruncatedRecordingWarning) for w in caught):
        raise ValueError(
            f"{path}: ends in an incomplete zstandard frame (its recorder was killed); appending would make "
            "the rest unreadable: record to a new file (the old one still loads)"
        )


def open_sink(path: str | os.PathLike[str]) -> Sink:
    """Open ``path`` for appending recording lines (zstandard-compressed when it ends in ``.zst``)."""
    p = Path(path)
    return _ZstdSink(p) if is_zst(p) else _PlainSink(p)


# =================================================================================================
# reading
# =================================================================================================
def _plain_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def _zstd_chunks(f: BinaryIO, name: str) -> Iterator[bytes]:
    """Decompressed data of every zstandard frame; warns on an incomplete last frame."""
    zstandard = _zstandard()
    dctx = zstandard.ZstdDecompressor()
    obj = dctx.decompressobj()
    frame_start = 0  # compressed offset of the current frame
    consumed = 0  # compressed bytes handed to decompressors so far
    fed = False
    buf = f.read(_CHUNK)
    while buf:
        try:
            out = obj.decompress(buf)
        except zstandard.ZstdError as exc:
            raise ValueError(
                f"{name}: corrupted zstandard data in the frame starting at byte {frame_start} ({exc})"
            ) from None
        fed = True
        consumed += len(buf)
        if out:
            yield out
        if obj.eof:
            rest = obj.unused_data
            frame_start = consumed - len(rest)
            consumed = frame_start
            obj = dctx.decompressobj()
            fed = False
            buf = rest if rest else f.read(_CHUNK)
        else:
            buf = f.read(_CHUNK)
    if fed:
        warnings.warn(
            TruncatedRecordingWarning(
                f"{name}: the last zstandard frame (from byte {frame_start}) is incomplete, "
                "the recorder was probably killed; loaded what it holds"
            ),
            stacklevel=4,
        )


def read_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a recording file, plain or ``.zst``; an incomplete last line is left out
    with a :class:`TruncatedRecordingWarning`."""
    name = str(path)
    with open(path, "rb") as f:
        chunks = _zstd_chunks(f, name) if is_zst(path) else _plain_chunks(f)
        lineno = 0
        tail = b""
        for chunk in chunks:
            data = tail + chunk if tail else chunk
            lines = data.split(b"\n")
            tail = lines.pop()
            for line in lines:
                lineno += 1
                yield lineno, line
        if tail.strip():
            lineno += 1
            if _complete(tail):
                yield lineno, tail
            else:
                warnings.warn(
                    TruncatedRecordingWarning(
                        f"{name}: line {lineno} is incomplete (the recorder was probably killed); "
                        f"loaded up to line {lineno - 1}"
                    ),
                    stacklevel=3,
                )


def _complete(line: bytes) -> bool:
    import orjson

    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


__all__ = ["Sink", "TruncatedRecordingWarning", "is_zst", "open_sink", "read_lines"]
