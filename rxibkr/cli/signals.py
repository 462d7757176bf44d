"""Signals and closed pipes, as standard Unix tools handle them.

While ``rxibkr`` runs (:func:`handled`, installed by ``main()`` in the main thread): Ctrl-C (SIGINT),
SIGTERM and SIGHUP raise :class:`Stopped` (a ``KeyboardInterrupt``) in the main thread once; commands
catch it, stop cleanly and print one line. Further signals during that clean stop are noted, not
raised (a second Ctrl-C exits at once, without clean-up). Inside :func:`deferred` (starting or
stopping something that must not be cut in half: the simulator and its temporary CA) a signal waits
for the end of the block. A closed stdout (``| head``) ends the command quietly with exit code 141.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rxibkr.cli.options import EXIT_INTERRUPTED, EXIT_OK

_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class Stopped(KeyboardInterrupt):
    """A stop asked for by a signal: ``name`` is SIGINT (Ctrl-C), SIGTERM or SIGHUP."""

    def __init__(self, name: str = "SIGINT") -> None:
        super().__init__(name)
        self.name = name

    @property
    def exit_code(self) -> int:
        """130 for Ctrl-C (interrupted); 0 for SIGTERM and SIGHUP (a requested, clean stop)."""
        return EXIT_INTERRUPTED if self.name == "SIGINT" else EXIT_OK

    @property
    def reason(self) -> str:
        return "interrupted" if self.name == "SIGINT" else f"stopped by {self.name}"


def exit_code_of(exc: KeyboardInterrupt) -> int:
    return exc.exit_code if isinstance(exc, Stopped) else EXIT_INTERRUPTED


class _State:
    def __init__(self) -> None:
        self.fired = False
        self.defer = 0
        self.pending: Stopped | None = None
        self.interrupts = 0

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        name = _NAMES.get(signal.Signals(signum), str(signum))
        if name == "SIGINT":
            self.interrupts += 1
            if self.fired and self.interrupts > 1:  # Ctrl-C twice: the user wants out now
                os.write(2, b"rxibkr: interrupted twice; exiting without clean-up\n")
                os._exit(EXIT_INTERRUPTED)
        if self.fired or self.defer:
            if self.pending is None:
                self.pending = Stopped(name)
            return
        self.fired = True
        raise Stopped(name)


_state: _State | None = None


@contextmanager
def handled() -> Iterator[None]:
    """Install the handlers (main thread only; elsewhere nothing changes); restore them after."""
    global _state
    if threading.current_thread() is not threading.main_thread() or _state is not None:
        yield
        return
    state = _State()
    previous = {}
    for sig in _NAMES:
        previous[sig] = signal.signal(sig, state.handle)
    _state = state
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _state = None


@contextmanager
def deferred() -> Iterator[None]:
    """A signal arriving inside the block is raised at its end (if nothing stopped already)."""
    state = _state
    if state is None:
        yield
        return
    state.defer += 1
    try:
        yield
    finally:
        state.defer -= 1
    if state.defer == 0 and state.pending is not None and not state.fired:
        stop, state.pending = state.pending, None
        state.fired = True
        raise stop


def stopping() -> None:
    """The command is stopping by itself: a signal from now on is noted, not raised."""
    if _state is not None:
        _state.fired = True


def pending() -> Stopped | None:
    """A signal noted while the command was stopping (its exit code wins over a normal end)."""
    return _state.pending if _state is not None else None


def is_broken_pipe(exc: BaseException) -> bool:
    return isinstance(exc, BrokenPipeError) or (isinstance(exc, OSError) and exc.errno == 32)


def silence_stdout() -> None:
    """After a broken pipe: stdout goes to /dev/null, so that nothing (the final flush at exit
    included) complains about the closed pipe."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)


__all__ = [
    "Stopped",
    "deferred",
    "exit_code_of",
    "handled",
    "is_broken_pipe",
    "pending",
    "silence_stdout",
    "stopping",
]
