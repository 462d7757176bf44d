"""The decoder's table of learned data topics is bounded: a gateway (hostile or buggy) sending ever new
topics cannot grow the client's memory without limit, and topics past the bound decode the same."""

from __future__ import annotations

import gc
import importlib
import tracemalloc

import orjson

from rxibkr.protocol import IbkrWsKey, MessageKind, decode

decode_module = importlib.import_module("rxibkr.protocol.decode")  # the package exports the function


def smd(conid: int) -> bytes:
    return orjson.dumps({"topic": f"smd+{conid}", "conid": conid, "31": "1.5"})


def test_ever_new_topics_do_not_grow_the_learned_table_past_its_bound() -> None:
    bound = decode_module.MAX_LEARNED_TOPICS
    start = 9_000_000_000  # conids no other test uses
    for i in range(bound + 10):
        decode(smd(start + i))
    assert len(decode_module._ROUTES) <= bound
    # past the bound: the same answers, from the full rules
    late = decode(smd(start + bound + 500))
    assert (late.kind, late.key, late.topic, late.target) == (
        MessageKind.DATA,
        IbkrWsKey.MARKET_DATA,
        f"smd+{start + bound + 500}",
        str(start + bound + 500),
    )
    assert late.data is not None and late.data["31"] == "1.5"
    # and memory stays flat while new topics keep coming
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2000):
            decode(smd(start + 2 * bound + i))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 40_000, f"{grown} bytes kept for 2000 new topics"  # a table entry each: ~180 kB
