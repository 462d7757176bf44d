"""Place an order over REST and follow it to the fill through ``client.orders()``.

    python examples/order_tracking.py                   # against a local simulator
    python examples/order_tracking.py --url wss://localhost:5000/v1/api/ws --account DU1234567 --confirm

Without ``--url`` the example starts an ``rxibkr.sim.GatewaySimulator`` itself (needs the ``sim``
extra) and buys a few shares at the market there. Against a real gateway it places a real order:
it refuses to unless ``--confirm`` is given (use a paper account).

``client.orders()`` starts with the live orders from REST and merges the ``sor`` deltas (which
carry only the changed keys) into the full state of each order; ``client.trades()`` reports the
execution, once without and once more with its commission.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from typing import Any

from rxibkr import Execution, IbkrWsClient, OrderUpdate

DEFAULT_CONID = 265598  # AAPL


def describe(update: OrderUpdate) -> str:
    filled = update.filled or 0.0
    total = update.total_size or (filled + (update.remaining or 0.0))
    what = f"{update.side or ''} {update.ticker or ''}"
    text = f"order {update.order_id} {update.status:<13} {what} {filled:g}/{total:g}"
    if update.avg_price is not None:
        text += f" avg {update.avg_price:.2f}"
    changed = "new" if update.changed == frozenset(update.fields) else ", ".join(sorted(update.changed))
    return text + f"  [{update.source}: {changed}]"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", help="gateway WebSocket URL (default: start a local simulator)")
    parser.add_argument("--cacert", help="the gateway's CA certificate (PEM); default: no verification")
    parser.add_argument("--account", help="account id (default: the simulator's)")
    parser.add_argument("--conid", type=int, default=DEFAULT_CONID, help="contract id (default: AAPL)")
    parser.add_argument("--side", choices=("BUY", "SELL"), default="BUY")
    parser.add_argument("--quantity", type=float, default=5)
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the fill (default: 10)"
    )
    parser.add_argument("--confirm", action="store_true", help="really place the order on the given --url")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.url is not None and not args.confirm:
        print("refusing to place an order on a real gateway without --confirm", file=sys.stderr)
        return 2
    sim: Any = None
    if args.url is None:
        from rxibkr.sim import GatewaySimulator

        sim = GatewaySimulator(seed=11, greeting_delay=0.01, fill_delay=0.2, commission_delay=0.2).start()
        url, cacert, account = sim.ws_url, sim.cacert, sim.account
        print(f"started a gateway simulator at {url}")
    else:
        url, cacert, account = args.url, args.cacert or False, args.account
    if not account:
        print("--account is required with --url", file=sys.stderr)
        return 2
    client = IbkrWsClient(url=url, cacert=cacert, account_id=account, timeout=5)
    try:
        if not client.start():
            print("could not connect to the gateway", file=sys.stderr)
            return 1
        placed: dict[str, int] = {}
        filled = threading.Event()
        commission = threading.Event()
        lock = threading.Lock()
        early: list[OrderUpdate] = []

        def on_order(update: OrderUpdate) -> None:
            with lock:
                order_id = placed.get("id")
                if order_id is None:
                    early.append(update)  # before we know the id: kept, shown once we do
                    return
            if update.order_id == order_id:
                print(describe(update), flush=True)
                if update.is_filled:
                    filled.set()

        def on_execution(execution: Execution) -> None:
            with lock:
                order_id = placed.get("id")
            if order_id is not None and execution.order_id == order_id:
                fee = "pending" if execution.commission is None else f"{execution.commission:.2f}"
                print(
                    f"execution {execution.execution_id} rev {execution.revision}: {execution.side} "
                    f"{execution.size:g} @ {execution.price} commission {fee}",
                    flush=True,
                )
                if execution.commission is not None:
                    commission.set()

        orders = client.orders().subscribe(on_order, lambda e: print(f"orders error: {e!r}", file=sys.stderr))
        trades = client.trades(realtime_only=True).subscribe(on_execution)
        spec = {
            "conid": args.conid,
            "orderType": "MKT",
            "side": args.side,
            "quantity": args.quantity,
            "tif": "DAY",
        }
        result = client.rest.place_order(account, spec)
        try:
            order_id = int(result[0]["order_id"])
        except (TypeError, KeyError, IndexError, ValueError):
            print(f"unexpected answer to the order: {result!r}", file=sys.stderr)
            return 1
        print(f"placed {args.side} {args.quantity:g} x conid {args.conid} at market: order {order_id}")
        with lock:
            placed["id"] = order_id
            backlog, early[:] = list(early), []
        for update in backlog:
            on_order(update)
        ok = filled.wait(args.timeout)
        if ok:
            commission.wait(min(args.timeout, 5.0))
        orders.dispose()
        trades.dispose()
        if not ok:
            print(f"order {order_id} not filled within {args.timeout:g} s", file=sys.stderr)
            return 1
        print(f"order {order_id} filled")
        return 0
    finally:
        client.shutdown()
        if sim is not None:
            sim.stop()


if __name__ == "__main__":
    sys.exit(main())
