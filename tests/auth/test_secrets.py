"""No secret in a log, a repr, a recording or an error message; configuration from the environment."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rxibkr.auth import (
    AuthError,
    OAuth1aConfig,
    OAuth2Config,
    config_from_env,
    config_from_mapping,
    oauth_client_options,
    oauth_session,
)
from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ErrorEvent
from rxibkr.io.rest import SessionError
from rxibkr.protocol import IbkrWsKey, Message
from rxibkr.sim import GatewaySimulator

from .conftest import CLIENT, wait_until


@pytest.mark.parametrize("flow", ["1.0a", "2.0"])
def test_no_secret_in_logs_reprs_recordings_or_errors(
    sim: GatewaySimulator, flow: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert sim.oauth is not None
    config = config_from_mapping(sim.oauth.oauth1a_config if flow == "1.0a" else sim.oauth.oauth2_config)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = [repr(config), str(config)]
    options = oauth_client_options(config)
    session = options["ibkr_client"]
    client = IbkrWsClient(**options, tickle_interval=0.1, **CLIENT)
    errors: list[ErrorEvent] = []
    client.errors.subscribe(errors.append)
    got: list[Message] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(got.append)
    recording = tmp_path / "oauth.jsonl"
    try:
        assert client.start() is True
        recorder = client.record(recording)
        assert client.subscribe("md+265598", {"fields": ["31", "84"]})
        assert wait_until(lambda: len(got) >= 3, 5)
        texts += [repr(client), str(client), repr(session), str(session)]
        sim.oauth.expire_tokens()  # a 401, a renewal
        session.tickle()
        issued = sim.oauth.issued_secrets()  # revoke() forgets them
        sim.oauth.revoke()  # then failures everywhere
        with pytest.raises(SessionError) as excinfo:
            session.live_orders()
        texts += [str(excinfo.value), repr(excinfo.value)]
        assert wait_until(lambda: len(errors) >= 1, 5)
        recorder.dispose()
    finally:
        client.shutdown()
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    texts.append(recording.read_text())
    secrets = [*issued, sim.oauth.consumer_key, sim.oauth.client_id]
    assert len(secrets) >= 6  # access token, encrypted secret, 2 LSTs or 2 access tokens + 2 bearers, ids
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob, "a credential leaked"
    assert "***" in repr(config)


def test_config_from_environment(sim: GatewaySimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sim.oauth is not None
    one = OAuth1aConfig(**sim.oauth.oauth1a_config)
    env = {
        "RXIBKR_OAUTH1A_CONSUMER_KEY": one.consumer_key,
        "RXIBKR_OAUTH1A_ACCESS_TOKEN": one.access_token,
        "RXIBKR_OAUTH1A_ACCESS_TOKEN_SECRET": one.access_token_secret,
        "RXIBKR_OAUTH1A_SIGNATURE_KEY_FILE": one.signature_key_file,
        "RXIBKR_OAUTH1A_ENCRYPTION_KEY_FILE": one.encryption_key_file,
        "RXIBKR_OAUTH1A_DH_PARAM_FILE": sim.oauth.path("dhparam.pem"),  # the prime read from dhparam.pem
        "RXIBKR_OAUTH1A_REST_URL": one.rest_url,
        "RXIBKR_OAUTH1A_WS_URL": one.ws_url,
        "RXIBKR_OAUTH1A_CACERT": str(one.cacert),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = config_from_env("1.0a")
    assert isinstance(config, OAuth1aConfig) and config.dh_prime == "" and config.cacert == one.cacert
    assert oauth_session(config).tickle()["session"] == sim.session_id

    two = OAuth2Config(**sim.oauth.oauth2_config)
    environ = {
        "RXIBKR_OAUTH2_CLIENT_ID": two.client_id,
        "RXIBKR_OAUTH2_PRIVATE_KEY_FILE": two.private_key_file,
        "RXIBKR_OAUTH2_CREDENTIAL": two.credential,
        "RXIBKR_OAUTH2_OAUTH2_URL": two.oauth2_url,
        "RXIBKR_OAUTH2_GATEWAY_URL": two.gateway_url,
        "RXIBKR_OAUTH2_REST_URL": two.rest_url,
        "RXIBKR_OAUTH2_WS_URL": two.ws_url,
        "RXIBKR_OAUTH2_CACERT": str(two.cacert),
    }
    config2 = OAuth2Config.from_env(environ)
    assert oauth_session(config2).tickle()["session"] == sim.session_id


def test_incomplete_or_bad_configuration_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RXIBKR_OAUTH1A_CONSUMER_KEY"):
        OAuth1aConfig.from_env({})
    with pytest.raises(ValueError, match="RXIBKR_OAUTH2_CLIENT_ID"):
        OAuth2Config.from_env({})
    with pytest.raises(ValueError, match="signature_key_file: no such file"):
        OAuth1aConfig("K", "T", "S", str(tmp_path / "missing.pem"), str(tmp_path / "x.pem"), dh_prime="ff")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    config = OAuth1aConfig("K", "T", "S", str(junk), str(junk), dh_prime="ff")
    with pytest.raises(AuthError, match="not an unencrypted PEM private key"):
        oauth_session(config)
    with pytest.raises(ValueError, match="dh_prime"):
        OAuth1aConfig("K", "T", "S", str(junk), str(junk), dh_prime="xyz")
    with pytest.raises(ValueError, match="flow"):
        config_from_env("3")
    with pytest.raises(ValueError, match=r"consumer_key .* or client_id"):
        config_from_mapping({})
    with pytest.raises(ValueError, match="unknown OAuth2Config settings: colour"):
        config_from_mapping({"client_id": "x", "colour": "red"})


@pytest.mark.parametrize("flow", ["1.0a", "2.0"])
def test_simulator_client_env_round_trips(sim: GatewaySimulator, flow: str) -> None:
    assert sim.oauth is not None
    env = sim.oauth.client_env(flow)
    config = OAuth1aConfig.from_env(env) if flow == "1.0a" else OAuth2Config.from_env(env)
    assert oauth_session(config).tickle()["session"] == sim.session_id
