"""Run in a subprocess by test_ibind_crosscheck.py: IBind 0.1.14 over OAuth 1.0a against the simulator.

IBind reads its IBIND_* configuration at import, so the parent sets the environment and runs this
file; it prints one JSON line with what IBind saw.
"""

from __future__ import annotations

import json
import os
import sys
import time

from ibind import IbkrClient, IbkrWsClient, IbkrWsKey  # type: ignore[import-not-found]


def main() -> None:
    cacert = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else False
    conid = int(sys.argv[2]) if len(sys.argv) > 2 else 265598
    out: dict[str, object] = {}
    t0 = time.monotonic()

    def mark(name: str) -> None:
        out["t_" + name] = round(time.monotonic() - t0, 3)

    client = IbkrClient(use_oauth=True)  # LST, validation, tickler, ssodh/init
    mark("client")
    out["lst_validated"] = client.live_session_token is not None
    out["tickle_session"] = bool(client.tickle().data.get("session"))
    out["accounts"] = client.portfolio_accounts().data is not None
    snapshot = client.live_marketdata_snapshot(str(conid), fields=["31", "84"]).data
    out["snapshot_conid"] = snapshot[0].get("conid") if snapshot else None
    ws = IbkrWsClient(use_oauth=True, ibkr_client=client, cacert=cacert, start=False)
    out["started"] = bool(ws.start())
    mark("ws_started")
    ws.subscribe(channel=f"md+{conid}", data={"fields": ["31", "84", "86"]})
    accessor = ws.new_queue_accessor(IbkrWsKey.MARKET_DATA)
    received = []
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline and len(received) < 3:
        item = accessor.get(timeout=0.5)
        if item is not None:
            received.append(item)
    out["market_data"] = len(received)
    mark("md")
    out["first"] = received[0] if received else None
    client.stop_tickler()
    client.close()  # logs out (signed POST /logout)
    mark("closed")
    print("RESULT " + json.dumps(out, default=str), flush=True)
    # IBind's ws.shutdown() joins its socket thread for tens of seconds after the close handshake;
    # the socket is not under test any more, so leave without it.
    os._exit(0)


if __name__ == "__main__":
    main()
