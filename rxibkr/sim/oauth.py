"""OAuth 1.0a and OAuth 2.0 on the simulator, with generated test keys.

``GatewaySimulator(oauth="1.0a" | "2.0" | True | SimOAuth(...))`` generates the consumer's RSA keys
(signature, encryption, OAuth 2.0 client key), takes the 2048-bit MODP group of RFC 3526 as DH
parameters, writes the private keys and ``dhparam.pem`` to a temporary directory at ``start()`` and
hands back matching client configurations (:attr:`SimOAuth.oauth1a_config`,
:attr:`SimOAuth.oauth2_config`: the keyword arguments of ``rxibkr.auth.OAuth1aConfig`` /
``OAuth2Config``; the simulator imports nothing of rxibkr outside ``rxibkr.sim``).

Then every ``/v1/api`` request must be signed (OAuth 1.0a: HMAC-SHA256 with a live session token) or
carry a valid SSO bearer (OAuth 2.0), the socket upgrade must carry ``?oauth_token=<access token>`` or
``?sessionToken=<bearer>``, and the brokerage session stays closed until ``iserver/auth/ssodh/init``.
Rejected with 401, as IBKR does: unknown consumer, wrong access token, bad signature, a nonce seen
before, a timestamp outside the window, an expired or unknown LST or bearer, a bad or expired JWT.
The verification is written independently of :mod:`rxibkr.auth` (only the published scheme is
shared), so the client and IBind are both checked against it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote_plus, unquote

from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rxibkr.sim import frames
from rxibkr.sim.gateway import Gateway
from rxibkr.sim.rest import PREFIX, json_response

if TYPE_CHECKING:
    from rxibkr.sim.config import SimConfig


class _Simulator(Protocol):
    """What SimOAuth needs of the simulator it serves (the server imports this module, not the
    reverse)."""

    @property
    def running(self) -> bool: ...

    @property
    def rest_url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...

    @property
    def cacert(self) -> str | None: ...

    @property
    def config(self) -> SimConfig: ...


log = logging.getLogger(__name__)

# RFC 3526 group 14 (2048-bit MODP), generator 2
MODP_2048 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
LST_PATH = f"{PREFIX}/oauth/live_session_token"
TOKEN_PATH = "/oauth2/api/v1/token"
SSO_PATH = "/gw/api/v1/sso-sessions"
SSODH_PATH = f"{PREFIX}/iserver/auth/ssodh/init"
WS_PATH = f"{PREFIX}/ws"
LOGOUT_PATH = f"{PREFIX}/logout"
_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"')
FLOWS = ("1.0a", "2.0")


class Rejected(Exception):
    """A request the simulated IBKR refuses (401 unless told otherwise); the reason never holds a secret."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class _State:
    nonces: dict[str, float] = field(default_factory=dict)
    lsts: dict[str, float] = field(default_factory=dict)  # base64 LST -> expiry (epoch s)
    access_tokens: dict[str, float] = field(default_factory=dict)
    bearers: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    rejections: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


