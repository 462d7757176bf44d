"""Fixtures and markers of the resilience suite."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("trustme")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a long resilience scenario (storm, 10 MB frame); still part of the default run"
    )


@pytest.fixture(autouse=True)
def _no_insecure_warning_noise() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield
