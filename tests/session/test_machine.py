"""The session machine, pure: events in, actions out. Plain asserts, no sockets, threads or clocks."""

from __future__ import annotations

from typing import Any

import orjson

from rxibkr.protocol import IbkrSubscriptionProcessor, decode
from rxibkr.session import events as ev
from rxibkr.session.machine import SessionMachine, Settings
from rxibkr.testing import frames

P = IbkrSubscriptionProcessor()
S = ev.ConnectionState


def machine(**settings: Any) -> SessionMachine:
    return SessionMachine(Settings(jitter=False, **settings))


def of(actions: list[ev.Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def sends(actions: list[ev.Action]) -> list[str]:
    return [a.payload for a in of(actions, ev.Send)]


def control(m: SessionMachine, frame: Any) -> list[ev.Action]:
    assert m.conn is not None
    return m.handle(
        ev.Control(m.conn, decode(frame if isinstance(frame, bytes | str) else orjson.dumps(frame)))
    )


def authenticated(**settings: Any) -> SessionMachine:
    m = machine(**settings)
    m.handle(ev.Start())
    m.handle(ev.Opened(1))
    control(m, frames.sts(authenticated=True))
    assert m.state is S.AUTHENTICATED
    return m


class Token:
    """Stands for the client's shared status object of a channel."""


def subscribe(m: SessionMachine, channel: str, data: Any, token: Any = None, handle: Any = None) -> Any:
    token = token or Token()
    return token, m.handle(ev.Subscribe(token, handle or object(), channel, data, True, P))


def test_start_opens_a_connection() -> None:
    m = machine()
    assert m.handle(ev.Start()) == [ev.SetState(S.CONNECTING), ev.Open(1)]


def test_open_starts_the_liveness_timers_and_the_greeting_grace_with_rest() -> None:
    m = machine(has_rest=True, timeout=5.0)
    m.handle(ev.Start())
    actions = m.handle(ev.Opened(1))
    assert actions[0] == ev.SetState(S.OPEN)
    assert [(t.name, t.delay) for t in of(actions, ev.SetTimer)] == [
        ("ping!", 10.0),
        ("pong_watch", 20.0),
        ("session", 5.0),
        ("greeting", 1.0),
    ]


def test_held_subscriptions_go_out_when_the_greeting_confirms_the_session() -> None:
    m = machine()
    m.handle(ev.Start())
    _token, actions = subscribe(m, "md+265598", {"fields": ["31"]})
    assert sends(actions) == []  # no session yet: held
    m.handle(ev.Opened(1))
    actions = control(m, frames.sts(authenticated=True))
    assert ev.SetState(S.AUTHENTICATED) in actions and ev.StartDone(True) in actions
    assert sends(actions) == ['smd+265598+{"fields": ["31"]}']
    assert ev.Await("md+265598") in actions


def test_without_a_greeting_a_heartbeat_or_data_confirms_the_session() -> None:
    for event in (ev.Heartbeat(1), ev.Data(1, None)):
        m = machine()
        m.handle(ev.Start())
        subscribe(m, "md+265598", {"fields": ["31"]})
        m.handle(ev.Opened(1))
        actions = m.handle(event)
        assert m.state is S.AUTHENTICATED, event
        assert sends(actions) == ['smd+265598+{"fields": ["31"]}']


def test_without_a_greeting_the_rest_auth_status_confirms_after_the_grace() -> None:
    m = machine(has_rest=True)
    m.handle(ev.Start())
    m.handle(ev.Opened(1))
    token = m._timers["greeting"]
    assert m.handle(ev.TimerFired("greeting", token)) == [ev.Rest("auth_status", 1)]
    actions = m.handle(ev.RestDone("auth_status", 1, True, {"authenticated": True, "connected": True}))
    assert ev.SetState(S.AUTHENTICATED) in actions
    # not authenticated, or a stale connection: no confirmation
    m2 = machine(has_rest=True)
    m2.handle(ev.Start())
    m2.handle(ev.Opened(1))
    assert m2.handle(ev.RestDone("auth_status", 1, True, {"authenticated": False})) == []
    assert m2.handle(ev.RestDone("auth_status", 7, True, {"authenticated": True})) == []


def test_an_unauthenticated_gateway_holds_subscriptions_even_when_heartbeats_come() -> None:
    m = machine()
    m.handle(ev.Start())
    subscribe(m, "md+265598", {"fields": ["31"]})
    m.handle(ev.Opened(1))
    control(m, frames.sts(authenticated=False))
    assert m.state is S.UNAUTHENTICATED
    assert sends(m.handle(ev.Heartbeat(1))) == []
    assert sends(m.handle(ev.Data(1, None))) == []


def test_market_data_requests_are_sent_as_the_union_of_their_fields_and_resent_so() -> None:
    m = authenticated()
    token = Token()
    _, first = subscribe(m, "md+265598", {"fields": ["84"]}, token)
    _, second = subscribe(m, "md+265598", {"fields": ["31"]}, token)
    assert sends(first) == ['smd+265598+{"fields": ["84"]}']
    assert sends(second) == ['smd+265598+{"fields": ["84", "31"]}']
    _, same = subscribe(m, "md+265598", {"fields": ["31"]}, token)
    assert sends(same) == []  # nothing new asked for
    m.handle(ev.Closed(1, 1006, "", None))
    m.handle(ev.TimerFired("reconnect", m._timers["reconnect"]))
    m.handle(ev.Opened(2))
    actions = control(m, frames.sts(authenticated=True))
    assert sends(actions) == ['smd+265598+{"fields": ["84", "31"]}']


def test_the_last_release_unsubscribes_once() -> None:
    m = authenticated()
    token, h1, h2 = Token(), object(), object()
    subscribe(m, "md+265598", {"fields": ["31"]}, token, h1)
    subscribe(m, "md+265598", {"fields": ["31"]}, token, h2)
    assert sends(m.handle(ev.Release(token, h1, "md+265598"))) == []
    actions = m.handle(ev.Release(token, h2, "md+265598"))
    assert sends(actions) == ["umd+265598+{}"]
    assert ev.Status(token, ev.SubscriptionStatus.UNSUBSCRIBED) in actions
    assert m.handle(ev.Release(token, h2, "md+265598")) == []


def test_data_confirms_an_awaited_subscription_and_silence_is_retried_then_failed() -> None:
    m = authenticated(subscription_retries=2, subscription_timeout=1.0)
    token, _ = subscribe(m, "md+265598", {"fields": ["31"]})
    assert m.handle(ev.Data(1, "md+265598")) == [
        ev.CancelTimer("sub:md+265598"),
        ev.Status(token, ev.SubscriptionStatus.ACTIVE),
    ]
    quiet, _ = subscribe(m, "md+8314", {"fields": ["31"]})
    retry = m.handle(ev.TimerFired("sub:md+8314", m._timers["sub:md+8314"]))
    assert sends(retry) == ['smd+8314+{"fields": ["31"]}']
    failed = m.handle(ev.TimerFired("sub:md+8314", m._timers["sub:md+8314"]))
    assert [type(a) for a in failed] == [ev.Report, ev.Status]  # reported first, then FAILED
    assert failed[1] == ev.Status(quiet, ev.SubscriptionStatus.FAILED)


def test_a_refusal_fails_the_subscription_at_once_without_retry() -> None:
    m = authenticated()
    token, _ = subscribe(m, "md+abc", {"fields": ["31"]})
    actions = control(m, b'{"error":"invalid conid","code":400,"topic":"smd+abc"}')
    kinds = [a.kind for a in of(actions, ev.Report)]
    assert kinds == [ev.ErrorKind.GATEWAY_ERROR, ev.ErrorKind.SUBSCRIPTION_FAILED]
    assert ev.Status(token, ev.SubscriptionStatus.FAILED) in actions
    assert "sub:md+abc" not in m._timers  # no retry pending
    # a server error (5xx) is not a refusal: the retry stays
    other, _ = subscribe(m, "md+8314", {"fields": ["31"]})
    actions = control(m, b'{"error":"No accounts","code":500,"topic":"smd+8314"}')
    assert ev.Status(other, ev.SubscriptionStatus.FAILED) not in actions and "sub:md+8314" in m._timers


def test_stale_timers_and_connections_are_ignored() -> None:
    m = authenticated()
    assert m.handle(ev.TimerFired("pong_watch", -1)) == []
    assert m.handle(ev.Closed(99, 1000, "", None)) == []
    assert m.handle(ev.Control(99, decode(orjson.dumps(frames.sts(authenticated=False))))) == []


def test_a_failure_no_retry_can_fix_fails_at_once() -> None:
    m = machine()
    m.handle(ev.Start())
    actions = m.handle(ev.Closed(1, None, "", None, retryable=False, failure="HTTP 404 on the upgrade"))
    assert ev.SetState(S.FAILED) in actions and ev.StartDone(False) in actions
    assert not of(actions, ev.SetTimer)


def test_shutdown_unsubscribes_closes_and_stops_for_good() -> None:
    m = authenticated()
    _token, _ = subscribe(m, "pl", {})
    m.handle(ev.Data(1, "pl"))
    actions = m.handle(ev.Stop(shutdown=True))
    assert sends(actions) == ["upl+{}"]
    assert ev.Close(1, 1000) in actions and ev.SetState(S.STOPPED) in actions
    assert actions[-2:] == [ev.StartDone(False), ev.Stopped()]
    assert m.handle(ev.Start()) == []
    assert m.handle(ev.Subscribe(Token(), object(), "pl", {}, True, P)) == []


def test_watchdogs_reset_the_connection() -> None:
    m = authenticated()
    actions = m.handle(ev.TimerFired("heartbeat_watch", m._timers["heartbeat_watch"]))
    assert of(actions, ev.Report)[0].kind is ev.ErrorKind.WATCHDOG
    assert ev.Close(1, 1000) in actions and ev.Open(2) in actions
    # a heartbeat restarts the heartbeat watchdog; a pong the pong watchdog
    m.handle(ev.Opened(2))
    control(m, frames.sts(authenticated=True))
    before = m._timers["heartbeat_watch"]
    m.handle(ev.Heartbeat(2))
    assert m._timers["heartbeat_watch"] != before
