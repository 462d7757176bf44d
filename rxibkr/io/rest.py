"""The few REST calls the socket needs, over the gateway's REST API (``/v1/api``).

``IbkrSession`` is deliberately small: tickle (the session id for the socket cookie), auth status,
reauthenticate, accounts, live orders, and the order calls the examples use. IBind's ``IbkrClient``
or anything else with a ``tickle()`` can stand in for it.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import urllib3

from rxibkr.io.tls import TlsMode, TlsPolicy

_LOGGER = logging.getLogger(__name__)


class SessionError(RuntimeError):
    """A REST call failed: connection refused, timeout, TLS failure or an HTTP error status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def make_ssl_context(cacert: str | bool) -> ssl.SSLContext:
    """An SSL context verifying against ``cacert`` (a PEM path), the system store (True), or nothing (False).

    ``False`` disables verification and warns once per process. A path that does not exist, or a file
    that holds no certificate, raises ValueError naming the path. Prefer :class:`rxibkr.io.tls.TlsPolicy`,
    which also pins a loopback gateway's certificate when ``cacert`` is None.
    """
    if cacert is False:
        return TlsPolicy(TlsMode.INSECURE, "", 0).ssl_context() or ssl.create_default_context()
    if cacert is True:
        return ssl.create_default_context()
    if not isinstance(cacert, str | os.PathLike):
        raise TypeError(f"cacert: expected a path to a PEM file, True or False, got {type(cacert).__name__}")
    context = TlsPolicy(TlsMode.CA, "", 0, cacert=os.fspath(cacert)).ssl_context()
    assert context is not None
    return context


def session_id_from_tickle(result: Any) -> str:
    """The session id in whatever ``tickle()`` returned: a dict, or IBind's ``Result`` (``.data``)."""
    data = getattr(result, "data", result)
    if isinstance(data, Mapping):
        session = data.get("session")
        if isinstance(session, str) and session:
            return session
    raise SessionError("tickle() returned no session id; is the gateway authenticated?")


