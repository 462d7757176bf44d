"""Client behaviours the suite did not exercise: ``md+CONID@EXCH`` channels, check_ping/check_health,
unsubscribe with confirmation (its wait, confirmation and UNSUBSCRIPTION_FAILED timeout),
restart_on_close=False, restart_on_critical=False, recreate_subscriptions, modify_subscription's
options, get()/empty(), and bad RXIBKR_* environment values.

Virtual time (``virtual_client``: a real client on a TestScheduler with a scripted gateway) where the
clock matters; the simulator over loopback where a blocking call's wait is the point.
"""

from __future__ import annotations

from typing import Any

import pytest

from rxibkr import ConnectionState, ErrorKind, IbkrWsClient, IbkrWsKey, SubscriptionStatus
from rxibkr.client.events import ErrorEvent
from rxibkr.protocol import IbkrSubscriptionProcessor
from rxibkr.testing import frames, virtual_client
from rxibkr.testing.virtual import VirtualClient


def errors_of(vc: VirtualClient) -> list[ErrorEvent]:
    seen: list[ErrorEvent] = []
    vc.client.errors.subscribe(seen.append)
    return seen


def texts(vc: VirtualClient) -> list[str]:
    return [s.text for s in vc.sent]


# -- md+CONID@EXCH ----------------------------------------------------------------------------------
def test_an_exchange_qualified_market_data_subscription_is_confirmed_by_its_plain_topic() -> None:
    with virtual_client() as vc:
        prices: list[Any] = []
        vc.client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: prices.append(m.data["31"]))
        handle = vc.client.subscribe("md+265598@SMART", {"fields": ["31"]}, wait=False)
        vc.advance_by(0.1)
        assert 'smd+265598@SMART+{"fields": ["31"]}' in texts(vc)
        assert handle.status is SubscriptionStatus.PENDING
        vc.receive(frames.smd(265598, last=101.5))  # the gateway answers on smd+265598
        vc.advance_by(0.1)
        assert handle.status is SubscriptionStatus.ACTIVE
        assert vc.client.is_subscription_active("md+265598@SMART")
        assert prices == ["101.5"] or prices == [101.5]
        vc.advance_by(30)  # confirmed: never re-sent, never failed
        assert texts(vc).count('smd+265598@SMART+{"fields": ["31"]}') == 1
        handle.dispose()
        vc.advance_by(0.1)
        assert texts(vc)[-1] == "umd+265598@SMART+{}"


# -- check_ping / check_health --------------------------------------------------------------------
def test_check_ping_and_check_health_on_a_live_client_and_a_stopped_one() -> None:
    vc = virtual_client()
    vc.advance_by(15)  # pings answered, heartbeats every 10 s
    assert vc.client.check_ping() is True
    assert vc.client.check_health() is True
    assert vc.client.state.value is ConnectionState.AUTHENTICATED  # no reset was needed
    vc.shutdown()
    assert vc.client.check_ping() is True  # not connected: nothing to check
    assert vc.client.check_health() is False  # not running


def test_a_gateway_that_stops_answering_pings_is_reset_by_the_watchdog() -> None:
    with virtual_client() as vc:
        seen = errors_of(vc)
        vc.gateway.auto_pong = False
        vc.advance_by(19.9)
        assert [e for e in seen if e.kind is ErrorKind.WATCHDOG] == []
        vc.advance_by(0.2)  # max_ping_interval (20 s) without a pong
        assert [e.kind for e in seen if e.kind is ErrorKind.WATCHDOG] == [ErrorKind.WATCHDOG]
        vc.gateway.auto_pong = True
        vc.advance_by(5)
        assert vc.client.state.value is ConnectionState.AUTHENTICATED


# check_ping/check_health count from the moment the current connection opened (before the fix, from
# the last pong of any connection: right after a (re)connect they hard-reset a healthy connection)


def test_check_health_right_after_a_reconnect_is_true() -> None:
    with virtual_client() as vc:
        vc.gateway.auto_pong = False
        vc.advance_by(21)  # reset by the watchdog; the new connection has had no pong yet
        vc.gateway.auto_pong = True
        vc.advance_by(5)
        assert vc.client.state.value is ConnectionState.AUTHENTICATED
        assert vc.client.check_health() is True


def test_check_ping_right_after_connecting_over_real_sockets_is_true(ibkr_client: IbkrWsClient) -> None:
    assert ibkr_client.check_ping() is True  # before the first ping (every 10 s) was answered


def test_with_restart_on_critical_false_a_watchdog_stops_the_client() -> None:
    with virtual_client(restart_on_critical=False) as vc:
        vc.gateway.auto_pong = False
        vc.advance_by(25)
        assert vc.client.state.value is ConnectionState.STOPPED
        vc.advance_by(60)
        assert vc.client.state.value is ConnectionState.STOPPED  # no reconnect later either


