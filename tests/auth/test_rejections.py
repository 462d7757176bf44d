"""The simulator refuses what IBKR refuses; every case is a hand-built request, signed with the scheme's
public building blocks (rxibkr.auth.oauth1a / oauth2), then spoiled in exactly one way."""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest
import urllib3
from cryptography.hazmat.primitives.asymmetric import rsa

from rxibkr.auth import oauth1a, oauth2
from rxibkr.auth.config import OAuth1aConfig, OAuth2Config
from rxibkr.io.rest import make_ssl_context
from rxibkr.sim import GatewaySimulator

from .conftest import FAST


@pytest.fixture(scope="module")
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(oauth=True, **FAST) as simulator:
        yield simulator


class Http:
    def __init__(self, sim: GatewaySimulator) -> None:
        context: ssl.SSLContext = make_ssl_context(sim.cacert or False)
        self.pool = urllib3.PoolManager(ssl_context=context, retries=False)

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, Any]:
        response = self.pool.request(method, url, headers=dict(headers), body=body)
        return response.status, json.loads(response.data) if response.data else None


class OAuth1a:
    """A hand-rolled OAuth 1.0a consumer: one LST, then requests signed (or spoiled) on demand."""

    def __init__(self, sim: GatewaySimulator) -> None:
        assert sim.oauth is not None
        self.cfg = OAuth1aConfig(**sim.oauth.oauth1a_config)
        self.http = Http(sim)
        self.sig_key = oauth1a.load_private_key(self.cfg.signature_key_file, "sig")
        enc_key = oauth1a.load_private_key(self.cfg.encryption_key_file, "enc")
        self.prepend = oauth1a.decrypt_prepend(self.cfg.access_token_secret, enc_key)
        self.p, self.g = int(self.cfg.dh_prime, 16), self.cfg.dh_generator
        status, _ = self.lst_request()
        assert status == 200

    def params(self, method: str, **over: str) -> dict[str, str]:
        p = {
            "oauth_consumer_key": self.cfg.consumer_key,
            "oauth_nonce": oauth1a.nonce(),
            "oauth_signature_method": method,
            "oauth_timestamp": oauth1a.timestamp(),
            "oauth_token": self.cfg.access_token,
        }
        p.update(over)
        return p

    def lst_request(self, key: rsa.RSAPrivateKey | None = None, **over: str) -> tuple[int, Any]:
        a = oauth1a.dh_random()
        params = self.params("RSA-SHA256", **over)
        params["diffie_hellman_challenge"] = oauth1a.dh_challenge(self.p, self.g, a)
        url = f"{self.cfg.rest_url}/{oauth1a.LST_ENDPOINT}"
        text = oauth1a.base_string("POST", url, params, prepend=self.prepend)
        params["oauth_signature"] = oauth1a.rsa_sha256_signature(text, key or self.sig_key)
        status, data = self.http.send(
            "POST", url, {"Authorization": oauth1a.authorization_header(params, self.cfg.realm)}
        )
        if status == 200:
            token = oauth1a.live_session_token(self.p, a, data["diffie_hellman_response"], self.prepend)
            assert oauth1a.validate_live_session_token(
                token, data["live_session_token_signature"], self.cfg.consumer_key
            )
            self.lst = token
        return status, data

    def header(self, path: str, lst: str | None = None, tamper: bool = False, **over: str) -> dict[str, str]:
        params = self.params("HMAC-SHA256", **over)
        text = oauth1a.base_string("POST", f"{self.cfg.rest_url}/{path}", params)
        signature = oauth1a.hmac_sha256_signature(text, lst or self.lst)
        if tamper:
            signature = ("A" if signature[0] != "A" else "B") + signature[1:]
        params["oauth_signature"] = signature
        return {"Authorization": oauth1a.authorization_header(params, self.cfg.realm)}

    def post(self, path: str, headers: Mapping[str, str]) -> tuple[int, Any]:
        return self.http.send("POST", f"{self.cfg.rest_url}/{path}", headers)


@pytest.fixture
def c1(sim: GatewaySimulator) -> OAuth1a:
    return OAuth1a(sim)


def reason(data: Any) -> str:
    return str(data["error"])


