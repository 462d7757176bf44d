"""The fault scenarios of issue #9 against the simulator: recovery, its bound, and no frame lost.

Each test runs one scenario of ``scenarios.py`` (the same functions the report command runs) and
asserts every named check of its result; a failure message lists the checks that did not hold.
"""

from __future__ import annotations

import pytest

from . import scenarios
from .scenarios import ScenarioResult


def assert_ok(result: ScenarioResult) -> None:
    assert result.ok, f"{result.id}: {result.failures()}"
    if result.audit is not None:
        assert result.audit.lost == 0
        assert result.audit.frames_checked > 0


def test_tcp_drop_mid_stream_reconnects_and_resubscribes() -> None:
    result = scenarios.tcp_drop()
    assert_ok(result)
    assert result.recovery_s is not None and result.recovery_s <= scenarios.RECONNECT_BOUND


def test_heartbeats_stop_the_heartbeat_watchdog_resets_in_bound() -> None:
    assert_ok(scenarios.heartbeat_stop())


def test_pongs_stop_the_ping_watchdog_resets_in_bound() -> None:
    assert_ok(scenarios.pong_stop())


def test_stalled_handshake_start_gives_up_in_bound_and_leaves_no_thread() -> None:
    assert_ok(scenarios.handshake_stall())


def test_auth_loss_and_silent_recovery_through_rest() -> None:
    assert_ok(scenarios.auth_loss())


def test_competing_session_is_reported_and_data_goes_on() -> None:
    assert_ok(scenarios.competing_session())


def test_competing_session_taking_the_session_over_then_released() -> None:
    assert_ok(scenarios.competing_takeover())


def test_maintenance_close_1000_backoff_then_everything_back() -> None:
    assert_ok(scenarios.maintenance())


def test_unconfirmed_subscription_is_retried_then_failed_loudly() -> None:
    assert_ok(scenarios.unconfirmed_subscription())


def test_smd_renewal_keeps_market_data_flowing_past_many_expiries() -> None:
    assert_ok(scenarios.smd_renewal())


def test_raising_observers_do_not_stop_the_others_or_the_reader() -> None:
    assert_ok(scenarios.observer_raises())


def test_bad_frames_are_reported_and_the_stream_goes_on() -> None:
    assert_ok(scenarios.bad_frames())


@pytest.mark.slow
def test_10_mb_frames_malformed_reported_valid_delivered() -> None:
    assert_ok(scenarios.huge_frames())


@pytest.mark.slow
def test_reconnect_storm_of_100_drops_leaves_no_thread_memory_or_duplicate() -> None:
    assert_ok(scenarios.reconnect_storm(100))


def test_slow_consumers_of_orders_and_trades_get_everything() -> None:
    assert_ok(scenarios.slow_consumer())


@pytest.mark.slow
def test_a_firehose_of_50k_frames_arrives_whole() -> None:
    assert_ok(scenarios.firehose(50_000))
