"""Defaults read from ``RXIBKR_*`` environment variables when a client is constructed (never at import)."""

from __future__ import annotations

import os
from typing import Final


class Unset:
    """Sentinel type: "take the default from the environment"."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<from RXIBKR_* environment>"

    def __bool__(self) -> bool:
        return False


ENV: Final = Unset()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={value!r}: expected one of 1/0/true/false/yes/no")


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected a number") from None


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected an integer") from None


def env_tls_cacert(name: str = "RXIBKR_CACERT") -> str | bool | None:
    """``RXIBKR_CACERT`` for :class:`rxibkr.io.tls.TlsPolicy`: unset or empty means None (pin a loopback
    gateway on first use, system CAs elsewhere); false/0/no/off means False (no verification);
    true/1/yes/on means True (system CAs); anything else is a path to a CA file."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    lowered = value.strip().lower()
    if lowered in _FALSE:
        return False
    if lowered in _TRUE:
        return True
    return value


# -- a parameter's value, or its environment default when the caller left it unset -------------------
def str_or_env(value: str | Unset | None, name: str) -> str | None:
    return env_str(name) if isinstance(value, Unset) else value


def bool_or_env(value: bool | Unset, name: str, default: bool) -> bool:
    return env_bool(name, default) if isinstance(value, Unset) else bool(value)


def float_or_env(value: float | Unset, name: str, default: float) -> float:
    return env_float(name, default) if isinstance(value, Unset) else float(value)


def int_or_env(value: int | Unset, name: str, default: int) -> int:
    return env_int(name, default) if isinstance(value, Unset) else int(value)


def tls_cacert_or_env(value: str | bool | Unset | None) -> str | bool | None:
    """``cacert`` as given, or ``RXIBKR_CACERT`` (see :func:`env_tls_cacert`) when left unset."""
    return env_tls_cacert() if isinstance(value, Unset) else value
