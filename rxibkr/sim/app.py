"""aiohttp wiring: REST and the WebSocket on one port, like the real gateway.

Middlewares, outermost first: caller address check (404 "Access Denied" for hosts outside
``allowed_hosts``), maintenance (503), brokerage-auth gate for ``/iserver`` (401), JSON 404/405.
"""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from rxibkr.sim import frames
from rxibkr.sim.gateway import Gateway
from rxibkr.sim.rest import GATEWAY, PREFIX, BadRequest, add_routes, json_response

log = logging.getLogger(__name__)

WS_PATH = f"{PREFIX}/ws"
_AUTH_FREE = frozenset(
    path + slash
    for path in (f"{PREFIX}/iserver/auth/status", f"{PREFIX}/iserver/reauthenticate")
    for slash in ("", "/")
)


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    if not gw.is_allowed(request.remote):
        return web.Response(status=404, text="Access Denied")
    if gw.maintenance_active():
        return json_response({"error": "Service Unavailable: maintenance", "statusCode": 503}, 503)
    path = request.path
    if path.startswith(f"{PREFIX}/iserver/") and not gw.authenticated and path not in _AUTH_FREE:
        return json_response({"error": "not authenticated", "statusCode": 401}, 401)
    try:
        return await handler(request)
    except BadRequest as exc:
        return json_response({"error": str(exc), "statusCode": 400}, 400)
    except web.HTTPNotFound:
        return json_response({"error": f"Route not found: {request.method} {path}", "statusCode": 404}, 404)
    except web.HTTPMethodNotAllowed:
        return json_response(
            {"error": f"Method not allowed: {request.method} {path}", "statusCode": 405}, 405
        )


async def ws_handler(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    if gw.stalled and not await gw.wait_while_stalled(request):
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=503)
    if gw.maintenance_active():
        return json_response({"error": "Service Unavailable: maintenance", "statusCode": 503}, 503)
    if request.transport is None or request.transport.is_closing():
        return web.Response(status=503)  # the client gave up while the handshake was stalled
    ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=16 * 1024 * 1024)
    if not ws.can_prepare(request).ok:
        return json_response({"error": "WebSocket upgrade required", "statusCode": 400}, 400)
    await ws.prepare(request)
    conn = gw.open_connection(ws, request)
    log.debug("connection %d opened from %s", conn.id, request.remote)
    try:
        if gw.session_from_request(request):
            conn.authenticate()
        else:
            conn.send(frames.WAITING_FOR_SESSION)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                gw.on_text(conn, msg.data)
            elif msg.type is WSMsgType.BINARY:
                gw.on_text(conn, msg.data.decode("utf-8", "replace"))
            elif msg.type is WSMsgType.PING:
                if gw.pongs_enabled:
                    conn.send(msg.data, WSMsgType.PONG)
            elif msg.type is WSMsgType.ERROR:
                break
    except Exception:  # a broken peer must not take the server down
        log.debug("connection %d: receive loop ended with an error", conn.id, exc_info=True)
    finally:
        gw.close_connection(conn)
        log.debug("connection %d closed", conn.id)
    return ws


def build_app(gateway: Gateway) -> web.Application:
    app = web.Application(middlewares=[access_middleware], client_max_size=4 * 1024 * 1024)
    app[GATEWAY] = gateway
    app.router.add_get(WS_PATH, ws_handler)
    add_routes(app, trailing_slash=gateway.config.trailing_slash)
    return app
