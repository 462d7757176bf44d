"""Security: TLS fails closed, secrets stay out of the logs, account ids are masked, the simulator
listens on loopback only."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from simclient import sim_client

from rxibkr.client.core import IbkrWsClient, mask_account_ids
from rxibkr.client.events import ConnectionState, ErrorEvent, ErrorKind
from rxibkr.protocol import IbkrWsKey
from rxibkr.sim import GatewaySimulator

from .harness import AAPL, CLIENT_OPTIONS, SIM_OPTIONS, Rig, wait_until

FAST = {k: v for k, v in CLIENT_OPTIONS.items() if k != "md_renewal_interval"}


def client_for(sim: GatewaySimulator, **kwargs: Any) -> IbkrWsClient:
    return sim_client(sim, **{**FAST, **kwargs})


def failed_start(client: IbkrWsClient) -> tuple[bool, float, list[ErrorEvent]]:
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)
    t0 = time.monotonic()
    try:
        started = client.start()
        return started, time.monotonic() - t0, errors
    finally:
        client.shutdown()


# =====================================================================================================
# TLS
# =====================================================================================================
@pytest.fixture(scope="module")
def sim() -> Any:
    with GatewaySimulator(**{**SIM_OPTIONS, "number_frames": False, "record_sent": False}) as simulator:
        yield simulator


def test_tls_verification_with_the_simulators_ca_works(sim: GatewaySimulator) -> None:
    client = client_for(sim)
    try:
        assert client.start() is True
        assert client.subscribe(f"md+{AAPL}", {"fields": ["31"]})
    finally:
        client.shutdown()


def test_a_wrong_ca_fails_closed_at_once_with_a_clear_message(sim: GatewaySimulator, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    wrong = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong))
    connections = sim.total_connections
    client = client_for(sim, cacert=str(wrong), max_connection_attempts=5)
    states: list[ConnectionState] = []
    client.state.subscribe(states.append)
    started, elapsed, errors = failed_start(client)
    assert started is False
    assert elapsed < 2.0  # fatal: no retry, no waiting for the start() bound
    assert ConnectionState.FAILED in states
    tls = [e for e in errors if e.kind is ErrorKind.TLS]
    assert len(tls) == 1, errors
    assert "TLS verification failed" in tls[0].message and "cacert" in tls[0].message
    assert "certificate verify failed" in tls[0].message
    assert sim.total_connections == connections  # no socket upgraded without verification


def test_the_system_store_does_not_trust_a_self_signed_gateway(sim: GatewaySimulator) -> None:
    started, _, errors = failed_start(client_for(sim, cacert=True))
    assert started is False
    assert any(e.kind is ErrorKind.TLS for e in errors), errors


def test_a_hostname_not_in_the_certificate_fails_closed() -> None:
    # the simulator's certificate names 127.0.0.1, localhost and ::1; listening on every address
    # (loopback callers only) it is reachable as 127.0.0.2 too, a name its certificate lacks
    options = {**SIM_OPTIONS, "number_frames": False, "record_sent": False}
    with GatewaySimulator(host="0.0.0.0", allowed_hosts=("127.0.0.0/8",), **options) as sim:
        good = client_for(sim, url=f"wss://127.0.0.1:{sim.port}/v1/api/ws")
        try:
            assert good.start() is True  # the same listener, by a name in the certificate
        finally:
            good.shutdown()
        client = client_for(sim, url=f"wss://127.0.0.2:{sim.port}/v1/api/ws")
        started, elapsed, errors = failed_start(client)
        assert started is False and elapsed < 2.0
        tls = [e for e in errors if e.kind is ErrorKind.TLS]
        assert len(tls) == 1, errors
        assert re.search(r"mismatch|doesn't match|not valid for", tls[0].message), tls[0].message
        assert "127.0.0.2" in tls[0].message


def test_cacert_false_warns_once_per_process() -> None:
    script = textwrap.dedent(
        """
        import warnings
        from reactivex.testing import TestScheduler
        from rxibkr.client.core import IbkrWsClient
        from rxibkr.testing import FakeTransport
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                IbkrWsClient(url="wss://gw.test/v1/api/ws", cacert=False,
                             transport=FakeTransport(TestScheduler()), scheduler=TestScheduler())
            IbkrWsClient(url="ws://gw.test/v1/api/ws", transport=FakeTransport(TestScheduler()))
        messages = [str(w.message) for w in caught if "verification is disabled" in str(w.message)]
        print(len(messages))
        print(messages[0] if messages else "")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    count, message = out.stdout.splitlines()[:2]
    assert count == "1", out.stdout + out.stderr
    assert "cacert" in message


# =====================================================================================================
# secrets and account ids in logs
# =====================================================================================================
SECRET_TOKEN = "Tok3nSecret42"


def _capture_everything(caplog: pytest.LogCaptureFixture) -> None:
    """DEBUG from every logger, whatever levels other code left on the named ones."""
    for name in (None, "rxibkr", "websocket", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)


def _log_text(caplog: pytest.LogCaptureFixture, client_only: bool = False) -> str:
    """Every captured record, formatted, with its exception text; ``client_only``: the client's own
    loggers (rxibkr, websocket-client), not the simulator's nor urllib3's request lines."""
    lines = []
    for record in caplog.records:
        name = record.name
        if client_only and not (
            name.startswith(("rxibkr", "websocket")) and not name.startswith("rxibkr.sim")
        ):
            continue
        lines.append(f"{name} {record.getMessage()} {record.exc_text or ''}")
    return "\n".join(lines)


