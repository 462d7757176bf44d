"""The session machine's lifecycle, liveness, authentication and REST outcomes: events in, actions out.

Plain asserts against the pure machine (no sockets, threads or clocks): restart_on_close=False,
restart_on_critical=False, check of the reconnect back-off and attempt limits, the auth-status poll
and tickle failures, the session timers, stop and hard reset.
"""

from __future__ import annotations

from typing import Any

from rxibkr.protocol import requests as rq
from rxibkr.session import events as ev
from rxibkr.session.machine import SessionMachine, Settings
from rxibkr.testing import frames

from .test_machine import S, authenticated, control, machine, of, sends

K = ev.ErrorKind


def fire(m: SessionMachine, name: str) -> list[ev.Action]:
    """Fire the live timer ``name`` (a periodic one is stored as ``name!``)."""
    key = name if name in m._timers else name + "!"
    return m.handle(ev.TimerFired(key, m._timers[key]))


def timers(actions: list[ev.Action]) -> dict[str, float]:
    return {a.name: a.delay for a in of(actions, ev.SetTimer)}


def reports(actions: list[ev.Action]) -> list[tuple[ev.ErrorKind, str]]:
    return [(a.kind, a.message) for a in of(actions, ev.Report)]


def opened(**settings: Any) -> SessionMachine:
    m = machine(**settings)
    m.handle(ev.Start())
    m.handle(ev.Opened(1))
    return m


# -- start, open ----------------------------------------------------------------------------------
def test_start_again_while_running_answers_only_when_ready() -> None:
    m = machine()
    m.handle(ev.Start())
    assert m.handle(ev.Start()) == []  # connecting: the first start's answer will come
    m = authenticated()
    assert m.handle(ev.Start()) == [ev.StartDone(True)]


def test_start_after_a_failure_connects_again_from_attempt_zero() -> None:
    m = machine(max_connection_attempts=1)
    m.handle(ev.Start())
    failed = m.handle(ev.Closed(1, None, "", OSError("refused")))
    assert m.state is S.FAILED and ev.StartDone(False) in failed
    assert m.handle(ev.Start()) == [ev.SetState(S.CONNECTING), ev.Open(2)]


def test_a_late_open_of_an_abandoned_connection_is_closed() -> None:
    m = machine()
    m.handle(ev.Start())
    assert m.handle(ev.Opened(7)) == [ev.Close(7)]
    assert m.state is S.CONNECTING


def test_without_rest_the_session_bound_covers_a_heartbeat_period_and_no_greeting_poll() -> None:
    m = machine(timeout=5.0, max_ping_interval=20.0, ping_interval=3.0)
    m.handle(ev.Start())
    actions = m.handle(ev.Opened(1))
    assert timers(actions) == {"ping!": 3.0, "pong_watch": 20.0, "session": 20.0}
    m = machine(timeout=30.0, max_ping_interval=20.0)
    m.handle(ev.Start())
    assert timers(m.handle(ev.Opened(1)))["session"] == 30.0
    m = machine(has_rest=True, timeout=1.0)
    m.handle(ev.Start())
    assert timers(m.handle(ev.Opened(1)))["greeting"] == 0.5  # half the timeout when that is shorter


def test_no_confirmation_within_the_bound_is_a_failed_attempt() -> None:
    m = opened(has_rest=True, timeout=4.0)
    actions = fire(m, "session")
    assert reports(actions) == [(K.CONNECTION_ERROR, "no session confirmation within 4 s")]
    assert ev.Close(1, 1000) in actions and m.state is S.RECONNECTING
    assert timers(actions) == {"reconnect": 0.25}  # first failed attempt: the first back-off
    assert m.handle(ev.TimerFired("reconnect", m._timers["reconnect"])) == [ev.Open(2)]


def test_the_greeting_grace_asks_rest_only_while_the_session_is_unconfirmed() -> None:
    m = opened(has_rest=True)
    token = m._timers["greeting"]
    control(m, frames.sts(authenticated=True))
    assert "greeting" not in m._timers  # cancelled by the confirmation
    assert m.handle(ev.TimerFired("greeting", token)) == []


