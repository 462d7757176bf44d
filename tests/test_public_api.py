"""Every public name resolves, and importing the package alone stays light."""

from __future__ import annotations

import subprocess
import sys

import rxibkr


def test_every_exported_name_resolves() -> None:
    for name in rxibkr.__all__:
        assert getattr(rxibkr, name) is not None, name


def test_importing_rxibkr_does_not_import_the_client() -> None:
    code = "import sys, rxibkr; print('rxibkr.client.core' in sys.modules, 'reactivex' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
