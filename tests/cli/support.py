"""Run the installed ``rxibkr`` console script in a subprocess, bounded."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from waiting import wait_for  # noqa: F401 (re-exported to the tests of this area)


def command() -> list[str]:
    """The console script installed next to this interpreter (``pip install -e .``), else ``-m rxibkr``."""
    script = Path(sys.executable).with_name("rxibkr")
    if script.exists():
        return [str(script)]
    found = shutil.which("rxibkr")
    return [found] if found else [sys.executable, "-m", "rxibkr"]


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("RXIBKR_", "PYTHONWARNINGS"))}
    out.update(extra)
    return out


def rxibkr(*args: str, timeout: float = 60.0, environ: dict[str, str] | None = None) -> Result:
    started = time.monotonic()
    proc = subprocess.run(
        [*command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=environ if environ is not None else env(),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def popen(*args: str, environ: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*command(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ if environ is not None else env(),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def handles(pid: int, signals: Sequence[int]) -> bool:
    """True once the process catches every one of ``signals`` (Linux: /proc/PID/status SigCgt)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return all(mask & (1 << (s - 1)) for s in signals)
    return False


def finish(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> tuple[int, bytes, bytes]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    return proc.returncode, out, err
