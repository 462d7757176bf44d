"""What the client trusts: one TLS policy, decided once from ``(url, cacert)``, shared by REST and socket.

``cacert`` (the client's parameter, or ``RXIBKR_CACERT``):

* a path: verify the server against that CA (a PEM file). A file that holds no certificate raises
  ValueError naming the path at construction.
* ``True``: verify against the system's CAs.
* ``False``: no verification at all, with one warning per process.
* ``None`` (the default): a loopback host (``localhost``, ``127.0.0.0/8``, ``::1``) gets its certificate
  **pinned on first use**: the SHA-256 fingerprint of the certificate it presents the first time is
  stored under ``host:port`` in a small JSON file and every later connection must present the same
  certificate; a changed certificate fails closed (:class:`CertificatePinError`) with a message
  saying how to re-pin. Any other host is verified against the system's CAs.

The pin check runs inside the TLS handshake of every socket made from :meth:`TlsPolicy.ssl_context`
(the context's ``sslsocket_class`` checks the peer certificate as soon as the handshake completes),
so the REST session (urllib3) and the WebSocket see the same check and cannot disagree.

The pin file is ``$RXIBKR_TLS_PINS`` if set, else ``<state dir>/rxibkr/tls-pins.json`` (the state dir
is ``$XDG_STATE_HOME``, ``~/.local/state``, or ``%LOCALAPPDATA%`` on Windows); ``pin_file=`` overrides
both. See docs/security.md for the threat model.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import logging
import os
import ssl
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

_LOGGER = logging.getLogger(__name__)

PIN_FILE_ENV = "RXIBKR_TLS_PINS"
"""Environment variable naming the pin file (overrides the default location)."""


class TlsMode(enum.Enum):
    """How a :class:`TlsPolicy` checks the server."""

    PLAIN = "plain"
    """``ws://`` or ``http://``: no TLS at all."""
    CA = "ca"
    """Verified against the CA file given as ``cacert``."""
    SYSTEM = "system"
    """Verified against the system's CAs (``cacert=True``, or a non-loopback host by default)."""
    PINNED = "pinned"
    """A loopback host's certificate pinned on first use (the default for loopback)."""
    INSECURE = "insecure"
    """No verification (``cacert=False``)."""


class CertificatePinError(ssl.SSLCertVerificationError):
    """The server presented a certificate other than the one pinned for its ``host:port``.

    A subclass of ``ssl.SSLCertVerificationError``: everything that treats a failed verification as
    fatal (no retry) treats this the same way.
    """