def test_a_correctly_signed_request_passes(c1: OAuth1a) -> None:
    status, data = c1.post("tickle", c1.header("tickle"))
    assert status == 200 and data["session"]


def test_bad_hmac_signature(c1: OAuth1a) -> None:
    status, data = c1.post("tickle", c1.header("tickle", tamper=True))
    assert (status, reason(data)) == (401, "invalid signature")


def test_signature_over_another_path(c1: OAuth1a) -> None:
    status, data = c1.post("tickle", c1.header("iserver/auth/status"))
    assert (status, reason(data)) == (401, "invalid signature")


def test_wrong_access_token(c1: OAuth1a) -> None:
    status, data = c1.post("tickle", c1.header("tickle", oauth_token="0" * 20))
    assert (status, reason(data)) == (401, "invalid token")


def test_unknown_consumer(c1: OAuth1a) -> None:
    status, data = c1.post("tickle", c1.header("tickle", oauth_consumer_key="NOTACONS1"))
    assert (status, reason(data)) == (401, "invalid consumer")


def test_reused_nonce(c1: OAuth1a) -> None:
    headers = c1.header("tickle")
    assert c1.post("tickle", headers)[0] == 200
    status, data = c1.post("tickle", headers)
    assert (status, reason(data)) == (401, "nonce already used")


@pytest.mark.parametrize("skew", [-3600, 3600])
def test_timestamp_out_of_window(c1: OAuth1a, skew: int) -> None:
    status, data = c1.post("tickle", c1.header("tickle", oauth_timestamp=str(int(time.time()) + skew)))
    assert (status, reason(data)) == (401, "timestamp out of window")


def test_unknown_live_session_token(c1: OAuth1a) -> None:
    forged = base64.b64encode(b"\x01" * 20).decode()
    status, data = c1.post("tickle", c1.header("tickle", lst=forged))
    assert (status, reason(data)) == (401, "invalid signature")


def test_expired_live_session_token(sim: GatewaySimulator, c1: OAuth1a) -> None:
    assert sim.oauth is not None
    sim.oauth.expire_tokens()
    status, data = c1.post("tickle", c1.header("tickle"))
    assert (status, reason(data)) == (401, "live session token expired")


def test_missing_authorization(c1: OAuth1a) -> None:
    status, data = c1.post("tickle", {})
    assert (status, reason(data)) == (401, "not authorized")


def test_lst_request_signed_with_the_wrong_key(c1: OAuth1a) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    status, data = c1.lst_request(key=other)
    assert (status, reason(data)) == (401, "invalid signature")


def test_lst_request_with_a_wrong_token_or_old_timestamp(c1: OAuth1a) -> None:
    assert reason(c1.lst_request(oauth_token="f" * 20)[1]) == "invalid token"
    assert (
        reason(c1.lst_request(oauth_timestamp=str(int(time.time()) - 3600))[1]) == "timestamp out of window"
    )


def test_lst_request_with_hmac_method(c1: OAuth1a) -> None:
    status, data = c1.lst_request(oauth_signature_method="HMAC-SHA256")
    assert (status, reason(data)) == (401, "invalid signature method")


def test_socket_with_a_wrong_oauth_token(sim: GatewaySimulator) -> None:
    http = Http(sim)
    url = sim.rest_url.replace("/v1/api", "") + "/v1/api/ws?oauth_token=" + "0" * 20
    status, data = http.send("GET", url, {"Connection": "Upgrade", "Upgrade": "websocket"})
    assert (status, reason(data)) == (401, "invalid token")


