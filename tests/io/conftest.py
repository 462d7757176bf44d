"""The reader's framing tests run twice: over the C accelerator (``rxibkr.io._frames``) and over the
pure-Python reader (``RXIBKR_PURE_PYTHON=1``), so that both paths keep the same behaviour."""

from __future__ import annotations

import pytest

from rxibkr.io import transport

_BOTH_PATHS = ("test_framing", "test_accelerator")


@pytest.fixture(autouse=True)
def reader_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    path: str = getattr(request, "param", "default")
    if path == "python":
        monkeypatch.setenv("RXIBKR_PURE_PYTHON", "1")
        assert transport.accelerator() is None
    elif path == "c":
        monkeypatch.delenv("RXIBKR_PURE_PYTHON", raising=False)
        if transport.accelerator() is None:
            pytest.skip("the C accelerator is not built here (no compiler at install time)")
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    both = module in _BOTH_PATHS and not hasattr(metafunc.function, "hypothesis")  # those set it per example
    if both and "reader_path" in metafunc.fixturenames:
        metafunc.parametrize("reader_path", ["c", "python"], indirect=True)
