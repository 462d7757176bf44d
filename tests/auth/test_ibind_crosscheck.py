"""The independent implementation: IBind 0.1.14's OAuth 1.0a client (IbkrClient and
IbkrWsClient(use_oauth=True)), configured only through its own IBIND_* variables with its REST and
socket URLs pointed at the simulator, authenticates and streams market data. IBind reads its
configuration at import, so it runs in a subprocess (tests/auth/ibind_oauth_probe.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rxibkr.sim import GatewaySimulator

from .conftest import FAST

pytest.importorskip("ibind")
pytest.importorskip("Crypto")  # pycryptodome, IBind's oauth extra

PROBE = Path(__file__).with_name("ibind_oauth_probe.py")


def test_ibind_oauth1a_authenticates_and_streams_against_the_simulator() -> None:
    with GatewaySimulator(oauth="1.0a", **FAST) as sim:
        assert sim.oauth is not None and sim.cacert is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("IBIND_")}
        env.update(sim.oauth.ibind_env())
        env.update(IBIND_LOG_TO_FILE="False", IBIND_AUTO_REGISTER_SHUTDOWN="False", IBIND_LOG_LEVEL="WARNING")
        proc = subprocess.run(
            [sys.executable, str(PROBE), sim.cacert], env=env, capture_output=True, text=True, timeout=90
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        assert proc.returncode == 0 and lines, f"IBind failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        result = json.loads(lines[-1][len("RESULT ") :])
        assert result["lst_validated"] is True
        assert result["tickle_session"] is True
        assert result["snapshot_conid"] == 265598  # a GET with query parameters, signed IBind's way
        assert result["started"] is True
        assert result["market_data"] >= 3
        assert "last_price" in result["first"]["265598"] or "bid_price" in result["first"]["265598"]
        assert sim.oauth.rejections == []
        assert sim.oauth.count("lst") == 1 and sim.oauth.count("ssodh_init") == 1
        assert sim.oauth.count("signed_without_query") >= 1  # IBind leaves the query out of its base string
