"""``client.frames`` and ``client.wire`` tap the incoming frames only while someone observes them: the
reader checks one flag per frame, kept by the subjects as observers come and go."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from waiting import wait_until

from rxibkr import IbkrWsClient, IbkrWsKey
from rxibkr.sim import GatewaySimulator

FAST: dict[str, Any] = {"tic_interval": None, "tickle_interval": None, "md_renewal_interval": None}


def test_taps_attached_mid_stream_get_frames_and_stop_when_disposed() -> None:
    with GatewaySimulator(md_interval=0.01, heartbeat_interval=0.2) as sim:
        client = IbkrWsClient(url=sim.ws_url, cacert=sim.cacert, account_id=sim.account, **FAST)
        try:
            messages: list[Any] = []
            client.observe(IbkrWsKey.MARKET_DATA).subscribe(messages.append)
            assert client.start()
            assert client.subscribe("md+265598", {"fields": ["31", "84"]})
            assert wait_until(lambda: len(messages) >= 3, 5)
            frames: list[Any] = []
            wire: list[Any] = []
            frames_sub = client.frames.subscribe(frames.append)
            wire_sub = client.wire.subscribe(wire.append)
            assert wait_until(lambda: len(frames) >= 3 and len(wire) >= 3, 5)
            assert all(event.direction == "in" for event in wire if event.data in frames)
            frames_sub.dispose()
            seen_frames = len(frames)
            assert wait_until(lambda: len(wire) >= seen_frames + 5, 5)  # wire still tapped
            wire_sub.dispose()
            seen_wire, seen_messages = len(wire), len(messages)
            assert wait_until(lambda: len(messages) >= seen_messages + 5, 5)  # data goes on
            assert len(frames) == seen_frames and len(wire) == seen_wire  # nothing after dispose
        finally:
            client.shutdown()


def test_the_raw_log_taps_every_frame(caplog: pytest.LogCaptureFixture) -> None:
    with GatewaySimulator(md_interval=0.01) as sim:
        client = IbkrWsClient(
            url=sim.ws_url, cacert=sim.cacert, account_id=sim.account, log_raw_messages=True, **FAST
        )
        try:
            with caplog.at_level(logging.DEBUG, logger="rxibkr.client.core"):
                assert client.start()
                assert client.subscribe("md+265598", {"fields": ["31"]})
                assert wait_until(lambda: any("smd+265598" in r.getMessage() for r in caplog.records), 5)
            assert any(r.getMessage().startswith("recv: ") for r in caplog.records)
        finally:
            client.shutdown()
