"""A client pointed at a simulator: its URL, CA certificate and account come from the simulator,
every other option from the test (``from simclient import sim_client, running_client``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rxibkr import IbkrWsClient


def sim_client(sim: Any, **options: Any) -> IbkrWsClient:
    """An unstarted client for ``sim``; ``options`` may override the simulator's own values too."""
    return IbkrWsClient(**{"url": sim.ws_url, "cacert": sim.cacert, "account_id": sim.account, **options})


@contextmanager
def running_client(sim: Any, **options: Any) -> Iterator[IbkrWsClient]:
    """A client for ``sim`` that has started (asserted), shut down when the block ends."""
    client = sim_client(sim, **options)
    try:
        assert client.start() is True
        yield client
    finally:
        client.shutdown()
