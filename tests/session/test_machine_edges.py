"""The session machine's edges that mutation testing found untested: the public enum values and the
documented defaults, what a reconnect resets (timers, awaited channels, retry counts), what stop and
shutdown cancel, redaction flags of reports that may carry account data, unsubscribe confirmations
matched to the right waiter, and modify/recreate/renewal details."""

from __future__ import annotations

from typing import Any

from rxibkr.protocol import IbkrSubscriptionProcessor
from rxibkr.session import events as ev
from rxibkr.session.machine import SessionMachine, Settings
from rxibkr.testing import frames

from .test_machine import P, S, Token, authenticated, control, machine, of, sends, subscribe
from .test_machine_lifecycle import fire, opened, reports, timers
from .test_machine_subscriptions import Broken, statuses, unsubscribe

K = ev.ErrorKind
ST = ev.SubscriptionStatus


def test_the_public_enum_values() -> None:
    # users print and compare these (client.state, errors' kind, statuses): they are API
    assert [s.value for s in ev.ConnectionState] == [
        "stopped",
        "connecting",
        "open",
        "authenticated",
        "unauthenticated",
        "reconnecting",
        "failed",
    ]
    assert [k.value for k in ev.ErrorKind] == [
        "malformed_frame",
        "unknown_frame",
        "gateway_error",
        "subscription_failed",
        "unsubscription_failed",
        "observer_error",
        "connection_error",
        "connection_lost",
        "watchdog",
        "authentication",
        "competing_session",
        "tls",
        "rest_error",
        "queue_overflow",
    ]
    assert [s.value for s in ev.SubscriptionStatus] == ["pending", "active", "failed", "unsubscribed"]


def test_the_documented_defaults() -> None:
    s = Settings()
    assert (s.url, s.account_id) == ("wss://localhost:5000/v1/api/ws", None)
    assert (s.ping_interval, s.max_ping_interval, s.timeout) == (10.0, 20.0, 5.0)
    assert (s.restart_on_close, s.restart_on_critical) == (True, True)
    assert (s.max_connection_attempts, s.max_reconnect_attempts) == (10, None)
    assert (s.subscription_retries, s.subscription_timeout) == (5, 2.0)
    assert (s.tic_interval, s.tickle_interval, s.md_renewal_interval) == (60.0, 60.0, 540.0)
    assert (s.backoff_first, s.backoff_max, s.jitter) == (0.25, 30.0, True)
    assert (s.has_rest, s.has_rest_orders) == (False, False)
    assert ev.Close(3).code == 1000  # a close without a code is a normal one
    assert ev.Modify("pl", status=True).set_data is False  # changing the status leaves the data
    assert ev.Report(K.WATCHDOG, "m").redact is False  # a report may be shown as it is


# -- a reconnect resets the session's state --------------------------------------------------------
def test_a_lost_connection_cancels_the_session_and_subscription_timers() -> None:
    m = opened(has_rest=True)
    actions = m.handle(ev.Closed(1, 1006, "", None))
    assert {"session", "greeting", "pong_watch", "ping!"} <= {a.name for a in of(actions, ev.CancelTimer)}
    m = authenticated()
    subscribe(m, "pl", {})
    actions = m.handle(ev.Closed(1, 1006, "", None))
    assert ev.CancelTimer("sub:pl") in actions


def test_after_a_reconnect_a_subscription_is_awaited_again_with_its_full_retries() -> None:
    m = authenticated(subscription_retries=2)
    token, _ = subscribe(m, "pl", {})
    assert sends(fire(m, "sub:pl")) == ["spl+{}"]  # the last retry
    m.handle(ev.Closed(1, 1006, "", None))
    m.handle(ev.TimerFired("reconnect", m._timers["reconnect"]))
    m.handle(ev.Opened(2))
    actions = control(m, frames.sts(authenticated=True))
    assert ev.Await("pl") in actions  # awaited anew on the new session
    assert sends(fire(m, "sub:pl")) == ["spl+{}"]  # the retries start over: not FAILED yet
    assert m.channels["pl"].status is ST.PENDING and token is not None


def test_a_session_timeout_counts_as_a_failed_attempt() -> None:
    m = opened(max_connection_attempts=1)
    actions = fire(m, "session")
    assert (K.CONNECTION_ERROR, "giving up after 1 connection attempts") in reports(actions)
    assert m.state is S.FAILED


