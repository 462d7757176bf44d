"""IBKR's OAuth 1.0a scheme: pure functions (the simulator verifies with the same definitions of the
base string and the DH arithmetic, but its own code path) and the signed REST session.

The scheme, as IBKR documents it and IBind implements it:

* base string: ``METHOD&quote_plus(url)&quote_plus(k1=v1&k2=v2...)`` over the OAuth parameters (plus
  the query parameters), sorted by name; for the live session token (LST) request it is prefixed by
  the *prepend*: the access token secret decrypted with the private encryption key (RSA PKCS#1 v1.5),
  as hex;
* the LST request (``POST oauth/live_session_token``) is signed RSA-SHA256 (PKCS#1 v1.5) with the
  private signature key and carries ``diffie_hellman_challenge`` = g^a mod p (a: 256 random bits);
* LST = base64(HMAC-SHA1(key = K as a Java ``BigInteger.toByteArray()``, msg = prepend bytes)) with
  K = B^a mod p (B: ``diffie_hellman_response``); it is valid when
  hex(HMAC-SHA1(key = LST bytes, msg = consumer key)) equals ``live_session_token_signature``;
* every other request is signed HMAC-SHA256 with the LST bytes as key;
* ``Authorization: OAuth realm="limited_poa", k="v", ...`` (sorted; the signature percent-encoded).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote, quote_plus

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rxibkr.auth.config import AuthError, OAuth1aConfig
from rxibkr.auth.session import SignedSession

LST_ENDPOINT = "oauth/live_session_token"
_NONCE_CHARS = string.ascii_letters + string.digits


# --- pure helpers ---------------------------------------------------------------------------------
def nonce() -> str:
    """16 random alphanumeric characters (a fresh one for every request)."""
    return "".join(secrets.choice(_NONCE_CHARS) for _ in range(16))


def timestamp(clock: Callable[[], float] = time.time) -> str:
    return str(int(clock()))


def base_string(
    method: str,
    url: str,
    params: Mapping[str, str],
    prepend: str | None = None,
) -> str:
    """The signature base string: method, the URL without query, the sorted ``k=v`` pairs."""
    pairs = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    text = "&".join((method.upper(), quote_plus(url), quote_plus(pairs)))
    return text if prepend is None else prepend + text


def authorization_header(params: Mapping[str, str], realm: str) -> str:
    """``OAuth realm="<realm>", k="v", ...`` with the parameters sorted by name."""
    return f'OAuth realm="{realm}", ' + ", ".join(f'{k}="{v}"' for k, v in sorted(params.items()))


_HEADER_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"')


def parse_authorization_header(value: str) -> dict[str, str]:
    """The ``k="v"`` pairs of an ``OAuth ...`` header (values as sent, still percent-encoded)."""
    if not value.startswith("OAuth "):
        return {}
    return dict(_HEADER_PAIR.findall(value))


def load_private_key(path: str, what: str) -> rsa.RSAPrivateKey:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise AuthError(f"{what}: cannot read {path!r}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise AuthError(f"{what}: {path!r} is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AuthError(f"{what}: {path!r} is not an RSA private key")
    return key


def load_dh_prime(config: OAuth1aConfig) -> tuple[int, int]:
    """(p, g) from ``dh_prime``/``dh_generator`` or from the ``dhparam.pem`` file."""
    if config.dh_prime:
        return int(config.dh_prime, 16), int(config.dh_generator)
    assert config.dh_param_file is not None
    try:
        with open(config.dh_param_file, encoding="ascii") as handle:
            return parse_dhparam_pem(handle.read())
    except (OSError, ValueError, UnicodeDecodeError):
        raise AuthError(f"dh_param_file: cannot load DH parameters from {config.dh_param_file!r}") from None


def _der_length(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def parse_dhparam_pem(text: str) -> tuple[int, int]:
    """(p, g) of a PKCS#3 ``-----BEGIN DH PARAMETERS-----`` block (what ``openssl dhparam`` writes)."""
    begin, end = "-----BEGIN DH PARAMETERS-----", "-----END DH PARAMETERS-----"
    if begin not in text or end not in text:
        raise ValueError("no DH PARAMETERS block")
    der = base64.b64decode("".join(text.split(begin, 1)[1].split(end, 1)[0].split()))
    if der[0] != 0x30:
        raise ValueError("not a DER sequence")
    _, pos = _der_length(der, 1)
    values = []
    for _ in range(2):
        if der[pos] != 0x02:
            raise ValueError("expected an INTEGER")
        length, pos = _der_length(der, pos + 1)
        values.append(int.from_bytes(der[pos : pos + length], "big"))
        pos += length
    return values[0], values[1]


def rsa_sha256_signature(text: str, key: rsa.RSAPrivateKey) -> str:
    """base64 of the PKCS#1 v1.5 SHA-256 signature, percent-encoded for the header."""
    signature = key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    return quote_plus(base64.b64encode(signature).decode())