# --- OAuth 2.0 ---------------------------------------------------------------------------------------
class OAuth2:
    def __init__(self, sim: GatewaySimulator) -> None:
        assert sim.oauth is not None
        self.cfg = OAuth2Config(**sim.oauth.oauth2_config)
        self.http = Http(sim)
        self.key = oauth1a.load_private_key(self.cfg.private_key_file, "key")

    def token(
        self, key: rsa.RSAPrivateKey | None = None, kid: str | None = None, **claims: Any
    ) -> tuple[int, Any]:
        now = int(time.time())
        base = {
            "iss": self.cfg.client_id,
            "sub": self.cfg.client_id,
            "aud": "/token",
            "exp": now + 20,
            "iat": now - 10,
        }
        base.update(claims)
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": oauth2.CLIENT_ASSERTION_TYPE,
            "client_assertion": oauth2.make_jwt(base, key or self.key, kid or self.cfg.key_id),
            "scope": self.cfg.scope,
        }
        return self.http.send(
            "POST",
            f"{self.cfg.oauth2_url}/api/v1/token",
            {"Content-Type": "application/x-www-form-urlencoded"},
            urlencode(form).encode(),
        )

    def sso(self, access_token: str, **claims: Any) -> tuple[int, Any]:
        now = int(time.time())
        base = {
            "credential": self.cfg.credential,
            "iss": self.cfg.client_id,
            "exp": now + 60,
            "iat": now,
            "ip": "127.0.0.1",
        }
        base.update(claims)
        return self.http.send(
            "POST",
            f"{self.cfg.gateway_url}/api/v1/sso-sessions",
            {"Authorization": f"Bearer {access_token}", "Content-Type": "application/jwt"},
            oauth2.make_jwt(base, self.key, self.cfg.key_id).encode(),
        )

    def bearer(self) -> str:
        status, data = self.token()
        assert status == 200
        status, data = self.sso(data["access_token"])
        assert status == 200
        return str(data["access_token"])


@pytest.fixture
def c2(sim: GatewaySimulator) -> OAuth2:
    return OAuth2(sim)


def test_oauth2_happy_path(c2: OAuth2) -> None:
    bearer = c2.bearer()
    status, data = c2.http.send("POST", f"{c2.cfg.rest_url}/tickle", {"Authorization": f"Bearer {bearer}"})
    assert status == 200 and data["session"]


def test_client_assertion_signed_with_another_key(c2: OAuth2) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    status, data = c2.token(key=other)
    assert (status, reason(data)) == (401, "invalid client assertion signature")


def test_client_assertion_expired(c2: OAuth2) -> None:
    status, data = c2.token(exp=int(time.time()) - 5)
    assert (status, reason(data)) == (401, "client assertion expired")


def test_client_assertion_wrong_audience_issuer_or_kid(c2: OAuth2) -> None:
    assert reason(c2.token(aud="/other")[1]) == "invalid client assertion audience or subject"
    assert reason(c2.token(iss="someone-else")[1]) == "invalid client"
    assert reason(c2.token(kid="other")[1]) == "unknown signing key"


def test_sso_session_with_a_wrong_or_expired_access_token(sim: GatewaySimulator, c2: OAuth2) -> None:
    assert reason(c2.sso("not-a-token")[1]) == "invalid access token"
    _status, data = c2.token()
    access = data["access_token"]
    assert sim.oauth is not None
    sim.oauth.expire_tokens()
    assert reason(c2.sso(access)[1]) == "access token expired"


def test_sso_session_for_another_credential(c2: OAuth2) -> None:
    _status, data = c2.token()
    assert reason(c2.sso(data["access_token"], credential="someoneelse")[1]) == "invalid credential"


def test_wrong_and_expired_bearer(sim: GatewaySimulator, c2: OAuth2) -> None:
    url = f"{c2.cfg.rest_url}/tickle"
    assert reason(c2.http.send("POST", url, {"Authorization": "Bearer nope"})[1]) == "invalid bearer token"
    bearer = c2.bearer()
    assert sim.oauth is not None
    sim.oauth.expire_tokens()
    assert (
        reason(c2.http.send("POST", url, {"Authorization": f"Bearer {bearer}"})[1]) == "bearer token expired"
    )


def test_socket_with_a_wrong_or_expired_session_token(sim: GatewaySimulator, c2: OAuth2) -> None:
    base = sim.rest_url + "/ws?sessionToken="
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket"}
    assert reason(c2.http.send("GET", base + "nope", upgrade)[1]) == "invalid session token"
    bearer = c2.bearer()
    assert sim.oauth is not None
    sim.oauth.expire_tokens()
    assert reason(c2.http.send("GET", base + bearer, upgrade)[1]) == "session token expired"