def test_with_restart_on_close_false_a_lost_connection_stops_the_client() -> None:
    with virtual_client(restart_on_close=False) as vc:
        seen = errors_of(vc)
        vc.gateway.drop()
        vc.advance_by(30)
        assert vc.client.state.value is ConnectionState.STOPPED
        assert [e.kind for e in seen] == [ErrorKind.CONNECTION_LOST]
    with virtual_client() as vc:  # the default reconnects
        vc.gateway.drop()
        vc.advance_by(30)
        assert vc.client.state.value is ConnectionState.AUTHENTICATED


# -- unsubscribe with confirmation ----------------------------------------------------------------
def test_unsubscribe_with_confirmation_in_virtual_time_ends_when_the_gateway_confirms() -> None:
    with virtual_client() as vc:
        seen = errors_of(vc)
        handle = vc.client.subscribe(f"sd+{frames.DEFAULT_ACCOUNT}", {}, wait=False)
        vc.receive(frames.ssd(frames.DEFAULT_ACCOUNT))
        vc.advance_by(0.1)
        assert handle.status is SubscriptionStatus.ACTIVE
        assert vc.client.unsubscribe(f"sd+{frames.DEFAULT_ACCOUNT}", needs_confirmation=True) is False
        vc.advance_by(0.1)  # virtual time does not block: the call returns before the answer
        assert texts(vc)[-1] == f"usd+{frames.DEFAULT_ACCOUNT}+{{}}"
        assert handle.status is SubscriptionStatus.PENDING
        vc.receive(frames.unsubscribed_summary())
        vc.advance_by(0.1)
        assert handle.status is SubscriptionStatus.UNSUBSCRIBED
        assert not vc.client.has_subscription(f"sd+{frames.DEFAULT_ACCOUNT}")
        assert seen == []


def test_an_unconfirmed_unsubscribe_is_reported_after_the_retries_times_the_timeout() -> None:
    with virtual_client(subscription_timeout=2.0, subscription_retries=3) as vc:
        seen = errors_of(vc)
        vc.client.subscribe("pl", {}, wait=False)
        vc.receive(frames.spl())
        vc.advance_by(0.1)
        vc.client.unsubscribe("pl", needs_confirmation=True)
        vc.advance_by(5.9)
        assert [e for e in seen if e.kind is ErrorKind.UNSUBSCRIPTION_FAILED] == []
        vc.advance_by(0.2)  # 2 s x 3 retries after the request
        failed = [e for e in seen if e.kind is ErrorKind.UNSUBSCRIPTION_FAILED]
        assert len(failed) == 1 and "'pl'" in failed[0].message


@pytest.mark.ibkr_client(subscription_timeout=1.0, subscription_retries=2)
def test_unsubscribe_with_confirmation_waits_for_the_gateway_over_real_sockets(
    ibkr_client: IbkrWsClient,
) -> None:
    account = ibkr_client.account_id
    assert account
    handle = ibkr_client.subscribe(f"sd+{account}", {})
    assert handle.status is SubscriptionStatus.ACTIVE
    assert ibkr_client.unsubscribe(f"sd+{account}", needs_confirmation=True) is True
    assert handle.status is SubscriptionStatus.UNSUBSCRIBED
    # without confirmation: True at once, the request sent
    ibkr_client.subscribe("pl", {})
    assert ibkr_client.unsubscribe("pl") is True
    assert not ibkr_client.has_subscription("pl")


# -- recreate, modify -----------------------------------------------------------------------------
def test_recreate_subscriptions_sends_every_stored_subscription_again() -> None:
    with virtual_client() as vc:
        vc.client.subscribe("pl", {}, wait=False)
        vc.client.subscribe("md+265598", {"fields": ["31"]}, wait=False)
        vc.advance_by(0.1)
        before = len(vc.sent)
        vc.client.recreate_subscriptions()
        vc.advance_by(0.1)
        assert sorted(texts(vc)[before:]) == sorted(['smd+265598+{"fields": ["31"]}', "spl+{}"])


class Custom(IbkrSubscriptionProcessor):
    def make_subscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        return "s" + channel + "+custom"


