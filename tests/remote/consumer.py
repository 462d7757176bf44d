"""A consumer process for the integration tests: prints one JSON line per event on stdout.

python -m tests.remote.consumer REDIS_URL LEASE_TTL CONID [CONID...]
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

from rxibkr.remote import RemoteClient


def main(argv: list[str]) -> int:
    url, ttl, conids = argv[0], float(argv[1]), [int(c) for c in argv[2:]]
    lock = threading.Lock()

    def emit(line: dict[str, Any]) -> None:
        with lock:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

    client = RemoteClient(url, lease_ttl=ttl)
    client.state.subscribe(lambda s: emit({"t": "state", "v": s.value}))
    client.errors.subscribe(lambda e: emit({"t": "error", "v": str(e)}))
    for conid in conids:
        client.market_data(conid).subscribe(
            lambda u: emit(
                {"t": "md", "conid": u.conid, "fields": len(u.fields), "seq": u.message.data.get("_seq")}
            )
        )
    emit({"t": "ready", "id": client.id})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
