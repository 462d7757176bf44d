"""What the gateway does with each client command (``smd``, ``smh``, ``sor``, ``str``, ``spl``,
``ssd``, ``sld``, ``sbd``, their ``u...`` counterparts, ``tic``, ``ech``, the session message).

Spelling variants are accepted (§7.10): with or without ``+{}``, ``upl{}``, ``usd+ACCT``...
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rxibkr.sim import frames
from rxibkr.sim.commands import Command, parse_conid
from rxibkr.sim.connection import Connection
from rxibkr.sim.fields import SERVICE_PARAMS, availability, field_values
from rxibkr.sim.market import Quote, now_ms
from rxibkr.sim.orders import without_commission
from rxibkr.sim.subscriptions import LadderSub, MarketDataSub, OrdersSub

if TYPE_CHECKING:
    from rxibkr.sim.gateway import Gateway

log = logging.getLogger(__name__)

Handler = Callable[[Connection, Command], None]

# topics that produce data; ignored on a socket whose data was stopped by an auth loss
DATA_TOPICS = frozenset({"smd", "smh", "sor", "str", "spl", "ssd", "sld", "sbd"})


def handle(conn: Connection, cmd: Command) -> None:
    handler = HANDLERS.get(cmd.topic)
    if handler is None:
        conn.send(frames.TOPIC_UNKNOWN)
        return
    if cmd.topic in DATA_TOPICS and not conn.data_enabled:
        return
    handler(conn, cmd)


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
        a["6509"] = availability(q.inst)
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
    sub: MarketDataSub, q: Quote, delta: dict[str, Any], *, with_6508: bool = False, with_6509: bool = False
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "server_id": sub.server_id,
        "conidEx": sub.conid_ex,
        "conid": sub.conid,
        "_updated": q.updated_ms,
        "6119": sub.server_id,
    }
    frame.update(delta)
    if with_6509:
        frame["6509"] = availability(q.inst)
    if with_6508:
        frame["6508"] = SERVICE_PARAMS
    frame["topic"] = sub.topic
    return frame


def on_smd(conn: Connection, cmd: Command) -> None:
    gw = conn.gw
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
    fields = _fields_of(cmd.args)
    q = gw.market.quote(conid)
    expires = gw.loop.time() + gw.config.smd_expiry
    sub = conn.md.get(conid_ex)
    if sub is not None:
        # re-sent: union of fields, renewed expiry, one frame with the current values
        sub.add_fields(fields)
        sub.expires_at = expires
        values = field_values(q, sub.fields, gw.account.position_view(conid))
        sub.last.update(values)
        conn.send(md_first_frames(sub, q, values)[0])
        return
    sub = MarketDataSub(
        conid=conid,
        conid_ex=conid_ex,
        topic=f"smd+{conid}",
        fields=fields,
        server_id=conn.quote_server(conid),
        expires_at=expires,
    )
    conn.md[conid_ex] = sub
    values = field_values(q, sub.fields, gw.account.position_view(conid))
    sub.last.update(values)
    first, second = md_first_frames(sub, q, values)
    conn.send(first)
    conn.send(second)


def on_umd(conn: Connection, cmd: Command) -> None:
    target = cmd.target.strip()
    if conn.md.pop(target, None) is not None:
        return
    parsed = parse_conid(target)
    if parsed is None:
        return
    for key in [k for k, s in conn.md.items() if s.conid == parsed[0]]:
        del conn.md[key]


def push_market_updates(gw: Gateway, quotes: dict[int, Quote]) -> None:
    """After a market step: send each ``smd`` subscriber the requested fields that changed."""
    now = gw.loop.time()
    for conn in gw.ready_connections():
        if not conn.md:
            continue
        for key, sub in list(conn.md.items()):
            if now >= sub.expires_at:
                del conn.md[key]  # streams end silently after the expiry
                continue
            q = quotes.get(sub.conid)
            if q is None or not q.inst.available:
                continue
            values = field_values(q, sub.fields, gw.account.position_view(sub.conid))
            last = sub.last
            delta = {k: v for k, v in values.items() if last.get(k) != v}
            if not delta:
                continue
            last.update(delta)
            sub.deltas_sent += 1
            n = sub.deltas_sent
            conn.send(md_update_frame(sub, q, delta, with_6508=(n == 1), with_6509=(n % 50 == 0)))


# --- history -------------------------------------------------------------------------------------
def on_smh(conn: Connection, cmd: Command) -> None:
    gw = conn.gw
    parsed = parse_conid(cmd.target)
    if parsed is None:
        conn.send(frames.error(f"invalid conid {cmd.target!r}", 400, "smh"))
        return
    conid, _ = parsed
    topic = f"smh+{conid}"
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


def on_umh(conn: Connection, cmd: Command) -> None:
    server_id = cmd.target.strip().strip("{}")
    if conn.history.pop(server_id, None) is None:
        return
    if conn.gw.config.umh_confirmation:
        conn.send({"message": f"Unsubscribed {server_id}"})


# --- orders and trades ---------------------------------------------------------------------------
def on_sor(conn: Connection, cmd: Command) -> None:
    raw = cmd.args.get("filters", [])
    if isinstance(raw, str):
        raw = [raw]
    filters = (
        frozenset(str(f).strip().lower() for f in raw if str(f).strip())
        if isinstance(raw, list)
        else frozenset()
    )
    conn.orders = OrdersSub(filters=filters)


def on_uor(conn: Connection, cmd: Command) -> None:
    conn.orders = None


def on_str(conn: Connection, cmd: Command) -> None:
    gw = conn.gw
    conn.trades = True
    conn.send({"topic": "str", "args": []})
    if cmd.args.get("realtimeUpdatesOnly") is True:
        return
    days = cmd.args.get("days", 1)
    days = days if isinstance(days, int) and not isinstance(days, bool) else 1
    for execution in gw.orders.history(days):
        conn.send({"topic": "str", "args": [without_commission(execution)]})
        conn.send({"topic": "str", "args": [execution]})


def on_utr(conn: Connection, cmd: Command) -> None:
    conn.trades = False


# --- P&L, summary, ledger --------------------------------------------------------------------------
def on_spl(conn: Connection, cmd: Command) -> None:
    if "spl" not in conn.task_keys():
        conn.start_task("spl", _pnl_stream(conn))


async def _pnl_stream(conn: Connection) -> None:
    gw = conn.gw
    while True:
        conn.send({"topic": "spl", "args": gw.account.pnl_row()})
        await asyncio.sleep(gw.config.pnl_interval)


def on_upl(conn: Connection, cmd: Command) -> None:
    conn.stop_task("spl")


def _account_target(conn: Connection, cmd: Command, topic: str) -> str | None:
    acct = cmd.target.strip()
    if acct != conn.gw.config.account:
        conn.send(frames.error(f"Invalid account {acct!r}", 400, f"{topic}+{acct}" if acct else topic))
        return None
    return acct


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, list):
        items = [str(v) for v in value if isinstance(v, (str, int)) and not isinstance(v, bool)]
        return items or None
    return None


def on_ssd(conn: Connection, cmd: Command) -> None:
    acct = _account_target(conn, cmd, "ssd")
    if acct is None:
        return
    keys = _str_list(cmd.args.get("keys"))
    fields = _str_list(cmd.args.get("fields"))
    conn.start_task(f"ssd+{acct}", _summary_stream(conn, acct, keys, fields))


def _filter_entry(entry: dict[str, Any], fields: set[str] | None, always: tuple[str, ...]) -> dict[str, Any]:
    if fields is None:
        return entry
    return {k: v for k, v in entry.items() if k in always or k.lower() in fields}


async def _summary_stream(
    conn: Connection, acct: str, keys: list[str] | None, fields: list[str] | None
) -> None:
    gw = conn.gw
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


def on_usd(conn: Connection, cmd: Command) -> None:
    acct = cmd.target.strip()
    conn.stop_task(f"ssd+{acct}")
    conn.send({"result": "unsubscribed from summary"})


def on_sld(conn: Connection, cmd: Command) -> None:
    acct = _account_target(conn, cmd, "sld")
    if acct is None:
        return
    keys = _str_list(cmd.args.get("keys"))
    fields = _str_list(cmd.args.get("fields"))
    conn.start_task(f"sld+{acct}", _ledger_stream(conn, acct, keys, fields))


async def _ledger_stream(
    conn: Connection, acct: str, keys: list[str] | None, fields: list[str] | None
) -> None:
    gw = conn.gw
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


def on_uld(conn: Connection, cmd: Command) -> None:
    acct = cmd.target.strip()
    conn.stop_task(f"sld+{acct}")
    conn.send({"result": "unsubscribed from ledger"})


# --- price ladder --------------------------------------------------------------------------------
def on_sbd(conn: Connection, cmd: Command) -> None:
    acct = _account_target(conn, cmd, "sbd")
    if acct is None:
        return
    parsed = parse_conid(cmd.targets[1]) if len(cmd.targets) > 1 else None
    if parsed is None:
        conn.send(frames.error("invalid conid", 400, "sbd"))
        return
    conid = parsed[0]
    topic = "+".join(("sbd", acct, str(conid), *cmd.targets[2:3]))
    key = topic
    conn.ladders[key] = LadderSub(account=acct, conid=conid, topic=topic)
    conn.gw.market.quote(conid)
    conn.start_task(key, _ladder_stream(conn, key))


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


async def _ladder_stream(conn: Connection, key: str) -> None:
    gw = conn.gw
    while True:
        sub = conn.ladders.get(key)
        if sub is None:
            return
        conn.send({"topic": sub.topic, "data": ladder_rows(gw.market.quote(sub.conid))})
        await asyncio.sleep(gw.config.effective_sbd_interval)


def on_ubd(conn: Connection, cmd: Command) -> None:
    acct = cmd.target.strip()
    for key in [k for k, s in conn.ladders.items() if s.account == acct]:
        del conn.ladders[key]
        conn.stop_task(key)


# --- misc ------------------------------------------------------------------------------------------
def on_tic(conn: Connection, cmd: Command) -> None:
    conn.gw.touch_session()
    reply = frames.tic(conn.gw.ident, now_ms())
    for _ in range(max(1, conn.gw.config.tic_replies)):
        conn.send(reply)


def on_ech(conn: Connection, cmd: Command) -> None:
    if conn.gw.config.echo_hb:
        conn.send(cmd.raw.strip().encode())


def on_session(conn: Connection, cmd: Command) -> None:
    # the socket is already authenticated: the live gateway answers this with an error
    conn.send(frames.TOPIC_UNKNOWN)


def on_shs(conn: Connection, cmd: Command) -> None:
    conn.send({"topic": "+".join(("shs", *cmd.targets))})


def on_ignore(conn: Connection, cmd: Command) -> None:
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
