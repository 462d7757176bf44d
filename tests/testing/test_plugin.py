"""The pytest plugin: registered by entry point, light to import, fixtures that clean up after themselves."""

from __future__ import annotations

import subprocess
import sys
import threading
from importlib.metadata import entry_points
from typing import Any

import pytest

from rxibkr.client.events import ConnectionState
from rxibkr.protocol import IbkrWsKey
from rxibkr.testing import frames

pytest_plugins = ["pytester"]

# Import the simulator's stack now, at collection: pytester restores sys.modules after each test (dropping
# what the test imported), and cryptography's bindings do not survive being imported twice in a process.
try:
    import trustme  # noqa: F401

    import rxibkr.sim  # noqa: F401

    HAVE_SIM = True
except ImportError:  # the sim extra is not installed
    HAVE_SIM = False
needs_sim = pytest.mark.skipif(not HAVE_SIM, reason="needs rxibkr's sim extra (aiohttp, trustme)")


def test_registered_through_the_pytest11_entry_point(pytestconfig: pytest.Config) -> None:
    found = [ep for ep in entry_points(group="pytest11") if ep.name == "rxibkr"]
    assert [ep.value for ep in found] == ["rxibkr.testing.plugin"]
    assert pytestconfig.pluginmanager.get_plugin("rxibkr") is not None


def test_loading_the_plugin_imports_neither_the_simulator_nor_aiohttp() -> None:
    code = (
        "import sys, rxibkr.testing.plugin\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'trustme') "
        "or m.startswith(('rxibkr.sim', 'rxibkr.record.recording', 'rxibkr.testing.virtual'))]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_ibkr_virtual_fixture(ibkr_virtual: Any) -> None:
    prices: list[str] = []
    ibkr_virtual.client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: prices.append(m.data["31"]))
    ibkr_virtual.gateway.play("-a", a=frames.smd(1, last=2.5))
    ibkr_virtual.advance_by(2)
    assert ibkr_virtual.client.state.value is ConnectionState.AUTHENTICATED and prices == ["2.5"]


@pytest.mark.ibkr_virtual(heartbeat_interval=None, timespan=0.5)
def test_ibkr_virtual_marker_options(ibkr_virtual: Any) -> None:
    assert ibkr_virtual.gateway.heartbeat_interval is None and ibkr_virtual.gateway.timespan == 0.5


INNER = """
import pytest
from rxibkr.client.events import ConnectionState
from rxibkr.protocol import IbkrWsKey

CLIENTS = []

@pytest.mark.ibkr_sim(seed=7, md_interval=0.02)
@pytest.mark.ibkr_client(subscription_timeout=1.5)
def test_client_gets_market_data(ibkr_sim, ibkr_client):
    import threading
    assert ibkr_sim.config.seed == 7 and ibkr_sim.config.md_interval == 0.02
    assert ibkr_sim.ws_url.startswith("wss://") and ibkr_sim.cacert
    assert ibkr_client.state.value is ConnectionState.AUTHENTICATED
    got = threading.Event()
    ibkr_client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: got.set())
    assert ibkr_client.subscribe("md+265598", {"fields": ["31"]})
    assert got.wait(5)
    CLIENTS.append(ibkr_client)

def test_the_client_was_shut_down():
    assert CLIENTS[0].state.value is ConnectionState.STOPPED

def test_virtual(ibkr_virtual):
    assert ibkr_virtual.client.ready
    CLIENTS.append(ibkr_virtual.client)

def test_the_virtual_client_was_shut_down():
    assert CLIENTS[1].state.value is ConnectionState.STOPPED

def test_sim_alone(ibkr_sim):
    assert ibkr_sim.running
"""


@needs_sim
def test_fixtures_run_and_leave_no_thread(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INNER)
    before = set(threading.enumerate())
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    deadline = threading.Event()
    for _ in range(50):  # threads end within moments of their join; allow a little scheduling slack
        if not set(threading.enumerate()) - before:
            break
        deadline.wait(0.05)
    assert set(threading.enumerate()) - before == set()


@needs_sim
def test_a_failed_connect_fails_the_test_and_still_cleans_up(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.ibkr_client(url="wss://127.0.0.1:1/v1/api/ws", timeout=0.2, max_connection_attempts=1)
def test_unreachable(ibkr_client):
    pass
"""
    )
    before = set(threading.enumerate())
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ibkr_client: no confirmed session*"])
    waiter = threading.Event()
    for _ in range(50):
        if not set(threading.enumerate()) - before:
            break
        waiter.wait(0.05)
    assert set(threading.enumerate()) - before == set()
