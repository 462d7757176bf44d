"""TLS policy over real sockets: pin on first use, a changed certificate fails closed, a CA file,
cacert=False warns once, other hosts use the system's CAs. The REST session and the socket agree."""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import orjson
import pytest

from rxibkr.io.failures import classify_connect_error
from rxibkr.io.rest import IbkrSession, SessionError
from rxibkr.io.tls import CertificatePinError, TlsMode, TlsPolicy, default_pin_file, forget_pin
from rxibkr.io.transport import ConnectOptions, WebSocketTransport

from .support import Recorder

pytest.importorskip("aiohttp")
pytest.importorskip("trustme")

from rxibkr.sim import GatewaySimulator


def served_fingerprint(port: int) -> str:
    """The SHA-256 of the certificate the server on ``port`` presents, computed without rxibkr."""
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def connect(sim: GatewaySimulator, policy: TlsPolicy) -> tuple[bool, BaseException | None]:
    """Open the simulator's socket with ``policy``'s context; True if it opened."""

    def close_on_open(connection: object) -> None:
        connection.close()  # type: ignore[attr-defined]

    options = ConnectOptions(url=sim.ws_url, timeout=5, ssl_context=policy.ssl_context())
    recorder = Recorder(on_open_hook=close_on_open)  # closes as soon as the socket is open
    connection = WebSocketTransport().open(options, recorder)
    connection.start()  # type: ignore[attr-defined]
    assert recorder.closed.wait(10) and connection.join(10)
    assert recorder.close is not None
    return recorder.opened.is_set(), recorder.close[2]


def test_a_loopback_gateway_is_pinned_on_first_use_and_rest_and_socket_agree(tmp_path: Path) -> None:
    pins = tmp_path / "state" / "pins.json"
    with GatewaySimulator() as sim:
        policy = TlsPolicy.for_url(sim.ws_url, None, pin_file=pins)
        assert policy.mode is TlsMode.PINNED and policy.pinned() is None
        session = IbkrSession(sim.rest_url, tls=policy)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no InsecureRequestWarning: urllib3 checks the fingerprint
            assert session.tickle()["session"]
        expected = served_fingerprint(sim.port)
        assert orjson.loads(pins.read_bytes()) == {f"127.0.0.1:{sim.port}": expected}
        opened, error = connect(sim, policy)  # the socket checks the same pin
        assert opened and error is None
        again = TlsPolicy.for_url(sim.ws_url, None, pin_file=pins)  # a later process, same file
        assert again.pinned() == expected
        assert connect(sim, again) == (True, None)
        assert IbkrSession(sim.rest_url, pin_file=pins).tickle()["session"]
        assert orjson.loads(pins.read_bytes()) == {f"127.0.0.1:{sim.port}": expected}


def test_the_socket_alone_pins_too(tmp_path: Path) -> None:
    pins = tmp_path / "pins.json"
    with GatewaySimulator() as sim:
        policy = TlsPolicy.for_url(f"wss://localhost:{sim.port}/v1/api/ws", None, pin_file=pins)
        assert connect(sim, policy) == (True, None)
        assert policy.pinned() == served_fingerprint(sim.port)
        assert list(orjson.loads(pins.read_bytes())) == [f"localhost:{sim.port}"]


def test_a_changed_certificate_fails_closed_with_how_to_re_pin(tmp_path: Path) -> None:
    pins = tmp_path / "pins.json"
    with GatewaySimulator() as first:
        port = first.port
        assert IbkrSession(first.rest_url, pin_file=pins).tickle()["session"]
    # the same host:port now presents another certificate (a new CA: the simulator makes one per start)
    with GatewaySimulator(port=port) as second:
        connections = second.total_connections
        policy = TlsPolicy.for_url(second.ws_url, None, pin_file=pins)
        opened, error = connect(second, policy)
        assert not opened and isinstance(error, CertificatePinError)
        message = str(error)
        assert f"127.0.0.1:{port}" in message and "changed" in message
        assert str(pins) in message and "forget_pin" in message  # how to re-pin
        assert classify_connect_error(error, second.ws_url).retryable is False
        with pytest.raises(SessionError) as caught:  # the REST session refuses it too
            IbkrSession(second.rest_url, pin_file=pins).tickle()
        failure = classify_connect_error(caught.value, second.rest_url)
        assert (failure.kind, failure.retryable) == ("tls", False) and "changed" in failure.reason
        assert second.total_connections == connections  # nothing was upgraded
        # re-pin as the message says: forget, connect again
        assert forget_pin(f"127.0.0.1:{port}", pins) is True
        assert connect(second, TlsPolicy.for_url(second.ws_url, None, pin_file=pins)) == (True, None)
        assert policy.pinned() == served_fingerprint(port)