def hmac_sha256_signature(text: str, live_session_token: str) -> str:
    digest = hmac.new(base64.b64decode(live_session_token), text.encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def decrypt_prepend(access_token_secret: str, key: rsa.RSAPrivateKey) -> str:
    """The encrypted access token secret decrypted with the private encryption key, as hex."""
    try:
        plain = key.decrypt(base64.b64decode(access_token_secret), padding.PKCS1v15())
    except ValueError:
        raise AuthError("access token secret does not decrypt with the encryption key") from None
    return plain.hex()


def int_to_java_bytes(value: int) -> bytes:
    """Big-endian two's complement with a leading zero byte when the top bit is set
    (Java's ``BigInteger.toByteArray()``, which IBKR uses as the HMAC key)."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def dh_random() -> int:
    return secrets.randbits(256)


def dh_challenge(prime: int, generator: int, random_value: int) -> str:
    return format(pow(generator, random_value, prime), "x")


def live_session_token(prime: int, random_value: int, dh_response: str, prepend: str) -> str:
    shared = pow(int(dh_response, 16), random_value, prime)
    digest = hmac.new(int_to_java_bytes(shared), bytes.fromhex(prepend), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def lst_signature(token: str, consumer_key: str) -> str:
    """hex(HMAC-SHA1(LST, consumer key)): what IBKR returns as ``live_session_token_signature``."""
    return hmac.new(base64.b64decode(token), consumer_key.encode(), hashlib.sha1).hexdigest()


def validate_live_session_token(token: str, signature: str, consumer_key: str) -> bool:
    return hmac.compare_digest(lst_signature(token, consumer_key), signature.lower())


# --- the session ----------------------------------------------------------------------------------
class OAuth1aSession(SignedSession):
    """An :class:`~rxibkr.io.rest.IbkrSession` against ``api.ibkr.com`` over OAuth 1.0a.

    The first call obtains a live session token (DH exchange, RSA-SHA256), validates it, and opens the
    brokerage session (``iserver/auth/ssodh/init``); every call is signed HMAC-SHA256 with the LST.
    The LST is renewed before it expires, and once after a 401. The socket URL is
    ``ws_url?oauth_token=<access token>`` (:meth:`socket_url`); the access token does not change, so
    renewing the LST never drops the socket.
    """

    def __init__(
        self,
        config: OAuth1aConfig,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        renew_before: float = 600.0,
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
        self._signature_key = load_private_key(config.signature_key_file, "signature_key_file")
        self._prepend = decrypt_prepend(
            config.access_token_secret, load_private_key(config.encryption_key_file, "encryption_key_file")
        )
        self._prime, self._generator = load_dh_prime(config)
        self._lst: str | None = None

    def __repr__(self) -> str:
        return f"OAuth1aSession({self.base_url!r})"

    @property
    def flow(self) -> str:
        return "1.0a"

    def socket_url(self) -> str:
        return f"{self._config.ws_url}?oauth_token={quote(self._config.access_token, safe='')}"

    # -- signing -------------------------------------------------------------------------------------
    def _oauth_params(self, signature_method: str) -> dict[str, str]:
        return {
            "oauth_consumer_key": self._config.consumer_key,
            "oauth_nonce": nonce(),
            "oauth_signature_method": signature_method,
            "oauth_timestamp": timestamp(),
            "oauth_token": self._config.access_token,
        }

    def _auth_headers(self, method: str, url: str, query: Mapping[str, str]) -> dict[str, str]:
        token = self._lst
        if token is None:
            raise AuthError("no live session token")
        params = self._oauth_params("HMAC-SHA256")
        text = base_string(method, url, {**params, **query})
        params["oauth_signature"] = hmac_sha256_signature(text, token)
        return {"Authorization": authorization_header(params, self._config.realm)}

    # -- token -----------------------------------------------------------------------------------------
    def _obtain_token(self) -> float:
        """POST oauth/live_session_token; returns the expiry (epoch seconds)."""
        random_value = dh_random()
        params = self._oauth_params("RSA-SHA256")
        params["diffie_hellman_challenge"] = dh_challenge(self._prime, self._generator, random_value)
        url = f"{self.base_url}/{LST_ENDPOINT}"
        text = base_string("POST", url, params, prepend=self._prepend)
        params["oauth_signature"] = rsa_sha256_signature(text, self._signature_key)
        headers = {"Authorization": authorization_header(params, self._config.realm)}
        status, data = self._raw("POST", url, headers=headers)
        if status != 200 or not isinstance(data, dict):
            raise AuthError(f"live session token request rejected: HTTP {status}", status)
        try:
            response = str(data["diffie_hellman_response"])
            signature = str(data["live_session_token_signature"])
            expires_ms = int(data["live_session_token_expiration"])
        except (KeyError, TypeError, ValueError):
            raise AuthError("live session token answer lacks its DH response, signature or expiry") from None
        token = live_session_token(self._prime, random_value, response, self._prepend)
        if not validate_live_session_token(token, signature, self._config.consumer_key):
            raise AuthError("live session token does not validate against the consumer key")
        self._lst = token
        return expires_ms / 1000.0

    def _forget_token(self) -> None:
        self._lst = None

    def _open_brokerage_session(self) -> None:
        self.init_brokerage_session(compete=self._compete)
