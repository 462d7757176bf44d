"""REST under /v1/api: session, auth status, accounts, search, unknown routes."""

from __future__ import annotations

from rxibkr.sim import GatewaySimulator

from .support import Frame, Rest


def test_tickle_get_and_post(any_sim: GatewaySimulator, golden: dict[str, Frame]) -> None:
    rest = Rest(any_sim)
    live = golden["tickle-live"]
    for method in ("GET", "POST"):
        body = rest.json(method, "/tickle")
        assert list(body) == list(live)
        assert body["session"] == any_sim.session_id and body["collission"] is False
        assert isinstance(body["userId"], int) and isinstance(body["ssoExpires"], int)
        status = body["iserver"]["authStatus"]
        assert set(status) == set(live["iserver"]["authStatus"])
        assert {"authenticated", "competing", "connected", "message", "MAC", "serverInfo"} <= set(status)
        assert status["authenticated"] is True and status["competing"] is False


def test_auth_status_and_reauthenticate(sim: GatewaySimulator, rest: Rest, golden: dict[str, Frame]) -> None:
    for method in ("GET", "POST"):
        body = rest.json(method, "/iserver/auth/status")
        assert list(body) == list(golden["auth-status-live"])
        assert body["authenticated"] is True and body["fail"] == ""
    assert rest.json("POST", "/iserver/reauthenticate") == {"message": "triggered"}


def test_accounts(sim: GatewaySimulator, rest: Rest, golden: dict[str, Frame]) -> None:
    body = rest.json("GET", "/iserver/accounts")
    assert list(body) == list(golden["act-live"]["args"])
    assert body["accounts"] == [sim.account] and body["selectedAccount"] == sim.account
    accounts = rest.json("GET", "/portfolio/accounts")
    assert isinstance(accounts, list) and accounts[0]["accountId"] == sim.account == accounts[0]["id"]
    assert {"currency", "type", "desc", "accountTitle", "displayName"} <= set(accounts[0])


def test_sso_validate(sim: GatewaySimulator, rest: Rest) -> None:
    for method in ("GET", "POST"):
        body = rest.json(method, "/sso/validate")
        assert body["RESULT"] is True and body["USER_NAME"] == "simuser"


def test_secdef_search(sim: GatewaySimulator, rest: Rest, golden: dict[str, Frame]) -> None:
    live = golden["secdef-search-live"][0]
    for body in (
        rest.json("GET", "/iserver/secdef/search", symbol="AAPL"),
        rest.json("POST", "/iserver/secdef/search", {"symbol": "AAPL"}),
    ):
        assert body[0]["conid"] == "265598" and body[0]["symbol"] == "AAPL"
        assert set(body[0]) == set(live)
    assert rest.json("GET", "/iserver/secdef/search", symbol="ZZZZZZ") == []
    assert (
        rest.json("POST", "/iserver/secdef/search", {"symbol": "micro", "name": True})[0]["symbol"] == "MSFT"
    )
    assert rest.call("GET", "/iserver/secdef/search").status == 400


def test_unknown_routes_are_json_404(sim: GatewaySimulator, rest: Rest) -> None:
    for path in ("/nope", "/iserver/nothing/here", "/../../etc"):
        resp = rest.call("GET", path)
        assert resp.status == 404 and resp.headers["Content-Type"].startswith("application/json")
        assert "error" in resp.json()
    wrong_method = rest.call("DELETE", "/tickle")
    assert wrong_method.status == 405 and "error" in wrong_method.json()
    plain_get = rest.call("GET", "/ws")  # the socket path without an upgrade
    assert plain_get.status == 400


def test_malformed_json_body(sim: GatewaySimulator, rest: Rest) -> None:
    resp = rest.http.request(
        "POST",
        sim.rest_url + f"/iserver/account/{sim.account}/orders",
        body=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 400 and "error" in resp.json()
