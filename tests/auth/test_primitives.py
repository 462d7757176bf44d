"""rxibkr's OAuth 1.0a building blocks give byte-for-byte what IBind 0.1.14's give for the same inputs."""

from __future__ import annotations

import base64
import random
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rxibkr.auth import oauth1a
from rxibkr.sim.oauth import MODP_2048, dhparam_pem

ib = pytest.importorskip("ibind.oauth.oauth1a")
Crypto_RSA = pytest.importorskip("Crypto.PublicKey.RSA")


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def test_java_byte_array_matches() -> None:
    rng = random.Random(7)
    values = [0, 1, 127, 128, 255, 256, 2**255, 2**256 - 1] + [
        rng.getrandbits(rng.randint(1, 2048)) for _ in range(300)
    ]
    for value in values:
        assert oauth1a.int_to_java_bytes(value) == bytes(ib.to_byte_array(value)), value


def test_base_string_and_header_match() -> None:
    params = {
        "oauth_consumer_key": "TESTCONS1",
        "oauth_nonce": "abcDEF0123456789",
        "oauth_signature_method": "HMAC-SHA256",
        "oauth_timestamp": "1700000000",
        "oauth_token": "a1b2c3d4e5f6a7b8c9d0",
        "diffie_hellman_challenge": "1f" * 40,
    }
    url = "https://api.ibkr.com/v1/api/iserver/marketdata/snapshot"
    for prepend in (None, "00ff" * 16):
        assert oauth1a.base_string("GET", url, params, prepend=prepend) == ib.generate_base_string(
            request_method="GET", request_url=url, request_headers=params, prepend=prepend
        )
    query = {"conids": "265598,8314", "fields": "31,84"}
    assert oauth1a.base_string("GET", url, {**params, **query}) == ib.generate_base_string(
        request_method="GET", request_url=url, request_headers=params, request_params=query
    )
    signed = dict(params, oauth_signature="x%2By%3D")
    assert oauth1a.authorization_header(signed, "limited_poa") == ib.generate_authorization_header_string(
        signed, "limited_poa"
    )
    assert oauth1a.parse_authorization_header(oauth1a.authorization_header(signed, "r")) == dict(
        signed, realm="r"
    )


def test_signatures_prepend_and_lst_match(key: rsa.RSAPrivateKey) -> None:
    ib_key = Crypto_RSA.importKey(pem(key))
    text = "POST&https%3A%2F%2Fapi.ibkr.com%2Fv1%2Fapi%2Ftickle&oauth_consumer_key%3DX"
    assert oauth1a.rsa_sha256_signature(text, key) == ib.generate_rsa_sha_256_signature(text, ib_key)

    secret = secrets.token_bytes(32)
    encrypted = base64.b64encode(key.public_key().encrypt(secret, padding.PKCS1v15())).decode()
    prepend = oauth1a.decrypt_prepend(encrypted, key)
    assert prepend == secret.hex() == ib.calculate_live_session_token_prepend(encrypted, ib_key)

    a = oauth1a.dh_random()
    challenge = oauth1a.dh_challenge(MODP_2048, 2, a)
    assert challenge == ib.generate_dh_challenge(format(MODP_2048, "x"), format(a, "x"), 2)
    b = secrets.randbits(256)
    response = format(pow(2, b, MODP_2048), "x")
    lst = oauth1a.live_session_token(MODP_2048, a, response, prepend)
    assert lst == ib.calculate_live_session_token(format(MODP_2048, "x"), format(a, "x"), response, prepend)

    signature = oauth1a.lst_signature(lst, "TESTCONS1")
    assert oauth1a.validate_live_session_token(lst, signature, "TESTCONS1")
    assert ib.validate_live_session_token(lst, signature, "TESTCONS1")
    assert not oauth1a.validate_live_session_token(lst, signature, "OTHERCONS")
    assert oauth1a.hmac_sha256_signature(text, lst) == ib.generate_hmac_sha_256_signature(text, lst)


def test_dhparam_pem_round_trip(tmp_path: Path) -> None:
    text = dhparam_pem(MODP_2048, 2).decode()
    assert text.startswith("-----BEGIN DH PARAMETERS-----")
    assert oauth1a.parse_dhparam_pem(text) == (MODP_2048, 2)
    with pytest.raises(ValueError):
        oauth1a.parse_dhparam_pem("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----")