def test_no_session_id_cookie_or_account_id_in_logs_over_a_whole_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _capture_everything(caplog)
    sim_options = {"tic_replies": 4, "fill_delay": 0.01}
    client_options = {"log_raw_messages": True, "tic_interval": 0.1, "tickle_interval": 0.2}
    with Rig(sim_options, client_options) as rig:
        sim, client = rig.sim, rig.client
        session = sim.session_id
        rig.subscribe_standard()  # sd+/ld+/bd+<account> channels, act, sts, history
        # tic replies carry the session id
        assert wait_until(lambda: sum(1 for e in rig.ledger.entries if e.message.topic == "tic") >= 4, 3.0)
        # the in-band session message (protocol section 1.2): the gateway asks, the client answers
        sim.send_raw(b'{"message":"waiting for session"}')
        assert wait_until(lambda: any(t.startswith('{"session"') for _c, t in sim.received_frames()), 3.0)
        # gateway errors naming accounts, a failed subscription of a foreign account
        t0 = time.monotonic()
        client.subscribe("sd+DU7654321", {}, wait=False)
        assert rig.wait_error(ErrorKind.SUBSCRIPTION_FAILED, t0, 3.0) is not None
        # orders and executions carry the account
        client.rest.place_order(
            sim.account, {"conid": AAPL, "side": "BUY", "quantity": 1, "orderType": "MKT"}
        )
        assert wait_until(lambda: bool(rig.ledger.since(t0, IbkrWsKey.TRADES)), 3.0)
        # REST tickles (every 0.2 s): their requests and answers are in the logs that are checked below
        tickles = sum(1 for r in caplog.records if "/tickle" in r.getMessage())
        assert wait_until(
            lambda: sum(1 for r in caplog.records if "/tickle" in r.getMessage()) >= tickles + 2, 5.0
        )
        # an authentication loss and a reconnect (a new cookie from a new tickle)
        last = sim.total_connections
        sim.set_authenticated(False)
        assert wait_until(lambda: client.state.value is ConnectionState.UNAUTHENTICATED, 3.0)
        sim.set_authenticated(True)
        assert rig.wait_recovered(last, 5.0) is not None
        errors = [e for _t, e in rig.errors]
    everything = _log_text(caplog)  # the simulator's and urllib3's records included
    assert session not in everything  # nor the cookie, which carries it
    assert session not in "\n".join(str(e) for e in errors)
    text = _log_text(caplog, client_only=True)
    assert "recv:" in text and "send:" in text  # raw logging was on
    assert '{"session":"<session>"}' in text  # the in-band session message, redacted
    # (urllib3's own DEBUG request lines name REST paths such as /iserver/account/<id>/orders: the
    # test placed an order through the REST session; that logger is not the client's)
    for account in ("DU1234567", "DU7654321"):
        assert account not in text, re.findall(rf".{{60}}{account}.{{20}}", text)[:3]
    assert "DU***567" in text and "DU***321" in text  # masked, still recognisable


def test_an_oauth_token_in_the_url_stays_out_of_logs_errors_and_repr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _capture_everything(caplog)
    options = {**SIM_OPTIONS, "number_frames": False, "record_sent": False}
    sim = GatewaySimulator(**options).start()
    url = f"{sim.ws_url}?oauth_token={SECRET_TOKEN}"
    client = client_for(sim, url=url, log_raw_messages=True, max_connection_attempts=2)
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)
    try:
        assert client.start() is True
        assert client.url == url  # the caller's own value is not altered
        sim.stop()  # the gateway goes away: reconnect attempts fail, naming the URL
        assert wait_until(lambda: sum(e.kind is ErrorKind.CONNECTION_ERROR for e in errors) >= 2, 5.0)
        assert SECRET_TOKEN not in repr(client)
        assert "oauth_token=***" in repr(client)
    finally:
        client.shutdown()
        sim.stop()
    assert any("oauth_token=***" in e.message for e in errors), errors
    assert all(SECRET_TOKEN not in str(e) for e in errors)
    assert SECRET_TOKEN not in _log_text(caplog)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("ssd+DU1234567", "ssd+DU***567"),
        ('{"acct":"U7654321","conid":265598}', '{"acct":"U***321","conid":265598}'),
        ("Invalid account 'DUO123456'", "Invalid account 'DUO***456'"),
        ("DF1234567.Core F7654321", "DF***567.Core F***321"),
        ("conid 265598, order 1883733600, session 0123456789abcdef0123456789abcdef", None),
        ("q0 smd+265598 Build 10.45.1a", None),
    ],
)
def test_mask_account_ids(text: str, masked: str | None) -> None:
    assert mask_account_ids(text) == (text if masked is None else masked)


def test_mask_account_ids_masks_a_configured_account_of_any_shape() -> None:
    assert mask_account_ids("acct ABCD12345 here", ["ABCD12345"]) == "acct AB***345 here"


# =====================================================================================================
# the simulator listens on loopback unless told otherwise
# =====================================================================================================
def _listening_addresses(port: int) -> set[str]:
    out: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port:  # LISTEN
                out.add(address)
    return out


def test_the_simulator_binds_loopback_by_default() -> None:
    simulator = GatewaySimulator()
    assert simulator.host == "127.0.0.1"
    assert set(simulator.config.allowed_hosts) == {"127.0.0.1", "::1"}
    with GatewaySimulator(heartbeat_interval=1.0) as sim:
        assert sim.ws_url.startswith("wss://127.0.0.1:")
        if not Path("/proc/net/tcp").exists():
            pytest.skip("no /proc/net/tcp to read the listening address from")
        assert _listening_addresses(sim.port) == {"0100007F"}  # 127.0.0.1, nothing else


def test_the_simulator_command_binds_loopback_by_default() -> None:
    import argparse

    from rxibkr.cli import sim as cli

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    assert parser.parse_args([]).host == "127.0.0.1"
