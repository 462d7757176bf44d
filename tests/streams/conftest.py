from __future__ import annotations

import warnings

import pytest


@pytest.fixture(autouse=True)
def _no_insecure_warning() -> None:
    warnings.filterwarnings("ignore", message="rxibkr: TLS certificate verification is disabled")
