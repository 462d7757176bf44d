"""IBKR's OAuth 2.0 with ``private_key_jwt``, as in IBKR's reference client:

1. ``POST {oauth2_url}/api/v1/token`` (form): ``grant_type=client_credentials``,
   ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``,
   ``client_assertion`` = an RS256 JWT (header ``kid``; claims ``iss``=``sub``=client id,
   ``aud``=``/token``, ``iat``, ``exp`` a few seconds ahead), ``scope=sso-sessions.write``
   -> an access token;
2. ``POST {gateway_url}/api/v1/sso-sessions`` with ``Authorization: Bearer <access token>`` and an
   RS256 JWT body (``Content-Type: application/jwt``; claims ``iss``, ``credential``, ``ip``, ``iat``,
   ``exp``) -> the SSO bearer token;
3. REST calls carry ``Authorization: Bearer <bearer>``; ``GET sso/validate`` then
   ``iserver/auth/ssodh/init`` open the brokerage session; the socket is opened at
   ``ws_url?sessionToken=<bearer>``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rxibkr.auth.config import AuthError, OAuth2Config
from rxibkr.auth.oauth1a import load_private_key
from rxibkr.auth.session import SignedSession

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_AUDIENCE = "/token"
DEFAULT_LIFETIME = 3600.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_jwt(claims: Mapping[str, Any], key: rsa.RSAPrivateKey, kid: str) -> str:
    """A compact RS256 JWS of ``claims`` with header ``{"alg":"RS256","typ":"JWT","kid":kid}``."""
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


class OAuth2Session(SignedSession):
    """An :class:`~rxibkr.io.rest.IbkrSession` over OAuth 2.0 (private_key_jwt -> access token ->
    SSO session -> bearer). The bearer is renewed before it expires (a new SSO session; a new access
    token first when that one has expired) and once after a 401. :meth:`socket_url` carries the
    current bearer; an open socket stays open when the bearer is renewed."""

    def __init__(
        self,
        config: OAuth2Config,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        renew_before: float = 300.0,
        compete: bool = True,
        reopen_brokerage: bool = True,
    ) -> None:
        super().__init__(
            config.rest_url,
            cacert=config.cacert,
            timeout=timeout,
            clock=clock,
            renew_before=renew_before,
            reopen_brokerage=reopen_brokerage,
        )
        self._config = config
        self._compete = compete
        self._key = load_private_key(config.private_key_file, "private_key_file")
        self._access_token: str | None = None
        self._access_expires = 0.0
        self._bearer: str | None = None

    def __repr__(self) -> str:
        return f"OAuth2Session({self.base_url!r})"

    @property
    def flow(self) -> str:
        return "2.0"

    def socket_url(self) -> str:
        self._ensure_token()
        bearer = self._bearer
        assert bearer is not None
        return f"{self._config.ws_url}?sessionToken={quote(bearer, safe='')}"

    # -- assertions ----------------------------------------------------------------------------------
    def _client_assertion(self) -> str:
        now = int(time.time())
        cid = self._config.client_id
        claims = {"iss": cid, "sub": cid, "aud": TOKEN_AUDIENCE, "exp": now + 20, "iat": now - 10}
        return make_jwt(claims, self._key, self._config.key_id)

    def _sso_assertion(self) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "credential": self._config.credential,
            "iss": self._config.client_id,
            "exp": now + 86400,
            "iat": now,
        }
        if self._config.ip:
            claims["ip"] = self._config.ip
        return make_jwt(claims, self._key, self._config.key_id)

    # -- tokens --------------------------------------------------------------------------------------
    def _obtain_access_token(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self._client_assertion(),
            "scope": self._config.scope,
        }
        issued = self._clock()
        status, data = self._raw(
            "POST",
            f"{self._config.oauth2_url.rstrip('/')}/api/v1/token",
            body=urlencode(form).encode(),
            content_type="application/x-www-form-urlencoded",
        )
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise AuthError(f"OAuth 2.0 access token request rejected: HTTP {status}", status)
        self._access_token = data["access_token"]
        self._access_expires = issued + _lifetime(data)

    def _sso_session(self) -> tuple[int, Any]:
        return self._raw(
            "POST",
            f"{self._config.gateway_url.rstrip('/')}/api/v1/sso-sessions",
            headers={"Authorization": f"Bearer {self._access_token}"},
            body=self._sso_assertion().encode(),
            content_type="application/jwt",
        )

    def _obtain_token(self) -> float:
        fresh = False
        if self._access_token is None or self._clock() >= self._access_expires - 5.0:
            self._obtain_access_token()
            fresh = True
        issued = self._clock()
        status, data = self._sso_session()
        if status == 401 and not fresh:  # the access token was revoked or expired early
            self._obtain_access_token()
            issued = self._clock()
            status, data = self._sso_session()
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise AuthError(f"OAuth 2.0 SSO session request rejected: HTTP {status}", status)
        self._bearer = data["access_token"]
        return issued + _lifetime(data)

    def _forget_token(self) -> None:
        self._bearer = None

    def _auth_headers(self, method: str, url: str, query: Mapping[str, str]) -> dict[str, str]:
        if self._bearer is None:
            raise AuthError("no OAuth 2.0 bearer token")
        return {"Authorization": f"Bearer {self._bearer}"}

    def _open_brokerage_session(self) -> None:
        self.request("GET", "sso/validate")  # IBKR's OAuth 2.0 sequence validates the SSO session first
        self.init_brokerage_session(compete=self._compete)


def _lifetime(data: Mapping[str, Any]) -> float:
    value = data.get("expires_in")
    try:
        seconds = float(value) if value is not None else DEFAULT_LIFETIME
    except (TypeError, ValueError):
        seconds = DEFAULT_LIFETIME
    return seconds if seconds > 0 else DEFAULT_LIFETIME
