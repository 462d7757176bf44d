"""The session machine's subscriptions: unsubscribe with confirmation (its wait, confirmation and
UNSUBSCRIPTION_FAILED timeout), modify's options, recreate, renewal, ``md+CONID@EXCH`` channels,
market history server ids, the orders pre-flight, and the registry's union of requests."""

from __future__ import annotations

from typing import Any

import pytest

from rxibkr.protocol import IbkrSubscriptionProcessor, IbkrWsKey
from rxibkr.protocol import requests as rq
from rxibkr.session import events as ev
from rxibkr.session.machine import SessionMachine
from rxibkr.session.registry import Channel, split_channel, union_data
from rxibkr.testing import frames

from .test_machine import P, S, Token, authenticated, control, machine, of, sends, subscribe
from .test_machine_lifecycle import fire, reports, timers

K = ev.ErrorKind
ST = ev.SubscriptionStatus


def statuses(actions: list[ev.Action]) -> list[tuple[Any, ST]]:
    return [(a.token, a.status) for a in of(actions, ev.Status)]


def unsubscribe(
    m: SessionMachine, channel: str, token: Any, *, confirm: bool, data: Any = None, processor: Any = P
) -> tuple[object, list[ev.Action]]:
    finish = object()
    return finish, m.handle(ev.Unsubscribe(token, channel, data, confirm, processor, finish))


class Upper(IbkrSubscriptionProcessor):
    """A custom processor: its payloads say so."""

    def make_subscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        return "S-" + channel

    def make_unsubscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        return "U-" + channel


class Broken(IbkrSubscriptionProcessor):
    def make_subscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        raise ValueError("no payload")

    def make_unsubscribe_payload(self, channel: str, data: dict[str, Any] | None = None) -> str:
        raise ValueError("no payload either")


# -- channels -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "key", "match"),
    [
        ("md+265598@SMART", IbkrWsKey.MARKET_DATA, "md+265598"),
        ("md+265598", IbkrWsKey.MARKET_DATA, "md+265598"),
        ("mh+265598@ISLAND+{}", IbkrWsKey.MARKET_HISTORY, "mh+265598+{}"),
        ("bd+DU1+265598@SMART", IbkrWsKey.PRICE_LADDER, "bd+DU1+265598@SMART"),  # the ladder keeps it
        ("pl", IbkrWsKey.PNL, "pl"),
    ],
)
def test_a_channel_is_matched_as_the_gateway_echoes_its_topic(
    channel: str, key: IbkrWsKey, match: str
) -> None:
    assert split_channel(channel) == (key, match)


def test_bad_channels_are_refused_with_what_to_do() -> None:
    with pytest.raises(TypeError, match="non-empty str"):
        split_channel("")
    with pytest.raises(ValueError, match="unsolicited"):
        split_channel("sts")


def test_an_exchange_qualified_market_data_channel_is_confirmed_by_its_plain_topic() -> None:
    m = authenticated()
    token, actions = subscribe(m, "md+265598@SMART", {"fields": ["31"]})
    assert sends(actions) == ['smd+265598@SMART+{"fields": ["31"]}']
    assert ev.Await("md+265598") in actions  # smd+265598 frames confirm it
    assert statuses(m.handle(ev.Data(1, "md+265598"))) == [(token, ST.ACTIVE)]
    assert sends(
        m.handle(ev.Release(token, next(iter(m.channels["md+265598@SMART"].handles)), "md+265598@SMART"))
    ) == ["umd+265598@SMART+{}"]


def test_union_of_market_data_requests_keeps_first_asked_order_and_latest_other_keys() -> None:
    assert union_data([None, {"fields": ["31", 84]}, {"fields": ["84", "86"], "x": 1}]) == {
        "fields": ["31", 84, "86"],
        "x": 1,
    }
    assert union_data([None, None]) is None
    assert union_data([{"x": 1}, {"y": 2}]) == {"x": 1, "y": 2}  # no fields: none added
    channel = Channel("pl", Token(), True, P)
    channel.add("a", {"x": 1})
    channel.add("b", {"y": 2})
    assert channel.data == {"y": 2}  # not market data: the latest request
    assert "pl" in repr(channel) and "handles=2" in repr(channel)


