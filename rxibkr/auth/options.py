"""Glue for the client: ``IbkrWsClient(**oauth_client_options(config))`` connects over OAuth."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from rxibkr.auth.config import OAuth1aConfig, OAuth2Config, config_from_mapping
from rxibkr.auth.session import SignedSession


def oauth_session(
    config: OAuth1aConfig | OAuth2Config | Mapping[str, Any],
    *,
    timeout: float = 10.0,
    clock: Callable[[], float] = time.time,
    renew_before: float | None = None,
    compete: bool = True,
    reopen_brokerage: bool = True,
) -> SignedSession:
    """The signed REST session for ``config`` (OAuth 1.0a or 2.0, or its fields as a mapping).
    No network call yet.

    timeout: seconds per HTTP call. clock: the time source for expiry decisions. renew_before: renew
    the token at most this many seconds before it expires (default 600 for the LST, 300 for the
    bearer; never earlier than the last 10 % of its life). compete: ``ssodh/init`` takes over a
    competing brokerage session. reopen_brokerage: ``auth_status()`` re-opens a lapsed session."""
    if isinstance(config, Mapping):
        config = config_from_mapping(config)
    if isinstance(config, OAuth1aConfig):
        from rxibkr.auth.oauth1a import OAuth1aSession

        return OAuth1aSession(
            config,
            timeout=timeout,
            clock=clock,
            renew_before=600.0 if renew_before is None else renew_before,
            compete=compete,
            reopen_brokerage=reopen_brokerage,
        )
    if isinstance(config, OAuth2Config):
        from rxibkr.auth.oauth2 import OAuth2Session

        return OAuth2Session(
            config,
            timeout=timeout,
            clock=clock,
            renew_before=300.0 if renew_before is None else renew_before,
            compete=compete,
            reopen_brokerage=reopen_brokerage,
        )
    raise TypeError(f"config: expected OAuth1aConfig or OAuth2Config, got {type(config).__name__}")


def oauth_client_options(
    config: OAuth1aConfig | OAuth2Config | Mapping[str, Any] | SignedSession,
    *,
    timeout: float = 10.0,
    clock: Callable[[], float] = time.time,
    renew_before: float | None = None,
    compete: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for :class:`~rxibkr.IbkrWsClient`: ``url`` (the socket URL with
    ``?oauth_token=`` or ``?sessionToken=``), ``ibkr_client`` (the signed REST session: the client's
    tickle, auth status and live orders go through it) and ``cacert``.

    Over OAuth 1.0a nothing goes over the network here; over OAuth 2.0 the bearer is obtained now
    (the socket URL carries it) and the brokerage session is opened. The URL holds a credential:
    the client masks query values in its logs, repr and errors.
    """
    session = (
        config
        if isinstance(config, SignedSession)
        else oauth_session(config, timeout=timeout, clock=clock, renew_before=renew_before, compete=compete)
    )
    if session.flow == "2.0":
        session.login()
    return {"url": session.socket_url(), "ibkr_client": session, "cacert": session.cacert}
