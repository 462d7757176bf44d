"""A moving-average crossover on live quotes: BUY when the fast average of the mid price crosses
above the slow one, SELL when it crosses below.

    python examples/ma_crossover.py                     # against a local simulator, 5 s
    python examples/ma_crossover.py --url wss://localhost:5000/v1/api/ws --cacert gateway.pem

Without ``--url`` the example starts an ``rxibkr.sim.GatewaySimulator`` itself (needs the ``sim``
extra). It only prints signals; it places no orders.

The strategy is one operator, :func:`crossover`, composed onto the typed market-data stream::

    client.market_data(conid, ["84", "86"]).pipe(
        snapshots(),          # partial updates -> full quotes
        quotes(),             # only when the top of book changed
        ops.map(lambda q: q.mid),
        ops.filter(lambda mid: mid is not None),
        crossover(fast, slow),
    )
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops

from rxibkr import IbkrWsClient, Quote
from rxibkr.streams.operators import quotes, snapshots

DEFAULT_CONID = 265598  # AAPL


@dataclass(frozen=True, slots=True)
class Signal:
    """A crossover: ``side`` is "BUY" (fast crossed above slow) or "SELL" (crossed below)."""

    side: str
    price: float
    fast: float
    slow: float
    tick: int

    def __str__(self) -> str:
        relation = ">" if self.side == "BUY" else "<"
        return (
            f"{self.side:<4} @ {self.price:.4f}  (fast {self.fast:.4f} {relation} slow {self.slow:.4f}, "
            f"tick {self.tick})"
        )


def crossover(fast: int, slow: int) -> Callable[[Observable[float]], Observable[Signal]]:
    """Prices -> crossover signals of a ``fast``-tick and a ``slow``-tick simple moving average.

    No signal until the slow window is full; then one each time the sign of (fast - slow) flips.
    """
    if not 1 <= fast < slow:
        raise ValueError(f"expected 1 <= fast < slow, got fast={fast}, slow={slow}")

    def operator(source: Observable[float]) -> Observable[Signal]:
        def subscribe(
            observer: abc.ObserverBase[Signal], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            window: deque[float] = deque(maxlen=slow)
            ticks = 0
            was_above: bool | None = None

            def on_next(price: float) -> None:
                nonlocal ticks, was_above
                window.append(price)
                ticks += 1
                if len(window) < slow:
                    return
                slow_avg = sum(window) / slow
                fast_avg = sum(list(window)[-fast:]) / fast
                if fast_avg == slow_avg:
                    return
                above = fast_avg > slow_avg
                if was_above is not None and above != was_above:
                    side = "BUY" if above else "SELL"
                    observer.on_next(Signal(side, price, fast_avg, slow_avg, ticks))
                was_above = above

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return reactivex.create(subscribe)

    return operator


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", help="gateway WebSocket URL (default: start a local simulator)")
    parser.add_argument("--cacert", help="the gateway's CA certificate (PEM); default: no verification")
    parser.add_argument("--account", help="account id (default: the simulator's)")
    parser.add_argument("--conid", type=int, default=DEFAULT_CONID, help="contract id (default: AAPL)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to run (default: 5)")
    parser.add_argument("--fast", type=int, default=5, help="fast window in ticks (default: 5)")
    parser.add_argument("--slow", type=int, default=20, help="slow window in ticks (default: 20)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.duration <= 0:
        print("--duration must be positive", file=sys.stderr)
        return 2
    sim: Any = None
    if args.url is None:
        from rxibkr.sim import GatewaySimulator

        sim = GatewaySimulator(seed=7, md_interval=0.02, volatility=0.002, greeting_delay=0.01).start()
        url, cacert, account = sim.ws_url, sim.cacert, sim.account
        print(f"started a gateway simulator at {url}")
    else:
        url, cacert, account = args.url, args.cacert or False, args.account
    client = IbkrWsClient(url=url, cacert=cacert, account_id=account, timeout=5)
    try:
        if not client.start():
            print("could not connect to the gateway", file=sys.stderr)
            return 1
        counts = {"quotes": 0, "BUY": 0, "SELL": 0}
        lock = threading.Lock()

        def count_quote(_: Any) -> None:
            with lock:
                counts["quotes"] += 1

        def on_signal(signal: Signal) -> None:
            with lock:
                counts[signal.side] += 1
            print(signal, flush=True)

        def on_error(error: Exception) -> None:
            print(f"stream error: {error!r}", file=sys.stderr)

        def mid_of(quote: Quote) -> float | None:
            return quote.mid

        top_of_book: Observable[Quote] = client.market_data(args.conid, ["84", "86", "31"]).pipe(
            snapshots(), quotes(), ops.do_action(count_quote)
        )
        mids = cast(Observable[float], top_of_book.pipe(ops.map(mid_of), ops.filter(lambda m: m is not None)))
        subscription = mids.pipe(crossover(args.fast, args.slow)).subscribe(on_signal, on_error)
        print(f"watching conid {args.conid} for {args.duration:g} s (SMA {args.fast}/{args.slow} of the mid)")
        threading.Event().wait(args.duration)
        subscription.dispose()
        with lock:
            summary = dict(counts)
        print(
            f"received {summary['quotes']} quotes, {summary['BUY'] + summary['SELL']} signals "
            f"({summary['BUY']} BUY, {summary['SELL']} SELL)"
        )
        return 0 if summary["quotes"] > 0 else 1
    finally:
        client.shutdown()
        if sim is not None:
            sim.stop()


if __name__ == "__main__":
    sys.exit(main())