# -- subscribe ------------------------------------------------------------------------------------
def test_a_subscription_without_confirmation_is_active_when_sent() -> None:
    m = authenticated()
    token = Token()
    actions = m.handle(ev.Subscribe(token, object(), "pl", {}, False, P))
    assert sends(actions) == ["spl+{}"]
    assert statuses(actions) == [(token, ST.ACTIVE)]
    assert not of(actions, ev.Await) and not timers(actions)


def test_a_confirmed_subscription_waits_with_the_subscription_timeout() -> None:
    m = authenticated(subscription_timeout=3.5)
    _token, actions = subscribe(m, "pl", {})
    assert timers(actions) == {"sub:pl": 3.5}
    assert ev.Await("pl") in actions


def test_resubscribing_with_another_processor_or_confirm_resends() -> None:
    m = authenticated()
    token = Token()
    m.handle(ev.Subscribe(token, "h1", "pl", {}, True, P))
    m.handle(ev.Data(1, "pl"))
    assert sends(m.handle(ev.Subscribe(token, "h2", "pl", {}, True, P))) == []  # same: nothing
    actions = m.handle(ev.Subscribe(token, "h3", "pl", {}, True, Upper()))
    assert sends(actions) == ["S-pl"]
    assert statuses(actions) == []  # ACTIVE stays ACTIVE while it is re-sent
    actions = m.handle(ev.Subscribe(token, "h4", "pl", {}, False, Upper()))
    assert sends(actions) == ["S-pl"]


def test_resubscribing_a_failed_subscription_tries_again_from_pending() -> None:
    m = authenticated(subscription_retries=1)
    token, _ = subscribe(m, "pl", {})
    assert statuses(fire(m, "sub:pl")) == [(token, ST.FAILED)]
    actions = m.handle(ev.Subscribe(token, "again", "pl", {}, True, P))
    assert statuses(actions) == [(token, ST.PENDING)]
    assert sends(actions) == ["spl+{}"]


def test_a_new_token_for_a_channel_ends_the_old_one_first() -> None:
    m = authenticated()
    old, _ = subscribe(m, "pl", {})
    new = Token()
    actions = m.handle(ev.Subscribe(new, "h", "pl", {}, True, P))
    assert sends(actions) == ["upl+{}", "spl+{}"]
    assert (old, ST.UNSUBSCRIBED) in statuses(actions)


def test_late_data_makes_a_failed_subscription_active() -> None:
    m = authenticated(subscription_retries=1)
    token, _ = subscribe(m, "pl", {})
    fire(m, "sub:pl")
    assert statuses(m.handle(ev.Data(1, "pl"))) == [(token, ST.ACTIVE)]


def test_a_retry_is_sent_only_while_pending() -> None:
    m = authenticated(subscription_retries=3)
    token, _ = subscribe(m, "pl", {})
    timer = m._timers["sub:pl"]
    m.handle(ev.Modify("pl", status=True))
    assert m.handle(ev.TimerFired("sub:pl", timer)) == []
    assert m.channels["pl"].status is ST.ACTIVE and token is not None


def test_a_payload_that_cannot_be_built_fails_the_subscription_with_the_reason() -> None:
    m = authenticated()
    token = Token()
    actions = m.handle(ev.Subscribe(token, "h", "pl", {}, True, Broken()))
    assert sends(actions) == []
    [(kind, message)] = reports(actions)
    assert kind is K.SUBSCRIPTION_FAILED and "no payload" in message and "'pl'" in message
    assert statuses(actions) == [(token, ST.FAILED)]


