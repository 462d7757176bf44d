"""Bad input from callers gets a clear exception at the call, naming the argument (DESIGN, error policy).

And a rejected call leaves nothing behind: a subscription whose payload cannot be built must not be
stored, or every later resubscription would trip over it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reactivex.testing import TestScheduler

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState
from rxibkr.client.subscriptions import SubscriptionStatus
from rxibkr.protocol import IbkrWsKey
from rxibkr.testing import FakeTransport, frames

URL = "wss://gateway.test/v1/api/ws"


def make(**kwargs: Any) -> tuple[IbkrWsClient, FakeTransport, TestScheduler]:
    scheduler = TestScheduler()
    transport = FakeTransport(scheduler)
    options: dict[str, Any] = {"url": URL, "cacert": False, "reconnect_jitter": False}
    options.update(kwargs)
    client = IbkrWsClient(scheduler=scheduler, transport=transport, **options)
    return client, transport, scheduler


def started(**kwargs: Any) -> tuple[IbkrWsClient, FakeTransport, TestScheduler]:
    client, transport, scheduler = make(**kwargs)
    client.start()
    scheduler.advance_by(0.001)
    assert client.state.value is ConnectionState.AUTHENTICATED
    return client, transport, scheduler


# -- subscribe / unsubscribe / observe -------------------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "exc", "words"),
    [
        (265598, TypeError, "channel"),
        (None, TypeError, "channel"),
        (b"md+265598", TypeError, "channel"),
        ("", TypeError, "channel"),
        ("xx+1", ValueError, "'xx'"),
        ("smd+265598", ValueError, "'smd'"),  # the payload form, not a channel
        ("sts", ValueError, "unsolicited"),
        ("system", ValueError, "system"),
    ],
)
def test_subscribe_with_a_bad_channel_raises_naming_it(channel: Any, exc: type, words: str) -> None:
    client, transport, _ = started()
    with pytest.raises(exc, match=words):
        client.subscribe(channel, {"fields": ["31"]})
    assert client.subscriptions == {}
    assert transport.texts() == []


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (["31"], "data: expected a dict"),
        ("fields", "data: expected a dict"),
        (42, "data: expected a dict"),
        ({"fields": {1, 2}}, "data"),  # a set is not JSON
        ({"fields": object()}, "data"),
        ({(1, 2): "x"}, "data"),  # json.dumps takes str/int/float/bool/None keys, not tuples
    ],
)
def test_subscribe_with_bad_data_raises_and_stores_nothing(data: Any, words: str) -> None:
    client, transport, _ = started()
    with pytest.raises((TypeError, ValueError), match=words):
        client.subscribe("md+265598", data)
    assert not client.has_subscription("md+265598")
    assert transport.texts() == []


def test_bad_data_before_the_session_raises_at_the_call_too() -> None:
    client, _, _ = make()
    # not started: nothing is sent yet, but the payload is checked now, not at the next connect
    with pytest.raises((TypeError, ValueError), match="data"):
        client.subscribe("md+265598", {"fields": object()}, wait=False)
    assert client.subscriptions == {}


def test_a_rejected_subscribe_does_not_break_resubscription_after_a_reconnect() -> None:
    client, transport, scheduler = started()
    with pytest.raises((TypeError, ValueError)):
        client.subscribe("md+8314", {"fields": object()})
    good = client.subscribe("md+265598", {"fields": ["31"]})
    transport.receive(frames.smd(265598, last=1.0))
    assert good.active
    transport.drop()
    scheduler.advance_by(1.0)
    assert client.ready
    assert transport.texts(transport.current.id) == ['smd+265598+{"fields": ["31"]}']
    transport.receive(frames.smd(265598, last=1.1))
    assert good.active


def test_modify_subscription_with_bad_data_fails_that_subscription_loudly_not_the_others() -> None:
    client, transport, scheduler = started()
    errors: list[Any] = []
    client.errors.subscribe(errors.append)
    bad = client.subscribe("md+8314", {"fields": ["31"]}, wait=False)
    good = client.subscribe("md+265598", {"fields": ["31"]}, wait=False)
    client.modify_subscription("md+8314", data={"fields": object()})
    transport.drop()
    scheduler.advance_by(1.0)
    assert client.ready
    assert transport.texts(transport.current.id) == ['smd+265598+{"fields": ["31"]}']
    transport.receive(frames.smd(265598, last=1.0))
    assert good.active
    assert bad.status is SubscriptionStatus.FAILED
    assert any(e.payload is bad.server and "data" in e.message for e in errors), errors


def test_unsubscribe_and_observe_and_queues_check_their_arguments() -> None:
    client, _, _ = started()
    with pytest.raises(TypeError, match="channel"):
        client.unsubscribe(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'zz'"):
        client.unsubscribe("zz+1")
    with pytest.raises(TypeError, match="key"):
        client.observe("md")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        client.new_queue_accessor("md")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsolicited"):
        client.new_queue_accessor(IbkrWsKey.SYSTEM)
    with pytest.raises(KeyError, match="md\\+1"):
        client.modify_subscription("md+1", status=True)


def test_calls_after_shutdown_raise() -> None:
    client, _, _ = started()
    client.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        client.start()
    with pytest.raises(RuntimeError, match="shut down"):
        client.subscribe("md+265598", {"fields": ["31"]})


# -- the constructor ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"timeout": -1}, ValueError, "timeout"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"ping_interval": -0.5}, ValueError, "ping_interval"),
        ({"max_ping_interval": 0}, ValueError, "max_ping_interval"),
        ({"subscription_timeout": -2}, ValueError, "subscription_timeout"),
        ({"subscription_retries": 0}, ValueError, "subscription_retries"),
        ({"max_connection_attempts": 0}, ValueError, "max_connection_attempts"),
        ({"tic_interval": -1}, ValueError, "tic_interval"),
        ({"tickle_interval": -60}, ValueError, "tickle_interval"),
        ({"md_renewal_interval": -1}, ValueError, "md_renewal_interval"),
        ({"reconnect_backoff": (-1, 2)}, ValueError, "reconnect_backoff"),
        ({"reconnect_backoff": (2, 1)}, ValueError, "reconnect_backoff"),
        ({"reconnect_backoff": (0, 1)}, ValueError, "reconnect_backoff"),
        ({"reconnect_backoff": (0.1,)}, ValueError, "reconnect_backoff"),
        ({"reconnect_backoff": 5}, ValueError, "reconnect_backoff"),
        ({"max_reconnect_attempts": 0}, ValueError, "max_reconnect_attempts"),
        ({"url": "http://localhost:5000/v1/api/ws"}, ValueError, "url"),
        ({"url": "localhost:5000"}, ValueError, "url"),
        ({"url": 5000}, ValueError, "url"),
        ({"cacert": 42}, TypeError, "cacert"),
        ({"cacert": "/nonexistent/ca.pem"}, ValueError, "cacert.*/nonexistent/ca.pem"),
        ({"ibkr_client": object()}, TypeError, "ibkr_client"),
    ],
)
def test_bad_constructor_arguments_raise_naming_them(kwargs: dict[str, Any], exc: type, words: str) -> None:
    options: dict[str, Any] = {"url": URL, "cacert": False}
    options.update(kwargs)
    if "ibkr_client" not in kwargs:
        options["transport"] = FakeTransport(TestScheduler())
    with pytest.raises(exc, match=words):
        IbkrWsClient(**options)


def test_cacert_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cacert"):
        IbkrWsClient(url=URL, cacert=str(tmp_path), transport=FakeTransport(TestScheduler()))


@pytest.mark.parametrize("off", [None, 0])
def test_none_or_zero_disables_the_optional_timers(off: float | None) -> None:
    client, transport, scheduler = started(tic_interval=off, tickle_interval=off, md_renewal_interval=off)
    client.subscribe("md+265598", {"fields": ["31"]})
    transport.receive(frames.smd(265598, last=1.0))
    scheduler.advance_by(700.0)
    assert transport.sent_matching("tic") == []
    assert len(transport.sent_matching("smd")) == 1
