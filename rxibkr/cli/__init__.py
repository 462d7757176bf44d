"""The ``rxibkr`` command line: one entry point (:func:`rxibkr.cli.main.main`), one module per sub-command."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType


def _exit_interrupted(_signum: int, _frame: FrameType | None) -> None:
    os._exit(130)  # nothing started yet: nothing to clean up


def _quiet_early_interrupts() -> None:
    """Started as the ``rxibkr`` command (not imported by a program): a Ctrl-C while the command is
    still importing its modules exits with 130 and no traceback. ``main()`` then installs its own
    handlers (a clean stop) for as long as it runs."""
    if os.path.basename(sys.argv[0] if sys.argv else "") not in ("rxibkr", "__main__.py"):
        return
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _exit_interrupted)


_quiet_early_interrupts()