def test_a_connect_failure_that_is_not_retried_says_so() -> None:
    m = machine()
    m.handle(ev.Start())
    actions = m.handle(ev.Closed(1, None, "", None, retryable=False, failure="HTTP 404 on the upgrade"))
    assert reports(actions) == [
        (
            K.CONNECTION_ERROR,
            "connect to wss://localhost:5000/v1/api/ws failed: HTTP 404 on the upgrade (not retried)",
        )
    ]


# -- stop -----------------------------------------------------------------------------------------
def test_stop_cancels_a_pending_reconnect_and_a_late_give_up_does_nothing() -> None:
    m = authenticated()
    m.handle(ev.Closed(1, 1006, "", None))
    assert "reconnect" in m._timers
    actions = m.handle(ev.Stop(shutdown=False))
    assert ev.CancelTimer("reconnect") in actions
    assert m.handle(ev.GiveUp()) == []  # stopped: nothing to give up
    assert m.state is S.STOPPED


# -- reports that may carry account data are redacted ----------------------------------------------
def test_reports_that_may_name_accounts_are_redacted() -> None:
    m = authenticated()
    token, _ = subscribe(m, "sd+DU1234567", {})
    actions = control(m, {"error": "no account DU1234567", "code": 404, "topic": "ssd+DU1234567"})
    assert [(a.kind, a.redact) for a in of(actions, ev.Report)] == [
        (K.GATEWAY_ERROR, True),
        (K.SUBSCRIPTION_FAILED, True),
    ]
    actions = control(m, frames.sts(authenticated=False))
    assert [(a.kind, a.redact) for a in of(actions, ev.Report)] == [(K.AUTHENTICATION, True)]
    assert token is not None


def test_a_competing_session_is_reported_in_words() -> None:
    m = authenticated()
    actions = control(m, {"topic": "sts", "args": {"competing": True}})
    assert reports(actions) == [(K.COMPETING_SESSION, "the gateway reports a competing session")]


def test_an_auth_status_without_connected_counts_as_connected() -> None:
    m = opened(has_rest=True)
    fire(m, "greeting")
    actions = m.handle(ev.RestDone("auth_status", 1, True, {"authenticated": True}))
    assert m.state is S.AUTHENTICATED and ev.StartDone(True) in actions


# -- unsubscribe confirmations go to the right waiter ----------------------------------------------
def test_one_summary_confirmation_ends_one_waiting_unsubscribe_the_oldest() -> None:
    m = authenticated()
    a, _ = subscribe(m, "sd+DU1", {})
    b, _ = subscribe(m, "sd+DU2", {})
    m.handle(ev.Data(1, "sd+DU1"))
    m.handle(ev.Data(1, "sd+DU2"))
    first, _ = unsubscribe(m, "sd+DU1", a, confirm=True)
    second, _ = unsubscribe(m, "sd+DU2", b, confirm=True)
    done = control(m, frames.unsubscribed_summary())  # names no account
    assert of(done, ev.UnsubscribeDone) == [ev.UnsubscribeDone(first, True)]
    assert statuses(done) == [(a, ST.UNSUBSCRIBED)]
    done = control(m, frames.unsubscribed_summary())
    assert of(done, ev.UnsubscribeDone) == [ev.UnsubscribeDone(second, True)]
    assert statuses(done) == [(b, ST.UNSUBSCRIBED)]


def test_each_waiting_unsubscribe_times_out_on_its_own() -> None:
    m = authenticated()
    a, _ = subscribe(m, "sd+DU1", {})
    b, _ = subscribe(m, "sd+DU2", {})
    first, _ = unsubscribe(m, "sd+DU1", a, confirm=True)
    second, _ = unsubscribe(m, "sd+DU2", b, confirm=True)
    assert fire(m, "unsub:sd+DU1")[-1] == ev.UnsubscribeDone(first, False)
    assert fire(m, "unsub:sd+DU2")[-1] == ev.UnsubscribeDone(second, False)