class SimOAuth:
    """The OAuth side of one simulator (see the module docstring).

    flows: ``("1.0a",)``, ``("2.0",)`` or both. lst_lifetime / access_token_lifetime / bearer_lifetime:
    seconds a live session token, an OAuth 2.0 access token, an SSO bearer stays valid.
    timestamp_window: how far ``oauth_timestamp`` may be from the server's clock (seconds).
    key_size: RSA key size of the generated keys.

    Faults and inspection (any thread): :meth:`expire_tokens` (every LST, access token and bearer
    issued so far expires now), :meth:`revoke` (the access token / client is unknown from now on),
    :meth:`count` (``"lst"``, ``"token"``, ``"sso"``, ``"ssodh_init"``, ``"signed"``, ``"bearer"``;
    ``"signed_with_query"`` / ``"signed_without_query"``: signed requests with a query whose base
    string held the query parameters, or did not, as IBind 0.1.14 signs),
    :attr:`rejections` (``(path, reason)`` of every refused request).
    """

    def __init__(
        self,
        flows: tuple[str, ...] | list[str] = FLOWS,
        *,
        consumer_key: str = "RXSIMCONS",
        realm: str = "limited_poa",
        client_id: str = "rxibkr-sim-client",
        key_id: str = "main",
        lst_lifetime: float = 24 * 3600.0,
        access_token_lifetime: float = 3600.0,
        bearer_lifetime: float = 3600.0,
        timestamp_window: float = 300.0,
        key_size: int = 2048,
    ) -> None:
        flows = tuple(flows)
        if not flows or any(f not in FLOWS for f in flows):
            raise ValueError(f"flows: expected a non-empty subset of {FLOWS}, got {flows!r}")
        for name, value in (
            ("lst_lifetime", lst_lifetime),
            ("access_token_lifetime", access_token_lifetime),
            ("bearer_lifetime", bearer_lifetime),
            ("timestamp_window", timestamp_window),
        ):
            if not value > 0:
                raise ValueError(f"{name}: expected seconds > 0, got {value!r}")
        self.flows = flows
        self.consumer_key = consumer_key
        self.realm = realm
        self.client_id = client_id
        self.key_id = key_id
        self.lst_lifetime = float(lst_lifetime)
        self.access_token_lifetime = float(access_token_lifetime)
        self.bearer_lifetime = float(bearer_lifetime)
        self.timestamp_window = float(timestamp_window)
        self._signature_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        self._encryption_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        self._client_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        self.access_token = secrets.token_hex(10)
        self._secret = secrets.token_bytes(32)  # the access token secret, in clear (IBKR's side)
        self.encrypted_secret = base64.b64encode(
            self._encryption_key.public_key().encrypt(self._secret, padding.PKCS1v15())
        ).decode()
        self.prime = MODP_2048
        self.generator = 2
        self._lock = threading.Lock()
        self._state = _State()
        self._revoked = False
        self._dir: str | None = None
        self._sim: _Simulator | None = None
        self._gateway: Gateway | None = None

    def __repr__(self) -> str:
        return f"SimOAuth(flows={self.flows!r})"

    # --- files and configs ---------------------------------------------------------------------
    def bind(self, sim: _Simulator) -> None:
        self._sim = sim

    def write_files(self) -> str:
        """Write the client's private keys and dhparam.pem (mode 0600) to a fresh temp dir."""
        if self._dir is not None:
            return self._dir
        directory = tempfile.mkdtemp(prefix="rxibkr-oauth-")
        pem = serialization.Encoding.PEM
        for name, key in (
            ("private_signature.pem", self._signature_key),
            ("private_encryption.pem", self._encryption_key),
            ("oauth2_private_key.pem", self._client_key),
        ):
            data = key.private_bytes(
                pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
            _write_private(os.path.join(directory, name), data)
        _write_private(os.path.join(directory, "dhparam.pem"), dhparam_pem(self.prime, self.generator))
        self._dir = directory
        return directory

    def cleanup(self) -> None:
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def path(self, name: str) -> str:
        directory = self._dir
        if directory is None:
            raise RuntimeError("the simulator is not running; key files are written by start()")
        return os.path.join(directory, name)

    def _urls(self) -> tuple[str, str, str | bool]:
        sim = self._sim
        if sim is None or not sim.running:
            raise RuntimeError("the simulator is not running; call start() first")
        return sim.rest_url, sim.ws_url, sim.cacert if sim.cacert is not None else False

    @property
    def oauth1a_config(self) -> dict[str, Any]:
        """The client configuration matching this simulator, as the keyword arguments of
        ``rxibkr.auth.OAuth1aConfig`` (which ``oauth_client_options`` also takes as they are): keys in
        the temp dir, URLs and CA of the simulator. Test credentials of this simulator only."""
        rest_url, ws_url, cacert = self._urls()
        return dict(
            consumer_key=self.consumer_key,
            access_token=self.access_token,
            access_token_secret=self.encrypted_secret,
            signature_key_file=self.path("private_signature.pem"),
            encryption_key_file=self.path("private_encryption.pem"),
            dh_prime=format(self.prime, "x"),
            dh_generator=self.generator,
            realm=self.realm,
            rest_url=rest_url,
            ws_url=ws_url,
            cacert=cacert,
        )

    @property
    def oauth2_config(self) -> dict[str, Any]:
        """Like :attr:`oauth1a_config`, for ``rxibkr.auth.OAuth2Config``."""
        rest_url, ws_url, cacert = self._urls()
        root = rest_url[: -len(PREFIX)]
        username = self._sim.config.username if self._sim is not None else "simuser"
        return dict(
            client_id=self.client_id,
            key_id=self.key_id,
            private_key_file=self.path("oauth2_private_key.pem"),
            credential=username,
            ip="127.0.0.1",
            oauth2_url=f"{root}/oauth2",
            gateway_url=f"{root}/gw",
            rest_url=rest_url,
            ws_url=ws_url,
            cacert=cacert,
        )

    def client_env(self, flow: str = "1.0a") -> dict[str, str]:
        """``RXIBKR_OAUTH1A_*`` or ``RXIBKR_OAUTH2_*`` variables for this simulator (what ``rxibkr sim
        --oauth`` can print for ``rxibkr demo --oauth1a`` in another shell). They hold credentials:
        test credentials of this simulator only."""
        if flow == "1.0a":
            one = self.oauth1a_config
            p = "RXIBKR_OAUTH1A_"
            return {
                p + "CONSUMER_KEY": one["consumer_key"],
                p + "ACCESS_TOKEN": one["access_token"],
                p + "ACCESS_TOKEN_SECRET": one["access_token_secret"],
                p + "SIGNATURE_KEY_FILE": one["signature_key_file"],
                p + "ENCRYPTION_KEY_FILE": one["encryption_key_file"],
                p + "DH_PARAM_FILE": self.path("dhparam.pem"),
                p + "REALM": one["realm"],
                p + "REST_URL": one["rest_url"],
                p + "WS_URL": one["ws_url"],
                p + "CACERT": str(one["cacert"]),
            }
        if flow == "2.0":
            two = self.oauth2_config
            p = "RXIBKR_OAUTH2_"
            return {
                p + "CLIENT_ID": two["client_id"],
                p + "KEY_ID": two["key_id"],
                p + "PRIVATE_KEY_FILE": two["private_key_file"],
                p + "CREDENTIAL": two["credential"],
                p + "IP": two["ip"],
                p + "OAUTH2_URL": two["oauth2_url"],
                p + "GATEWAY_URL": two["gateway_url"],
                p + "REST_URL": two["rest_url"],
                p + "WS_URL": two["ws_url"],
                p + "CACERT": str(two["cacert"]),
            }
        raise ValueError(f"flow: expected '1.0a' or '2.0', got {flow!r}")

    def ibind_env(self) -> dict[str, str]:
        """IBind 0.1.14's ``IBIND_*`` variables for this simulator (OAuth 1.0a)."""
        rest_url, ws_url, cacert = self._urls()
        env = {
            "IBIND_USE_OAUTH": "True",
            "IBIND_OAUTH1A_REST_URL": rest_url + "/",
            "IBIND_OAUTH1A_WS_URL": ws_url,
            "IBIND_OAUTH1A_ACCESS_TOKEN": self.access_token,
            "IBIND_OAUTH1A_ACCESS_TOKEN_SECRET": self.encrypted_secret,
            "IBIND_OAUTH1A_CONSUMER_KEY": self.consumer_key,
            "IBIND_OAUTH1A_DH_PRIME": format(self.prime, "x"),
            "IBIND_OAUTH1A_DH_GENERATOR": str(self.generator),
            "IBIND_OAUTH1A_ENCRYPTION_KEY_FP": self.path("private_encryption.pem"),
            "IBIND_OAUTH1A_SIGNATURE_KEY_FP": self.path("private_signature.pem"),
            "IBIND_OAUTH1A_REALM": self.realm,
        }
        if isinstance(cacert, str):
            env["IBIND_CACERT"] = cacert
            env["REQUESTS_CA_BUNDLE"] = cacert  # IbkrClient forces verify=True over OAuth
        return env

    # --- faults and inspection -----------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every LST, access token and bearer issued so far expires now (the next use gets 401)."""
        with self._lock:
            st = self._state
            for table in (st.lsts, st.access_tokens, st.bearers):
                for key in table:
                    table[key] = 0.0

    def revoke(self, revoked: bool = True) -> None:
        """The access token (1.0a) and the client (2.0) are refused from now on (False restores)."""
        with self._lock:
            self._revoked = revoked
            if revoked:
                self._state.lsts.clear()
                self._state.bearers.clear()
                self._state.access_tokens.clear()

    def count(self, what: str) -> int:
        with self._lock:
            return self._state.counts.get(what, 0)

    @property
    def rejections(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._state.rejections)

    def issued_secrets(self) -> list[str]:
        """Every credential this simulator issued or holds for the client (access token, encrypted
        secret, LSTs, access tokens, bearers): for tests that no secret leaks into logs or files."""
        with self._lock:
            st = self._state
            return [self.access_token, self.encrypted_secret, *st.lsts, *st.access_tokens, *st.bearers]

    def _bump(self, what: str) -> None:
        self._state.counts[what] = self._state.counts.get(what, 0) + 1

    # --- aiohttp wiring --------------------------------------------------------------------------
    def install(self, app: web.Application, gateway: Gateway) -> None:
        """Put the OAuth middleware outermost and keep the brokerage session closed until ssodh/init."""
        self._gateway = gateway
        gateway.authenticated = False

        @web.middleware
        async def oauth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._middleware(request, handler)

        app.middlewares.insert(0, oauth_middleware)

    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        gw = self._gateway
        assert gw is not None
        if not gw.is_allowed(request.remote):
            return web.Response(status=404, text="Access Denied")
        try:
            if path == TOKEN_PATH and "2.0" in self.flows:
                return await self._token(request)
            if path == SSO_PATH and "2.0" in self.flows:
                return await self._sso(request)
            if not path.startswith(PREFIX):
                return await handler(request)
            if path == LST_PATH and "1.0a" in self.flows:
                return await self._live_session_token(request)
            if path == WS_PATH:
                self._check_socket(request)
            else:
                await self._check_request(request)
        except Rejected as exc:
            with self._lock:
                self._state.rejections.append((path, exc.reason))
            log.debug("oauth: %s %s rejected: %s", request.method, path, exc.reason)
            return json_response({"error": exc.reason, "statusCode": exc.status}, exc.status)
        if path == LOGOUT_PATH and request.method == "POST":
            gw.set_authenticated(False)
            return json_response({"status": True})
        if path == SSODH_PATH and request.method == "POST":
            with self._lock:
                self._bump("ssodh_init")
            gw.set_authenticated(True)
            return json_response(frames.auth_status(gw.ident, authenticated=True, competing=False))
        return await handler(request)

    # --- OAuth 1.0a ---------------------------------------------------------------------------------
    def _header_params(self, request: web.Request) -> dict[str, str]:
        header = request.headers.get("Authorization", "")
        if not header.startswith("OAuth "):
            raise Rejected("missing OAuth authorization header")
        pairs = dict(_PAIR.findall(header))
        if pairs.get("realm") != self.realm:
            raise Rejected("invalid realm")
        for name in ("oauth_consumer_key", "oauth_nonce", "oauth_signature_method", "oauth_timestamp"):
            if not pairs.get(name):
                raise Rejected(f"missing {name}")
        if not pairs.get("oauth_signature"):
            raise Rejected("missing oauth_signature")
        if self._revoked or pairs["oauth_consumer_key"] != self.consumer_key:
            raise Rejected("invalid consumer")
        if not hmac.compare_digest(pairs.get("oauth_token", ""), self.access_token):
            raise Rejected("invalid token")
        try:
            ts = int(pairs["oauth_timestamp"])
        except ValueError:
            raise Rejected("invalid timestamp") from None
        if abs(time.time() - ts) > self.timestamp_window:
            raise Rejected("timestamp out of window")
        return pairs

    def _use_nonce(self, nonce: str) -> None:
        now = time.time()
        with self._lock:
            nonces = self._state.nonces
            if len(nonces) > 10_000:
                for key in [k for k, t in nonces.items() if now - t > 2 * self.timestamp_window]:
                    del nonces[key]
            if nonce in nonces:
                raise Rejected("nonce already used")
            nonces[nonce] = now

    @staticmethod
    def _candidate_urls(request: web.Request) -> list[str]:
        """URLs a client may have signed: the Host it sent (IBind sends ``Host: api.ibkr.com``) and the
        address it connected to."""
        urls = [f"{request.scheme}://{request.host}{request.path}"]
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        if sockname:
            host = sockname[0]
            host = f"[{host}]" if ":" in host else host
            urls.append(f"{request.scheme}://{host}:{sockname[1]}{request.path}")
        return urls

    def _base_strings(
        self, request: web.Request, params: dict[str, str], prepend: str = ""
    ) -> list[tuple[bytes, bool]]:
        signed = {k: v for k, v in params.items() if k not in ("realm", "oauth_signature")}
        query = dict(parse_qsl(request.query_string, keep_blank_values=True))
        variants = [(signed, False)]
        if query:  # IBKR's scheme adds the query parameters; IBind 0.1.14 signs without them
            variants.insert(0, ({**query, **signed}, True))
        out = []
        for url in self._candidate_urls(request):
            for variant, with_query in variants:
                pairs = "&".join(f"{k}={variant[k]}" for k in sorted(variant))
                text = prepend + "&".join((request.method, quote_plus(url), quote_plus(pairs)))
                out.append((text.encode(), with_query))
        return out

    async def _live_session_token(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            raise Rejected("method not allowed", 405)
        params = self._header_params(request)
        if params["oauth_signature_method"] != "RSA-SHA256":
            raise Rejected("invalid signature method")
        challenge = params.get("diffie_hellman_challenge", "")
        try:
            a_public = int(challenge, 16)
        except ValueError:
            raise Rejected("missing diffie_hellman_challenge", 400) from None
        if not 1 < a_public < self.prime - 1:
            raise Rejected("invalid diffie_hellman_challenge", 400)
        try:
            signature = base64.b64decode(unquote(params["oauth_signature"]), validate=True)
        except ValueError:
            raise Rejected("invalid signature") from None
        public = self._signature_key.public_key()
        for text, _ in self._base_strings(request, params, prepend=self._secret.hex()):
            try:
                public.verify(signature, text, padding.PKCS1v15(), hashes.SHA256())
                break
            except InvalidSignature:
                continue
        else:
            raise Rejected("invalid signature")
        self._use_nonce(params["oauth_nonce"])
        b_private = secrets.randbits(256)
        b_public = pow(self.generator, b_private, self.prime)
        shared = pow(a_public, b_private, self.prime)
        key = shared.to_bytes(shared.bit_length() // 8 + 1, "big")
        lst = hmac.new(key, self._secret, hashlib.sha1).digest()
        expires = time.time() + self.lst_lifetime
        with self._lock:
            self._state.lsts[base64.b64encode(lst).decode()] = expires
            self._bump("lst")
        return json_response(
            {
                "diffie_hellman_response": format(b_public, "x"),
                "live_session_token_signature": hmac.new(
                    lst, self.consumer_key.encode(), hashlib.sha1
                ).hexdigest(),
                "live_session_token_expiration": int(expires * 1000),
            }
        )

    def _check_oauth1(self, request: web.Request) -> None:
        params = self._header_params(request)
        if params["oauth_signature_method"] != "HMAC-SHA256":
            raise Rejected("invalid signature method")
        try:
            signature = base64.b64decode(unquote(params["oauth_signature"]), validate=True)
        except ValueError:
            raise Rejected("invalid signature") from None
        texts = self._base_strings(request, params)
        with self._lock:
            lsts = list(self._state.lsts.items())
        now = time.time()
        for token, expires in lsts:
            key = base64.b64decode(token)
            for text, with_query in texts:
                if not hmac.compare_digest(hmac.new(key, text, hashlib.sha256).digest(), signature):
                    continue
                if expires <= now:
                    raise Rejected("live session token expired")
                self._use_nonce(params["oauth_nonce"])
                with self._lock:
                    self._bump("signed")
                    if with_query:
                        self._bump("signed_with_query")
                    elif request.query_string:
                        self._bump("signed_without_query")
                return
        raise Rejected("invalid signature")

    # --- OAuth 2.0 ----------------------------------------------------------------------------------
    def _verify_jwt(self, token: str) -> dict[str, Any]:
        parts = token.strip().split(".")
        if len(parts) != 3:
            raise Rejected("malformed client assertion")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            raise Rejected("malformed client assertion") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise Rejected("malformed client assertion")
        if header.get("alg") != "RS256" or header.get("kid") != self.key_id:
            raise Rejected("unknown signing key")
        try:
            self._client_key.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise Rejected("invalid client assertion signature") from None
        now = time.time()
        if self._revoked or claims.get("iss") != self.client_id:
            raise Rejected("invalid client")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp <= now:
            raise Rejected("client assertion expired")
        if not isinstance(iat, int | float) or iat > now + self.timestamp_window:
            raise Rejected("client assertion issued in the future")
        return claims

    async def _token(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            raise Rejected("method not allowed", 405)
        form = dict(parse_qsl((await request.read()).decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            raise Rejected("unsupported grant_type", 400)
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            raise Rejected("unsupported client_assertion_type", 400)
        claims = self._verify_jwt(form.get("client_assertion", ""))
        if claims.get("sub") != self.client_id or claims.get("aud") != "/token":
            raise Rejected("invalid client assertion audience or subject")
        if form.get("scope") != "sso-sessions.write":
            raise Rejected("invalid scope", 400)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._state.access_tokens[token] = time.time() + self.access_token_lifetime
            self._bump("token")
        return json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "scope": "sso-sessions.write",
                "expires_in": int(self.access_token_lifetime),
            }
        )

    def _bearer_valid(self, table: dict[str, float], token: str, what: str) -> None:
        with self._lock:
            expires = table.get(token)
        if expires is None:
            raise Rejected(f"invalid {what}")
        if expires <= time.time():
            raise Rejected(f"{what} expired")

    async def _sso(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            raise Rejected("method not allowed", 405)
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise Rejected("missing bearer access token")
        self._bearer_valid(self._state.access_tokens, header[7:].strip(), "access token")
        claims = self._verify_jwt((await request.read()).decode("utf-8", "replace"))
        username = self._sim.config.username if self._sim is not None else "simuser"
        if claims.get("credential") != username:
            raise Rejected("invalid credential")
        bearer = secrets.token_urlsafe(32)
        with self._lock:
            self._state.bearers[bearer] = time.time() + self.bearer_lifetime
            self._bump("sso")
        return json_response(
            {"access_token": bearer, "token_type": "Bearer", "expires_in": int(self.bearer_lifetime)}
        )

    # --- every other request -------------------------------------------------------------------------
    async def _check_request(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and "2.0" in self.flows:
            self._bearer_valid(self._state.bearers, header[7:].strip(), "bearer token")
            with self._lock:
                self._bump("bearer")
            return
        if header.startswith("OAuth ") and "1.0a" in self.flows:
            self._check_oauth1(request)
            return
        raise Rejected("not authorized")

    def _check_socket(self, request: web.Request) -> None:
        token = request.query.get("oauth_token")
        if token is not None and "1.0a" in self.flows:
            if self._revoked or not hmac.compare_digest(token, self.access_token):
                raise Rejected("invalid token")
            return
        session_token = request.query.get("sessionToken")
        if session_token is not None and "2.0" in self.flows:
            self._bearer_valid(self._state.bearers, session_token, "session token")
            return
        raise Rejected("not authorized")


def _der_int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_len(len(body)) + body


def _der_len(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def dhparam_pem(prime: int, generator: int) -> bytes:
    """PKCS#3 DH parameters as PEM, like ``openssl dhparam`` writes them."""
    body = _der_int(prime) + _der_int(generator)
    der = b"\x30" + _der_len(len(body)) + body
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN DH PARAMETERS-----\n" + "\n".join(lines) + "\n-----END DH PARAMETERS-----\n").encode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def make_sim_oauth(oauth: SimOAuth | str | bool | None) -> SimOAuth | None:
    """``GatewaySimulator(oauth=...)``: None/False off, True both flows, "1.0a"/"2.0" one, or a SimOAuth."""
    if oauth is None or oauth is False:
        return None
    if isinstance(oauth, SimOAuth):
        return oauth
    if oauth is True:
        return SimOAuth()
    if isinstance(oauth, str) and oauth in FLOWS:
        return SimOAuth((oauth,))
    raise ValueError(f"oauth: expected None, True, '1.0a', '2.0' or a SimOAuth, got {oauth!r}")
