"""Testing kit: a scripted fake gateway in virtual time, frame factories, and a pytest plugin.

* :func:`virtual_client` -- a real ``IbkrWsClient`` on a ``TestScheduler``, through the greeting at 0.
* :class:`FakeTransport` -- the scripted gateway: marble diagrams or timed lists in, ``sent`` out.
* :mod:`rxibkr.testing.frames` -- server frames for every topic (``frames.smd(265598, last=1.5)``).
* :mod:`rxibkr.testing.plugin` -- pytest fixtures ``ibkr_virtual``, ``ibkr_sim``, ``ibkr_client``
  (registered through the ``pytest11`` entry point).

Record/replay of real sessions lives in :mod:`rxibkr.record.recording`. The names below are imported on first
use, so that loading the pytest plugin (a submodule) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE: dict[str, str] = {
    "frames": "rxibkr.testing.frames",
    "run_due": "rxibkr.testing.scheduler",
    "scheduler_seconds": "rxibkr.testing.scheduler",
    "CLOSE": "rxibkr.testing.transport",
    "DROP": "rxibkr.testing.transport",
    "Close": "rxibkr.testing.transport",
    "Drop": "rxibkr.testing.transport",
    "FakeConnection": "rxibkr.testing.transport",
    "FakeTransport": "rxibkr.testing.transport",
    "SentFrame": "rxibkr.testing.transport",
    "greeting_frames": "rxibkr.testing.transport",
    "VirtualClient": "rxibkr.testing.virtual",
    "virtual_client": "rxibkr.testing.virtual",
}

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


def __getattr__(name: str) -> Any:
    module_name = _WHERE.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rxibkr.testing' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if name == "frames" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
