"""The few REST calls the socket needs, over the gateway's REST API (``/v1/api``).

``IbkrSession`` is deliberately small: tickle (the session id for the socket cookie), auth status,
reauthenticate, accounts, live orders, and the order calls the examples use. IBind's ``IbkrClient``
or anything else with a ``tickle()`` can stand in for it.
"""

from __future__ import annotations

import logging
import os
import ssl
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import urllib3

_LOGGER = logging.getLogger(__name__)


class SessionError(RuntimeError):
    """A REST call failed: connection refused, timeout, TLS failure or an HTTP error status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


_warned_insecure = False


def make_ssl_context(cacert: str | bool) -> ssl.SSLContext:
    """An SSL context verifying against ``cacert`` (a PEM path), the system store (True), or nothing (False).

    ``False`` disables verification for the gateway's self-signed certificate and warns once per process.
    A path that does not exist raises ValueError.
    """
    global _warned_insecure
    if cacert is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if not _warned_insecure:
            _warned_insecure = True
            warnings.warn(
                "rxibkr: TLS certificate verification is disabled (cacert=False). Pass the gateway's CA "
                "certificate path as cacert to verify it.",
                stacklevel=3,
            )
        return context
    if cacert is True:
        return ssl.create_default_context()
    if not isinstance(cacert, str | os.PathLike):
        raise TypeError(f"cacert: expected a path to a PEM file, True or False, got {type(cacert).__name__}")
    path = os.fspath(cacert)
    if not os.path.isfile(path):
        raise ValueError(f"cacert: no such file: {path!r} (expected a PEM file with the gateway's CA)")
    return ssl.create_default_context(cafile=path)


def session_id_from_tickle(result: Any) -> str:
    """The session id in whatever ``tickle()`` returned: a dict, or IBind's ``Result`` (``.data``)."""
    data = getattr(result, "data", result)
    if isinstance(data, Mapping):
        session = data.get("session")
        if isinstance(session, str) and session:
            return session
    raise SessionError("tickle() returned no session id; is the gateway authenticated?")


class IbkrSession:
    """A minimal REST session against the Client Portal gateway (or the simulator)."""

    def __init__(
        self,
        base_url: str,
        *,
        cacert: str | bool = False,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url: expected an http(s) URL such as https://localhost:5000/v1/api, got {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        context = (
            ssl_context
            if ssl_context is not None
            else (make_ssl_context(cacert) if base_url.startswith("https://") else None)
        )
        self._pool = urllib3.PoolManager(
            ssl_context=context,
            timeout=urllib3.Timeout(total=timeout),
            retries=False,
            headers={"User-Agent": "rxibkr", "Content-Type": "application/json"},
        )

    def __repr__(self) -> str:
        return f"IbkrSession({self.base_url!r})"

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            response = self._pool.request(
                method,
                url,
                fields={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
                if params and method in ("GET", "DELETE")
                else None,
                body=orjson.dumps(body) if body is not None else None,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise SessionError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        if response.status >= 400:
            raise SessionError(f"{method} {path}: HTTP {response.status}", status=response.status)
        if not response.data:
            return None
        try:
            return orjson.loads(response.data)
        except orjson.JSONDecodeError as exc:
            raise SessionError(f"{method} {path}: response is not JSON") from exc

    # -- the calls the socket needs ----------------------------------------------------------
    def tickle(self) -> dict[str, Any]:
        result = self.request("POST", "tickle")
        return result if isinstance(result, dict) else {}

    def auth_status(self) -> dict[str, Any]:
        result = self.request("POST", "iserver/auth/status")
        return result if isinstance(result, dict) else {}

    def is_authenticated(self) -> bool:
        return bool(self.auth_status().get("authenticated"))

    def reauthenticate(self) -> Any:
        return self.request("POST", "iserver/reauthenticate")

    def accounts(self) -> dict[str, Any]:
        result = self.request("GET", "iserver/accounts")
        return result if isinstance(result, dict) else {}

    def portfolio_accounts(self) -> list[dict[str, Any]]:
        result = self.request("GET", "portfolio/accounts")
        return result if isinstance(result, list) else []

    def live_orders(self, *, force: bool = False, filters: Sequence[str] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if force:
            params["force"] = True
        if filters:
            params["filters"] = ",".join(filters)
        result = self.request("GET", "iserver/account/orders", params=params)
        return result if isinstance(result, dict) else {"orders": []}

    def place_order(self, account: str, order: Mapping[str, Any]) -> Any:
        if not account:
            raise ValueError("account: expected a non-empty account id")
        return self.request("POST", f"iserver/account/{account}/orders", body={"orders": [dict(order)]})

    def cancel_order(self, account: str, order_id: str | int) -> Any:
        if not account:
            raise ValueError("account: expected a non-empty account id")
        return self.request("DELETE", f"iserver/account/{account}/order/{order_id}")

    def search(self, symbol: str) -> list[dict[str, Any]]:
        result = self.request("POST", "iserver/secdef/search", body={"symbol": symbol})
        return result if isinstance(result, list) else []

    def snapshot(self, conids: Sequence[int | str], fields: Sequence[str | int]) -> list[dict[str, Any]]:
        params = {"conids": ",".join(str(c) for c in conids), "fields": ",".join(str(f) for f in fields)}
        result = self.request("GET", "iserver/marketdata/snapshot", params=params)
        return result if isinstance(result, list) else []

    def close(self) -> None:
        self._pool.clear()
