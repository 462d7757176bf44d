"""rxibkr's client over OAuth 1.0a and OAuth 2.0 against the simulator: start, market data, signed REST,
token renewal without dropping the socket, one renewal after a 401, then the failure reported."""

from __future__ import annotations

import time

import pytest

from rxibkr.auth import OAuth1aConfig, OAuth2Config, SignedSession, oauth_client_options, oauth_session
from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ErrorEvent, ErrorKind
from rxibkr.io.rest import SessionError
from rxibkr.protocol import IbkrWsKey, Message
from rxibkr.sim import GatewaySimulator

from .conftest import CLIENT, wait_until

FLOWS = ["1.0a", "2.0"]


def config_for(sim: GatewaySimulator, flow: str) -> OAuth1aConfig | OAuth2Config:
    assert sim.oauth is not None
    if flow == "1.0a":
        return OAuth1aConfig(**sim.oauth.oauth1a_config)
    return OAuth2Config(**sim.oauth.oauth2_config)


def auth_count(sim: GatewaySimulator, flow: str) -> int:
    """REST calls the simulator accepted as signed (1.0a) or bearer-authorized (2.0)."""
    assert sim.oauth is not None
    return sim.oauth.count("signed" if flow == "1.0a" else "bearer")


def token_count(sim: GatewaySimulator, flow: str) -> int:
    assert sim.oauth is not None
    return sim.oauth.count("lst" if flow == "1.0a" else "sso")


def market_data(client: IbkrWsClient, conid: int = 265598) -> list[Message]:
    got: list[Message] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(got.append)
    assert client.subscribe(f"md+{conid}", {"fields": ["31", "84", "86"]})
    return got


@pytest.mark.parametrize("flow", FLOWS)
def test_client_starts_streams_and_signs_rest(sim: GatewaySimulator, flow: str) -> None:
    options = oauth_client_options(config_for(sim, flow))
    assert ("?oauth_token=" if flow == "1.0a" else "?sessionToken=") in options["url"]
    client = IbkrWsClient(**options, **CLIENT)
    try:
        assert client.start() is True
        got = market_data(client)
        assert wait_until(lambda: len(got) >= 3, 5), "no market data over OAuth"
        before = auth_count(sim, flow)
        session = options["ibkr_client"]
        assert session.live_orders(force=True)["orders"] == []
        snap = session.snapshot([265598], ["31"])
        assert snap and snap[0]["conid"] == 265598
        assert auth_count(sim, flow) >= before + 2  # each REST call was checked and accepted
        assert sim.oauth is not None and sim.oauth.rejections == []
        assert sim.oauth.count("ssodh_init") == 1  # the brokerage session was opened once
    finally:
        client.shutdown()


def test_oauth1a_signs_query_parameters_into_the_base_string(sim: GatewaySimulator) -> None:
    session = oauth_session(config_for(sim, "1.0a"))
    session.snapshot([265598, 8314], ["31", "84"])
    assert sim.oauth is not None
    assert sim.oauth.count("signed_with_query") == 1
    assert sim.oauth.count("signed_without_query") == 0


def test_unsigned_rest_and_socket_are_refused(sim: GatewaySimulator) -> None:
    """Over OAuth the simulator accepts neither a plain gateway session nor a socket without a token."""
    from rxibkr.io.rest import IbkrSession

    plain = IbkrSession(sim.rest_url, cacert=sim.cacert or False)
    with pytest.raises(SessionError) as excinfo:
        plain.tickle()
    assert excinfo.value.status == 401
    client = IbkrWsClient(url=sim.ws_url, cacert=sim.cacert, max_connection_attempts=1, **CLIENT)
    try:
        assert client.start() is False
    finally:
        client.shutdown()


class FakeClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.mark.parametrize("flow", FLOWS)
def test_token_renewed_before_expiry_without_dropping_the_socket(sim: GatewaySimulator, flow: str) -> None:
    clock = FakeClock()
    session = oauth_session(config_for(sim, flow), clock=clock)
    options = oauth_client_options(session)
    client = IbkrWsClient(**options, **CLIENT)
    try:
        assert client.start() is True
        got = market_data(client)
        assert wait_until(lambda: len(got) >= 2, 5)
        tokens = token_count(sim, flow)
        expires = session.token_expires_at
        assert expires is not None
        clock.offset = expires - time.time() - 1.0  # inside the renewal margin, not yet expired
        session.tickle()
        assert session.renewals == 1
        assert token_count(sim, flow) == tokens + 1
        assert session.token_expires_at is not None and session.token_expires_at > expires - 1
        n = len(got)
        assert wait_until(lambda: len(got) >= n + 3, 5), "market data stopped after the renewal"
        assert sim.total_connections == 1, "the socket was dropped by the renewal"
    finally:
        client.shutdown()


