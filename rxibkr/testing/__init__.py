"""Testing kit: a scripted fake gateway in virtual time, frame factories, and a pytest plugin.

* :func:`virtual_client` -- a real ``IbkrWsClient`` on a ``TestScheduler``, through the greeting at 0.
* :class:`FakeTransport` -- the scripted gateway: marble diagrams or timed lists in, ``sent`` out.
* :mod:`rxibkr.testing.frames` -- server frames for every topic (``frames.smd(265598, last=1.5)``).
* :mod:`rxibkr.testing.plugin` -- pytest fixtures ``ibkr_virtual``, ``ibkr_sim``, ``ibkr_client``
  (registered through the ``pytest11`` entry point).

Record/replay of real sessions lives in :mod:`rxibkr.record`.
"""

from rxibkr.testing import frames
from rxibkr.testing.scheduler import run_due, scheduler_seconds
from rxibkr.testing.transport import (
    CLOSE,
    DROP,
    Close,
    Drop,
    FakeConnection,
    FakeTransport,
    SentFrame,
    greeting_frames,
)
from rxibkr.testing.virtual import VirtualClient, virtual_client

__all__ = [
    "CLOSE",
    "DROP",
    "Close",
    "Drop",
    "FakeConnection",
    "FakeTransport",
    "SentFrame",
    "VirtualClient",
    "frames",
    "greeting_frames",
    "run_due",
    "scheduler_seconds",
    "virtual_client",
]
