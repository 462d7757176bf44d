"""How much Python heap a market-data subscription holds (issue #17).

Allocation sizes are deterministic for one Python version (unlike time), so these bounds hold on
any machine. Measured on CPython 3.11 with the scripted gateway of these tests (which records what
is sent): a typed quote subscription 7.5 KiB before the heap work, 3.8 KiB after; a plain
``subscribe`` 2.9 KiB before, 1.4 KiB after. The bounds leave about 25% slack over "after".
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

from reactivex import abc

from rxibkr.streams import operators
from rxibkr.streams.models import Quote
from tests.streams.support import smd, started

N = 300
FIRST = 100_000


def _heap_per_item(setup: Callable[[], None]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        setup()
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / N
    finally:
        tracemalloc.stop()


def test_a_typed_quote_subscription_holds_under_4_75_kib_and_a_plain_one_under_1_75_kib() -> None:
    client, transport, _ = started()
    keep: list[abc.DisposableBase] = []

    def typed() -> None:
        for conid in range(FIRST, FIRST + N):
            keep.append(client.market_data(conid).pipe(operators.snapshots()).subscribe(lambda q: None))

    def plain() -> None:
        for conid in range(FIRST + N, FIRST + 2 * N):
            keep.append(client.subscribe(f"md+{conid}", needs_confirmation=False))

    typed_bytes = _heap_per_item(typed)
    plain_bytes = _heap_per_item(plain)
    assert typed_bytes <= 4.75 * 1024, typed_bytes
    assert plain_bytes <= 1.75 * 1024, plain_bytes
    # and they work: a frame reaches its quote observer, disposing stops it
    quotes: list[Quote] = []
    d = client.market_data(FIRST).pipe(operators.snapshots()).subscribe(quotes.append)
    transport.receive(smd(FIRST, 5, **{"84": "1.5"}))
    d.dispose()
    transport.receive(smd(FIRST, 6, **{"84": "1.6"}))
    assert [q.bid for q in quotes] == [1.5]
    for k in keep:
        k.dispose()
    client.shutdown()
