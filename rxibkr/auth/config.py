"""OAuth configuration: by arguments or ``RXIBKR_OAUTH1A_*`` / ``RXIBKR_OAUTH2_*`` environment variables.

Private keys stay in files (only their paths are configured). A config's ``repr`` shows no secret:
tokens, the encrypted access token secret and the consumer key print as ``'***'``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from rxibkr.io.rest import SessionError

IBKR_REST_URL = "https://api.ibkr.com/v1/api"
IBKR_WS_URL = "wss://api.ibkr.com/v1/api/ws"
IBKR_OAUTH2_URL = "https://api.ibkr.com/oauth2"
IBKR_GATEWAY_URL = "https://api.ibkr.com/gw"


class AuthError(SessionError):
    """OAuth failed: a rejected token request, a live session token that does not validate, a bad
    key file. The message names the step and the HTTP status, never a token or a secret."""


_SECRET = "***"


def _masked_repr(obj: Any, secret: frozenset[str]) -> str:
    parts = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        shown = _SECRET if (f.name in secret and value) else repr(value)
        parts.append(f"{f.name}={shown}")
    return f"{type(obj).__name__}({', '.join(parts)})"


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read file {path!r}: {exc.strerror}") from None


def _cacert(value: str | None) -> str | bool:
    if value is None:
        return True
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    return value


def _require_file(name: str, path: str | None) -> None:
    if not path:
        raise ValueError(f"{name}: expected the path of a PEM file, got nothing")
    if not os.path.isfile(path):
        raise ValueError(f"{name}: no such file: {path!r}")


def _check_url(name: str, url: str, schemes: tuple[str, ...]) -> None:
    if not isinstance(url, str) or not url.startswith(schemes):
        raise ValueError(f"{name}: expected a URL starting with {' or '.join(schemes)}, got {url!r}")


@dataclass(frozen=True, repr=False)
class OAuth1aConfig:
    """First-party OAuth 1.0a, as configured in IBKR's self-service portal.

    consumer_key: the 9-character key chosen in the portal. access_token: generated there.
    access_token_secret: the *encrypted* access token secret (base64) generated there.
    signature_key_file / encryption_key_file: the private RSA keys whose public halves were uploaded.
    dh_prime: the Diffie-Hellman prime as hex (or give ``dh_param_file``, the ``dhparam.pem`` uploaded).
    dh_generator: the DH generator (2 with ``openssl dhparam``). realm: ``limited_poa`` (``test_realm``
    for IBKR's TESTCONS consumer). rest_url / ws_url: IBKR's OAuth endpoints (or a simulator's).
    cacert: True (system store), a CA PEM path, or False (no verification; simulators only).
    """

    consumer_key: str
    access_token: str
    access_token_secret: str
    signature_key_file: str
    encryption_key_file: str
    dh_prime: str = ""
    dh_param_file: str | None = None
    dh_generator: int = 2
    realm: str = "limited_poa"
    rest_url: str = IBKR_REST_URL
    ws_url: str = IBKR_WS_URL
    cacert: str | bool = True

    _secret = frozenset({"consumer_key", "access_token", "access_token_secret"})

    def __repr__(self) -> str:
        return _masked_repr(self, self._secret)

    def __post_init__(self) -> None:
        for name in ("consumer_key", "access_token", "access_token_secret"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}: expected a non-empty string")
        _require_file("signature_key_file", self.signature_key_file)
        _require_file("encryption_key_file", self.encryption_key_file)
        if not self.dh_prime:
            if not self.dh_param_file:
                raise ValueError("dh_prime: expected the DH prime as hex, or dh_param_file (dhparam.pem)")
            _require_file("dh_param_file", self.dh_param_file)
        else:
            try:
                int(self.dh_prime, 16)
            except ValueError:
                raise ValueError("dh_prime: expected a hexadecimal number") from None
        if int(self.dh_generator) < 2:
            raise ValueError(f"dh_generator: expected an integer >= 2, got {self.dh_generator!r}")
        _check_url("rest_url", self.rest_url, ("https://", "http://"))
        _check_url("ws_url", self.ws_url, ("wss://", "ws://"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> OAuth1aConfig:
        """Read ``RXIBKR_OAUTH1A_*``: CONSUMER_KEY, ACCESS_TOKEN, ACCESS_TOKEN_SECRET (or
        ACCESS_TOKEN_SECRET_FILE), SIGNATURE_KEY_FILE, ENCRYPTION_KEY_FILE, DH_PRIME (or DH_PARAM_FILE),
        DH_GENERATOR, REALM, REST_URL, WS_URL, CACERT. Keyword overrides win over the environment."""
        env = os.environ if environ is None else environ
        p = "RXIBKR_OAUTH1A_"
        secret = _env(env, p + "ACCESS_TOKEN_SECRET")
        secret_file = _env(env, p + "ACCESS_TOKEN_SECRET_FILE")
        if secret is None and secret_file is not None:
            secret = _read_text(secret_file, p + "ACCESS_TOKEN_SECRET_FILE")
        values: dict[str, Any] = {
            "consumer_key": _env(env, p + "CONSUMER_KEY"),
            "access_token": _env(env, p + "ACCESS_TOKEN"),
            "access_token_secret": secret,
            "signature_key_file": _env(env, p + "SIGNATURE_KEY_FILE"),
            "encryption_key_file": _env(env, p + "ENCRYPTION_KEY_FILE"),
            "dh_prime": _env(env, p + "DH_PRIME") or "",
            "dh_param_file": _env(env, p + "DH_PARAM_FILE"),
            "dh_generator": int(_env(env, p + "DH_GENERATOR") or 2),
            "realm": _env(env, p + "REALM") or "limited_poa",
            "rest_url": _env(env, p + "REST_URL") or IBKR_REST_URL,
            "ws_url": _env(env, p + "WS_URL") or IBKR_WS_URL,
            "cacert": _cacert(_env(env, p + "CACERT")),
        }
        values.update(overrides)
        missing = [k for k in ("consumer_key", "access_token", "access_token_secret") if not values[k]]
        missing += [k for k in ("signature_key_file", "encryption_key_file") if not values[k]]
        if missing:
            raise ValueError(
                "OAuth 1.0a configuration incomplete; set " + ", ".join(p + k.upper() for k in missing)
            )
        return cls(**values)

    def with_urls(self, rest_url: str, ws_url: str, cacert: str | bool | None = None) -> OAuth1aConfig:
        return replace(
            self, rest_url=rest_url, ws_url=ws_url, cacert=self.cacert if cacert is None else cacert
        )


@dataclass(frozen=True, repr=False)
class OAuth2Config:
    """OAuth 2.0 with ``private_key_jwt`` client authentication.

    client_id: issued by IBKR at registration. key_id: the ``kid`` of the registered public key
    (``main`` in IBKR's example). private_key_file: the RSA private key signing the client assertions.
    credential: the IBKR username the SSO session is opened for. ip: the public IP of the caller, sent
    in the SSO-session assertion. scope: ``sso-sessions.write``. oauth2_url / gateway_url / rest_url /
    ws_url: IBKR's endpoints (or a simulator's). cacert: as for :class:`OAuth1aConfig`.
    """

    client_id: str
    private_key_file: str
    credential: str
    key_id: str = "main"
    ip: str | None = None
    scope: str = "sso-sessions.write"
    oauth2_url: str = IBKR_OAUTH2_URL
    gateway_url: str = IBKR_GATEWAY_URL
    rest_url: str = IBKR_REST_URL
    ws_url: str = IBKR_WS_URL
    cacert: str | bool = True

    _secret = frozenset({"client_id", "credential"})

    def __repr__(self) -> str:
        return _masked_repr(self, self._secret)

    def __post_init__(self) -> None:
        for name in ("client_id", "credential", "key_id", "scope"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}: expected a non-empty string")
        _require_file("private_key_file", self.private_key_file)
        _check_url("oauth2_url", self.oauth2_url, ("https://", "http://"))
        _check_url("gateway_url", self.gateway_url, ("https://", "http://"))
        _check_url("rest_url", self.rest_url, ("https://", "http://"))
        _check_url("ws_url", self.ws_url, ("wss://", "ws://"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> OAuth2Config:
        """Read ``RXIBKR_OAUTH2_*``: CLIENT_ID, KEY_ID, PRIVATE_KEY_FILE, CREDENTIAL, IP, SCOPE,
        OAUTH2_URL, GATEWAY_URL, REST_URL, WS_URL, CACERT. Keyword overrides win."""
        env = os.environ if environ is None else environ
        p = "RXIBKR_OAUTH2_"
        values: dict[str, Any] = {
            "client_id": _env(env, p + "CLIENT_ID"),
            "private_key_file": _env(env, p + "PRIVATE_KEY_FILE"),
            "credential": _env(env, p + "CREDENTIAL"),
            "key_id": _env(env, p + "KEY_ID") or "main",
            "ip": _env(env, p + "IP"),
            "scope": _env(env, p + "SCOPE") or "sso-sessions.write",
            "oauth2_url": _env(env, p + "OAUTH2_URL") or IBKR_OAUTH2_URL,
            "gateway_url": _env(env, p + "GATEWAY_URL") or IBKR_GATEWAY_URL,
            "rest_url": _env(env, p + "REST_URL") or IBKR_REST_URL,
            "ws_url": _env(env, p + "WS_URL") or IBKR_WS_URL,
            "cacert": _cacert(_env(env, p + "CACERT")),
        }
        values.update(overrides)
        missing = [k for k in ("client_id", "private_key_file", "credential") if not values[k]]
        if missing:
            raise ValueError(
                "OAuth 2.0 configuration incomplete; set " + ", ".join(p + k.upper() for k in missing)
            )
        return cls(**values)


OAuthConfig = OAuth1aConfig | OAuth2Config


def config_from_mapping(values: Mapping[str, Any]) -> OAuth1aConfig | OAuth2Config:
    """A config from its fields as a mapping (a parsed JSON/TOML file, or a simulator's
    ``sim.oauth.oauth1a_config``): ``consumer_key`` makes it OAuth 1.0a, ``client_id`` OAuth 2.0."""
    if not isinstance(values, Mapping):
        raise TypeError(f"config: expected a mapping of OAuth settings, got {type(values).__name__}")
    names1 = {f.name for f in fields(OAuth1aConfig)}
    names2 = {f.name for f in fields(OAuth2Config)}
    if "consumer_key" in values:
        kind, names = OAuth1aConfig, names1
    elif "client_id" in values:
        kind, names = OAuth2Config, names2  # type: ignore[assignment]
    else:
        raise ValueError("config: expected consumer_key (OAuth 1.0a) or client_id (OAuth 2.0)")
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"config: unknown {kind.__name__} settings: {', '.join(unknown)}")
    return kind(**values)
