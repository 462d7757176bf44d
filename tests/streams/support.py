"""Helpers for the typed-stream tests: a real client on a TestScheduler with a scripted gateway."""

from __future__ import annotations

from typing import Any

import orjson
from reactivex.testing import TestScheduler
from waiting import wait_until  # noqa: F401 (re-exported to the tests of this area)

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState
from rxibkr.testing import FakeTransport

ACCOUNT = "DU1234567"
AAPL = 265598
IBM = 8314


class Rest:
    """A REST stand-in: live orders, tickle, auth status; counts the calls."""

    def __init__(self, orders: list[dict[str, Any]] | None = None) -> None:
        self.orders = orders or []
        self.live_orders_calls = 0
        self.fail = False

    def tickle(self) -> dict[str, Any]:
        return {"session": "0123456789abcdef0123456789abcdef"}

    def auth_status(self) -> dict[str, Any]:
        return {"authenticated": True}

    def live_orders(self, *, force: bool = False, filters: Any = None) -> dict[str, Any]:
        self.live_orders_calls += 1
        if self.fail:
            raise RuntimeError("REST is down")
        return {"orders": [dict(o) for o in self.orders], "snapshot": True}


def started(
    rest: Any = None, account_id: str | None = ACCOUNT, **kwargs: Any
) -> tuple[IbkrWsClient, FakeTransport, TestScheduler]:
    """A client on a TestScheduler, through the greeting (state AUTHENTICATED at t=0.001)."""
    scheduler = TestScheduler()
    transport = FakeTransport(scheduler, heartbeat_interval=kwargs.pop("heartbeat_interval", 10.0))
    options: dict[str, Any] = dict(
        url="wss://gateway.test/v1/api/ws",
        cacert=False,
        account_id=account_id,
        ping_interval=10,
        max_ping_interval=20,
        timeout=5,
        subscription_retries=3,
        subscription_timeout=2,
        reconnect_jitter=False,
        reconnect_backoff=(1.0, 8.0),
    )
    options.update(kwargs)
    client = IbkrWsClient(rest, scheduler=scheduler, transport=transport, **options)
    client.start()
    scheduler.advance_by(0.001)
    assert client.state.value is ConnectionState.AUTHENTICATED
    return client, transport, scheduler


def smd(conid: int, updated: int = 1, **fields: Any) -> dict[str, Any]:
    """An smd frame shaped as protocol §3.1 (bookkeeping keys, string prices)."""
    return {
        "server_id": "q1",
        "conidEx": str(conid),
        "conid": conid,
        "_updated": updated,
        "6119": "q1",
        **fields,
        "topic": f"smd+{conid}",
    }


def f(**fields: Any) -> dict[str, Any]:
    """Field ids as keyword arguments: ``f(_31="1.5")`` -> ``{"31": "1.5"}``."""
    return {k.lstrip("_"): v for k, v in fields.items()}


def sent(transport: FakeTransport, prefix: str = "") -> list[str]:
    return [t for t in transport.texts() if t != "tic" and t.startswith(prefix)]


def encode(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame)
