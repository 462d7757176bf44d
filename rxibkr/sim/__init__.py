"""A gateway simulator for the IBKR Client Portal Web API (REST + WebSocket on one port).

It is an independent implementation of the gateway side of the protocol described in the shared
protocol reference, used as the test peer of the rxibkr client: the client only ever talks to it
over real sockets. Needs the ``sim`` extra (aiohttp, trustme).

    >>> from rxibkr.sim import GatewaySimulator
    >>> with GatewaySimulator(seed=1) as sim:          # doctest: +SKIP
    ...     print(sim.ws_url, sim.cacert, sim.session_id)
"""

from __future__ import annotations

from rxibkr.sim.gateway import ReceivedFrame
from rxibkr.sim.server import GatewaySimulator

__all__ = ["GatewaySimulator", "ReceivedFrame"]
