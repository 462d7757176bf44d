"""REST endpoints under ``/v1/api`` (the subset the socket side needs, shaped like the live gateway)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from rxibkr.sim import frames
from rxibkr.sim.commands import parse_conid
from rxibkr.sim.fields import SERVICE_PARAMS, availability, field_values
from rxibkr.sim.gateway import Gateway, PendingPlacement
from rxibkr.sim.instruments import search
from rxibkr.sim.market import now_ms
from rxibkr.sim.orders import OrderError, full_object

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
PREFIX = "/v1/api"
SESSION_LIFETIME_MS = 24 * 3600 * 1000

#: Texts of the order confirmation prompts by message id (paraphrased from live prompts).
PROMPT_TEXTS: dict[str, str] = {
    "o163": "The following order exceeds the price percentage limit of 3%.\nAre you sure you want to "
    "submit this order?",
    "o354": "You are submitting an order without market data. We strongly recommend against this as it "
    "may result in erroneous and unexpected trades.\nAre you sure you want to submit this order?",
    "o10153": "<h4>Confirm Mandatory Cap Price</h4>To avoid trading at a price that is not consistent "
    "with a fair and orderly market, IB may set a cap (for a buy order) or floor (for a sell order). "
    "Are you sure you want to submit this order?",
}


class BadRequest(Exception):
    """Turned into a JSON 400 by the app's middleware."""


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _gw(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("malformed JSON body") from None


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes")


# --- session -------------------------------------------------------------------------------------
async def tickle(request: web.Request) -> web.Response:
    gw = _gw(request)
    gw.touch_session()
    remaining = max(60_000, SESSION_LIFETIME_MS - int((time.monotonic() - gw.started_at) * 1000))
    resp = json_response(
        frames.tickle(
            gw.ident, authenticated=gw.authenticated, competing=gw.competing, sso_expires_ms=remaining
        )
    )
    resp.set_cookie("x-sess-uuid", gw.sess_uuid, path="/v1/api", httponly=True, secure=gw.config.tls)
    return resp


async def auth_status(request: web.Request) -> web.Response:
    gw = _gw(request)
    return json_response(frames.auth_status(gw.ident, authenticated=gw.authenticated, competing=gw.competing))


async def reauthenticate(request: web.Request) -> web.Response:
    gw = _gw(request)
    delay = gw.config.reauthenticate_delay
    if delay is not None and not gw.authenticated:
        gw.schedule(delay, lambda: gw.set_authenticated(True))
    return json_response({"message": "triggered"})


async def sso_validate(request: web.Request) -> web.Response:
    gw = _gw(request)
    ms = now_ms()
    return json_response(
        {
            "USER_ID": gw.ident.user_id,
            "USER_NAME": gw.ident.username,
            "RESULT": True,
            "AUTH_TIME": ms,
            "SF_ENABLED": False,
            "IS_FREE_TRIAL": False,
            "CREDENTIAL": gw.ident.username,
            "IP": request.remote,
            "EXPIRES": 360_000,
            "LANDING_APP": "UNIVERSAL",
            "IS_MASTER": False,
            "lastAccessed": ms,
            "loginType": 2,
            "PAPER_USER_NAME": gw.ident.username,
        }
    )


# --- accounts --------------------------------------------------------------------------------------
async def iserver_accounts(request: web.Request) -> web.Response:
    gw = _gw(request)
    gw.accounts_called = True
    return json_response(frames.accounts_payload(gw.ident, gw.ident.internal_session_id(0)))


async def portfolio_accounts(request: web.Request) -> web.Response:
    gw = _gw(request)
    return json_response([gw.account.portfolio_account(f"{gw.ident.username} (simulated)")])


async def positions(request: web.Request) -> web.Response:
    gw = _gw(request)
    if request.match_info["acct"] != gw.config.account:
        return json_response({"error": "Account not found", "statusCode": 404}, 404)
    if request.match_info.get("page", "0") not in ("", "0"):
        return json_response([])
    out = []
    for pos in gw.account.positions.values():
        if pos.quantity == 0:
            continue
        q = gw.market.quote(pos.conid)
        mark = q.mark
        out.append(
            {
                "acctId": gw.config.account,
                "conid": pos.conid,
                "contractDesc": q.inst.symbol,
                "position": pos.quantity,
                "mktPrice": mark,
                "mktValue": round(pos.quantity * mark, 2),
                "currency": q.inst.currency,
                "avgCost": round(pos.avg_cost, 4),
                "avgPrice": round(pos.avg_cost, 4),
                "realizedPnl": round(pos.realized, 2),
                "unrealizedPnl": round(pos.quantity * (mark - pos.avg_cost), 2),
                "assetClass": q.inst.sec_type,
                "ticker": q.inst.symbol,
                "listingExchange": q.inst.listing_exchange,
                "name": q.inst.company,
            }
        )
    return json_response(out)


# --- orders ----------------------------------------------------------------------------------------
async def live_orders(request: web.Request) -> web.Response:
    gw = _gw(request)
    raw_filters = request.query.get("filters", "")
    filters = {f.strip().lower() for f in raw_filters.split(",") if f.strip()}
    if _flag(request.query.get("force")):
        gw.sor_muted = False
    elif filters and gw.config.orders_filter_mutes_sor:
        gw.sor_muted = True  # live quirk: a filtered call mutes sor until force=true
    orders = [full_object(o) for o in gw.orders.orders.values() if not filters or o.status.lower() in filters]
    return json_response({"orders": orders, "snapshot": True})


def _place(gw: Gateway, specs: list[Any], acct: str) -> web.Response:
    results = []
    for spec in specs:
        if not isinstance(spec, dict):
            return json_response({"error": "each order must be an object"}, 400)
        try:
            order = gw.orders.place(spec, acct)
        except OrderError as exc:
            return json_response({"error": str(exc)}, 400)
        results.append({"order_id": str(order.order_id), "order_status": "Submitted", "encrypt_message": "1"})
    return json_response(results)


async def place_orders(request: web.Request) -> web.Response:
    gw = _gw(request)
    acct = request.match_info["acct"]
    if acct != gw.config.account:
        return json_response({"error": f"Account {acct} is not accessible"}, 400)
    body = await _body(request)
    specs = body.get("orders") if isinstance(body, dict) else None
    if not isinstance(specs, list) or not specs:
        return json_response({"error": 'body must be {"orders": [...]}'}, 400)
    prompts = list(gw.config.order_prompts) if gw.config.order_confirmations else []
    if prompts:
        pending = PendingPlacement([s for s in specs if isinstance(s, dict)], acct, prompts)
        return _prompt(gw, pending)
    return _place(gw, specs, acct)


def _prompt(gw: Gateway, pending: PendingPlacement) -> web.Response:
    """The next confirmation prompt of a placement, under a fresh reply id."""
    message_id = pending.prompts.pop(0)
    reply_id = gw.next_reply_id()
    gw.pending_replies[reply_id] = pending
    text = PROMPT_TEXTS.get(message_id, "Are you sure you want to submit this order?")
    return json_response(
        [
            {
                "id": reply_id,
                "message": [text],
                "isSuppressed": False,
                "messageIds": [message_id],
                "messageOptions": ["Yes", "No"],
            }
        ]
    )


async def reply(request: web.Request) -> web.Response:
    """``POST /iserver/reply/{id}`` ``{"confirmed": true}``: the next prompt, or, after the last one,
    the placement (the order exists only from then on)."""
    gw = _gw(request)
    pending = gw.pending_replies.pop(request.match_info["reply_id"], None)
    if pending is None:
        return json_response({"error": "reply id not found", "statusCode": 400}, 400)
    body = await _body(request)
    if not (isinstance(body, dict) and body.get("confirmed") is True):
        return json_response({"error": "order not confirmed"}, 400)
    if pending.prompts:
        return _prompt(gw, pending)
    return _place(gw, pending.specs, pending.account)


async def cancel_order(request: web.Request) -> web.Response:
    gw = _gw(request)
    if request.match_info["acct"] != gw.config.account:
        return json_response({"error": "Account not accessible"}, 400)
    try:
        order_id = int(request.match_info["order_id"])
        gw.orders.cancel(order_id)
    except ValueError:
        return json_response({"error": "invalid order id"}, 400)
    except OrderError as exc:
        return json_response({"error": str(exc)}, 400)
    # the live answer carries conid -1 and account null
    return json_response({"msg": "Request was submitted", "order_id": order_id, "conid": -1, "account": None})


async def trades(request: web.Request) -> web.Response:
    gw = _gw(request)
    try:
        days = int(request.query.get("days", "1"))
    except ValueError:
        days = 1
    return json_response(gw.orders.history(days))


# --- market data -----------------------------------------------------------------------------------
async def snapshot(request: web.Request) -> web.Response:
    gw = _gw(request)
    conids_text = request.query.get("conids", "")
    fields = [f.strip() for f in request.query.get("fields", "").split(",") if f.strip()]
    targets = [parse_conid(c.strip()) for c in conids_text.split(",") if c.strip()]
    if not targets:
        return json_response({"error": "conids is required", "statusCode": 400}, 400)
    unknown = [t[0] for t in targets if t is not None and not gw.config.conid_exists(t[0])]
    if unknown:
        return _unknown_conid(unknown[0])
    out = []
    for index, parsed in enumerate(targets):
        if parsed is None:
            continue
        conid, conid_ex = parsed
        q = gw.market.quote(conid)
        gw.touch_snapshot(conid)
        sid = f"q{index}"
        item: dict[str, Any] = {}
        first_time = conid not in gw.snapshot_seen
        gw.snapshot_seen.add(conid)
        if q.inst.available and not (gw.config.snapshot_preflight and first_time):
            item["6509"] = availability(q.inst, q.frozen)
        item.update(
            {"conidEx": conid_ex, "conid": conid, "_updated": q.updated_ms, "6119": sid, "server_id": sid}
        )
        if not (gw.config.snapshot_preflight and first_time):
            item.update(field_values(q, fields, gw.account.position_view(conid)))
            if q.inst.available:
                item["6508"] = SERVICE_PARAMS
        out.append(item)
    return json_response(out)


async def history(request: web.Request) -> web.Response:
    gw = _gw(request)
    parsed = parse_conid(request.query.get("conid", ""))
    if parsed is None:
        return json_response({"error": "conid is required", "statusCode": 400}, 400)
    if not gw.config.conid_exists(parsed[0]):
        return _unknown_conid(parsed[0])
    started = time.perf_counter()
    body = gw.history(parsed[0], dict(request.query))
    body["travelTime"] = int((time.perf_counter() - started) * 1000)
    return json_response(body)


def _unknown_conid(conid: int) -> web.Response:
    """The REST answer to a conid that does not exist (the simulator's choice; docs/simulator.md)."""
    return json_response(
        {"error": f"No security definition has been found for conid {conid}", "statusCode": 400}, 400
    )


async def secdef_search(request: web.Request) -> web.Response:
    if request.method == "POST":
        body = await _body(request)
        params = body if isinstance(body, dict) else {}
    else:
        params = dict(request.query)
    symbol = str(params.get("symbol", ""))
    by_name = params.get("name") in (True, "true", "True", "1")
    if not symbol.strip():
        return json_response({"error": "symbol is required", "statusCode": 400}, 400)
    return json_response(
        [
            {
                "conid": str(i.conid),
                "companyHeader": f"{i.company} - {i.exchange}",
                "companyName": i.company,
                "symbol": i.symbol,
                "description": i.exchange,
                "restricted": None,
                "sections": [{"secType": i.sec_type}],
            }
            for i in search(symbol, by_name=by_name)
        ]
    )


ROUTES: tuple[tuple[str, str, Any], ...] = (
    ("GET", "/tickle", tickle),
    ("POST", "/tickle", tickle),
    ("GET", "/iserver/auth/status", auth_status),
    ("POST", "/iserver/auth/status", auth_status),
    ("GET", "/iserver/secdef/search", secdef_search),
    ("POST", "/iserver/secdef/search", secdef_search),
    ("GET", "/sso/validate", sso_validate),
    ("POST", "/sso/validate", sso_validate),
    ("POST", "/iserver/reauthenticate", reauthenticate),
    ("GET", "/iserver/accounts", iserver_accounts),
    ("GET", "/portfolio/accounts", portfolio_accounts),
    ("GET", "/portfolio/{acct}/positions/{page}", positions),
    ("GET", "/iserver/account/orders", live_orders),
    ("GET", "/iserver/account/trades", trades),
    ("POST", "/iserver/account/{acct}/orders", place_orders),
    ("POST", "/iserver/reply/{reply_id}", reply),
    ("DELETE", "/iserver/account/{acct}/order/{order_id}", cancel_order),
    ("GET", "/iserver/marketdata/snapshot", snapshot),
    ("GET", "/iserver/marketdata/history", history),
)
"""Every REST route: method, path under ``/v1/api``, handler."""


def add_routes(app: web.Application, *, trailing_slash: bool = True) -> None:
    """Register :data:`ROUTES`; with ``trailing_slash`` each path also answers with a ``/`` appended,
    as the live gateway does (IBind asks for ``iserver/account/trades/``)."""
    r = app.router
    for method, path, handler in ROUTES:
        r.add_route(method, PREFIX + path, handler)
        if trailing_slash:
            r.add_route(method, PREFIX + path + "/", handler)