def test_session_timers_start_with_the_session_as_configured() -> None:
    m = opened(has_rest=True, tic_interval=30.0, md_renewal_interval=100.0, tickle_interval=50.0)
    actions = control(m, frames.sts(authenticated=True))
    assert timers(actions) == {"heartbeat_watch": 20.0, "tic!": 30.0, "renew!": 100.0, "tickle!": 50.0}
    assert ev.CancelTimer("session") in actions and ev.CancelTimer("greeting") in actions
    m = opened(has_rest=False, tic_interval=None, md_renewal_interval=None, tickle_interval=50.0)
    assert timers(control(m, frames.sts(authenticated=True))) == {"heartbeat_watch": 20.0}
    m = opened(has_rest=True, tickle_interval=None)
    assert "tickle!" not in timers(control(m, frames.sts(authenticated=True)))


def test_a_second_confirmation_changes_nothing() -> None:
    m = authenticated()
    assert control(m, frames.sts(authenticated=True)) == []
    assert sends(m.handle(ev.Data(1, None))) == []


def test_a_system_frame_with_success_confirms_the_session() -> None:
    m = opened()
    actions = control(m, {"topic": "system", "success": "user1"})
    assert m.state is S.AUTHENTICATED and ev.StartDone(True) in actions
    m = opened()
    assert control(m, frames.hb()) == [] or m.state is S.OPEN
    assert m.state is S.OPEN


# -- periodic timers ------------------------------------------------------------------------------
def test_ping_tic_tickle_and_renewal_timers_do_their_job() -> None:
    m = authenticated(has_rest=True, tickle_interval=60.0)
    assert fire(m, "ping") == [ev.Ping(1)]
    assert fire(m, "ping") == [ev.Ping(1)]  # periodic: the token stays
    assert fire(m, "tic") == [ev.Send(1, rq.tic())]
    assert fire(m, "tickle") == [ev.Rest("tickle", 1)]
    assert fire(m, "renew") == []  # no market data to renew


def test_a_pong_restarts_the_pong_watchdog_only_on_the_open_connection() -> None:
    m = authenticated(max_ping_interval=7.0)
    before = m._timers["pong_watch"]
    actions = m.handle(ev.Pong(1))
    assert timers(actions) == {"pong_watch": 7.0} and ev.CancelTimer("pong_watch") in actions
    assert m._timers["pong_watch"] != before
    assert m.handle(ev.Pong(5)) == []


def test_part_of_a_large_frame_restarts_both_watchdogs_that_run() -> None:
    m = authenticated(max_ping_interval=7.0)
    before = dict(m._timers)
    actions = m.handle(ev.Receiving(1))
    assert timers(actions) == {"pong_watch": 7.0, "heartbeat_watch": 7.0}
    assert {ev.CancelTimer("pong_watch"), ev.CancelTimer("heartbeat_watch")} <= set(actions)
    assert m._timers["pong_watch"] != before["pong_watch"]
    assert m._timers["heartbeat_watch"] != before["heartbeat_watch"]
    assert m.handle(ev.Receiving(5)) == []  # another connection's
    assert reports(m.handle(ev.TimerFired("pong_watch", before["pong_watch"]))) == []  # the old one is void


def test_part_of_a_large_frame_starts_no_watchdog() -> None:
    m = opened(max_ping_interval=7.0)  # open, session not yet confirmed: no heartbeat watch yet
    assert timers(m.handle(ev.Receiving(1))) == {"pong_watch": 7.0}
    assert "heartbeat_watch" not in m._timers
    m.handle(ev.Closed(1, 1006, "gone", None))  # the connection's timers end with it
    assert m.handle(ev.Receiving(1)) == []
    assert "pong_watch" not in m._timers


def test_a_heartbeat_of_another_connection_is_ignored() -> None:
    m = opened()
    assert m.handle(ev.Heartbeat(9)) == []
    assert m.state is S.OPEN


