"""``virtual_client()``: a real ``IbkrWsClient`` on a ``TestScheduler`` with a scripted gateway.

The client is already through the greeting (state AUTHENTICATED at virtual time 0), so a strategy
test is a few lines::

    vc = virtual_client()
    prices = []
    vc.client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: prices.append(m.data["31"]))
    vc.gateway.play("-a-b", a=frames.smd(265598, last=1.0), b=frames.smd(265598, last=2.0))
    vc.scheduler.advance_by(5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reactivex.testing import TestScheduler

from rxibkr.client.core import IbkrWsClient
from rxibkr.testing import frames as _frames
from rxibkr.testing.scheduler import run_due, scheduler_seconds
from rxibkr.testing.transport import FakeTransport, FrameLike, SentFrame

VIRTUAL_URL = "ws://gateway.invalid/v1/api/ws"
"""The URL the virtual client is given (never connected to: the transport is fake; ws:// so no TLS setup)."""

_CLIENT_DEFAULTS: dict[str, Any] = {
    "url": VIRTUAL_URL,
    "account_id": _frames.DEFAULT_ACCOUNT,
    "cacert": False,
    "log_raw_messages": False,
    "ping_interval": 10.0,
    "max_ping_interval": 20.0,
    "timeout": 5.0,
    "subscription_retries": 5,
    "subscription_timeout": 2.0,
    "reconnect_jitter": False,
}


@dataclass(slots=True)
class VirtualClient:
    """A client, its scripted gateway and the virtual clock they share. A context manager (shutdown)."""

    client: IbkrWsClient
    gateway: FakeTransport
    scheduler: TestScheduler

    @property
    def now(self) -> float:
        """Virtual seconds since the client started."""
        return scheduler_seconds(self.scheduler)

    def advance_by(self, seconds: float) -> None:
        self.scheduler.advance_by(seconds)

    def advance_to(self, seconds: float) -> None:
        self.scheduler.advance_to(seconds)

    @property
    def sent(self) -> list[SentFrame]:
        """What the client sent, with virtual times (``gateway.sent``)."""
        return self.gateway.sent

    def receive(self, frame: FrameLike) -> None:
        """Deliver one frame now."""
        self.gateway.receive(frame)

    def shutdown(self) -> None:
        self.client.shutdown()

    def __enter__(self) -> VirtualClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()


def virtual_client(
    *,
    scheduler: TestScheduler | None = None,
    greeting: list[FrameLike] | None = None,
    heartbeat_interval: float | None = 10.0,
    timespan: float = 1.0,
    answer_tic: bool = False,
    start: bool = True,
    **client_kwargs: Any,
) -> VirtualClient:
    """A started ``IbkrWsClient`` on a ``TestScheduler``, through the greeting at virtual time 0.

    ``greeting``: the frames the fake gateway sends on every connect (default: ``frames.greeting()``);
    ``heartbeat_interval``: seconds between gateway heartbeats (None: none); ``timespan``: virtual seconds
    per marble character; ``answer_tic``: the gateway answers ``tic``. ``start=False`` leaves the client
    stopped (call ``vc.client.start()`` and advance yourself). Other keywords go to ``IbkrWsClient``;
    the defaults are explicit (no environment variables), jitter-free and quiet.
    """
    scheduler = scheduler if scheduler is not None else TestScheduler()
    gateway = FakeTransport(
        scheduler,
        greeting=greeting if greeting is not None else _frames.greeting(),
        heartbeat_interval=heartbeat_interval,
        timespan=timespan,
        answer_tic=answer_tic,
    )
    options = {**_CLIENT_DEFAULTS, **client_kwargs}
    client = IbkrWsClient(scheduler=scheduler, transport=gateway, **options)
    if start:
        client.start()
        run_due(scheduler)
    return VirtualClient(client, gateway, scheduler)


__all__ = ["VIRTUAL_URL", "VirtualClient", "virtual_client"]