class IbkrSession:
    """A minimal REST session against the Client Portal gateway (or the simulator).

    ``base_url`` is the API root, e.g. ``https://localhost:5000/v1/api``. Every call returns the decoded
    JSON answer (dicts and lists as the gateway sends them) and raises :class:`SessionError` on a
    connection failure, a TLS failure, an HTTP status >= 400 (``SessionError.status``) or an answer that
    is not JSON. Safe to use from several threads (urllib3's pool).

    TLS, in this order: ``tls`` (a :class:`~rxibkr.io.tls.TlsPolicy`, the one the WebSocket uses), else
    ``ssl_context``, else a policy built from ``base_url`` and ``cacert`` (None, the default: pin a
    loopback gateway's certificate on first use, verify any other host against the system's CAs; a
    path: verify against that CA; True: the system's CAs; False: no verification, one warning).
    """

    def __init__(
        self,
        base_url: str,
        *,
        cacert: str | bool | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        tls: TlsPolicy | None = None,
        pin_file: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url: expected an http(s) URL such as https://localhost:5000/v1/api, got {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        if tls is None and ssl_context is None and base_url.startswith("https://"):
            tls = TlsPolicy.for_url(base_url, cacert, pin_file=pin_file)
        self.tls = tls
        self._ssl_context = ssl_context
        self._pool_lock = threading.Lock()
        self._pool_manager: urllib3.PoolManager | None = None

    def __repr__(self) -> str:
        return f"IbkrSession({self.base_url!r})"

    def _pool(self) -> urllib3.PoolManager:
        """The connection pool, made on first use (a loopback gateway's certificate is pinned then)."""
        with self._pool_lock:
            if self._pool_manager is None:
                tls_options: dict[str, Any] = {}
                if self._ssl_context is not None:
                    tls_options = {"ssl_context": self._ssl_context}
                elif self.tls is not None and self.base_url.startswith("https://"):
                    tls_options = self.tls.urllib3_options(self.timeout)  # may connect once to pin
                self._pool_manager = urllib3.PoolManager(
                    timeout=urllib3.Timeout(total=self.timeout),
                    retries=False,
                    headers={"User-Agent": "rxibkr", "Content-Type": "application/json"},
                    **tls_options,
                )
            return self._pool_manager

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        """``method`` (GET, POST, DELETE, ...) on ``base_url/path``: the decoded JSON answer (None if empty).

        ``params`` become the query string for GET and DELETE (booleans as ``true``/``false``); ``body`` is
        sent as JSON. Raises :class:`SessionError` (with ``status`` for HTTP errors).
        """
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            pool = self._pool()
        except (OSError, ValueError) as exc:  # pinning a loopback gateway's certificate on first use
            raise SessionError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        try:
            response = pool.request(
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
        """``POST /tickle``: keeps the session alive; its ``session`` is the id the WebSocket cookie needs.

        Answer: ``{"session": "<32 hex>", "iserver": {"authStatus": {"authenticated": bool, ...}}, ...}``.
        """
        result = self.request("POST", "tickle")
        return result if isinstance(result, dict) else {}

    def auth_status(self) -> dict[str, Any]:
        """``POST /iserver/auth/status``: ``{"authenticated": bool, "competing": bool, "connected": bool,
        ...}``."""
        result = self.request("POST", "iserver/auth/status")
        return result if isinstance(result, dict) else {}

    def is_authenticated(self) -> bool:
        """True when :meth:`auth_status` says the brokerage session is authenticated."""
        return bool(self.auth_status().get("authenticated"))

    def reauthenticate(self) -> Any:
        """``POST /iserver/reauthenticate``: asks the gateway to restore the brokerage session (asynchronous;
        poll :meth:`is_authenticated`)."""
        return self.request("POST", "iserver/reauthenticate")

    def accounts(self) -> dict[str, Any]:
        """``GET /iserver/accounts``: ``{"accounts": ["DU..."], "selectedAccount": "DU...", ...}``.

        The gateway wants this called once before market data and orders (a live-session preflight).
        """
        result = self.request("GET", "iserver/accounts")
        return result if isinstance(result, dict) else {}

    def portfolio_accounts(self) -> list[dict[str, Any]]:
        """``GET /portfolio/accounts``: one dict per account (``id``, ``accountId``, ``currency``, ...)."""
        result = self.request("GET", "portfolio/accounts")
        return result if isinstance(result, list) else []

    def live_orders(self, *, force: bool = False, filters: Sequence[str] | None = None) -> dict[str, Any]:
        """``GET /iserver/account/orders``: ``{"orders": [order dicts], "snapshot": bool}``.

        ``force=True`` asks the gateway for a fresh list (and resumes ``sor`` updates after a filtered
        call); ``filters`` keeps only orders in those statuses (e.g. ``["submitted", "filled"]``).
        """
        params: dict[str, Any] = {}
        if force:
            params["force"] = True
        if filters:
            params["filters"] = ",".join(filters)
        result = self.request("GET", "iserver/account/orders", params=params)
        return result if isinstance(result, dict) else {"orders": []}

    def place_order(self, account: str, order: Mapping[str, Any]) -> Any:
        """``POST /iserver/account/{account}/orders`` with ``{"orders": [order]}``.

        ``order`` is the gateway's order ticket, e.g. ``{"conid": 265598, "orderType": "LMT", "side":
        "BUY", "quantity": 10, "price": 150.0, "tif": "DAY"}``: ``conid`` (int), ``orderType`` (``"LMT"``,
        ``"MKT"``, ...), ``side`` (``"BUY"``/``"SELL"``), ``quantity``, ``price`` (limit orders), ``tif``
        (``"DAY"``, ``"GTC"``, ...), and optionally ``cOID`` (your own order id), ``outsideRTH`` (bool),
        ``conidex``.

        Answer: either ``[{"order_id": "...", "order_status": "Submitted", ...}]`` (placed), or a list
        of confirmation prompts ``[{"id": "<reply id>", "message": ["..."], "messageIds": [...], ...}]``
        that must each be answered with :meth:`reply` before the order is placed.
        """
        if not account:
            raise ValueError("account: expected a non-empty account id")
        return self.request("POST", f"iserver/account/{account}/orders", body={"orders": [dict(order)]})

    def reply(self, reply_id: str, *, confirmed: bool = True) -> Any:
        """``POST /iserver/reply/{reply_id}`` with ``{"confirmed": confirmed}``: answers a confirmation
        prompt from :meth:`place_order`. The answer has the shape of :meth:`place_order`'s (placed, or a
        further prompt)."""
        if not reply_id:
            raise ValueError("reply_id: expected the id of a confirmation prompt")
        return self.request("POST", f"iserver/reply/{reply_id}", body={"confirmed": bool(confirmed)})

    def cancel_order(self, account: str, order_id: str | int) -> Any:
        """``DELETE /iserver/account/{account}/order/{order_id}``:
        ``{"msg": "Request was submitted", "order_id": ..., ...}``; the ``Cancelled`` status follows on
        the ``sor`` stream."""
        if not account:
            raise ValueError("account: expected a non-empty account id")
        return self.request("DELETE", f"iserver/account/{account}/order/{order_id}")

    def search(self, symbol: str) -> list[dict[str, Any]]:
        """``POST /iserver/secdef/search``: contracts for ``symbol``, each with ``conid``, ``symbol``,
        ``companyName``, ``sections``, ..."""
        result = self.request("POST", "iserver/secdef/search", body={"symbol": symbol})
        return result if isinstance(result, list) else []

    def snapshot(self, conids: Sequence[int | str], fields: Sequence[str | int]) -> list[dict[str, Any]]:
        """``GET /iserver/marketdata/snapshot``: one dict per conid with the requested market-data field
        ids as keys (values as strings, as the gateway sends them; see ``rxibkr.protocol.fields``)."""
        params = {"conids": ",".join(str(c) for c in conids), "fields": ",".join(str(f) for f in fields)}
        result = self.request("GET", "iserver/marketdata/snapshot", params=params)
        return result if isinstance(result, list) else []

    def close(self) -> None:
        """Close the pooled connections (the session stays usable: the next call reconnects)."""
        with self._pool_lock:
            if self._pool_manager is not None:
                self._pool_manager.clear()