def test_the_pong_watchdog_resets_the_connection_and_says_why() -> None:
    m = authenticated(max_ping_interval=12.0)
    actions = fire(m, "pong_watch")
    assert reports(actions) == [(K.WATCHDOG, "no pong for 12 s: resetting the connection")]
    assert ev.Close(1, 1000) in actions and ev.Open(2) in actions
    assert m.state is S.RECONNECTING


def test_with_restart_on_critical_false_a_watchdog_stops_the_client() -> None:
    m = authenticated(restart_on_critical=False)
    actions = fire(m, "heartbeat_watch")
    assert reports(actions)[0][0] is K.WATCHDOG
    assert ev.Close(1, 1000) in actions
    assert not of(actions, ev.Open)
    assert m.state is S.STOPPED and not m.running
    assert actions[-1] == ev.StartDone(False)
    assert m._timers == {}  # nothing left running


# -- close, reconnect -----------------------------------------------------------------------------
def test_a_lost_connection_is_reported_with_its_code_reason_and_reconnected() -> None:
    m = authenticated()
    error = OSError("reset")
    actions = m.handle(ev.Closed(1, 1006, "gone", error))
    assert reports(actions) == [
        (K.CONNECTION_LOST, f"connection closed (code=1006 reason='gone' error={error!r})")
    ]
    assert m.state is S.RECONNECTING
    assert timers(actions) == {"reconnect": 0.25}
    assert m.handle(ev.Closed(1, 1000, "", None)) == []  # already gone: stale
    actions = m.handle(ev.TimerFired("reconnect", m._timers["reconnect"]))
    assert actions == [ev.Open(2)]


def test_a_lost_connection_without_reason_or_error_says_only_the_code() -> None:
    m = authenticated()
    assert reports(m.handle(ev.Closed(1, 1000, "", None))) == [
        (K.CONNECTION_LOST, "connection closed (code=1000)")
    ]


def test_with_restart_on_close_false_a_lost_connection_stops_the_client() -> None:
    m = authenticated(restart_on_close=False)
    actions = m.handle(ev.Closed(1, 1001, "bye", None))
    assert reports(actions)[0][0] is K.CONNECTION_LOST
    assert m.state is S.STOPPED and not m.running
    assert not of(actions, ev.SetTimer) and not of(actions, ev.Open)
    assert actions[-1] == ev.StartDone(False)
    assert m.handle(ev.Start()) == [ev.SetState(S.CONNECTING), ev.Open(2)]  # may be started again


def test_restart_on_close_false_still_retries_a_failed_first_connect() -> None:
    m = machine(restart_on_close=False)
    m.handle(ev.Start())
    actions = m.handle(ev.Closed(1, None, "", OSError("refused"), failure="connection refused"))
    assert reports(actions) == [
        (K.CONNECTION_ERROR, "connect to wss://localhost:5000/v1/api/ws failed: connection refused")
    ]
    assert m.state is S.RECONNECTING and "reconnect" in m._timers


def test_failed_attempts_back_off_exponentially_up_to_the_limit_then_give_up() -> None:
    m = machine(backoff_first=1.0, backoff_max=5.0, max_connection_attempts=5)
    m.handle(ev.Start())
    delays = []
    for conn in range(1, 5):
        actions = m.handle(ev.Closed(conn, None, "", OSError("refused")))
        delays.append(timers(actions)["reconnect"])
        m.handle(ev.TimerFired("reconnect", m._timers["reconnect"]))
    assert delays == [1.0, 2.0, 4.0, 5.0]
    actions = m.handle(ev.Closed(5, None, "", OSError("refused")))
    assert (K.CONNECTION_ERROR, "giving up after 5 connection attempts") in reports(actions)
    assert m.state is S.FAILED and actions[-1] == ev.StartDone(False)


def test_the_back_off_with_jitter_scales_by_half_to_one() -> None:
    settings = Settings(backoff_first=2.0, backoff_max=100.0, jitter=True)
    assert SessionMachine(settings, random=lambda: 0.0).backoff(1) == 1.0
    assert SessionMachine(settings, random=lambda: 1.0).backoff(3) == 8.0
    assert SessionMachine(settings, random=lambda: 0.5).backoff(2) == 3.0
    assert SessionMachine(Settings(backoff_first=2.0, jitter=False)).backoff(0) == 2.0


