"""Processes for the remote tests: ``rxibkr serve`` and consumer processes, their output collected."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from waiting import wait_until  # noqa: F401 (re-exported to the tests of this area)

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    """A child process whose stdout lines (JSON or text) and stderr are collected by threads."""

    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[Any] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.lines, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _read(stream: Any, into: list[Any], as_json: bool) -> None:
        for line in stream:
            if as_json and line.startswith("{"):
                into.append(json.loads(line))
            else:
                into.append(line.rstrip("\n"))

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in list(self.lines) if isinstance(e, dict) and e.get("t") == kind]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def terminate(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def describe(self) -> str:
        return f"exit={self.process.poll()} stdout={self.lines[-5:]} stderr={self.stderr[-20:]}"


def start_serve(redis_url: str, sim: Any, lease_ttl: float, *extra: str) -> Proc:
    return Proc(
        [
            "-m",
            "rxibkr",
            "serve",
            "--redis",
            redis_url,
            "--url",
            sim.ws_url,
            "--cacert",
            sim.cacert,
            "--account",
            sim.account,
            "--lease-ttl",
            str(lease_ttl),
            *extra,
        ]
    )


def start_consumer(redis_url: str, lease_ttl: float, *conids: int) -> Proc:
    return Proc(["-m", "tests.remote.consumer", redis_url, str(lease_ttl), *map(str, conids)])
