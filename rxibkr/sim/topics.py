"""What the gateway does with each client command (``smd``, ``smh``, ``sor``, ``str``, ``spl``,
``ssd``, ``sld``, ``sbd``, their ``u...`` counterparts, ``tic``, ``ech``, the session message).

Spelling variants are accepted (§7.10): with or without ``+{}``, ``upl{}``, ``usd+ACCT``...

The handlers see the gateway through :class:`TopicHost` (what they read and call of it), so this
module does not import the gateway, which imports this module.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from statistics import NormalDist
from typing import Any, Protocol

from rxibkr.sim import frames
from rxibkr.sim.account import Account
from rxibkr.sim.commands import Command, parse_conid
from rxibkr.sim.config import SimConfig, derive_unit
from rxibkr.sim.connection import Connection
from rxibkr.sim.fields import SERVICE_PARAMS, availability, field_values
from rxibkr.sim.market import Market, Quote, now_ms
from rxibkr.sim.orders import OrderEngine, without_commission
from rxibkr.sim.subscriptions import LadderSub, MarketDataSub, OrdersSub

log = logging.getLogger(__name__)


class TopicHost(Protocol):
    """What the topic handlers need of the gateway."""

    md_expired: int  # smd streams ended by smd_expiry (no smd re-sent in time)

    @property
    def config(self) -> SimConfig: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def ident(self) -> frames.Identity: ...
    @property
    def market(self) -> Market: ...
    @property
    def account(self) -> Account: ...
    @property
    def orders(self) -> OrderEngine: ...
    @property
    def accounts_called(self) -> bool: ...
    def history(self, conid: int, args: dict[str, Any]) -> dict[str, Any]: ...
    def touch_session(self) -> None: ...
    def ready_connections(self) -> list[Connection]: ...
    def next_quote_server(self) -> str: ...


Handler = Callable[[TopicHost, Connection, Command], None]

# topics that produce data; ignored on a socket whose data was stopped by an auth loss
DATA_TOPICS = frozenset({"smd", "smh", "sor", "str", "spl", "ssd", "sld", "sbd"})


def handle(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    handler = HANDLERS.get(cmd.topic)
    if handler is None:
        conn.send(frames.TOPIC_UNKNOWN)
        return
    if cmd.topic in DATA_TOPICS and not conn.data_enabled:
        return
    handler(gw, conn, cmd)


def unknown_conid_error(conid: int, topic: str) -> dict[str, Any]:
    """The answer to a conid that does not exist (the simulator's choice; see docs/simulator.md)."""
    return frames.error(f"No security definition has been found for conid {conid}", 400, topic)


# --- market data ---------------------------------------------------------------------------------
def _fields_of(args: dict[str, Any]) -> list[str]:
    raw = args.get("fields", [])
    if not isinstance(raw, list):
        return []
    out: list[str] = []
    for f in raw:
        if isinstance(f, bool) or not isinstance(f, (str, int)):
            continue
        text = str(f).strip()
        if text and text not in out:
            out.append(text)
    return out


def md_first_frames(
    sub: MarketDataSub, q: Quote, values: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The duplicated first update: same content, two key orders (as recorded live)."""
    updated = q.updated_ms
    a: dict[str, Any] = {}
    if q.inst.available:
        a["6509"] = availability(q.inst, q.frozen)
    a.update(
        {
            "conidEx": sub.conid_ex,
            "topic": sub.topic,
            "conid": sub.conid,
            "_updated": updated,
            "6119": sub.server_id,
        }
    )
    a.update(values)
    a["server_id"] = sub.server_id
    b: dict[str, Any] = {
        "server_id": sub.server_id,
        "conidEx": sub.conid_ex,
        "conid": sub.conid,
        "_updated": updated,
        "6119": sub.server_id,
    }
    b.update(reversed(list(values.items())))
    if q.inst.available:
        b["6509"] = a["6509"]
    b["topic"] = sub.topic
    return a, b


def md_update_frame(
    sub: MarketDataSub, q: Quote, delta: dict[str, Any], *, with_6508: bool = False
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "server_id": sub.server_id,
        "conidEx": sub.conid_ex,
        "conid": sub.conid,
        "_updated": q.updated_ms,
        "6119": sub.server_id,
    }
    frame.update(delta)
    if with_6508:
        frame["6508"] = SERVICE_PARAMS
    frame["topic"] = sub.topic
    return frame


#: Spread of the instruments' activity (log-normal sigma): a few liquid names tick far more often
#: than the rest, as in the live recordings (one name 80 frames a minute, others 4-8).
ACTIVITY_SIGMA = 1.0
_NORMAL = NormalDist()


def activity_weight(config: SimConfig, conid: int) -> float:
    """An instrument's seeded liquidity weight (log-normal): its share of the gateway's market data
    throughput under ``md_rate`` is its weight over the sum of the active instruments' weights."""
    u = min(max(derive_unit(config.seed, f"activity:{conid}"), 1e-6), 1.0 - 1e-6)
    return math.exp(ACTIVITY_SIGMA * _NORMAL.inv_cdf(u))


def first_update_delay(config: SimConfig, conid: int) -> float | None:
    """Seconds from ``smd`` until the gateway has data for ``conid`` (None: at once). The same
    for every socket: it stands for the gateway's own readiness, not for the subscription order."""
    window = config.md_first_delay
    if window is None:
        return None
    low, high = window
    return low + (high - low) * derive_unit(config.seed, f"first-update:{conid}")


def is_priceless_first(config: SimConfig, conid: int) -> bool:
    """True for the instruments whose first two frames carry only ``6509`` (no prices)."""
    share = config.priceless_first
    return share > 0 and derive_unit(config.seed, f"priceless:{conid}") < share


def send_first_update(gw: TopicHost, conn: Connection, sub: MarketDataSub) -> None:
    """The duplicated first update; for a price-less instrument only ``6509`` and the bookkeeping
    keys, with every value following on the next market tick."""
    q = gw.market.quote(sub.conid)
    if q.inst.available and is_priceless_first(gw.config, sub.conid):
        first, second = md_first_frames(sub, q, {})
        sub.pending_full = True
    else:
        values = field_values(q, sub.fields, gw.account.position_view(sub.conid))
        sub.last.update(values)
        first, second = md_first_frames(sub, q, values)
    conn.send(first)
    conn.send(second)


def on_smd(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    parsed = parse_conid(cmd.target)
    if parsed is None:
        conn.send(frames.error(f"invalid conid {cmd.target!r}", 400, "smd"))
        return
    if cmd.error:
        conn.send(frames.error(cmd.error, 400, "smd"))
        return
    if gw.config.require_accounts_preflight and not gw.accounts_called:
        conn.send(frames.error("No accounts", 500, "smd"))
        return
    conid, conid_ex = parsed
    if not gw.config.conid_exists(conid):
        conn.send(unknown_conid_error(conid, f"smd+{conid}"))
        return
    fields = _fields_of(cmd.args)
    q = gw.market.quote(conid)
    now = gw.loop.time()
    expires = now + gw.config.smd_expiry
    sub = conn.md.get(conid_ex)
    if sub is not None:
        # re-sent: union of fields, renewed expiry, one frame with the current values
        sub.add_fields(fields)
        sub.expires_at = expires
        if sub.first_due is not None:
            return  # the first update is still to come and will carry the new fields
        values = field_values(q, sub.fields, gw.account.position_view(conid))
        sub.last.update(values)
        conn.send(md_first_frames(sub, q, values)[0])
        return
    allocate = gw.next_quote_server if gw.config.global_server_id else None
    sub = MarketDataSub(
        conid=conid,
        conid_ex=conid_ex,
        topic=f"smd+{conid}",
        fields=fields,
        server_id=conn.quote_server(conid, allocate),
        expires_at=expires,
    )
    conn.md[conid_ex] = sub
    delay = first_update_delay(gw.config, conid)
    if delay is None:
        send_first_update(gw, conn, sub)
    else:
        sub.first_due = now + delay  # sent by the first market tick at or after it


def on_umd(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    target = cmd.target.strip()
    if conn.md.pop(target, None) is not None:
        return
    parsed = parse_conid(target)
    if parsed is None:
        return
    for key in [k for k, s in conn.md.items() if s.conid == parsed[0]]:
        del conn.md[key]


def push_market_updates(gw: TopicHost, quotes: dict[int, Quote]) -> None:
    """After a market tick: first updates that came due (in the order the gateway has the data),
    the full values after price-less first frames, and each subscriber's changed fields."""
    now = gw.loop.time()
    for conn in gw.ready_connections():
        if not conn.md:
            continue
        due: list[MarketDataSub] = []
        for key, sub in list(conn.md.items()):
            if now >= sub.expires_at:
                del conn.md[key]  # streams end silently after the expiry
                gw.md_expired += 1
                continue
            if sub.first_due is not None:
                if now >= sub.first_due:
                    due.append(sub)
                continue
            if sub.pending_full:
                q = gw.market.quote(sub.conid)
                values = field_values(q, sub.fields, gw.account.position_view(sub.conid))
                sub.pending_full = False
            else:
                stepped = quotes.get(sub.conid)
                if stepped is None or not stepped.inst.available:
                    continue
                q = stepped
                values = field_values(q, sub.fields, gw.account.position_view(sub.conid))
            last = sub.last
            delta = {k: v for k, v in values.items() if last.get(k) != v}
            if not delta:
                continue
            last.update(delta)
            sub.deltas_sent += 1
            conn.send(md_update_frame(sub, q, delta, with_6508=(sub.deltas_sent == 1)))
        for sub in sorted(due, key=lambda s: (s.first_due or 0.0, s.conid)):
            sub.first_due = None
            send_first_update(gw, conn, sub)


# --- history -------------------------------------------------------------------------------------
def on_smh(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    parsed = parse_conid(cmd.target)
    if parsed is None:
        conn.send(frames.error(f"invalid conid {cmd.target!r}", 400, "smh"))
        return
    conid, _ = parsed
    topic = f"smh+{conid}"
    if not gw.config.conid_exists(conid):
        conn.send(unknown_conid_error(conid, topic))
        return
    limit = gw.config.max_history
    if len(conn.history) >= limit:
        conn.send(
            frames.error(
                f"Exceeded the maximum of {limit} concurrent historical data subscriptions", 429, topic
            )
        )
        return
    body = gw.history(conid, cmd.args)
    server_id = body["serverId"]
    body["topic"] = topic
    conn.history[server_id] = conid
    conn.send(body)


def on_umh(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    server_id = cmd.target.strip().strip("{}")
    if conn.history.pop(server_id, None) is None:
        return
    if gw.config.umh_confirmation:
        conn.send({"message": f"Unsubscribed {server_id}"})


# --- orders and trades ---------------------------------------------------------------------------
def on_sor(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    raw = cmd.args.get("filters", [])
    if isinstance(raw, str):
        raw = [raw]
    filters = (
        frozenset(str(f).strip().lower() for f in raw if str(f).strip())
        if isinstance(raw, list)
        else frozenset()
    )
    conn.orders = OrdersSub(filters=filters)


def on_uor(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    conn.orders = None


def on_str(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    """``{"topic":"str","args":[]}``, then the history of ``days`` (default ``str_days``): each
    execution first without, then with its commission. With ``str_day_frames`` the history goes day
    by day, oldest first, an empty ``args`` frame standing for each day without trades; with
    ``str_resend_after`` every execution of the history is sent once more that much later."""
    conn.trades = True
    config = gw.config
    realtime_only = cmd.args.get("realtimeUpdatesOnly") is True
    if not config.str_day_frames or realtime_only:
        conn.send({"topic": "str", "args": []})
    if realtime_only:
        return
    days = cmd.args.get("days", config.str_days)
    days = days if isinstance(days, int) and not isinstance(days, bool) else config.str_days
    if config.str_day_frames:
        for day in gw.orders.history_by_day(days):
            if not day:
                conn.send({"topic": "str", "args": []})
            for execution in day:
                conn.send({"topic": "str", "args": [without_commission(execution)]})
                conn.send({"topic": "str", "args": [execution]})
    else:
        for execution in gw.orders.history(days):
            conn.send({"topic": "str", "args": [without_commission(execution)]})
            conn.send({"topic": "str", "args": [execution]})
    if config.str_resend_after is not None:
        conn.start_task("str-resend", _resend_trades(gw, conn, days, config.str_resend_after))


async def _resend_trades(gw: TopicHost, conn: Connection, days: int, delay: float) -> None:
    await asyncio.sleep(delay)
    if conn.trades and conn.data_enabled:
        for execution in gw.orders.history(days):
            conn.send({"topic": "str", "args": [execution]})


def on_utr(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    conn.trades = False
    conn.stop_task("str-resend")


# --- P&L, summary, ledger --------------------------------------------------------------------------
def on_spl(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    if "spl" not in conn.task_keys():
        conn.start_task("spl", _pnl_stream(gw, conn))


async def _pnl_stream(gw: TopicHost, conn: Connection) -> None:
    """A row every ``pnl_interval``; with ``pnl_follows_prices`` a row equal to the last one sent is
    skipped (the values follow the market, which moves on its own ticks)."""
    last: dict[str, Any] | None = None
    skip_repeats = gw.config.pnl_follows_prices
    while True:
        row = gw.account.pnl_row()
        if not (skip_repeats and row == last):
            conn.send({"topic": "spl", "args": row})
            last = row
        await asyncio.sleep(gw.config.pnl_interval)


def on_upl(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    conn.stop_task("spl")


def _account_target(gw: TopicHost, conn: Connection, cmd: Command, topic: str) -> str | None:
    acct = cmd.target.strip()
    if acct != gw.config.account:
        conn.send(frames.error(f"Invalid account {acct!r}", 400, f"{topic}+{acct}" if acct else topic))
        return None
    return acct


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, list):
        items = [str(v) for v in value if isinstance(v, (str, int)) and not isinstance(v, bool)]
        return items or None
    return None


def on_ssd(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    acct = _account_target(gw, conn, cmd, "ssd")
    if acct is None:
        return
    keys = _str_list(cmd.args.get("keys"))
    fields = _str_list(cmd.args.get("fields"))
    conn.start_task(f"ssd+{acct}", _summary_stream(gw, conn, acct, keys, fields))


def _filter_entry(entry: dict[str, Any], fields: set[str] | None, always: tuple[str, ...]) -> dict[str, Any]:
    if fields is None:
        return entry
    return {k: v for k, v in entry.items() if k in always or k.lower() in fields}


async def _summary_stream(
    gw: TopicHost, conn: Connection, acct: str, keys: list[str] | None, fields: list[str] | None
) -> None:
    topic = f"ssd+{acct}"
    wanted_keys = set(keys) if keys else None
    wanted_fields = {f.lower() for f in fields} if fields else None
    last: dict[str, Any] = {}
    while True:
        ts = now_ms() // 1000
        result = []
        for entry in gw.account.summary_entries(ts):
            key = entry["key"]
            if wanted_keys is not None and key not in wanted_keys:
                continue
            entry = _filter_entry(entry, wanted_fields, ("key", "timestamp"))
            comparable = {k: v for k, v in entry.items() if k != "timestamp"}
            if last.get(key) == comparable:
                continue
            last[key] = comparable
            result.append(entry)
        if result:
            conn.send({"result": result, "topic": topic})
        await asyncio.sleep(gw.config.effective_summary_interval)


def on_usd(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    acct = cmd.target.strip()
    conn.stop_task(f"ssd+{acct}")
    conn.send({"result": "unsubscribed from summary"})


def on_sld(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    acct = _account_target(gw, conn, cmd, "sld")
    if acct is None:
        return
    keys = _str_list(cmd.args.get("keys"))
    fields = _str_list(cmd.args.get("fields"))
    conn.start_task(f"sld+{acct}", _ledger_stream(gw, conn, acct, keys, fields))


async def _ledger_stream(
    gw: TopicHost, conn: Connection, acct: str, keys: list[str] | None, fields: list[str] | None
) -> None:
    topic = f"sld+{acct}"
    wanted_keys = set(keys) if keys else None
    wanted_fields = {f.lower() for f in fields} if fields else None
    last: dict[str, Any] = {}
    while True:
        ts = now_ms() // 1000
        result = []
        for key, row in gw.account.ledger_rows(ts).items():
            if wanted_keys is not None and key not in wanted_keys:
                continue
            row = _filter_entry(row, wanted_fields, ("acctCode", "key", "secondKey", "timestamp"))
            comparable = {k: v for k, v in row.items() if k != "timestamp"}
            if last.get(key) == comparable:
                result.append({"key": key, "timestamp": ts})  # unchanged currency: a blank row
            else:
                last[key] = comparable
                result.append(row)
        conn.send({"result": result, "topic": topic})
        await asyncio.sleep(gw.config.ledger_interval)


def on_uld(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    acct = cmd.target.strip()
    conn.stop_task(f"sld+{acct}")
    conn.send({"result": "unsubscribed from ledger"})


# --- price ladder --------------------------------------------------------------------------------
def on_sbd(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    acct = _account_target(gw, conn, cmd, "sbd")
    if acct is None:
        return
    parsed = parse_conid(cmd.targets[1]) if len(cmd.targets) > 1 else None
    if parsed is None:
        conn.send(frames.error("invalid conid", 400, "sbd"))
        return
    conid = parsed[0]
    topic = "+".join(("sbd", acct, str(conid), *cmd.targets[2:3]))
    if not gw.config.conid_exists(conid):
        conn.send(unknown_conid_error(conid, topic))
        return
    key = topic
    conn.ladders[key] = LadderSub(account=acct, conid=conid, topic=topic)
    gw.market.quote(conid)
    conn.start_task(key, _ladder_stream(gw, conn, key))


def ladder_rows(q: Quote, depth: int = 5) -> list[dict[str, Any]]:
    """Ask rows (highest first), then bid rows; ``focus`` marks the row of the last trade."""
    rows: list[dict[str, Any]] = []
    rng = random.Random(f"ladder:{q.inst.conid}:{q.bid_t}:{q.ask_t}")
    lot = q.inst.lot
    last = q.last_t
    prices = [(q.ask_t + i, "ask") for i in reversed(range(depth))]
    prices += [(q.bid_t - i, "bid") for i in range(depth)]
    for index, (ticks, side) in enumerate(prices):
        size = (
            q.ask_size if ticks == q.ask_t else q.bid_size if ticks == q.bid_t else rng.randint(1, 30) * lot
        )
        rows.append(
            {
                "row": index,
                "focus": 1 if last is not None and ticks == last else 0,
                "price": q.fmt(ticks),
                side: str(size),
            }
        )
    return rows


async def _ladder_stream(gw: TopicHost, conn: Connection, key: str) -> None:
    while True:
        sub = conn.ladders.get(key)
        if sub is None:
            return
        conn.send({"topic": sub.topic, "data": ladder_rows(gw.market.quote(sub.conid))})
        await asyncio.sleep(gw.config.effective_sbd_interval)


def on_ubd(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    acct = cmd.target.strip()
    for key in [k for k, s in conn.ladders.items() if s.account == acct]:
        del conn.ladders[key]
        conn.stop_task(key)


# --- misc ------------------------------------------------------------------------------------------
def on_tic(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    gw.touch_session()
    reply = frames.tic(gw.ident, now_ms())
    for _ in range(max(1, gw.config.tic_replies)):
        conn.send(reply)


def on_ech(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    if gw.config.echo_hb:
        conn.send(cmd.raw.strip().encode())


def on_session(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    # the socket is already authenticated: the live gateway answers this with an error
    conn.send(frames.TOPIC_UNKNOWN)


def on_shs(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    conn.send({"topic": "+".join(("shs", *cmd.targets))})


def on_ignore(gw: TopicHost, conn: Connection, cmd: Command) -> None:
    return


HANDLERS: dict[str, Handler] = {
    "smd": on_smd,
    "umd": on_umd,
    "smh": on_smh,
    "umh": on_umh,
    "sor": on_sor,
    "uor": on_uor,
    "str": on_str,
    "utr": on_utr,
    "spl": on_spl,
    "upl": on_upl,
    "ssd": on_ssd,
    "usd": on_usd,
    "sld": on_sld,
    "uld": on_uld,
    "sbd": on_sbd,
    "ubd": on_ubd,
    "tic": on_tic,
    "ech": on_ech,
    "session": on_session,
    "shs": on_shs,
    "inp": on_ignore,
}