def test_a_confirmed_session_resets_the_attempts_and_reconnects_use_their_own_limit() -> None:
    m = machine(max_connection_attempts=2, max_reconnect_attempts=3)
    m.handle(ev.Start())
    m.handle(ev.Closed(1, None, "", OSError("refused")))
    m.handle(ev.TimerFired("reconnect", m._timers["reconnect"]))
    m.handle(ev.Opened(2))
    control(m, frames.sts(authenticated=True))
    m.handle(ev.Closed(2, 1006, "", None))  # lost: not a failed attempt
    for conn in (3, 4):
        m.handle(ev.TimerFired("reconnect", m._timers["reconnect"]))
        actions = m.handle(ev.Closed(conn, None, "", OSError("refused")))
        assert m.state is S.RECONNECTING, conn  # two failures: under the reconnect limit of 3
    m.handle(ev.TimerFired("reconnect", m._timers["reconnect"]))
    actions = m.handle(ev.Closed(5, None, "", OSError("refused")))
    assert (K.CONNECTION_ERROR, "giving up after 3 connection attempts") in reports(actions)


def test_a_tls_failure_is_not_retried_and_says_what_to_check() -> None:
    m = machine()
    m.handle(ev.Start())
    error = OSError("certificate verify failed")
    actions = m.handle(ev.Closed(1, None, "", error, tls=True))
    [(kind, message)] = reports(actions)
    assert kind is K.TLS and "certificate verify failed" in message and "cacert" in message
    assert m.state is S.FAILED and not of(actions, ev.SetTimer)


def test_a_close_after_stop_only_settles_stopped() -> None:
    m = authenticated()
    m.running = False  # as after a stop that has not reached the connection yet
    assert m.handle(ev.Closed(1, 1000, "", None)) == [
        ev.CancelTimer("ping!"),
        ev.CancelTimer("pong_watch"),
        ev.CancelTimer("heartbeat_watch"),
        ev.CancelTimer("tic!"),
        ev.CancelTimer("renew!"),
        ev.Unawait(None),
        ev.SetState(S.STOPPED),
    ]


def test_give_up_fails_a_client_that_is_not_ready_only() -> None:
    m = authenticated()
    assert m.handle(ev.GiveUp()) == []
    m = opened()
    actions = m.handle(ev.GiveUp())
    assert m.state is S.FAILED and ev.Close(1, 1000) in actions and actions[-1] == ev.StartDone(False)
    assert m.handle(ev.GiveUp()) == []  # not running any more


def test_stop_without_shutdown_can_be_started_again() -> None:
    m = authenticated()
    actions = m.handle(ev.Stop(shutdown=False))
    assert ev.Close(1, 1000) in actions and m.state is S.STOPPED
    assert actions[-1] == ev.StartDone(False) and ev.Stopped() not in actions
    assert m._timers == {}
    assert m.handle(ev.Start()) == [ev.SetState(S.CONNECTING), ev.Open(2)]


def test_hard_reset_reconnects_a_running_client_and_stops_when_asked() -> None:
    m = authenticated()
    actions = m.handle(ev.HardReset(restart=True, why="test"))
    assert actions[0] == ev.Close(1, 1000) and actions[-1] == ev.Open(2)
    assert m.state is S.RECONNECTING
    actions = m.handle(ev.HardReset(restart=False, why="test"))
    assert ev.Close(2, 1000) in actions and m.state is S.STOPPED and not m.running
    assert m.handle(ev.HardReset(restart=True, why="test")) == []  # not running: nothing to reset