def test_history_unsubscribes_are_matched_by_their_server_id() -> None:
    m = authenticated()
    a, _ = subscribe(m, "mh+265598", {"period": "1d"})
    b, _ = subscribe(m, "mh+8314", {"period": "1d"})
    control(m, frames.smh(265598, server_id="11"))
    control(m, frames.smh(8314, server_id="22"))
    first, _ = unsubscribe(m, "mh+265598", a, confirm=True)
    second, _ = unsubscribe(m, "mh+8314", b, confirm=True)
    done = control(m, frames.unsubscribed_history("22"))  # the second one first
    assert of(done, ev.UnsubscribeDone) == [ev.UnsubscribeDone(second, True)]
    assert statuses(done) == [(b, ST.UNSUBSCRIBED)]
    done = control(m, frames.unsubscribed_history("11"))
    assert of(done, ev.UnsubscribeDone) == [ev.UnsubscribeDone(first, True)]


def test_a_history_confirmation_naming_an_unknown_server_id_ends_the_oldest_waiter() -> None:
    m = authenticated()
    token, _ = subscribe(m, "mh+265598", {"period": "1d"})  # no reply yet: no server id known
    finish, actions = unsubscribe(m, "mh+265598", token, confirm=True)
    assert sends(actions) == []  # no server id to name
    done = control(m, frames.unsubscribed_history("99"))
    assert of(done, ev.UnsubscribeDone) == [ev.UnsubscribeDone(finish, True)]


# -- subscribe, modify, recreate, renew ------------------------------------------------------------
def test_a_refused_channel_subscribed_again_is_unsubscribed_when_released() -> None:
    m = authenticated()
    token = Token()
    m.handle(ev.Subscribe(token, "h1", "pl", {"a": 1}, True, P))
    control(m, {"error": "no", "code": 400, "topic": "spl"})
    m.handle(ev.Subscribe(token, "h2", "pl", {"a": 2}, True, P))  # asked again: no longer refused
    m.handle(ev.Data(1, "pl"))
    m.handle(ev.Release(token, "h1", "pl"))
    assert sends(m.handle(ev.Release(token, "h2", "pl"))) == ["upl+{}"]


def test_a_payload_failing_on_resend_stops_waiting_for_the_channel() -> None:
    m = authenticated()
    token = Token()
    m.handle(ev.Subscribe(token, "h1", "pl", {}, True, P))
    actions = m.handle(ev.Subscribe(token, "h2", "pl", {"x": 1}, True, Broken()))
    assert ev.CancelTimer("sub:pl") in actions and ev.Unawait("pl") in actions
    assert statuses(actions) == [(token, ST.FAILED)]


def test_releasing_an_awaited_channel_stops_its_retries() -> None:
    m = authenticated()
    token, _ = subscribe(m, "pl", {}, handle="h")
    actions = m.handle(ev.Release(token, "h", "pl"))
    assert ev.CancelTimer("sub:pl") in actions and ev.Unawait("pl") in actions
    assert "sub:pl" not in m._timers


def test_modify_of_the_status_only_keeps_the_data() -> None:
    m = authenticated()
    subscribe(m, "pl", {"a": 1})
    m.handle(ev.Modify("pl", status=True))
    assert m.channels["pl"].data == {"a": 1}


def test_recreate_during_an_orders_preflight_asks_again() -> None:
    m = authenticated(has_rest=True, has_rest_orders=True)
    subscribe(m, "or", {})
    actions = m.handle(ev.Recreate())
    assert ev.Rest("preflight", 1, "or") in actions


class Fragile(IbkrSubscriptionProcessor):
    """Builds its payload once, then fails (as a processor whose data went bad)."""

    def __init__(self) -> None:
        self.calls = 0

    def make_subscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        self.calls += 1
        if self.calls > 1:
            raise ValueError("gone bad")
        return super().make_subscribe_payload(channel, data)


def test_renewal_skips_a_channel_whose_payload_fails_and_renews_the_others() -> None:
    m = authenticated()
    m.handle(ev.Subscribe(Token(), "h", "md+1", {"fields": ["31"]}, False, Fragile()))
    m.handle(ev.Subscribe(Token(), "h", "md+2", {"fields": ["84"]}, False, P))
    assert fire(m, "renew") == [ev.Send(1, 'smd+2+{"fields": ["84"]}')]


def test_a_machine_is_created_stopped() -> None:
    m = SessionMachine(Settings())
    assert (m.state, m.running, m.conn, m.ready) == (S.STOPPED, False, None, False)
    assert timers(m.handle(ev.Start())) == {}


