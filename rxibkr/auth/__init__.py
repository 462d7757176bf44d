"""Connect to IBKR's servers without a gateway: OAuth 1.0a and OAuth 2.0 (needs the ``oauth`` extra).

    from rxibkr import IbkrWsClient
    from rxibkr.auth import OAuth1aConfig, oauth_client_options

    client = IbkrWsClient(**oauth_client_options(OAuth1aConfig.from_env()))

Configs and :func:`oauth_client_options` import without ``cryptography``; the sessions need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rxibkr.auth.config import AuthError, OAuth1aConfig, OAuth2Config, config_from_mapping
from rxibkr.auth.options import oauth_client_options, oauth_session
from rxibkr.auth.session import SignedSession

if TYPE_CHECKING:
    from rxibkr.auth.oauth1a import OAuth1aSession
    from rxibkr.auth.oauth2 import OAuth2Session


def __getattr__(name: str) -> Any:
    if name == "OAuth1aSession":
        from rxibkr.auth.oauth1a import OAuth1aSession

        return OAuth1aSession
    if name == "OAuth2Session":
        from rxibkr.auth.oauth2 import OAuth2Session

        return OAuth2Session
    raise AttributeError(f"module 'rxibkr.auth' has no attribute {name!r}")


def config_from_env(flow: str) -> OAuth1aConfig | OAuth2Config:
    """``"1.0a"`` -> :meth:`OAuth1aConfig.from_env`, ``"2.0"`` -> :meth:`OAuth2Config.from_env`."""
    if flow in ("1.0a", "oauth1a", "1"):
        return OAuth1aConfig.from_env()
    if flow in ("2.0", "oauth2", "2"):
        return OAuth2Config.from_env()
    raise ValueError(f"flow: expected '1.0a' or '2.0', got {flow!r}")


__all__ = [
    "AuthError",
    "OAuth1aConfig",
    "OAuth1aSession",
    "OAuth2Config",
    "OAuth2Session",
    "SignedSession",
    "config_from_env",
    "config_from_mapping",
    "oauth_client_options",
    "oauth_session",
]