# -- authentication -------------------------------------------------------------------------------
def test_authentication_lost_holds_the_session_and_polls_rest_with_back_off() -> None:
    m = authenticated(has_rest=True, backoff_first=1.0)
    actions = control(m, frames.sts(authenticated=False))
    assert [k for k, _ in reports(actions)] == [K.AUTHENTICATION]
    assert m.state is S.UNAUTHENTICATED
    assert timers(actions) == {"auth_poll": 1.0}
    assert control(m, frames.sts(authenticated=False)) == []  # reported once
    assert fire(m, "auth_poll") == [ev.Rest("auth_poll", 1)]
    failed = m.handle(ev.RestDone("auth_poll", 1, False, "HTTP 500"))
    assert reports(failed) == [(K.REST_ERROR, "auth status poll failed: HTTP 500")]
    assert timers(failed) == {"auth_poll": 2.0}  # the next attempt backs off
    fire(m, "auth_poll")
    still = m.handle(ev.RestDone("auth_poll", 1, True, {"authenticated": False}))
    assert reports(still) == [] and timers(still) == {"auth_poll": 4.0}
    fire(m, "auth_poll")
    back = m.handle(ev.RestDone("auth_poll", 1, True, {"authenticated": True, "connected": False}))
    assert ev.Close(1, 1000) in back and ev.Open(2) in back  # a fresh socket for the new session


def test_authentication_lost_without_rest_reconnects_at_the_first_poll() -> None:
    m = authenticated(has_rest=False)
    control(m, frames.sts(authenticated=False))
    actions = fire(m, "auth_poll")
    assert ev.Close(1, 1000) in actions and ev.Open(2) in actions
    assert of(actions, ev.Rest) == []  # no REST to ask


def test_auth_poll_answers_after_the_session_came_back_are_ignored() -> None:
    m = authenticated(has_rest=True)
    control(m, frames.sts(authenticated=False))
    token = m._timers["auth_poll"]
    control(m, frames.sts(authenticated=True))
    assert m.state is S.AUTHENTICATED
    assert m.handle(ev.TimerFired("auth_poll", token)) == []
    assert m.handle(ev.RestDone("auth_poll", 1, False, "late")) == []


def test_auth_status_failure_is_reported_and_a_stale_answer_ignored() -> None:
    m = opened(has_rest=True)
    fire(m, "greeting")
    actions = m.handle(ev.RestDone("auth_status", 1, False, "HTTP 401"))
    assert reports(actions) == [(K.REST_ERROR, "auth status failed: HTTP 401")]
    assert m.state is S.OPEN
    assert m.handle(ev.RestDone("auth_status", 1, True, {"authenticated": True, "connected": False})) == []
    assert m.state is S.OPEN  # authenticated but not connected: not a session yet
    m = authenticated(has_rest=True)
    assert m.handle(ev.RestDone("auth_status", 1, False, "late")) == []


def test_tickle_failures_are_reported_and_successes_are_silent() -> None:
    m = authenticated(has_rest=True)
    assert m.handle(ev.RestDone("tickle", 1, True, {"session": "x"})) == []
    assert reports(m.handle(ev.RestDone("tickle", 1, False, "HTTP 503"))) == [
        (K.REST_ERROR, "tickle failed: HTTP 503")
    ]
    assert m.state is S.AUTHENTICATED


def test_competing_session_and_frames_the_decoder_cannot_read_are_reported() -> None:
    m = authenticated()
    actions = control(m, {"topic": "sts", "args": {"competing": True, "authenticated": True}})
    assert [k for k, _ in reports(actions)] == [K.COMPETING_SESSION]
    assert [k for k, _ in reports(control(m, b"{not json"))] == [K.MALFORMED_FRAME]
    assert [k for k, _ in reports(control(m, {"topic": "zzz", "x": 1}))] == [K.UNKNOWN_FRAME]
    assert control(m, {"topic": "sts", "args": "odd"}) == []


def test_waiting_for_session_is_answered_with_the_session() -> None:
    m = opened()
    assert control(m, frames.waiting_for_session()) == [ev.SendSession(1)]


def test_accounts_without_the_configured_account_warn() -> None:
    m = authenticated(account_id="DU111")
    actions = control(m, {"topic": "act", "args": {"accounts": ["DU222"]}})
    assert of(actions, ev.Warn)
    assert control(m, {"topic": "act", "args": {"accounts": ["DU111", "DU222"]}}) == []
    assert control(authenticated(), {"topic": "act", "args": {"accounts": ["DU222"]}}) == []