def test_an_error_frame_with_an_odd_topic_is_reported_and_fails_nothing() -> None:
    m = authenticated()
    token, _ = subscribe(m, "pl", {})
    for topic in (42, None, ["spl"]):
        actions = control(m, {"error": "odd", "code": 400, "topic": topic})
        assert [a.kind for a in of(actions, ev.Report)] == [K.GATEWAY_ERROR], topic
        assert statuses(actions) == []
    assert m.channels["pl"].status is ST.PENDING and token is not None


def test_a_lost_connection_stops_the_auth_poll() -> None:
    m = authenticated(has_rest=True)
    control(m, frames.sts(authenticated=False))
    assert "auth_poll" in m._timers
    actions = m.handle(ev.Closed(1, 1006, "", None))
    assert ev.CancelTimer("auth_poll") in actions and "auth_poll" not in m._timers


def test_accounts_that_are_not_a_list_warn_of_nothing() -> None:
    m = authenticated(account_id="DU111")
    assert control(m, {"topic": "act", "args": {"accounts": "DU222"}}) == []
    assert control(m, {"topic": "act", "args": ["DU222"]}) == []


def test_authentication_lost_sets_every_subscription_pending_until_the_session_is_back() -> None:
    m = authenticated(has_rest=True)
    token, _ = subscribe(m, "pl", {})
    m.handle(ev.Data(1, "pl"))
    actions = control(m, frames.sts(authenticated=False))
    assert statuses(actions) == [(token, ST.PENDING)]
    assert ev.CancelTimer("heartbeat_watch") in actions and ev.Unawait(None) in actions


def test_only_orders_wait_for_the_preflight_and_only_with_rest_orders() -> None:
    m = authenticated(has_rest=True, has_rest_orders=True)
    assert sends(subscribe(m, "pl", {})[1]) == ["spl+{}"]  # not orders: straight out
    m = authenticated(has_rest=True, has_rest_orders=False)
    _, actions = subscribe(m, "or", {})
    assert sends(actions) == ["sor+{}"] and not of(actions, ev.Rest)


def test_a_channel_released_before_the_session_is_never_unsubscribed() -> None:
    m = opened()  # a socket, no session yet: the subscription is held
    token, _ = subscribe(m, "pl", {}, handle="h")
    actions = m.handle(ev.Release(token, "h", "pl"))
    assert sends(actions) == [] and statuses(actions) == [(token, ST.UNSUBSCRIBED)]


def test_reports_are_not_redacted_unless_they_may_name_accounts_and_the_account_warning_says_so() -> None:
    m = authenticated()
    actions = m.handle(ev.Closed(1, 1006, "", None))
    assert [(a.kind, a.redact) for a in of(actions, ev.Report)] == [(K.CONNECTION_LOST, False)]
    m = authenticated(account_id="DU111")
    actions = control(m, {"topic": "act", "args": {"accounts": ["DU222"]}})
    assert actions == [ev.Warn("the gateway's accounts do not include the configured account_id")]
    assert ev.SetTimer("x", 1.0, 1).periodic is False


def test_a_connect_failure_without_words_reports_the_error() -> None:
    m = machine()
    m.handle(ev.Start())
    error = ConnectionRefusedError(111, "refused")
    actions = m.handle(ev.Closed(1, None, "", error))
    assert reports(actions) == [
        (K.CONNECTION_ERROR, f"connect to wss://localhost:5000/v1/api/ws failed: {error!r}")
    ]


def test_the_default_random_gives_the_full_back_off() -> None:
    assert SessionMachine(Settings()).backoff(1) == 0.25
    assert SessionMachine(Settings()).backoff(4) == 2.0


def test_a_waiting_unsubscribe_of_a_lost_connection_is_unsubscribed() -> None:
    m = authenticated()
    token, _ = subscribe(m, "pl", {})
    unsubscribe(m, "pl", token, confirm=True)
    actions = m.handle(ev.Closed(1, 1006, "", None))
    assert (token, ST.UNSUBSCRIBED) in statuses(actions)


def test_data_of_another_connection_confirms_nothing() -> None:
    m = opened()
    assert m.handle(ev.Data(9, None)) == []
    assert m.state is S.OPEN


def test_authentication_refused_before_the_session_stops_the_session_timer() -> None:
    m = opened()
    actions = control(m, frames.sts(authenticated=False))
    assert ev.CancelTimer("session") in actions and m.state is S.UNAUTHENTICATED


def test_an_auth_poll_due_after_the_session_came_back_resets_nothing() -> None:
    m = authenticated(has_rest=False)
    control(m, frames.sts(authenticated=False))
    token = m._timers["auth_poll"]
    control(m, frames.sts(authenticated=True))
    assert m.handle(ev.TimerFired("auth_poll", token)) == []
    assert m.state is S.AUTHENTICATED


