"""The client core in virtual time: a real IbkrWsClient, a scripted gateway, a TestScheduler."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from reactivex.testing import TestScheduler

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorKind
from rxibkr.client.subscriptions import SubscriptionStatus
from rxibkr.protocol import IbkrWsKey, Message
from rxibkr.testing import FakeTransport


def smd(conid: int, **fields: Any) -> bytes:
    return orjson.dumps({"topic": f"smd+{conid}", "conid": conid, "_updated": 1, **fields})


def make(**kwargs: Any) -> tuple[IbkrWsClient, FakeTransport, TestScheduler]:
    scheduler = TestScheduler()
    transport = FakeTransport(
        scheduler,
        greeting=kwargs.pop("greeting", ()),
        refuse=kwargs.pop("refuse", 0),
        refusal=kwargs.pop("refusal", None),
        heartbeat_interval=kwargs.pop("heartbeat_interval", 10.0),
    )
    options: dict[str, Any] = dict(
        url="wss://gateway.test/v1/api/ws",
        cacert=False,
        ping_interval=10,
        max_ping_interval=20,
        timeout=5,
        subscription_retries=3,
        subscription_timeout=2,
        reconnect_jitter=False,
    )
    options.update(kwargs)
    client = IbkrWsClient(scheduler=scheduler, transport=transport, **options)
    return client, transport, scheduler


def started(**kwargs: Any) -> tuple[IbkrWsClient, FakeTransport, TestScheduler]:
    client, transport, scheduler = make(**kwargs)
    assert client.start() is False  # virtual time: nothing happened yet
    scheduler.advance_by(0.001)
    assert client.state.value is ConnectionState.AUTHENTICATED
    return client, transport, scheduler


@pytest.fixture(autouse=True)
def _quiet_insecure_warning(recwarn: pytest.WarningsRecorder) -> None:
    return None


def test_start_reaches_authenticated_and_states_are_published() -> None:
    client, _, scheduler = make()
    states: list[ConnectionState] = []
    client.state.subscribe(states.append)
    client.start()
    scheduler.advance_by(0.001)
    assert states == [
        ConnectionState.STOPPED,
        ConnectionState.CONNECTING,
        ConnectionState.OPEN,
        ConnectionState.AUTHENTICATED,
    ]
    assert client.ready


def test_subscriptions_before_the_session_are_held_then_sent() -> None:
    client, transport, scheduler = make(greeting=None)
    client.start()
    sub = client.subscribe("md+265598", {"fields": ["31", "84"]})
    assert sub.status is SubscriptionStatus.PENDING
    scheduler.advance_by(1.0)
    assert client.state.value is ConnectionState.OPEN
    assert transport.texts() == []  # nothing sent before the session is confirmed
    transport.receive({"topic": "sts", "args": {"authenticated": True}})
    assert transport.texts() == ['smd+265598+{"fields": ["31", "84"]}']
    transport.receive(smd(265598, **{"31": "1.5"}))
    assert sub.status is SubscriptionStatus.ACTIVE and bool(sub)


def test_confirmation_retries_then_fails_loudly() -> None:
    client, transport, scheduler = started()
    errors: list[Any] = []
    client.errors.subscribe(errors.append)
    sub = client.subscribe("md+265598", {"fields": ["31"]})
    scheduler.advance_by(2.0)
    scheduler.advance_by(2.0)
    scheduler.advance_by(2.0)
    sent = [f for f in transport.sent if f.text.startswith("smd")]
    assert [f.time for f in sent] == [pytest.approx(0.001), pytest.approx(2.001), pytest.approx(4.001)]
    assert sub.status is SubscriptionStatus.FAILED and not sub
    assert [e.kind for e in errors] == [ErrorKind.SUBSCRIPTION_FAILED]


def test_dispose_sends_unsubscribe_exactly_once() -> None:
    client, transport, scheduler = started()
    sub = client.subscribe("md+265598", {"fields": ["31"]})
    transport.receive(smd(265598))
    assert sub.active
    scheduler.advance_by(250.0)
    sub.dispose()
    sub.dispose()
    sent = [f for f in transport.sent if f.text != "tic"]
    assert [f.text for f in sent] == ['smd+265598+{"fields": ["31"]}', "umd+265598+{}"]
    assert [round(f.time, 3) for f in sent] == [0.001, 250.001]
    assert sub.status is SubscriptionStatus.UNSUBSCRIBED


def test_irregular_unsubscribe_forms() -> None:
    client, transport, _ = started()
    trades = client.subscribe("tr", {})
    ladder = client.subscribe("bd+DU1234567+265598")
    history = client.subscribe("mh+265598", {"period": "1d", "bar": "1h"})
    transport.receive({"topic": "str", "args": []})
    transport.receive({"topic": "smh+265598", "serverId": "7731", "data": []})
    assert history.active and client.server_ids(IbkrWsKey.MARKET_HISTORY) == {"7731": 265598}
    trades.dispose()
    ladder.dispose()
    history.dispose()
    assert transport.texts()[-3:] == ["utr", "ubd+DU1234567", "umh+7731"]


def test_channel_is_reference_counted() -> None:
    client, transport, _ = started()
    stream = client.channel("md+265598", {"fields": ["31"]})
    got_a: list[Message] = []
    got_b: list[Message] = []
    a = stream.subscribe(got_a.append)
    b = stream.subscribe(got_b.append)
    assert transport.texts() == ['smd+265598+{"fields": ["31"]}']
    transport.receive(smd(265598, **{"31": "1"}))
    transport.receive(smd(8314, **{"31": "2"}))  # another conid: filtered out
    assert len(got_a) == len(got_b) == 1
    a.dispose()
    assert transport.texts() == ['smd+265598+{"fields": ["31"]}']
    b.dispose()
    assert transport.texts()[-1] == "umd+265598+{}"


def test_ping_watchdog_resets_when_pongs_stop() -> None:
    client, transport, scheduler = started()
    transport.auto_pong = False
    errors: list[Any] = []
    client.errors.subscribe(errors.append)
    scheduler.advance_by(19.9)
    assert len(transport.connections) == 1
    scheduler.advance_by(0.2)
    assert ErrorKind.WATCHDOG in [e.kind for e in errors]
    assert len(transport.connections) == 2 and transport.connections[0].closed


def test_heartbeat_watchdog_measures_arrival_not_server_time() -> None:
    _client, transport, scheduler = started(heartbeat_interval=None)
    for _ in range(3):  # heartbeats with a server clock far in the past still count
        scheduler.advance_by(10.0)
        transport.receive({"topic": "system", "hb": 1})
    assert len(transport.connections) == 1
    scheduler.advance_by(20.1)  # silence
    assert len(transport.connections) == 2


def test_reconnect_backoff_and_resubscribe_without_duplicates() -> None:
    client, transport, scheduler = started(reconnect_backoff=(1.0, 8.0))
    client.subscribe("md+265598", {"fields": ["31"]})
    transport.receive(smd(265598))
    gone = client.subscribe("md+8314", {"fields": ["31"]})
    transport.receive(smd(8314))
    gone.dispose()
    transport.refuse = 2
    transport.current.drop()
    assert client.state.value is ConnectionState.RECONNECTING
    scheduler.advance_by(1.0)  # attempt 1 -> refused
    scheduler.advance_by(1.0)  # attempt 2 (after 1 s) -> refused
    assert len(transport.connections) == 3
    scheduler.advance_by(1.9)
    assert len(transport.connections) == 3  # next after 2 s
    scheduler.advance_by(0.2)
    assert len(transport.connections) == 4 and client.ready
    assert transport.texts(4) == ['smd+265598+{"fields": ["31"]}']  # the disposed one is not replayed


def test_smd_renewal_and_tic_keepalive() -> None:
    client, transport, scheduler = started(md_renewal_interval=540.0, tic_interval=60.0)
    client.subscribe("md+265598", {"fields": ["31"]})
    transport.receive(smd(265598))
    for _ in range(6):
        scheduler.advance_by(100.0)
    texts = transport.texts()
    assert texts.count('smd+265598+{"fields": ["31"]}') == 2
    assert texts.count("tic") == 10


def test_observer_exception_is_reported_and_others_carry_on() -> None:
    client, transport, _ = started()
    errors: list[Any] = []
    client.errors.subscribe(errors.append)
    seen: list[Message] = []

    def bad(_: Message) -> None:
        raise RuntimeError("strategy bug")

    client.observe(IbkrWsKey.MARKET_DATA).subscribe(bad)
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(seen.append)
    transport.receive(smd(265598))
    transport.receive(smd(265598))
    assert len(seen) == 2
    assert [e.kind for e in errors] == [ErrorKind.OBSERVER_ERROR] * 2


def test_bad_frames_are_reported_and_the_stream_goes_on() -> None:
    client, transport, _ = started()
    errors: list[Any] = []
    client.errors.subscribe(errors.append)
    seen: list[Message] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(seen.append)
    for junk in (b"\x99\x00garbage", b"[1,2]", b'{"topic":"zzz"}', b'{"error":"No accounts","code":500}'):
        transport.receive(junk)
    transport.receive(smd(265598))
    assert len(seen) == 1
    assert [e.kind for e in errors] == [
        ErrorKind.MALFORMED_FRAME,
        ErrorKind.MALFORMED_FRAME,
        ErrorKind.UNKNOWN_FRAME,
        ErrorKind.GATEWAY_ERROR,
    ]


def test_auth_loss_without_rest_resets_and_resubscribes() -> None:
    client, transport, scheduler = started(reconnect_backoff=(1.0, 8.0))
    client.subscribe("md+265598", {"fields": ["31"]})
    transport.receive(smd(265598))
    transport.receive({"topic": "sts", "args": {"authenticated": False, "competing": True}})
    assert client.state.value is ConnectionState.UNAUTHENTICATED
    scheduler.advance_by(1.1)
    assert len(transport.connections) == 2 and client.ready
    assert transport.texts(2) == ['smd+265598+{"fields": ["31"]}']


def test_start_gives_up_after_max_connection_attempts() -> None:
    client, transport, scheduler = make(
        refuse=100,
        refusal=TimeoutError("timed out"),  # worth retrying, unlike a refused port
        max_connection_attempts=3,
        reconnect_backoff=(1.0, 1.0),
    )
    errors: list[Any] = []
    client.errors.subscribe(errors.append)
    client.start()
    scheduler.advance_by(10.0)
    assert client.state.value is ConnectionState.FAILED
    assert len(transport.connections) == 3
    assert errors[-1].kind is ErrorKind.CONNECTION_ERROR


def test_a_refused_connect_ends_start_at_once() -> None:
    client, transport, scheduler = make(refuse=100, max_connection_attempts=3)
    client.start()
    scheduler.advance_by(10.0)
    assert client.state.value is ConnectionState.FAILED
    assert len(transport.connections) == 1  # no retry can fix a refused port
    assert client.last_error is not None and "not retried" in client.last_error.message


def test_waiting_for_session_gets_the_in_band_session_message() -> None:
    class Rest:
        def tickle(self) -> dict[str, Any]:
            return {"session": "abc123"}

    scheduler = TestScheduler()
    transport = FakeTransport(scheduler, greeting=[b'{"message":"waiting for session"}'])
    client = IbkrWsClient(
        Rest(), url="wss://x.test/v1/api/ws", cacert=False, scheduler=scheduler, transport=transport
    )
    client.start()
    # the fake never calls the cookie provider; the client learnt no session id, so it cannot answer
    scheduler.advance_by(0.001)
    assert transport.texts() == []
    assert transport.current.options.cookie_provider is not None
    transport.current.options.cookie_provider()
    transport.receive(b'{"message":"waiting for session"}')
    assert transport.texts() == ['{"session":"abc123"}']


def test_queue_accessors_receive_ibind_shapes() -> None:
    client, transport, _ = started()
    early = client.new_queue_accessor(IbkrWsKey.MARKET_DATA)
    transport.receive(smd(265598, **{"31": "1.5", "84": "1.4"}))
    late = client.new_queue_accessor(IbkrWsKey.MARKET_DATA)
    transport.receive(smd(265598, **{"31": "1.6"}))
    first = early.get()
    assert first[265598]["last_price"] == "1.5" and first[265598]["bid_price"] == "1.4"
    # IBind's semantics: the accessors of a key share its one queue (tests/ibind covers the rest)
    assert late.get()[265598]["last_price"] == "1.6"
    assert early.get() is None
    assert late.empty() and early.empty()
    with pytest.raises(ValueError, match="unsolicited"):
        client.new_queue_accessor(IbkrWsKey.SYSTEM)


def test_modify_subscription_unknown_channel_raises_keyerror() -> None:
    client, _, _ = started()
    with pytest.raises(KeyError):
        client.modify_subscription("md+1", status=True)


def test_bad_arguments_are_clear() -> None:
    client, _, _ = started()
    with pytest.raises(ValueError, match="channel"):
        client.subscribe("zz+1")
    with pytest.raises(TypeError, match="data"):
        client.subscribe("md+1", data="fields")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cacert"):
        IbkrWsClient(
            url="wss://x.test/ws", cacert="/nonexistent/ca.pem", transport=FakeTransport(TestScheduler())
        )


def test_shutdown_unsubscribes_and_completes_streams() -> None:
    client, transport, _ = started()
    client.subscribe("md+265598", {"fields": ["31"]})
    transport.receive(smd(265598))
    completed: list[bool] = []
    client.observe(IbkrWsKey.MARKET_DATA).subscribe(on_completed=lambda: completed.append(True))
    client.shutdown()
    assert transport.texts()[-1] == "umd+265598+{}"
    assert completed == [True]
    assert client.state.value is ConnectionState.STOPPED


def test_history_disposed_before_its_reply_still_frees_the_slot() -> None:
    client, transport, _ = started()
    history = client.subscribe("mh+265598", {"period": "1d", "bar": "1h"})
    history.dispose()  # before the reply: the server id is not known yet
    transport.receive({"topic": "smh+265598", "serverId": "991", "data": []})
    assert transport.texts()[-1] == "umh+991"
    assert client.server_ids(IbkrWsKey.MARKET_HISTORY) is None


def test_report_error_puts_foreign_exceptions_on_errors() -> None:
    client, _, _ = started()
    errors: list[Any] = []
    client.errors.subscribe(errors.append)
    client.report_error(ValueError("from a worker thread"), payload="ctx")
    assert [e.kind for e in errors] == [ErrorKind.OBSERVER_ERROR]
    assert errors[0].payload == "ctx"


def test_status_listener_can_be_removed() -> None:
    client, transport, _ = started()
    sub = client.subscribe("md+265598", {"fields": ["31"]})
    seen: list[SubscriptionStatus] = []
    handle = sub.on_status(seen.append)
    transport.receive(smd(265598))
    handle.dispose()
    sub.dispose()
    assert seen == [SubscriptionStatus.ACTIVE]


def test_a_failed_subscription_whose_data_comes_late_becomes_active() -> None:
    client, transport, scheduler = started()
    sub = client.subscribe("md+265598", {"fields": ["31"]})
    scheduler.advance_by(6.1)
    assert sub.status is SubscriptionStatus.FAILED
    transport.receive(smd(265598))
    assert sub.status is SubscriptionStatus.ACTIVE


def test_handles_on_one_channel_share_it_until_the_last_is_disposed() -> None:
    client, transport, _ = started()
    first = client.subscribe("md+265598", {"fields": ["31"]})
    second = client.subscribe("md+265598", {"fields": ["31"]})  # same request: no second smd
    assert first is not second
    assert transport.texts() == ['smd+265598+{"fields": ["31"]}']
    transport.receive(smd(265598))
    assert first.active and second.active
    first.dispose()
    assert first.status is SubscriptionStatus.UNSUBSCRIBED and second.active
    assert "umd+265598+{}" not in transport.texts()
    second.dispose()
    assert transport.texts()[-1] == "umd+265598+{}"


def test_a_manual_subscription_disposed_does_not_stop_a_typed_stream() -> None:
    client, transport, _ = started()
    seen: list[Any] = []
    stream = client.market_data(265598, fields=["31"]).subscribe(seen.append)
    manual = client.subscribe("md+265598", {"fields": ["31"]})
    manual.dispose()
    assert not any(t.startswith("umd") for t in transport.texts())
    transport.receive(smd(265598, **{"31": "1.5"}))
    assert len(seen) == 1
    stream.dispose()
    assert transport.texts()[-1] == "umd+265598+{}"


def test_seed_unsubscribe_ends_the_channel_for_every_handle() -> None:
    client, transport, _ = started()
    a = client.subscribe("pl", {})
    b = client.subscribe("pl", {})
    transport.receive({"topic": "spl", "args": {}})
    assert client.unsubscribe("pl") is True
    assert a.status is b.status is SubscriptionStatus.UNSUBSCRIBED
    assert transport.texts().count("upl+{}") == 1
    a.dispose()
    b.dispose()
    assert transport.texts().count("upl+{}") == 1


def test_a_handle_hears_unsubscribed_once_when_disposed() -> None:
    client, transport, _ = started()
    keep = client.subscribe("md+265598", {"fields": ["31"]})
    handle = client.subscribe("md+265598", {"fields": ["31"]})
    heard: list[SubscriptionStatus] = []
    handle.on_status(heard.append)
    transport.receive(smd(265598))
    handle.dispose()
    transport.drop()
    assert heard == [SubscriptionStatus.ACTIVE, SubscriptionStatus.UNSUBSCRIBED]
    assert keep.status is SubscriptionStatus.PENDING  # the channel lives on, reconnecting
