"""IBind's own client on the firehose, for the peer rows of ``python -m benchmarks.run``.

Runs as a script under the interpreter of a virtualenv that has one IBind version installed (IBind
0.1.x and 0.2.x conflict with each other and with rxibkr's dev extra), so it imports nothing of
rxibkr: ``python benchmarks/ibind_peer.py URL WARM N`` prints one JSON line
``{"rate": msg/s, "cpu_us": CPU us/msg, "seen": deliveries, "version": ...}``.

0.1.x: the market-data queue accessor drained with ``get(block=True)`` on the main thread (IBind's
documented way); 0.2.x: a ``CallbackSink`` callback for ``MarketData`` events, emitted synchronously
from IBind's runtime thread. Each counts its deliveries; the clock runs from the ``WARM``-th to the
last.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from importlib.metadata import version
from typing import Any

CONID = "265598"


class _Status:
    data = {"session": "bench"}


class _Tickle:
    """The REST client stand-in: IBind only needs ``tickle()`` for its session cookie."""

    def tickle(self) -> _Status:
        return _Status()


def main() -> int:
    url, warm, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    total = warm + n
    ibind_version = version("ibind")
    marks: dict[str, float] = {}
    done = threading.Event()
    count = 0

    def on_next(_item: Any) -> None:
        nonlocal count
        count += 1
        if count == warm:
            marks["t0"], marks["c0"] = time.perf_counter(), time.process_time()
        elif count == total:
            marks["t1"], marks["c1"] = time.perf_counter(), time.process_time()
            done.set()

    deadline = time.monotonic() + max(60.0, total / 1000)
    if ibind_version.startswith("0.1."):
        from ibind import IbkrWsClient, IbkrWsKey

        client = IbkrWsClient(url=url, ibkr_client=_Tickle(), account_id="DU0000000", start=False)
        client.start()
        accessor = client.new_queue_accessor(IbkrWsKey.MARKET_DATA)
        client.subscribe(channel=f"md+{CONID}", data={"fields": ["31", "84", "86"]}, needs_confirmation=False)
        get = accessor.get
        while not done.is_set() and time.monotonic() < deadline:
            item = get(block=True, timeout=1)
            if item is not None:
                on_next(item)
    else:
        from ibind import IbkrWsClient
        from ibind.events import MarketData
        from ibind.ibkr_ws.ibkr_subscriptions import MarketDataSubscription
        from ibind.ws.ws_sinks import CallbackSink

        sink = CallbackSink()
        sink.on(MarketData, on_next)
        client = IbkrWsClient(url=url, ibkr_client=_Tickle(), sink=sink, synchronous_output_events=True)
        client.start()
        client.subscribe(MarketDataSubscription(conid=CONID, fields=["31", "84", "86"]))
        done.wait(max(0.0, deadline - time.monotonic()))
    result: dict[str, Any] = {"seen": count, "version": ibind_version}
    if done.is_set():
        result["rate"] = n / (marks["t1"] - marks["t0"])
        result["cpu_us"] = (marks["c1"] - marks["c0"]) / n * 1e6
    print(json.dumps(result), flush=True)
    os._exit(0)  # no shutdown: IBind 0.1's takes tens of seconds, and the measurement is done


if __name__ == "__main__":
    sys.exit(main())