def test_a_channel_that_is_not_a_string_is_a_type_error() -> None:
    import pytest

    from rxibkr.session.registry import split_channel

    for bad in (5, None, b"md+1"):
        with pytest.raises(TypeError, match="non-empty str"):
            split_channel(bad)  # type: ignore[arg-type]


# -- found by the mutation run of December 2026 ----------------------------------------------------
def test_a_closed_event_carries_no_reason_unless_given() -> None:
    m = authenticated()
    assert reports(m.handle(ev.Closed(1, 1000))) == [(K.CONNECTION_LOST, "connection closed (code=1000)")]


def test_the_heartbeat_watchdog_says_why() -> None:
    m = authenticated(max_ping_interval=12.0)
    actions = fire(m, "heartbeat_watch")
    assert reports(actions) == [(K.WATCHDOG, "no heartbeat for 12 s: resetting the connection")]


def live_timers(actions: list[ev.Action]) -> set[str]:
    live: set[str] = set()
    for a in actions:
        if isinstance(a, ev.SetTimer):
            live.add(a.name)
        elif isinstance(a, ev.CancelTimer):
            live.discard(a.name)
    return live


def test_shutdown_cancels_every_timer_and_ends_each_waiting_unsubscribe_once() -> None:
    m = machine()
    log: list[ev.Action] = []
    for event in (ev.Start(), ev.Opened(1)):
        log += m.handle(event)
    log += control(m, frames.sts(authenticated=True))
    log += subscribe(m, "pl", {})[1]  # awaiting its confirmation: a subscription timer
    token, actions = subscribe(m, "md+1", {"fields": ["31"]})
    log += actions + m.handle(ev.Data(1, "md+1"))
    finish, actions = unsubscribe(m, "md+1", token, confirm=True)  # awaiting: an unsubscribe timer
    log += actions
    assert {"sub:pl", "unsub:md+1"} <= live_timers(log)
    actions = m.handle(ev.Stop(shutdown=True))
    assert live_timers(log + actions) == set()
    assert of(actions, ev.UnsubscribeDone) == [ev.UnsubscribeDone(finish, False)]


def test_the_greeting_grace_asks_nothing_once_the_gateway_said_unauthenticated() -> None:
    m = opened(has_rest=True)
    control(m, frames.sts(authenticated=False))
    assert m.state is S.UNAUTHENTICATED
    assert of(fire(m, "greeting"), ev.Rest) == []  # the auth poll asks instead


def test_a_history_reply_without_conid_or_topic_target_learns_no_server_id() -> None:
    m = authenticated()
    control(m, {"topic": "smh", "serverId": "5"})
    assert m.server_ids == {}


def test_an_orders_preflight_answered_after_the_channel_went_does_nothing() -> None:
    m = authenticated(has_rest=True, has_rest_orders=True)
    token, actions = subscribe(m, "or", {})
    assert actions == [ev.Rest("preflight", 1, "or")]
    unsubscribe(m, "or", token, confirm=False)
    assert m.handle(ev.RestDone("preflight", 1, True, None, "or")) == []


def test_the_orders_preflight_waits_for_the_session() -> None:
    m = opened(has_rest=True, has_rest_orders=True)
    assert of(subscribe(m, "or", {})[1], ev.Rest) == []
    assert ev.Rest("preflight", 1, "or") in control(m, frames.sts(authenticated=True))


def test_orders_asked_again_while_awaited_stop_waiting_and_query_rest_first_again() -> None:
    m = authenticated(has_rest=True, has_rest_orders=True)
    token, _ = subscribe(m, "or", {})
    actions = m.handle(ev.RestDone("preflight", 1, True, None, "or"))
    assert sends(actions) == ["sor+{}"] and "sub:or" in timers(actions)
    actions = m.handle(ev.Subscribe(token, object(), "or", {"filters": ["x"]}, True, P))
    assert ev.CancelTimer("sub:or") in actions and ev.Rest("preflight", 1, "or") in actions
    assert sends(actions) == []


def test_a_tls_failure_reports_the_transports_own_explanation_when_it_has_one() -> None:
    m = machine()
    m.handle(ev.Start())
    actions = m.handle(ev.Closed(1, None, "", OSError("x"), tls=True, failure="the CA file is missing"))
    assert reports(actions) == [(K.TLS, "the CA file is missing")]


