"""Against the simulator over real sockets: a recorded session replays to the same decoded messages."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from rxibkr.client.core import IbkrWsClient
from rxibkr.protocol import IbkrWsKey, Message, decode
from rxibkr.record import REDACTED, Recording, ReplayTransport

pytest.importorskip("aiohttp")


def collect(client: IbkrWsClient) -> list[Message]:
    seen: list[Message] = []
    for key in IbkrWsKey:
        client.observe(key).subscribe(seen.append)
    return seen


def redacted(raw: bytes | str, secrets: list[str]) -> bytes | str:
    for secret in secrets:
        raw = (
            raw.replace(secret.encode(), REDACTED.encode())
            if isinstance(raw, bytes)
            else raw.replace(secret, REDACTED)
        )
    return raw


@pytest.mark.ibkr_sim(tic_replies=2)
@pytest.mark.ibkr_client(tic_interval=0.3)
def test_a_recorded_session_replays_to_the_same_messages(
    ibkr_sim: Any, ibkr_client: IbkrWsClient, tmp_path: Path
) -> None:
    path = tmp_path / "live.jsonl"
    live = collect(ibkr_client)
    start = len(live)  # the greeting came before the recording
    recorder = ibkr_client.record(path)
    ibkr_client.subscribe("md+265598", {"fields": ["31", "84", "86"]})
    ibkr_client.subscribe("pl", {})
    ibkr_sim.drop_connections()  # the client reconnects and resubscribes: two connections recorded
    threading.Event().wait(1.2)
    recorder.dispose()
    recording = Recording.load(path)
    assert sum(c.opened for c in recording.connections) >= 2
    first = recording.connections[0]
    assert first.attached and not first.confirmed  # replay synthesises its greeting

    text = path.read_text(encoding="utf-8")
    assert ibkr_sim.session_id not in text  # tic replies carry it live; the file does not
    secrets = [ibkr_sim.session_id] + [
        m.data["args"]["sessionId"] for m in live if m.topic == "act" and m.data is not None
    ]
    assert all(s not in text for s in secrets)

    transport = ReplayTransport(path)
    replay_client = IbkrWsClient(url="ws://replay.invalid/v1/api/ws", transport=transport)
    replayed = collect(replay_client)
    assert replay_client.start()
    assert transport.wait(10.0)
    replay_client.shutdown()

    recorded = list(recording.frames("in"))
    expected = [decode(redacted(m.raw, secrets)) for m in live[start : start + len(recorded)]]
    assert transport.synthesized == [0]
    assert replayed[2:] == expected  # after the synthetic system + sts
    assert len(expected) == len(recorded) > 10
    assert any(m.topic == "smd+265598" for m in replayed) and any(m.topic == "tic" for m in replayed)
