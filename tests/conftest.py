"""Session-wide checks: the test run leaves nothing behind in the system's temporary directory.

Everything the tests (and the processes they start: kernels, recorders) put in the temporary directory
goes to a private one for the session (``TMPDIR`` and ``tempfile.tempdir`` point there, so other
programs on the machine do not disturb the check); at the end it must be empty. pytest's own
``tmp_path`` directories stay where pytest keeps them (created before the switch).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _temporary_directory_is_left_clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    tmp_path_factory.getbasetemp()  # pytest's tmp_path root stays in the real temporary directory
    real = tempfile.gettempdir()
    private = tempfile.mkdtemp(prefix="rxibkr-tests-", dir=real)
    saved = {name: os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")}
    tempfile.tempdir = private
    for name in saved:
        os.environ[name] = private
    try:
        yield
    finally:
        tempfile.tempdir = None
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        left = sorted(os.listdir(private))
        shutil.rmtree(private, ignore_errors=True)
    assert not left, f"the tests left these in the temporary directory: {left}"