def test_the_failure_report_says_attempts_and_timeout() -> None:
    m = authenticated(subscription_retries=2, subscription_timeout=1.5)
    subscribe(m, "pl", {})
    fire(m, "sub:pl")
    [(kind, message)] = reports(fire(m, "sub:pl"))
    assert kind is K.SUBSCRIPTION_FAILED
    assert message == "subscription 'pl' not confirmed after 2 attempts of 1.5 s"


def test_a_refusal_names_the_topic_and_a_client_error_code_only() -> None:
    for code in (399, 500, "400"):
        m = authenticated()
        token, _ = subscribe(m, "pl", {})
        actions = control(m, {"error": "no", "code": code, "topic": "spl"})
        assert (token, ST.FAILED) not in statuses(actions), code
    m = authenticated()
    token, _ = subscribe(m, "pl", {})
    for code in (400, 499):
        m = authenticated()
        token, _ = subscribe(m, "pl", {})
        actions = control(m, {"error": "no", "code": code, "topic": "spl"})
        assert statuses(actions) == [(token, ST.FAILED)], code
        assert ev.Unawait("pl") in actions
        # a refused channel has nothing to end at the gateway
        assert sends(m.handle(ev.Release(token, next(iter(m.channels["pl"].handles)), "pl"))) == []


def test_a_refusal_of_an_active_channel_found_by_topic_fails_it() -> None:
    m = authenticated()
    token, _ = subscribe(m, "pl", {})
    m.handle(ev.Data(1, "pl"))  # confirmed: not awaited any more
    actions = control(m, {"error": "gone", "code": 404, "topic": "spl"})
    assert statuses(actions) == [(token, ST.FAILED)]
    assert control(m, {"error": "x", "code": 404, "topic": "sother"}) != []  # reported, nothing failed


# -- unsubscribe ----------------------------------------------------------------------------------
def test_unsubscribe_with_confirmation_waits_for_the_gateway() -> None:
    m = authenticated(subscription_timeout=2.0, subscription_retries=3)
    token, _ = subscribe(m, "sd+DU111", {})
    m.handle(ev.Data(1, "sd+DU111"))
    finish, actions = unsubscribe(m, "sd+DU111", token, confirm=True)
    assert sends(actions) == ["usd+DU111+{}"]
    assert statuses(actions) == [(token, ST.PENDING)]
    assert timers(actions) == {"unsub:sd+DU111": 6.0}  # the subscription timeout times the retries
    assert not of(actions, ev.UnsubscribeDone)
    assert control(m, b'{"result":"unsubscribed from ledger"}') == []  # another key's confirmation
    done = control(m, b'{"result":"unsubscribed from summary"}')
    assert statuses(done) == [(token, ST.UNSUBSCRIBED)]
    assert ev.UnsubscribeDone(finish, True) in done
    assert ev.CancelTimer("unsub:sd+DU111") in done
    assert "sd+DU111" not in m.channels
    assert control(m, b'{"result":"unsubscribed from summary"}') == []  # nothing waits any more


def test_unsubscribe_confirmation_never_coming_is_reported_as_unsubscription_failed() -> None:
    m = authenticated()
    token, _ = subscribe(m, "pl", {})
    finish, _ = unsubscribe(m, "pl", token, confirm=True)
    actions = fire(m, "unsub:pl")
    assert reports(actions) == [(K.UNSUBSCRIPTION_FAILED, "unsubscribe of 'pl' not confirmed")]
    assert statuses(actions) == [(token, ST.UNSUBSCRIBED)]
    assert actions[-1] == ev.UnsubscribeDone(finish, False)
    assert fire_stale(m, "unsub:pl") == []


def fire_stale(m: SessionMachine, name: str) -> list[ev.Action]:
    return m.handle(ev.TimerFired(name, 10**6))


def test_unsubscribe_without_confirmation_is_done_when_sent() -> None:
    m = authenticated()
    token, _ = subscribe(m, "pl", {})
    finish, actions = unsubscribe(m, "pl", token, confirm=False)
    assert sends(actions) == ["upl+{}"]
    assert statuses(actions) == [(token, ST.UNSUBSCRIBED)]
    assert actions[-1] == ev.UnsubscribeDone(finish, True)
    assert ev.CancelTimer("sub:pl") in actions and ev.Unawait("pl") in actions