@pytest.mark.parametrize("flow", FLOWS)
def test_401_renews_once_then_succeeds(sim: GatewaySimulator, flow: str) -> None:
    session = oauth_session(config_for(sim, flow))
    session.tickle()
    tokens = token_count(sim, flow)
    assert sim.oauth is not None
    sim.oauth.expire_tokens()
    assert session.tickle()["session"]
    assert session.renewals == 1
    assert token_count(sim, flow) == tokens + 1
    # 2.0: the access token expired too, so the SSO session is refused once and a new one is fetched
    expired = (
        ["live session token expired"] if flow == "1.0a" else ["bearer token expired", "access token expired"]
    )
    assert [reason for _path, reason in sim.oauth.rejections] == expired


@pytest.mark.parametrize("flow", FLOWS)
def test_401_after_renewal_is_reported(sim: GatewaySimulator, flow: str) -> None:
    """Revoked credentials: the renewal itself is refused; REST raises, the client reports it on errors."""
    session = oauth_session(config_for(sim, flow))
    options = oauth_client_options(session)
    client = IbkrWsClient(**options, tickle_interval=0.1, **CLIENT)
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)
    try:
        assert client.start() is True
        assert sim.oauth is not None
        sim.oauth.revoke()
        with pytest.raises(SessionError) as excinfo:
            session.tickle()
        assert excinfo.value.status == 401
        assert wait_until(lambda: any(e.kind is ErrorKind.REST_ERROR for e in errors), 5)
        assert isinstance(session, SignedSession)
    finally:
        client.shutdown()


def test_both_flows_on_one_simulator_share_the_brokerage_session(sim: GatewaySimulator) -> None:
    one = oauth_session(config_for(sim, "1.0a"))
    two = oauth_session(config_for(sim, "2.0"))
    assert one.tickle()["session"] == two.tickle()["session"] == sim.session_id


def test_sim_oauth_argument_is_validated() -> None:
    with pytest.raises(ValueError, match="oauth"):
        GatewaySimulator(oauth="3.0")
    with pytest.raises(RuntimeError, match="start"):
        _ = GatewaySimulator(oauth="2.0").oauth.oauth2_config  # type: ignore[union-attr]


@pytest.mark.parametrize("flow", FLOWS)
def test_lapsed_brokerage_session_is_reopened_and_streams_resume(sim: GatewaySimulator, flow: str) -> None:
    """The gateway re-opens a lapsed brokerage session by itself; over OAuth the session's auth_status
    (which the client polls after an authentication loss) re-opens it with ssodh/init."""
    options = oauth_client_options(config_for(sim, flow))
    client = IbkrWsClient(**options, **CLIENT)
    try:
        assert client.start() is True
        got = market_data(client)
        assert wait_until(lambda: len(got) >= 2, 5)
        sim.set_authenticated(False)
        assert wait_until(lambda: sim.authenticated, 10), "brokerage session not re-opened"
        assert sim.oauth is not None and sim.oauth.count("ssodh_init") == 2
        assert wait_until(lambda: client.ready, 10)
        n = len(got)
        assert wait_until(lambda: len(got) >= n + 3, 10), "market data did not resume"
    finally:
        client.shutdown()


def test_oauth2_reconnect_after_bearer_renewal_uses_the_new_bearer(sim: GatewaySimulator) -> None:
    options = oauth_client_options(config_for(sim, "2.0"))
    client = IbkrWsClient(**options, max_reconnect_attempts=3, **CLIENT)
    try:
        assert client.start() is True
        assert sim.oauth is not None
        sim.oauth.expire_tokens()  # the bearer in the URL expires; the next tickle renews it
        sim.drop_connections()
        assert wait_until(lambda: sim.total_connections >= 2 and client.ready, 4)
        assert ("/v1/api/ws", "session token expired") not in sim.oauth.rejections
    finally:
        client.shutdown()


@pytest.mark.parametrize("flow", ["1.0a", "2.0"])
def test_the_oauth_keyword_connects_without_a_gateway(sim: GatewaySimulator, flow: str) -> None:
    """``IbkrWsClient(oauth=config)``: the socket URL, the signed REST session and the CA come from
    the config; market data flows."""
    client = IbkrWsClient(oauth=config_for(sim, flow), **CLIENT)
    got: list[Message] = []
    try:
        assert client.start() is True
        assert type(client.rest).__name__.startswith("OAuth")
        client.observe(IbkrWsKey.MARKET_DATA).subscribe(got.append)
        client.subscribe("md+265598", {"fields": ["31"]})
        assert wait_until(lambda: len(got) >= 2, 10)
    finally:
        client.shutdown()
