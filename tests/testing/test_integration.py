"""Against the simulator over real sockets: a recorded session replays to the same decoded messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

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
    connections = ibkr_sim.total_connections
    # start() returns at the first confirmation (the burst's `system`): its `act` and `sts` may still be
    # arriving, and a recorder attached before them would record the session as confirmed. The gateway
    # answers tic only after its burst, on the same ordered stream: a tic reply means the burst is in.
    assert wait_until(lambda: any(m.topic == "tic" for m in live), 5)
    recorder = ibkr_client.record(path)
    ibkr_client.subscribe("md+265598", {"fields": ["31", "84", "86"]})
    ibkr_client.subscribe("pl", {})
    ibkr_sim.drop_connections()  # the client reconnects and resubscribes: two connections recorded

    def resubscribed() -> bool:
        if ibkr_sim.total_connections <= connections:
            return False
        topics = ibkr_sim.active_subscriptions()
        newest = topics.get(max(topics), {}) if topics else {}
        return "smd" in newest and "spl" in newest

    assert wait_until(resubscribed, 20), ibkr_sim.active_subscriptions()
    mark = len(live)
    # data again on the new connection, and a reply to the client's periodic tic
    assert wait_until(lambda: {"smd+265598", "tic"} <= {m.topic for m in live[mark:]}, 20)
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
    assert transport.synthesized == [0]
    replayed = replayed[2:]  # after the synthetic system + sts
    assert len(replayed) == len(recorded) > 10
    # the recording is the run of live messages from the moment the recorder attached: find where
    # it starts (a greeting frame may have come between the client being ready and the attach)
    n = len(recorded)
    runs = [
        k
        for k in range(len(live) - n + 1)
        if [decode(redacted(m.raw, secrets)) for m in live[k : k + n]] == replayed
    ]
    assert runs, "the replayed messages are not a run of the live ones"
    assert any(m.topic == "smd+265598" for m in replayed) and any(m.topic == "tic" for m in replayed)
