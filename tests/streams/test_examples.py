"""The examples run against the simulator they start themselves; their real output is checked."""

from __future__ import annotations

import importlib.util
import re
import sys
from itertools import pairwise
from pathlib import Path
from types import ModuleType

import pytest
from reactivex.testing import ReactiveTest, TestScheduler

pytest.importorskip("rxibkr.sim")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_ma_crossover_prints_alternating_signals_from_live_quotes(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("ma_crossover")
    assert example.main(["--duration", "2", "--fast", "3", "--slow", "8"]) == 0
    out = capsys.readouterr().out
    summary = re.search(r"received (\d+) quotes, (\d+) signals \((\d+) BUY, (\d+) SELL\)", out)
    assert summary is not None, out
    quotes, signals, buys, sells = map(int, summary.groups())
    assert quotes >= 20 and signals >= 1 and buys + sells == signals
    sides = re.findall(r"^(BUY|SELL) +@ [0-9.]+ +\(fast [0-9.]+ [<>] slow [0-9.]+, tick \d+\)$", out, re.M)
    assert len(sides) == signals
    assert all(a != b for a, b in pairwise(sides))  # crossings alternate


def test_ma_crossover_operator_in_virtual_time() -> None:
    example = load("ma_crossover")
    scheduler = TestScheduler()
    prices = [10, 10, 10, 11, 12, 13, 12, 10, 9, 8, 9, 11, 12]
    source = scheduler.create_hot_observable(
        *(ReactiveTest.on_next(201 + i, p) for i, p in enumerate(prices))
    )
    result = scheduler.start(lambda: source.pipe(example.crossover(2, 4)))
    signals = [(m.time, m.value.value.side) for m in result.messages]
    assert signals == [(208, "SELL"), (212, "BUY")]
    with pytest.raises(ValueError):
        example.crossover(5, 5)
    assert example.main(["--duration", "0"]) == 2


def test_order_tracking_follows_the_order_to_the_fill(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("order_tracking")
    assert example.main(["--quantity", "3", "--timeout", "10"]) == 0
    out = capsys.readouterr().out
    order_id = re.search(r"at market: order (\d+)", out)
    assert order_id is not None, out
    lines = re.findall(rf"^order {order_id.group(1)} (\w+) +BUY AAPL ([0-9.]+)/3", out, re.M)
    statuses = [status for status, _ in lines]
    assert statuses[-1] == "Filled" and lines[-1][1] == "3" and statuses.count("Filled") == 1
    assert re.search(r"^execution \S+ rev 1: B 3 @ [0-9.]+ commission [0-9.]+$", out, re.M)
    assert out.rstrip().endswith(f"order {order_id.group(1)} filled")


def test_order_tracking_refuses_a_real_gateway_without_confirm(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("order_tracking")
    assert example.main(["--url", "wss://localhost:5000/v1/api/ws"]) == 2
    assert "--confirm" in capsys.readouterr().err
