"""``SignedSession``: an :class:`~rxibkr.io.rest.IbkrSession` whose calls carry OAuth credentials.

Subclasses (OAuth 1.0a, OAuth 2.0) say how a token is obtained and how a request is signed; this
class runs the lifetime: log in on the first call (token, then the brokerage session), renew the
token before it expires (checked before each call against the expiry the server gave), and after a
401 renew it once and retry once; a second 401 raises :class:`SessionError` with status 401.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3

from rxibkr.io.rest import IbkrSession, SessionError

_LOGGER = logging.getLogger(__name__)


class SignedSession(IbkrSession):
    """Token lifetime and request signing around IbkrSession's REST calls (abstract)."""

    def __init__(
        self,
        rest_url: str,
        *,
        cacert: str | bool,
        timeout: float,
        clock: Callable[[], float],
        renew_before: float,
        reopen_brokerage: bool = True,
    ) -> None:
        super().__init__(rest_url, cacert=cacert, timeout=timeout)
        self._reopen = reopen_brokerage
        self.cacert = cacert
        if not renew_before >= 0:
            raise ValueError(f"renew_before: expected seconds >= 0, got {renew_before!r}")
        self._clock = clock
        self._renew_before = float(renew_before)
        self._token_lock = threading.RLock()
        self._expires: float | None = None
        self._issued = 0.0
        self._generation = 0
        self._brokerage_open = False
        self._renewals = 0

    # -- hooks -----------------------------------------------------------------------------------------
    @property
    def flow(self) -> str:
        raise NotImplementedError

    def socket_url(self) -> str:
        """The WebSocket URL with the token query parameter (a secret: never log it)."""
        raise NotImplementedError

    def _obtain_token(self) -> float:
        """Fetch a fresh token; return its expiry in epoch seconds."""
        raise NotImplementedError

    def _forget_token(self) -> None:
        raise NotImplementedError

    def _auth_headers(self, method: str, url: str, query: Mapping[str, str]) -> dict[str, str]:
        raise NotImplementedError

    def _open_brokerage_session(self) -> None:
        raise NotImplementedError

    # -- lifetime --------------------------------------------------------------------------------------
    @property
    def token_expires_at(self) -> float | None:
        """Expiry of the current token (epoch seconds), None before the first call."""
        return self._expires

    @property
    def renewals(self) -> int:
        """How many times the token was renewed (before expiry or after a 401)."""
        return self._renewals

    def login(self) -> None:
        """Obtain the token and open the brokerage session (done by the first call anyway).

        Other threads wait until the brokerage session is open; the opening call itself passes."""
        with self._token_lock:
            self._ensure_token()
            if self._brokerage_open:
                return
            self._brokerage_open = True
            try:
                self._open_brokerage_session()
            except BaseException:
                self._brokerage_open = False
                raise

    def _fetch(self, renewal: bool) -> None:
        issued = self._clock()
        expires = self._obtain_token()
        self._issued, self._expires = issued, expires
        self._generation += 1
        if renewal:
            self._renewals += 1
            _LOGGER.info("%s: OAuth %s token renewed", type(self).__name__, self.flow)
        else:
            _LOGGER.info("%s: OAuth %s token obtained", type(self).__name__, self.flow)

    def _ensure_token(self) -> int:
        with self._token_lock:
            expires = self._expires
            if expires is None:
                self._fetch(renewal=False)
            else:
                margin = min(self._renew_before, max(0.0, expires - self._issued) * 0.1)
                if self._clock() >= expires - margin:
                    self._fetch(renewal=True)
            return self._generation

    def _renew_after_401(self, generation: int) -> None:
        with self._token_lock:
            if generation == self._generation:  # nobody renewed since the failing call was signed
                self._forget_token()
                self._expires = None
                self._fetch(renewal=True)

    # -- HTTP --------------------------------------------------------------------------------------------
    def _raw(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        all_headers = {"User-Agent": "rxibkr", "Accept": "*/*"}
        if body is not None:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        try:
            response = self._pool().request(method, url, body=body, headers=all_headers)
        except urllib3.exceptions.HTTPError as exc:
            path = url[len(self.base_url) :] if url.startswith(self.base_url) else url.split("?", 1)[0]
            raise SessionError(f"{method} {path}: {exc.__class__.__name__}") from None
        data: Any = None
        if response.data:
            try:
                data = orjson.loads(response.data)
            except orjson.JSONDecodeError:
                data = None
        return response.status, data

    def _signed(self, method: str, path: str, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        url = f"{self.base_url}/{path.lstrip('/')}"
        headers = self._auth_headers(method, url, query)
        full = f"{url}?{urlencode(query)}" if query else url
        return self._raw(method, full, headers=headers, body=orjson.dumps(body) if body is not None else None)

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        self.login()
        query = (
            {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
            if params and method in ("GET", "DELETE")
            else {}
        )
        generation = self._ensure_token()
        status, data = self._signed(method, path, query, body)
        if status == 401:
            _LOGGER.info("%s: %s %s answered 401; renewing the token once", type(self).__name__, method, path)
            self._renew_after_401(generation)
            status, data = self._signed(method, path, query, body)
        if status >= 400:
            raise SessionError(f"{method} {path}: HTTP {status}", status=status)
        return data

    # -- session calls ------------------------------------------------------------------------------
    def init_brokerage_session(self, compete: bool = True) -> Any:
        """``POST iserver/auth/ssodh/init``: open the brokerage session (for ``/iserver`` and the socket)."""
        return self.request("POST", "iserver/auth/ssodh/init", body={"publish": True, "compete": compete})

    def auth_status(self) -> dict[str, Any]:
        """``iserver/auth/status``; over OAuth a lapsed brokerage session (not taken over by a
        competing one) is re-opened here with ``ssodh/init``, as a gateway would do on its own, so a
        client polling the status after an authentication loss gets its session back."""
        status = super().auth_status()
        if self._reopen and not status.get("authenticated") and not status.get("competing"):
            _LOGGER.info("%s: brokerage session lapsed; re-opening it", type(self).__name__)
            self.init_brokerage_session()
            status = super().auth_status()
        return status

    def reauthenticate(self) -> Any:
        """Over OAuth the brokerage session is re-opened with ``ssodh/init``."""
        return self.init_brokerage_session()

    def logout(self) -> Any:
        return self.request("POST", "logout")

    def wait_time(self) -> float:
        """Seconds until the token is renewed (0 when unknown): for schedulers that renew ahead."""
        expires = self._expires
        if expires is None:
            return 0.0
        margin = min(self._renew_before, max(0.0, expires - self._issued) * 0.1)
        return max(0.0, expires - margin - self._clock())
