"""The scripted gateway: marble diagrams and timed lists arrive at the right virtual times; what the
client sends is read back with its times."""

from __future__ import annotations

from typing import Any

import pytest
from reactivex.testing import TestScheduler

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorKind
from rxibkr.protocol import IbkrWsKey
from rxibkr.testing import CLOSE, DROP, Close, FakeTransport, frames, virtual_client


def last_prices(vc: Any) -> list[tuple[float, str]]:
    seen: list[tuple[float, str]] = []
    vc.client.observe(IbkrWsKey.MARKET_DATA).subscribe(lambda m: seen.append((vc.now, m.data["31"])))
    return seen


def md(price: float) -> dict[str, Any]:
    return frames.smd(265598, last=price)


def test_marble_frames_arrive_one_virtual_second_per_character() -> None:
    vc = virtual_client()
    seen = last_prices(vc)
    vc.gateway.play("--a--b---c", a=md(1), b=md(2), c=md(3))
    vc.advance_by(20)
    assert seen == [(2.0, "1"), (5.0, "2"), (9.0, "3")]


def test_timespan_start_time_groups_and_multi_character_names() -> None:
    vc = virtual_client(timespan=0.5)
    seen = last_prices(vc)
    vc.advance_by(3)
    # relative to now (3); a group and a long name take as many characters of time as they are wide
    vc.gateway.play("-(a,b)-cc-d", {"a": md(1), "b": md(2), "cc": md(3), "d": md(4)})
    vc.gateway.play("-a", a=md(5), at=10.0, timespan=2.0)
    vc.advance_by(20)
    assert seen == [(3.5, "1"), (3.5, "2"), (6.5, "3"), (8.0, "4"), (12.0, "5")]


def test_runs_of_letters_are_read_letter_by_letter_unless_they_are_a_name() -> None:
    vc = virtual_client()
    seen = last_prices(vc)
    vc.gateway.play("-abc-(ab)--ab", a=md(1), b=md(2), c=md(3))
    vc.gateway.play("-ab", a=md(4), ab=md(5), at=20.0)  # "ab" is a name: one frame
    vc.advance_by(30)
    assert seen == [
        (1.0, "1"),
        (2.0, "2"),
        (3.0, "3"),
        (5.0, "1"),
        (5.0, "2"),
        (11.0, "1"),
        (12.0, "2"),
        (21.0, "5"),
    ]


def test_numeric_names_are_looked_up_as_given() -> None:
    vc = virtual_client()
    seen = last_prices(vc)
    vc.gateway.play("1-2", {"1": md(1), "2": md(2)})
    vc.advance_by(5)
    assert [p for _, p in seen] == ["1", "2"]


def test_bar_closes_the_connection_and_the_script_continues_on_the_next_one() -> None:
    vc = virtual_client()
    seen = last_prices(vc)
    errors: list[Any] = []
    vc.client.errors.subscribe(errors.append)
    vc.client.subscribe("md+265598", {"fields": ["31"]})
    vc.gateway.play("-a-|--b", a=md(1), b=md(2))
    vc.advance_by(10)
    first, second = vc.gateway.connections
    assert first.close_code == 1000 and not second.closed
    assert [e.kind for e in errors] == [ErrorKind.CONNECTION_LOST]
    assert seen == [(1.0, "1"), (6.0, "2")]
    # resubscribed on the new connection after the (jitter-free) 0.25 s backoff, re-sent 2 s later
    # since no smd frame confirmed it before b at 6
    assert [(f.time, f.connection) for f in vc.gateway.sent_matching("smd")] == [
        (0.0, 1),
        (3.25, 2),
        (5.25, 2),
    ]


def test_hash_drops_the_connection() -> None:
    vc = virtual_client()
    errors: list[Any] = []
    vc.client.errors.subscribe(errors.append)
    vc.gateway.play("--#")
    vc.advance_by(2)
    assert vc.client.state.value is ConnectionState.RECONNECTING
    assert isinstance(errors[0].exception, ConnectionResetError)
    vc.advance_by(1)
    assert vc.client.state.value is ConnectionState.AUTHENTICATED


def test_timed_lists_with_close_values() -> None:
    vc = virtual_client()
    seen = last_prices(vc)
    vc.gateway.play([(0.5, md(1)), (1.25, frames.encode(md(2))), (2.0, Close(4000)), (2.1, md(3))])
    vc.advance_by(5)
    assert seen == [(0.5, "1"), (1.25, "2")]
    assert vc.gateway.connections[0].close_code == 4000
    assert vc.gateway.undelivered == [(pytest.approx(2.1), md(3))]  # nobody was connected at 2.1


