"""Profiles and the session-level fidelity switches: greeting off, the gateway-wide heartbeat clock,
global ``server_id``, trailing-slash routes, unknown conids (issue 14)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from rxibkr.sim import GatewaySimulator
from rxibkr.sim.config import GREETING_ENV, LIVE_ORDER_PROMPTS, greeting_from_environment

from .support import Frame, Rest, WsClient, is_topic, open_ws

Connect = Callable[..., WsClient]
AAPL = 265598
GREETING_TOPICS = ("act", "sts")


def smd(conid: int, *fields: str) -> str:
    quoted = ",".join(f'"{f}"' for f in fields)
    return f'smd+{conid}+{{"fields":[{quoted}]}}'


def is_greeting(frame: Frame) -> bool:
    return frame.get("topic") in GREETING_TOPICS or (frame.get("topic") == "system" and "success" in frame)


# --- profiles ------------------------------------------------------------------------------------------
def test_fast_is_the_default_profile_and_keeps_todays_timing() -> None:
    config = GatewaySimulator(greeting=True).config
    assert config.profile == "fast"
    assert (config.heartbeat_interval, config.md_interval, config.greeting_delay) == (10.0, 0.25, 0.05)
    assert config.md_rate is None and config.md_first_delay is None and config.priceless_first == 0.0
    assert config.order_burst_delay is None and config.str_days == 1 and not config.str_day_frames
    assert config.greeting and config.shared_heartbeat_clock and config.trailing_slash


def test_live_profile_has_the_recorded_numbers() -> None:
    config = GatewaySimulator(profile="live", greeting=True).config
    assert (config.heartbeat_interval, config.md_interval) == (10.0, 0.5)
    assert config.md_rate is not None and config.md_first_delay == (0.2, 0.6)
    assert 0 < config.priceless_first < 1 and not config.c_prefix_before_trade
    assert config.global_server_id and config.order_confirmations
    assert config.order_prompts == LIVE_ORDER_PROMPTS == ("o163", "o354", "o10153")
    assert config.order_burst_delay == 0.35
    assert config.str_days == 7 and config.str_day_frames and config.str_resend_after is not None


def test_keywords_override_the_profile() -> None:
    config = GatewaySimulator(
        profile="live",
        md_interval=0.05,
        md_rate=None,
        md_first_delay=None,
        order_burst_delay=None,
        str_days=2,
    ).config
    assert (config.md_interval, config.md_rate, config.md_first_delay) == (0.05, None, None)
    assert config.order_burst_delay is None and config.str_days == 2
    assert config.heartbeat_interval == 10.0  # not overridden: still the profile's


@pytest.mark.parametrize(
    "kwargs",
    [
        {"profile": "slow"},
        {"md_first_delay": (0.5, 0.1)},
        {"priceless_first": 1.5},
        {"str_days": 8},
        {"md_rate": 0},
        {"max_conid": 0},
    ],
)
def test_bad_switch_values_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GatewaySimulator(**kwargs)  # type: ignore[arg-type]


def test_greeting_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert greeting_from_environment({}) is None
    assert greeting_from_environment({GREETING_ENV: "0"}) is False
    assert greeting_from_environment({GREETING_ENV: "On"}) is True
    with pytest.raises(ValueError, match=GREETING_ENV):
        greeting_from_environment({GREETING_ENV: "maybe"})
    monkeypatch.setenv(GREETING_ENV, "off")
    assert GatewaySimulator().config.greeting is False
    assert GatewaySimulator(greeting=True).config.greeting is True  # an explicit keyword wins
    monkeypatch.delenv(GREETING_ENV)
    assert GatewaySimulator().config.greeting is True


# --- greeting off --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cookie", ["default", None])
def test_without_greeting_nothing_follows_the_session_but_heartbeats_and_data_do(
    sim_factory: Callable[..., GatewaySimulator], cookie: str | None
) -> None:
    sim = sim_factory(greeting=False, heartbeat_interval=0.1)
    client = open_ws(sim, cookie=cookie)
    try:
        if cookie is None:  # in-band session: "waiting for session", then silence
            assert client.recv() == {"message": "waiting for session"}
            client.send(f'{{"session":"{sim.session_id}"}}')
        frames = client.collect(0.35)
        assert frames and all(f == {"topic": "system", "hb": f["hb"]} for f in frames), frames
        client.send(smd(AAPL, "31", "84", "86"))
        first = client.recv_until(is_topic(f"smd+{AAPL}"))
        assert {"31", "84", "86"} <= set(first)
        client.send("tic")
        client.recv_until(is_topic("tic"))
        status = Rest(sim).json("GET", "/iserver/auth/status")
        assert status["authenticated"] is True and status["connected"] is True
    finally:
        client.close()


def test_without_greeting_early_frames_are_still_dropped(
    sim_factory: Callable[..., GatewaySimulator],
) -> None:
    sim = sim_factory(greeting=False, greeting_delay=0.2)
    client = open_ws(sim)
    try:
        client.send(smd(AAPL, "31"))
        assert client.collect(0.3, lambda f: "topic" in f and f["topic"] != "system") == []
        assert sim.received_frames(dropped=True) == [(1, smd(AAPL, "31"))]
        client.send(smd(AAPL, "31"))
        client.recv_until(is_topic(f"smd+{AAPL}"))
    finally:
        client.close()


def test_greeting_off_still_says_when_the_brokerage_session_is_unauthenticated(
    sim_factory: Callable[..., GatewaySimulator],
) -> None:
    sim = sim_factory(greeting=False)
    sim.set_authenticated(False)
    client = open_ws(sim)
    try:
        sts = client.recv_until(is_topic("sts"))
        assert sts["args"]["authenticated"] is False
        assert not any(is_greeting(f) for f in client.collect(0.15))
    finally:
        client.close()


# --- heartbeats on the gateway's clock --------------------------------------------------------------------
def test_heartbeats_run_on_one_gateway_wide_clock(sim_factory: Callable[..., GatewaySimulator]) -> None:
    interval = 0.3
    sim = sim_factory(heartbeat_interval=interval, greeting_delay=0.0)
    a = open_ws(sim)
    try:
        a.recv_until(is_topic("sts"))
        a.recv_until(is_topic("system"), timeout=1.0)
        time.sleep(interval / 3)  # open the second connection between two beats
        b = open_ws(sim)
        try:
            opened_ms = time.time() * 1000
            b.recv_until(is_topic("sts"))
            b_first = b.recv_until(is_topic("system"), timeout=1.0)["hb"]
            # the first beat comes at the gateway's next beat, less than an interval after opening
            assert b_first - opened_ms < interval * 1000, b_first - opened_ms
            a_beats = [f["hb"] for f in a.collect(interval * 1.5, is_topic("system"))]
            assert b_first in a_beats  # the very same instant on both connections
        finally:
            b.close()
    finally:
        a.close()


def test_per_connection_heartbeat_clock_can_be_switched_back(
    sim_factory: Callable[..., GatewaySimulator],
) -> None:
    interval = 0.3
    sim = sim_factory(heartbeat_interval=interval, greeting_delay=0.0, shared_heartbeat_clock=False)
    before_ms = time.time() * 1000
    client = open_ws(sim)
    try:
        client.recv_until(is_topic("sts"))
        first = client.recv_until(is_topic("system"), timeout=1.0)["hb"]
        assert first - before_ms >= interval * 1000 * 0.95  # a whole interval after the greeting
    finally:
        client.close()


# --- server_id -----------------------------------------------------------------------------------------
def test_server_id_counts_up_across_connections(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(global_server_id=True, md_interval=60.0)
    seen = []
    for conids in ((AAPL, 272093), (AAPL,), (8314,)):
        client = connect(sim)
        for conid in conids:
            client.send(smd(conid, "31"))
            seen.append(client.recv_until(is_topic(f"smd+{conid}"))["server_id"])
        client.close()
    assert seen == ["q1", "q2", "q3", "q4"]


def test_server_id_per_connection_when_switched_off(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(global_server_id=False, md_interval=60.0)
    for _ in range(2):
        client = connect(sim)
        client.send(smd(AAPL, "31"))
        assert client.recv_until(is_topic(f"smd+{AAPL}"))["server_id"] == "q0"


# --- REST routes with a trailing slash ----------------------------------------------------------------
def test_routes_answer_with_a_trailing_slash(sim: GatewaySimulator, rest: Rest) -> None:
    assert rest.json("GET", "/iserver/account/trades/", days="7") == rest.json(
        "GET", "/iserver/account/trades", days="7"
    )
    assert rest.json("POST", "/tickle/")["session"] == sim.session_id
    assert rest.json("GET", "/iserver/auth/status/")["authenticated"] is True
    assert rest.json("GET", f"/portfolio/{sim.account}/positions/0/")
    assert rest.call("GET", "/iserver/nothing/").status == 404


def test_trailing_slash_can_be_refused(sim_factory: Callable[..., GatewaySimulator]) -> None:
    rest = Rest(sim_factory(trailing_slash=False))
    assert rest.call("GET", "/iserver/account/trades/").status == 404
    assert rest.call("GET", "/iserver/account/trades").status == 200


# --- unknown conids ------------------------------------------------------------------------------------
UNKNOWN = 999999999


def test_unknown_conid_is_rejected_everywhere(sim: GatewaySimulator, connect: Connect, rest: Rest) -> None:
    client = connect(sim)
    client.send(smd(UNKNOWN, "31", "84"))
    error = client.recv_until(lambda f: "error" in f)
    assert error == {
        "error": f"No security definition has been found for conid {UNKNOWN}",
        "code": 400,
        "topic": f"smd+{UNKNOWN}",
    }
    client.send(f'smh+{UNKNOWN}+{{"period":"1d","bar":"1h"}}')
    assert client.recv_until(lambda f: "error" in f)["topic"] == f"smh+{UNKNOWN}"
    assert client.collect(0.1, lambda f: str(f.get("topic", "")).endswith(str(UNKNOWN))) == []
    assert sim.active_subscriptions()[1] == {}
    for path, fields in (
        ("/iserver/marketdata/snapshot", {"conids": f"{AAPL},{UNKNOWN}", "fields": "31"}),
        ("/iserver/marketdata/history", {"conid": str(UNKNOWN), "period": "1d"}),
    ):
        resp = rest.call("GET", path, **fields)
        assert resp.status == 400 and str(UNKNOWN) in resp.json()["error"], path
    order = {"orders": [{"conid": UNKNOWN, "orderType": "MKT", "side": "BUY", "quantity": 1}]}
    resp = rest.call("POST", f"/iserver/account/{sim.account}/orders", order)
    assert resp.status == 400 and str(UNKNOWN) in resp.json()["error"]
    assert sim.orders() == []


def test_unknown_conids_can_become_made_up_instruments_again(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(max_conid=None)
    client = connect(sim)
    client.send(smd(UNKNOWN, "31", "55"))
    first = client.recv_until(is_topic(f"smd+{UNKNOWN}"))
    assert first["55"].isalpha()


# --- the live profile as a whole, with compressed timing --------------------------------------------------
def test_live_profile_end_to_end_with_compressed_timing(
    sim_factory: Callable[..., GatewaySimulator], connect: Connect
) -> None:
    sim = sim_factory(
        profile="live", md_first_delay=(0.05, 0.15), order_burst_delay=0.05, str_resend_after=0.1
    )
    rest = Rest(sim)
    client = connect(sim)
    client.send("sor+{}")
    client.send("str+{}")
    history = client.collect_n(10, is_topic("str"))
    assert [bool(f["args"]) for f in history] == [False] * 4 + [True] * 6  # 7 days, 4 of them empty
    conids = (AAPL, 272093, 8314)
    sent = time.monotonic()
    for conid in conids:
        client.send(smd(conid, "31", "84", "86"))
    firsts: dict[int, Frame] = {}
    while len(firsts) < len(conids):
        frame = client.recv_until(lambda f: str(f.get("topic", "")).startswith("smd+"))
        firsts.setdefault(frame["conid"], frame)
    assert time.monotonic() - sent >= 0.05
    assert sorted(f["server_id"] for f in firsts.values()) == ["q1", "q2", "q3"]
    assert all(not f.get("31", "").startswith("C") for f in firsts.values())
    answer = rest.json("POST", f"/iserver/account/{sim.account}/orders", {"orders": [FAR_ORDER]})
    for expected in ("o163", "o354", "o10153"):
        assert answer[0]["messageIds"] == [expected]
        answer = rest.json("POST", f"/iserver/reply/{answer[0]['id']}", {"confirmed": True})
    first_sor = client.recv_until(is_topic("sor"))["args"][0]
    assert first_sor["status"] == "PendingSubmit" and first_sor["orderId"] == int(answer[0]["order_id"])


FAR_ORDER = {"conid": AAPL, "orderType": "LMT", "price": 1.0, "side": "BUY", "quantity": 1, "tif": "DAY"}