def test_a_pong_before_the_socket_opened_starts_no_watchdog() -> None:
    m = machine()
    m.handle(ev.Start())
    assert m.handle(ev.Pong(1)) == []
    m.handle(ev.Opened(1))
    assert ev.SetTimer("pong_watch", 20.0, 3) in m.handle(ev.Pong(1))


def test_a_refusal_fails_the_awaited_channel_of_a_shared_topic() -> None:
    # md+1@SMART and md+1@ISLAND are both echoed as smd+1: the refusal is for the one awaited
    m = authenticated()
    subscribe(m, "md+1@SMART", {"fields": ["31"]})  # confirmed, then active
    m.handle(ev.Data(1, "md+1"))
    island, _ = subscribe(m, "md+1@ISLAND", {"fields": ["31"]})
    actions = control(m, {"error": "no", "code": 400, "topic": "smd+1"})
    assert statuses(actions) == [(island, ST.FAILED)]


def test_a_second_history_reply_of_a_confirmed_subscription_only_adds_its_server_id() -> None:
    m = authenticated()
    token, _ = subscribe(m, "mh+265598", {"period": "1d"})
    assert statuses(control(m, frames.smh(265598, server_id="77"))) == [(token, ST.ACTIVE)]
    assert control(m, frames.smh(265598, server_id="78")) == []
    assert m.server_ids == {"77": 265598, "78": 265598}


def test_a_history_reply_without_conid_takes_it_from_the_topic() -> None:
    m = authenticated()
    subscribe(m, "mh+265598", {"period": "1d"})
    control(m, {"topic": "smh+265598", "serverId": "5"})
    assert m.server_ids == {"5": 265598}


def test_a_refused_history_stays_failed_when_a_reply_comes_after_all() -> None:
    m = authenticated()
    token, _ = subscribe(m, "mh+265598", {"period": "1d"})
    assert statuses(control(m, {"error": "no", "code": 400, "topic": "smh+265598"})) == [(token, ST.FAILED)]
    assert statuses(control(m, frames.smh(265598, server_id="77"))) == []


def test_a_subscription_asked_again_with_new_data_gets_its_full_retries() -> None:
    m = authenticated(subscription_retries=2)
    token, _ = subscribe(m, "pl", {"a": 1})
    fire(m, "sub:pl")  # the second and last attempt
    actions = m.handle(ev.Subscribe(token, object(), "pl", {"a": 2}, True, P))
    assert sends(actions) == ['spl+{"a": 2}']
    assert sends(fire(m, "sub:pl")) == ['spl+{"a": 2}']  # a retry, not a failure
    assert statuses(fire(m, "sub:pl")) == [(token, ST.FAILED)]


def test_recreate_gives_every_subscription_its_full_retries() -> None:
    m = authenticated(subscription_retries=2)
    token, _ = subscribe(m, "pl", {})
    fire(m, "sub:pl")
    m.handle(ev.Recreate())
    assert sends(fire(m, "sub:pl")) == ["spl+{}"]
    assert statuses(fire(m, "sub:pl")) == [(token, ST.FAILED)]


def test_recreate_of_awaited_orders_stops_the_wait_until_the_preflight_answered() -> None:
    m = authenticated(has_rest=True, has_rest_orders=True)
    subscribe(m, "or", {})
    m.handle(ev.RestDone("preflight", 1, True, None, "or"))  # sent, awaited
    actions = m.handle(ev.Recreate())
    assert ev.CancelTimer("sub:or") in actions and ev.Rest("preflight", 1, "or") in actions


def test_an_orders_preflight_answered_while_unauthenticated_sends_nothing() -> None:
    m = authenticated(has_rest=True, has_rest_orders=True)
    subscribe(m, "or", {})
    control(m, frames.sts(authenticated=False))
    assert sends(m.handle(ev.RestDone("preflight", 1, True, None, "or"))) == []


def test_a_late_release_of_an_ended_channel_leaves_the_next_one_alone() -> None:
    m = authenticated()
    handle = object()
    old, new = Token(), Token()
    m.handle(ev.Subscribe(old, handle, "pl", {}, False, P))
    m.handle(ev.Release(old, handle, "pl"))
    m.handle(ev.Subscribe(new, handle, "pl", {}, False, P))
    assert m.handle(ev.Release(old, handle, "pl")) == []  # the old channel's, twice
    assert m.channels["pl"].token is new