def test_play_is_cancellable_and_validates() -> None:
    vc = virtual_client()
    seen = last_prices(vc)
    cancel = vc.gateway.play("-a-b", a=md(1), b=md(2))
    vc.advance_by(2)
    cancel.dispose()
    vc.advance_by(5)
    assert seen == [(1.0, "1")]
    with pytest.raises(ValueError, match="element 'x' has no frame"):
        vc.gateway.play("-x", a=md(1))
    with pytest.raises(ValueError, match="comma only separates"):
        vc.gateway.play("a,b", a=md(1), b=md(2))
    with pytest.raises(ValueError, match="element 'ax' has no frame"):
        vc.gateway.play("(ax)", a=md(1))
    with pytest.raises(ValueError, match="in the past"):
        vc.gateway.play("a", a=md(1), at=0.0)
    with pytest.raises(TypeError, match="only go with a marble"):
        vc.gateway.play([(0, md(1))], a=md(1))
    with pytest.raises(TypeError, match="pairs"):
        vc.gateway.play([md(1)])  # type: ignore[list-item]
    assert CLOSE == Close(1000) and DROP.error is None


def test_smd_out_at_0_and_umd_at_250_when_the_observer_disposes() -> None:
    vc = virtual_client()
    received: list[Any] = []
    disposable = vc.client.channel("md+265598", {"fields": ["31"]}).subscribe(received.append)
    vc.gateway.play("a", a=md(1.0))
    vc.scheduler.schedule_absolute(250.0, lambda *_: disposable.dispose())
    vc.advance_by(300)
    sent = [(f.time, f.text) for f in vc.sent if f.text != "tic"]
    assert sent == [(0.0, 'smd+265598+{"fields": ["31"]}'), (250.0, "umd+265598+{}")]
    assert [f.request.action for f in vc.gateway.sent_matching("smd")] == ["s"]
    assert vc.gateway.sent_matching("umd")[0].request.targets == ("265598",)
    assert len(received) == 1


def test_frames_reach_streams_without_any_subscription() -> None:
    vc = virtual_client()
    seen = last_prices(vc)
    vc.gateway.play("a", a=md(7))
    vc.advance_by(1)
    assert seen == [(0.0, "7")] and vc.sent == []


def test_answer_tic_and_cookies_like_the_gateway() -> None:
    class Rest:
        def tickle(self) -> dict[str, Any]:
            return {"session": "0123456789abcdef0123456789abcdef"}

    scheduler = TestScheduler()
    gateway = FakeTransport(scheduler, cookies=True, answer_tic=True)
    client = IbkrWsClient(
        Rest(),
        url="ws://gateway.invalid/v1/api/ws",
        scheduler=scheduler,
        transport=gateway,
        tic_interval=30.0,
        tickle_interval=None,
    )
    ticks: list[Any] = []
    client.observe(IbkrWsKey.SYSTEM).subscribe(lambda m: ticks.append(m.data) if m.topic == "tic" else None)
    client.start()
    scheduler.advance_by(31)
    assert gateway.current.cookie == 'api={"session":"0123456789abcdef0123456789abcdef"}'
    assert client.session_id == "0123456789abcdef0123456789abcdef"
    assert ticks == [frames.tic("0123456789abcdef0123456789abcdef", last_accessed=30000)]
    client.shutdown()


def test_virtual_client_is_through_the_greeting_at_zero() -> None:
    with virtual_client() as vc:
        assert vc.client.state.value is ConnectionState.AUTHENTICATED
        assert vc.now == 0.0 and len(vc.gateway.connections) == 1
        vc.advance_by(10)
        vc.advance_to(25)
        assert vc.now == 25.0
    assert vc.client.state.value is ConnectionState.STOPPED
    stopped = virtual_client(start=False)
    assert stopped.client.state.value is ConnectionState.STOPPED and stopped.gateway.connections == []


def test_virtual_client_options_reach_the_client_and_the_gateway() -> None:
    vc = virtual_client(
        greeting=[frames.waiting_for_session()], heartbeat_interval=None, subscription_timeout=1
    )
    assert vc.client.state.value is ConnectionState.OPEN  # no confirmation in that greeting
    vc.receive(frames.sts())
    assert vc.client.ready
    sub = vc.client.subscribe("md+1", {"fields": ["31"]})
    vc.advance_by(1)
    assert [f.time for f in vc.gateway.sent_matching("smd")] == [0.0, 1.0]  # re-sent after 1 s
    sub.dispose()