def test_unsubscribe_without_a_session_is_done_at_once_and_sends_nothing() -> None:
    m = machine()
    m.handle(ev.Start())
    token, _ = subscribe(m, "pl", {})
    finish, actions = unsubscribe(m, "pl", token, confirm=True)
    assert sends(actions) == [] and actions[-1] == ev.UnsubscribeDone(finish, True)
    assert statuses(actions) == [(token, ST.UNSUBSCRIBED)]


def test_unsubscribe_of_an_unknown_channel_still_asks_the_gateway() -> None:
    m = authenticated()
    token = Token()
    finish, actions = unsubscribe(m, "md+8314", token, confirm=False, data={"x": 1}, processor=Upper())
    assert sends(actions) == ["U-md+8314"]
    assert actions[-1] == ev.UnsubscribeDone(finish, True)


def test_a_connection_lost_while_waiting_ends_the_wait_as_done() -> None:
    m = authenticated()
    token, _ = subscribe(m, "pl", {})
    finish, _ = unsubscribe(m, "pl", token, confirm=True)
    actions = m.handle(ev.Closed(1, 1006, "", None))
    assert ev.UnsubscribeDone(finish, True) in actions
    assert ev.CancelTimer("unsub:pl") in actions


def test_shutdown_ends_a_waiting_unsubscribe_as_not_confirmed() -> None:
    m = authenticated()
    token, _ = subscribe(m, "pl", {})
    finish, _ = unsubscribe(m, "pl", token, confirm=True)
    actions = m.handle(ev.Stop(shutdown=True))
    assert ev.UnsubscribeDone(finish, False) in actions


def test_an_unsubscribe_payload_that_cannot_be_built_is_reported() -> None:
    m = authenticated()
    token = Token()
    m.handle(ev.Subscribe(token, "h", "md+1", {}, False, Upper()))
    _, actions = unsubscribe(m, "md+1", token, confirm=False, processor=Broken())
    assert sends(actions) == []
    [(kind, message)] = reports(actions)
    assert kind is K.UNSUBSCRIPTION_FAILED and "no payload either" in message


def test_the_irregular_unsubscribe_forms_of_the_protocol() -> None:
    m = authenticated()
    token = Token()
    m.handle(ev.Subscribe(token, "h", "tr", {}, False, P))
    assert sends(unsubscribe(m, "tr", token, confirm=False)[1]) == [rq.unsubscribe_trades()]
    m.handle(ev.Subscribe(token, "h", "bd+DU111+265598@SMART", {}, False, P))
    assert sends(unsubscribe(m, "bd+DU111+265598@SMART", token, confirm=False)[1]) == [
        rq.unsubscribe_price_ladder("DU111")
    ]


# -- market history -------------------------------------------------------------------------------
def test_market_history_is_unsubscribed_by_the_server_ids_its_replies_named() -> None:
    m = authenticated()
    token, _ = subscribe(m, "mh+265598", {"period": "1d"})
    actions = control(m, frames.smh(265598, server_id="77"))
    assert statuses(actions) == [(token, ST.ACTIVE)]
    assert m.server_ids == {"77": 265598}
    finish, actions = unsubscribe(m, "mh+265598", token, confirm=True)
    assert sends(actions) == [rq.unsubscribe_market_history("77")]
    done = control(m, frames.unsubscribed_history("77"))
    assert ev.UnsubscribeDone(finish, True) in done
    assert m.server_ids == {}


def test_a_history_reply_for_a_disposed_subscription_frees_the_gateways_slot() -> None:
    m = authenticated()
    actions = control(m, frames.smh(8314, server_id="5"))
    assert sends(actions) == [rq.unsubscribe_market_history("5")]
    assert m.server_ids == {}


