"""Regenerate the proposal diffs from the prototypes, against the committed rxibkr (``git show HEAD:``).

    python -m benchmarks.proposals.make_diffs

The prototypes in ``benchmarks/prototypes.py`` are the source of truth: the framing diff is the
``framing_read_loop`` function made a method, the buffered diff is ``BufferedRecv``, the dispatch
diff is ``dispatch_on_frame``. Each diff is checked with ``git apply --check`` against HEAD.
"""

from __future__ import annotations

import difflib
import inspect
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks import prototypes

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

TRANSPORT = "rxibkr/transport.py"
CLIENT = "rxibkr/client.py"


def committed(path: str) -> str:
    return subprocess.run(
        ["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def unified(path: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return "".join(lines)


def _replace_once(text: str, old: str, new: str) -> str:
    if old not in text:
        raise SystemExit(f"anchor not found (rxibkr changed?): {old.strip()[:80]!r}")
    return text.replace(old, new, 1)


def _method(source: str) -> str:
    return textwrap.indent(source, "    ").replace("    \n", "\n")


def framing(transport: str) -> str:
    src = inspect.getsource(prototypes.framing_read_loop)
    src = src.replace(
        "def framing_read_loop(self: Any, ws: websocket.WebSocket)",
        "def _read_loop(self, ws: websocket.WebSocket)",
    )
    src = re.sub(r"\bREAD_SIZE\b", "_READ_SIZE", src)
    start = transport.index("    def _read_loop(self, ws: websocket.WebSocket)")
    end = transport.index("\n\n\n", start) + 1
    new = transport[:start] + _method(src).rstrip("\n") + "\n" + transport[end:]
    return _replace_once(
        new,
        'CookieProvider = Callable[[], "str | None"]\n',
        'CookieProvider = Callable[[], "str | None"]\n\n_READ_SIZE = 65536\n'
        '"""Bytes asked of the socket per read: one read serves hundreds of small frames."""\n',
    )


def buffered(transport: str) -> str:
    src = inspect.getsource(prototypes.BufferedRecv).replace("class BufferedRecv:", "class _BufferedRecv:")
    src = re.sub(r"\bREAD_SIZE\b", "_READ_SIZE", src)
    new = _replace_once(transport, "class WebSocketTransport:", src + "\n\nclass WebSocketTransport:")
    new = _replace_once(
        new,
        'CookieProvider = Callable[[], "str | None"]\n',
        'CookieProvider = Callable[[], "str | None"]\n\n_READ_SIZE = 65536\n',
    )
    anchor = "        ws.settimeout(None)  # reads block; close() aborts the socket to end them\n"
    new = _replace_once(
        new,
        anchor,
        anchor
        + "        # websocket-client reads header, length and payload with one recv each: buffer them\n"
        "        ws.frame_buffer.recv = _BufferedRecv(ws.sock)\n",
    )
    if "from typing import Protocol\n" in new:
        new = new.replace("from typing import Protocol\n", "from typing import Any, Protocol\n", 1)
    return new


DISPATCH_EDITS: tuple[tuple[str, str], ...] = (
    (
        "        self._frames.on_next(data)\n",
        "        frames = self._frames\n        if frames._observers:\n            frames.on_next(data)\n",
    ),
    (
        "        self._subjects[key].on_next(message)  # type: ignore[index]\n"
        "        if key in self._queued_keys:\n",
        "        # market data, the bulk of the traffic: by identity, and no control checks\n"
        "        if key is _MARKET_DATA:\n"
        "            self._market_data_subject.on_next(message)\n"
        "        else:\n"
        "            self._subjects[key].on_next(message)  # type: ignore[index]\n"
        "        queued = self._queued_keys\n"
        "        if queued and key in queued:\n",
    ),
    (
        "        if (\n            message.kind is not _DATA or",
        "        if key is not _MARKET_DATA and (\n            message.kind is not _DATA or",
    ),
)


def dispatch(client: str) -> str:
    start = client.index("    def on_frame(self, connection: Connection, data: bytes | str) -> None:")
    end = client.index("    def on_pong(self, connection: Connection) -> None:")
    method = client[start:end]
    for old, new in DISPATCH_EDITS:
        method = _replace_once(method, old, new)
    new = client[:start] + method + client[end:]
    anchor = "_SYSTEM = IbkrWsKey.SYSTEM\n"
    new = _replace_once(new, anchor, anchor + "_MARKET_DATA = IbkrWsKey.MARKET_DATA\n")
    anchor = "            key: HotSubject(self._on_observer_error) for key in IbkrWsKey\n        }\n"
    return _replace_once(
        new, anchor, anchor + "        self._market_data_subject = self._subjects[IbkrWsKey.MARKET_DATA]\n"
    )


def main() -> int:
    transport, client = committed(TRANSPORT), committed(CLIENT)
    outputs = {
        "transport-framing.diff": unified(TRANSPORT, transport, framing(transport)),
        "transport-buffered.diff": unified(TRANSPORT, transport, buffered(transport)),
        "client-dispatch.diff": unified(CLIENT, client, dispatch(client)),
    }
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(f"git archive HEAD rxibkr | tar -x -C {tmp}", cwd=ROOT, shell=True, check=True)
        for name, text in outputs.items():
            (HERE / name).write_text(text, encoding="utf-8")
            check = subprocess.run(
                ["git", "apply", "--check", str(HERE / name)], cwd=tmp, capture_output=True, text=True
            )
            status = "applies to HEAD" if check.returncode == 0 else f"DOES NOT APPLY: {check.stderr.strip()}"
            failed |= check.returncode != 0
            print(f"{name}: {len(text.splitlines())} lines, {status}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