def test_a_lost_connection_ends_a_waiting_unsubscribe_and_a_late_confirmation_changes_nothing() -> None:
    m = authenticated()
    token, _ = subscribe(m, "sd+DU1", {})
    m.handle(ev.Data(1, "sd+DU1"))
    finish, _ = unsubscribe(m, "sd+DU1", token, confirm=True)
    actions = m.handle(ev.Closed(1, 1006))
    assert of(actions, ev.UnsubscribeDone) == [ev.UnsubscribeDone(finish, True)]
    m.handle(ev.TimerFired("reconnect", m._timers["reconnect"]))
    m.handle(ev.Opened(2))
    control(m, frames.sts(authenticated=True))
    assert of(control(m, {"result": "unsubscribed from summary"}), ev.UnsubscribeDone) == []


def test_a_price_ladder_without_account_is_unsubscribed_by_its_processor() -> None:
    m = authenticated()
    token, _ = subscribe(m, "bd", {})
    assert sends(unsubscribe(m, "bd", token, confirm=False)[1]) == [P.make_unsubscribe_payload("bd", None)]


def test_a_connect_failure_that_cannot_be_retried_is_retried_once_a_session_existed() -> None:
    m = authenticated()
    m.handle(ev.Closed(1, 1006))
    m.handle(ev.TimerFired("reconnect", m._timers["reconnect"]))
    actions = m.handle(ev.Closed(2, None, "", OSError("refused"), retryable=False))
    assert m.state is S.RECONNECTING and "reconnect" in timers(actions)  # maybe a gateway restarting
    assert [k for k, _ in reports(actions)] == [K.CONNECTION_ERROR]  # a failed connect, not a lost one


def test_the_session_timers_end_with_the_session() -> None:
    m = authenticated(has_rest=True)
    assert {"heartbeat_watch", "tic!", "renew!", "tickle!"} <= set(m._timers)
    actions = m.handle(ev.Closed(1, 1006))
    cancelled = {a.name for a in of(actions, ev.CancelTimer)}
    assert {"heartbeat_watch", "tic!", "renew!", "tickle!"} <= cancelled


def test_an_active_subscription_asked_again_with_another_confirm_is_sent_again() -> None:
    m = authenticated()
    token, _ = subscribe(m, "pl", {})
    m.handle(ev.Data(1, "pl"))
    actions = m.handle(ev.Subscribe(token, object(), "pl", {}, False, P))
    assert sends(actions) == ["spl+{}"]


class RestResult:
    """A REST result object: the payload is its ``data``."""

    def __init__(self, data: Any) -> None:
        self.data = data


def test_the_greeting_poll_reads_a_rest_result_object_or_a_mapping() -> None:
    for value in (RestResult({"authenticated": True}), {"authenticated": True}):
        m = opened(has_rest=True)
        fire(m, "greeting")
        m.handle(ev.RestDone("auth_status", 1, True, value))
        assert m.state is S.AUTHENTICATED, value


def test_a_hard_reset_of_a_stopped_client_does_nothing() -> None:
    m = machine()
    assert m.handle(ev.HardReset(True, "a test")) == []
    m = authenticated()
    m.handle(ev.Stop(shutdown=False))
    assert m.handle(ev.HardReset(True, "a test")) == []


def test_an_auth_status_that_is_no_mapping_confirms_nothing() -> None:
    for value in (None, "authenticated", RestResult(None)):
        m = opened(has_rest=True)
        fire(m, "greeting")
        assert m.handle(ev.RestDone("auth_status", 1, True, value)) == [], value


def test_nothing_is_subscribed_after_shutdown() -> None:
    m = authenticated()
    m.handle(ev.Stop(shutdown=True))
    assert subscribe(m, "pl", {})[1] == [] and m.channels == {}


def test_orders_query_rest_first_again_on_the_next_session() -> None:
    m = authenticated(has_rest=True, has_rest_orders=True)
    subscribe(m, "or", {})  # the preflight is asked, never answered: the connection goes
    m.handle(ev.Closed(1, 1006))
    m.handle(ev.TimerFired("reconnect", m._timers["reconnect"]))
    m.handle(ev.Opened(2))
    assert ev.Rest("preflight", 2, "or") in control(m, frames.sts(authenticated=True))