def test_modify_subscription_changes_status_data_confirmation_and_processor() -> None:
    with virtual_client() as vc:
        handle = vc.client.subscribe("pl", {}, wait=False)
        vc.advance_by(0.1)
        with pytest.raises(KeyError, match="no subscription for channel 'nope'"):
            vc.client.modify_subscription("nope", status=True)
        vc.client.modify_subscription("pl", status=True)
        assert handle.status is SubscriptionStatus.ACTIVE
        assert vc.client.is_subscription_active("pl")
        vc.client.modify_subscription("pl", status=False)
        assert handle.status is SubscriptionStatus.PENDING
        vc.client.modify_subscription(
            "pl", data={"x": 1}, needs_confirmation=False, subscription_processor=Custom()
        )
        state = vc.client.subscriptions["pl"]
        assert state.data == {"x": 1} and state.needs_confirmation is False
        vc.client.recreate_subscriptions()
        vc.advance_by(0.1)
        assert texts(vc)[-1] == "spl+custom"
        assert handle.status is SubscriptionStatus.ACTIVE  # no confirmation needed any more


# -- get() / empty() ------------------------------------------------------------------------------
def test_get_and_empty_read_the_keys_queue_in_order() -> None:
    with virtual_client() as vc:
        assert vc.client.empty(IbkrWsKey.PNL) is True
        assert vc.client.get(IbkrWsKey.PNL) is None
        vc.receive(frames.spl(dpl=1.0))
        vc.receive(frames.spl(dpl=2.0))
        vc.advance_by(0.1)
        assert vc.client.empty(IbkrWsKey.PNL) is False
        first = vc.client.get(IbkrWsKey.PNL)
        second = vc.client.get(IbkrWsKey.PNL)
        assert first is not None and second is not None and first != second
        assert vc.client.get(IbkrWsKey.PNL) is None
        assert vc.client.empty(IbkrWsKey.PNL) is True
        assert vc.client.empty(IbkrWsKey.MARKET_DATA) is True  # other keys are their own queues


# -- bad environment values -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("RXIBKR_WS_PING_INTERVAL", "ten", "expected a number"),
        ("RXIBKR_WS_TIMEOUT", "5s", "expected a number"),
        ("RXIBKR_WS_SUBSCRIPTION_RETRIES", "2.5", "expected an integer"),
        ("RXIBKR_WS_LOG_RAW_MESSAGES", "maybe", "expected one of 1/0/true/false/yes/no"),
    ],
)
def test_a_bad_environment_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as info:
        IbkrWsClient(url="ws://gateway.invalid/v1/api/ws")
    assert name in str(info.value) and repr(value) in str(info.value) and expected in str(info.value)


def test_good_environment_values_are_taken_and_blank_ones_keep_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rxibkr.client import config

    monkeypatch.setenv("RXIBKR_TEST_NUMBER", " ")
    monkeypatch.setenv("RXIBKR_TEST_FLAG", " Yes ")
    monkeypatch.setenv("RXIBKR_TEST_INT", "7")
    assert config.env_float("RXIBKR_TEST_NUMBER", 2.5) == 2.5
    assert config.env_bool("RXIBKR_TEST_FLAG", False) is True
    assert config.env_int("RXIBKR_TEST_INT", 1) == 7
    monkeypatch.setenv("RXIBKR_TEST_FLAG", "off")
    assert config.env_bool("RXIBKR_TEST_FLAG", True) is False


# -- subscription status --------------------------------------------------------------------------
def test_a_status_listener_hears_each_change_once_and_wait_follows_the_status() -> None:
    from rxibkr.client.subscriptions import SubscriptionState

    state = SubscriptionState("pl", {}, True, IbkrSubscriptionProcessor())
    heard: list[SubscriptionStatus] = []
    listener = state.on_status(heard.append)
    assert state.wait(0) is False  # pending: not settled
    state.set_status(SubscriptionStatus.ACTIVE)
    state.set_status(SubscriptionStatus.ACTIVE)  # the same status again: nothing to tell
    assert heard == [SubscriptionStatus.ACTIVE] and state.wait(0) is True and bool(state)
    state.set_status(SubscriptionStatus.PENDING)
    assert state.wait(0) is False  # pending again: waiting waits again
    state.set_status(SubscriptionStatus.FAILED)
    assert state.wait(0) is False and not state.active
    listener.dispose()
    state.set_status(SubscriptionStatus.ACTIVE)
    assert heard == [SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING, SubscriptionStatus.FAILED]


def test_a_handle_listener_hears_a_repeated_modify_once() -> None:
    with virtual_client() as vc:
        handle = vc.client.subscribe("pl", {}, wait=False)
        heard: list[SubscriptionStatus] = []
        handle.on_status(heard.append)
        vc.client.modify_subscription("pl", status=True)
        vc.client.modify_subscription("pl", status=True)
        vc.receive(frames.spl())  # data on an active subscription: no change either
        vc.advance_by(0.1)
        assert heard == [SubscriptionStatus.ACTIVE]