def test_a_ca_file_verifies_and_a_file_that_is_not_a_certificate_is_a_value_error(tmp_path: Path) -> None:
    with GatewaySimulator() as sim:
        assert sim.cacert is not None
        policy = TlsPolicy.for_url(sim.ws_url, sim.cacert)
        assert policy.mode is TlsMode.CA and policy.pin_file is None
        assert connect(sim, policy) == (True, None)
        assert IbkrSession(sim.rest_url, cacert=sim.cacert).tickle()["session"]
    not_a_cert = tmp_path / "cacert.pem"
    not_a_cert.write_text("this is not a certificate\n")
    for make in (
        lambda: TlsPolicy.for_url("wss://localhost:5000/v1/api/ws", str(not_a_cert)),
        lambda: IbkrSession("https://localhost:5000/v1/api", cacert=str(not_a_cert)),
    ):
        with pytest.raises(ValueError, match="holds no usable certificate") as caught:
            make()
        assert str(not_a_cert) in str(caught.value)
        assert not isinstance(caught.value, ssl.SSLError)
    with pytest.raises(ValueError, match="no such file"):
        TlsPolicy.for_url("wss://localhost:5000/v1/api/ws", str(tmp_path / "missing.pem"))


def test_cacert_false_connects_unverified_and_warns_once_per_process() -> None:
    script = textwrap.dedent(
        """
        import warnings
        from rxibkr.io.rest import IbkrSession
        from rxibkr.io.tls import TlsPolicy
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                TlsPolicy.for_url("wss://gw.test/v1/api/ws", False)
                IbkrSession("https://gw.test/v1/api", cacert=False)
            TlsPolicy.for_url("wss://gw.test/v1/api/ws", None)
        messages = [str(w.message) for w in caught if "verification is disabled" in str(w.message)]
        print(len(messages), len(caught))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["1", "1"], out.stdout + out.stderr
    with GatewaySimulator() as sim, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        policy = TlsPolicy.for_url(sim.ws_url, False)
        assert policy.mode is TlsMode.INSECURE and not policy.verifies
        assert connect(sim, policy) == (True, None)


def test_other_hosts_use_the_systems_cas_and_loopback_is_pinned(tmp_path: Path) -> None:
    for url in (
        "wss://gateway.example.com:5000/v1/api/ws",
        "wss://10.1.2.3:5000/v1/api/ws",
        "https://[2001:db8::1]:5000/v1/api",
    ):
        policy = TlsPolicy.for_url(url, None, pin_file=tmp_path / "pins.json")
        assert policy.mode is TlsMode.SYSTEM and policy.pin_file is None
        context = policy.ssl_context()
        assert context is not None
        assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
        assert (
            context.cert_store_stats()["x509_ca"]
            == ssl.create_default_context().cert_store_stats()["x509_ca"]
        )
    for url, key in (
        ("wss://localhost:5000/v1/api/ws", "localhost:5000"),
        ("wss://127.0.0.1/v1/api/ws", "127.0.0.1:443"),
        ("wss://127.9.8.7:5000/v1/api/ws", "127.9.8.7:5000"),
        ("https://[::1]:5000/v1/api", "[::1]:5000"),
    ):
        policy = TlsPolicy.for_url(url, None, pin_file=tmp_path / "pins.json")
        assert policy.mode is TlsMode.PINNED and policy.key == key
    assert TlsPolicy.for_url("wss://gateway.example.com/v1/api/ws", True).mode is TlsMode.SYSTEM
    plain = TlsPolicy.for_url("ws://localhost:5000/v1/api/ws", None)
    assert plain.mode is TlsMode.PLAIN and plain.ssl_context() is None


def test_the_pin_file_location_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RXIBKR_TLS_PINS", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_pin_file() == tmp_path / "xdg" / "rxibkr" / "tls-pins.json"
    monkeypatch.setenv("RXIBKR_TLS_PINS", str(tmp_path / "mine.json"))
    assert default_pin_file() == tmp_path / "mine.json"
    assert TlsPolicy.for_url("wss://localhost:5000/v1/api/ws").pin_file == tmp_path / "mine.json"