def default_pin_file() -> Path:
    """``$RXIBKR_TLS_PINS``, else ``tls-pins.json`` in the user's state directory."""
    env = os.environ.get(PIN_FILE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        state = os.environ.get("XDG_STATE_HOME", "").strip()
        base = Path(state) if state else Path.home() / ".local" / "state"
    return base / "rxibkr" / "tls-pins.json"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and addresses in ``127.0.0.0/8`` or ``::1`` (brackets allowed)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate as upper-case hex pairs joined by colons."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


# -- the pin store --------------------------------------------------------------------------------------
_store_lock = threading.Lock()


def _read_pins(path: Path) -> dict[str, str]:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValueError(
            f"TLS pin file {str(path)!r} is unreadable ({exc}); delete it to pin again on first use"
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(f"TLS pin file {str(path)!r}: expected a JSON object; delete it to pin again")
    return {str(k): str(v) for k, v in data.items()}


def _write_pins(path: Path, pins: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tls-pins-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(pins, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file, never half
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def forget_pin(key: str, pin_file: str | os.PathLike[str] | None = None) -> bool:
    """Remove the pin for ``key`` (``"host:port"``): the next connection pins again. True if one existed."""
    path = Path(pin_file) if pin_file is not None else default_pin_file()
    with _store_lock:
        pins = _read_pins(path)
        if key not in pins:
            return False
        del pins[key]
        _write_pins(path, pins)
    return True


# -- the policy -----------------------------------------------------------------------------------------
_warned_insecure = False
_warn_lock = threading.Lock()


def _warn_insecure() -> None:
    global _warned_insecure
    with _warn_lock:
        if _warned_insecure:
            return
        _warned_insecure = True
    warnings.warn(
        "rxibkr: TLS certificate verification is disabled (cacert=False). Pass the gateway's CA "
        "certificate path as cacert to verify it, or leave cacert unset to pin a local gateway's "
        "certificate on first use.",
        stacklevel=4,
    )


def _ca_context(path: str) -> ssl.SSLContext:
    if not os.path.isfile(path):
        raise ValueError(f"cacert: no such file: {path!r} (expected a PEM file with the gateway's CA)")
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=path)
    except (ssl.SSLError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"cacert: {path!r} holds no usable certificate ({exc}); expected a PEM file with the "
            "gateway's CA certificate (-----BEGIN CERTIFICATE-----)"
        ) from None
    return context


def _check_socket_class(check: Callable[[bytes | None], None]) -> type[ssl.SSLSocket]:
    class _CheckedSSLSocket(ssl.SSLSocket):
        """An SSLSocket that checks the peer certificate as soon as its handshake completes."""

        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            check(self.getpeercert(binary_form=True))

    return _CheckedSSLSocket


class TlsPolicy:
    """One decision about trust for one ``host:port``; build with :meth:`for_url`.

    :meth:`ssl_context` gives the context to use for both the REST session and the WebSocket (None for
    plain ``ws://``/``http://``). In :attr:`TlsMode.PINNED` mode every socket made from it checks the
    pin inside its handshake. The context is made once and shared.
    """

    def __init__(
        self,
        mode: TlsMode,
        host: str,
        port: int,
        *,
        cacert: str | None = None,
        pin_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.mode = mode
        self.host = host
        self.port = port
        self.cacert = cacert
        self.pin_file: Path | None = (
            (Path(pin_file) if pin_file is not None else default_pin_file())
            if mode is TlsMode.PINNED
            else None
        )
        self._context: ssl.SSLContext | None = None
        self._context_lock = threading.Lock()
        if mode is TlsMode.CA:
            assert cacert is not None
            self._context = _ca_context(cacert)  # fails now, at construction, naming the path
        elif mode is TlsMode.INSECURE:
            _warn_insecure()

    @classmethod
    def for_url(
        cls,
        url: str,
        cacert: str | os.PathLike[str] | bool | None = None,
        *,
        pin_file: str | os.PathLike[str] | None = None,
    ) -> TlsPolicy:
        """The policy for ``url`` (``ws(s)://`` or ``http(s)://``) and ``cacert`` (see the module doc)."""
        parts = urlsplit(url)
        secure = parts.scheme in ("wss", "https")
        if parts.scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(f"url: expected a ws(s):// or http(s):// URL, got {url!r}")
        host = parts.hostname or "localhost"
        port = parts.port or (443 if secure else 80)
        if not secure:
            return cls(TlsMode.PLAIN, host, port)
        if cacert is None:
            mode = TlsMode.PINNED if is_loopback_host(host) else TlsMode.SYSTEM
            return cls(mode, host, port, pin_file=pin_file)
        if cacert is True:
            return cls(TlsMode.SYSTEM, host, port)
        if cacert is False:
            return cls(TlsMode.INSECURE, host, port)
        if not isinstance(cacert, str | os.PathLike):
            raise TypeError(
                f"cacert: expected a path to a PEM file, True, False or None, got {type(cacert).__name__}"
            )
        return cls(TlsMode.CA, host, port, cacert=os.fspath(cacert))

    def __repr__(self) -> str:
        return f"TlsPolicy({self.mode.value}, {self.key!r})"

    @property
    def key(self) -> str:
        """``host:port`` as stored in the pin file (IPv6 hosts in brackets)."""
        host = self.host.lower()
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def verifies(self) -> bool:
        """False only for :attr:`TlsMode.INSECURE` (and PLAIN, which has no TLS)."""
        return self.mode in (TlsMode.CA, TlsMode.SYSTEM, TlsMode.PINNED)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The context for every TLS socket to this server; None for plain ``ws://``/``http://``."""
        if self.mode is TlsMode.PLAIN:
            return None
        with self._context_lock:
            if self._context is None:
                self._context = self._make_context()
            return self._context

    def _make_context(self) -> ssl.SSLContext:
        if self.mode is TlsMode.SYSTEM:
            return ssl.create_default_context()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if self.mode is TlsMode.PINNED:
            context.sslsocket_class = _check_socket_class(self.check_certificate)
        return context

    # -- pinning ---------------------------------------------------------------------------------------
    def pinned(self) -> str | None:
        """The fingerprint pinned for this ``host:port``, or None (not pinned yet, or not PINNED mode)."""
        if self.pin_file is None:
            return None
        with _store_lock:
            return _read_pins(self.pin_file).get(self.key)

    def forget(self) -> bool:
        """Drop this ``host:port``'s pin: the next connection pins whatever certificate it is shown."""
        return self.pin_file is not None and forget_pin(self.key, self.pin_file)

    def check_certificate(self, der: bytes | None) -> None:
        """Pin ``der`` if nothing is pinned for this ``host:port`` yet, else require the same certificate.

        Runs inside every handshake in PINNED mode. Raises :class:`CertificatePinError` on a mismatch.
        """
        if self.pin_file is None:
            return
        if not der:
            raise CertificatePinError(f"TLS: {self.key} presented no certificate; nothing to pin")
        seen = fingerprint(der)
        with _store_lock:
            pins = _read_pins(self.pin_file)
            expected = pins.get(self.key)
            if expected is None:
                pins[self.key] = seen
                _write_pins(self.pin_file, pins)
                _LOGGER.warning(
                    "TLS: pinned the certificate of %s on first use (SHA-256 %s) in %s",
                    self.key,
                    seen,
                    self.pin_file,
                )
                return
        if expected != seen:
            raise CertificatePinError(
                f"TLS certificate of {self.key} changed: pinned SHA-256 {expected}, presented {seen}. "
                "Refusing to connect (someone may be impersonating the gateway). If the gateway's "
                f"certificate was replaced on purpose, re-pin: remove the entry {self.key!r} from "
                f"{str(self.pin_file)!r} (rxibkr.io.tls.forget_pin({self.key!r})) and connect again, "
                "or pass cacert=<the gateway's CA file>."
            )

    def ensure_pinned(self, timeout: float = 10.0) -> str | None:
        """PINNED mode: the pinned fingerprint, connecting once to pin it first if needed. Else None."""
        if self.mode is not TlsMode.PINNED:
            return None
        existing = self.pinned()
        if existing is not None:
            return existing
        context = self.ssl_context()
        assert context is not None
        import socket

        with socket.create_connection((self.host, self.port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=self.host):  # pins inside the handshake
                pass
        return self.pinned()

    def urllib3_options(self, timeout: float = 10.0) -> dict[str, Any]:
        """Keyword arguments for ``urllib3.PoolManager``: the same context, and in PINNED mode the pinned
        fingerprint as ``assert_fingerprint`` (connecting once to pin it first if needed)."""
        context = self.ssl_context()
        if context is None:
            return {}
        options: dict[str, Any] = {"ssl_context": context}
        if self.mode is TlsMode.PINNED:
            options["assert_fingerprint"] = self.ensure_pinned(timeout)
        return options


def describe_tls_failure(url: str, error: BaseException | None) -> str:
    """One sentence for a failed TLS verification of ``url``, saying what to do about it."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, CertificatePinError):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    return (
        f"TLS verification failed for {url}: {error}. Check cacert (the gateway's CA certificate), "
        "leave cacert unset to pin a local gateway's certificate on first use, or pass cacert=False to "
        "disable verification."
    )