def test_a_new_connection_forgets_the_server_ids() -> None:
    m = authenticated()
    subscribe(m, "mh+265598", {"period": "1d"})
    control(m, frames.smh(265598, server_id="77"))
    m.handle(ev.Closed(1, 1006, "", None))
    assert m.server_ids == {}


# -- modify, recreate, renew ----------------------------------------------------------------------
def test_modify_sets_data_confirm_processor_and_status() -> None:
    m = authenticated()
    token, _ = subscribe(m, "pl", {"a": 1})
    assert m.handle(ev.Modify("nope", status=True)) == []
    assert statuses(m.handle(ev.Modify("pl", status=True))) == [(token, ST.ACTIVE)]
    assert m.handle(ev.Modify("pl", status=True)) == []  # the same status: nothing to tell
    assert statuses(m.handle(ev.Modify("pl", status=False))) == [(token, ST.PENDING)]
    m.handle(ev.Modify("pl", data={"b": 2}, set_data=True, confirm=False, processor=Upper()))
    channel = m.channels["pl"]
    assert channel.data == {"b": 2} and channel.confirm is False and isinstance(channel.processor, Upper)
    m.handle(ev.Modify("pl", data=None, set_data=False))
    assert channel.data == {"b": 2}  # data only with set_data
    actions = m.handle(ev.Recreate())
    assert sends(actions) == ["S-pl"]
    assert statuses(actions) == [(token, ST.ACTIVE)]  # without confirmation: active when sent


def test_recreate_resends_every_subscription_from_pending() -> None:
    m = authenticated()
    a, _ = subscribe(m, "pl", {})
    b, _ = subscribe(m, "md+1", {"fields": ["31"]})
    m.handle(ev.Data(1, "pl"))
    actions = m.handle(ev.Recreate())
    assert sends(actions) == ["spl+{}", 'smd+1+{"fields": ["31"]}']
    assert statuses(actions) == [(a, ST.PENDING)]  # b was pending already
    assert timers(actions) == {"sub:pl": 2.0, "sub:md+1": 2.0}
    assert b is not None


def test_recreate_without_a_session_only_marks_pending() -> None:
    m = machine()
    m.handle(ev.Start())
    subscribe(m, "pl", {})
    assert sends(m.handle(ev.Recreate())) == []


def test_renewal_resends_active_market_data_only() -> None:
    m = authenticated()
    subscribe(m, "md+1", {"fields": ["31"]})
    subscribe(m, "md+2", {"fields": ["84"]})
    subscribe(m, "pl", {})
    m.handle(ev.Data(1, "md+1"))
    m.handle(ev.Data(1, "pl"))
    assert fire(m, "renew") == [ev.Send(1, 'smd+1+{"fields": ["31"]}')]


# -- orders pre-flight ----------------------------------------------------------------------------
def test_live_orders_are_queried_over_rest_before_subscribing_orders() -> None:
    m = authenticated(has_rest=True, has_rest_orders=True)
    token, actions = subscribe(m, "or", {})
    assert actions == [ev.Rest("preflight", 1, "or")]
    assert m.handle(ev.RestDone("preflight", 7, True, None, "or")) == []  # another connection's
    actions = m.handle(ev.RestDone("preflight", 1, False, "HTTP 500", "or"))
    assert [k for k, _ in reports(actions)] == [K.REST_ERROR]
    assert sends(actions) == ["sor+{}"]  # sent all the same
    assert m.handle(ev.RestDone("preflight", 1, True, None, "or")) == []  # once
    assert token is not None


def test_shutdown_unsubscribes_active_channels_only() -> None:
    m = authenticated()
    a, _ = subscribe(m, "pl", {})
    b, _ = subscribe(m, "md+1", {"fields": ["31"]})
    m.handle(ev.Data(1, "pl"))
    actions = m.handle(ev.Stop(shutdown=True))
    assert sends(actions) == ["upl+{}"]
    assert set(statuses(actions)) == {(a, ST.UNSUBSCRIBED), (b, ST.UNSUBSCRIBED)}
    assert m.channels == {}
    assert S.STOPPED is m.state
