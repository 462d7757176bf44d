"""Builders for the unsolicited frames (system, act, sts, tic, errors) and the session/auth
payloads shared by the socket and REST sides. Shapes follow the live captures (§1.3, §3.9-§3.15)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rxibkr.sim.config import SimConfig, derive_hex, derive_int

SERVER_VERSION = "Build 10.45.1a, Apr 22, 2026 1:39:05 PM"

WAITING_FOR_SESSION: dict[str, Any] = {"message": "waiting for session"}
TOPIC_UNKNOWN: dict[str, Any] = {"error": "Topic unknown", "code": 1}


@dataclass(frozen=True)
class Identity:
    """Everything about the simulated login that frames and REST answers repeat."""

    session_id: str
    username: str
    account: str
    is_paper: bool
    server_name: str
    user_id: int
    mac: str

    @classmethod
    def from_config(cls, config: SimConfig) -> Identity:
        seed = config.seed
        mac_hex = derive_hex(seed, "mac", 10)
        mac = "02:" + ":".join(mac_hex[i : i + 2] for i in range(0, 10, 2)).upper()
        return cls(
            session_id=config.resolved_session_id(),
            username=config.username,
            account=config.account,
            is_paper=config.is_paper,
            server_name=f"SimZ{derive_int(seed, 'server', 10000, 99999)}",
            user_id=derive_int(seed, "user", 100_000_000, 199_999_999),
            mac=mac,
        )

    @property
    def hardware_info(self) -> str:
        return f"{derive_hex(0, self.mac, 8)}|{self.mac}"

    @property
    def server_info(self) -> dict[str, str]:
        return {"serverName": self.server_name, "serverVersion": SERVER_VERSION}

    def internal_session_id(self, connection_id: int) -> str:
        """The gateway-internal id shown in ``act`` (like ``69f03732.00000af0``), not the tickle session."""
        return f"{derive_hex(0, self.session_id, 8)}.{connection_id:08x}"


def system_success(ident: Identity) -> dict[str, Any]:
    return {"topic": "system", "success": ident.username, "isFT": False, "isPaper": ident.is_paper}


def heartbeat(ms: int) -> dict[str, Any]:
    return {"topic": "system", "hb": ms}


def accounts_payload(ident: Identity, session_internal_id: str) -> dict[str, Any]:
    """``act`` args, and the body of REST ``/iserver/accounts`` (they are the same object live)."""
    acct = ident.account
    return {
        "accounts": [acct],
        "acctProps": {
            acct: {
                "hasChildAccounts": False,
                "supportsCashQty": True,
                "liteUnderPro": False,
                "noFXConv": False,
                "isProp": False,
                "supportsFractions": True,
                "allowCustomerTime": False,
                "autoFx": False,
            }
        },
        "aliases": {acct: acct},
        "allowFeatures": {
            "showGFIS": True,
            "showEUCostReport": False,
            "allowEventContract": True,
            "allowFXConv": True,
            "allowFinancialLens": False,
            "allowMTA": True,
            "allowTypeAhead": True,
            "allowEventTrading": True,
            "snapshotRefreshTimeout": 30,
            "liteUser": False,
            "showWebNews": True,
            "research": True,
            "debugPnl": True,
            "showTaxOpt": True,
            "showImpactDashboard": True,
            "allowDynAccount": False,
            "allowCrypto": False,
            "allowFA": False,
            "allowLiteUnderPro": False,
            "allowedAssetTypes": "STK,CFD,OPT,FOP,WAR,FUT,BAG,PDC,CASH,IND,BOND,BILL,FUND,SLB,News,CMDTY,"
            "IOPT,ICU,ICS,PHYSS,CRYPTO",
            "restrictTradeSubscription": False,
            "showUkUserLabels": False,
            "sideBySide": True,
        },
        "chartPeriods": {
            "STK": ["*"],
            "CFD": ["*"],
            "OPT": ["2h", "1d", "2d", "1w", "1m"],
            "FOP": ["2h", "1d", "2d", "1w", "1m"],
            "WAR": ["*"],
            "IOPT": ["*"],
            "FUT": ["*"],
            "CASH": ["*"],
            "IND": ["*"],
            "BOND": ["*"],
            "FUND": ["*"],
            "CMDTY": ["*"],
            "PHYSS": ["*"],
            "CRYPTO": ["*"],
        },
        "groups": [],
        "profiles": [],
        "selectedAccount": acct,
        "serverInfo": ident.server_info,
        "sessionId": session_internal_id,
        "isFT": False,
        "isPaper": ident.is_paper,
    }


def act(ident: Identity, session_internal_id: str) -> dict[str, Any]:
    return {"topic": "act", "args": accounts_payload(ident, session_internal_id)}


def sts_args(
    ident: Identity,
    *,
    authenticated: bool,
    competing: bool,
    connected: bool = True,
    message: str = "",
    fail: str = "",
) -> dict[str, Any]:
    return {
        "connected": connected,
        "authenticated": authenticated,
        "established": authenticated,
        "competing": competing,
        "message": message,
        "fail": fail,
        "serverName": ident.server_name,
        "serverVersion": SERVER_VERSION,
        "username": ident.username,
    }


def sts(ident: Identity, *, authenticated: bool, competing: bool, message: str = "") -> dict[str, Any]:
    return {
        "topic": "sts",
        "args": sts_args(ident, authenticated=authenticated, competing=competing, message=message),
    }


def tic(ident: Identity, last_accessed_ms: int) -> dict[str, Any]:
    return {"topic": "tic", "alive": True, "id": ident.session_id, "lastAccessed": last_accessed_ms}


def error(message: str, code: int, topic: str | None = None) -> dict[str, Any]:
    """An error frame; with a topic it looks like ``{"error":"No accounts","code":500,"topic":"smd"}``."""
    frame: dict[str, Any] = {"error": message, "code": code}
    if topic is not None:
        frame["topic"] = topic
    return frame


def auth_status(
    ident: Identity, *, authenticated: bool, competing: bool, connected: bool = True, message: str = ""
) -> dict[str, Any]:
    """REST ``/iserver/auth/status`` body."""
    return {
        "authenticated": authenticated,
        "established": authenticated,
        "competing": competing,
        "connected": connected,
        "message": message,
        "MAC": ident.mac,
        "serverInfo": ident.server_info,
        "hardware_info": ident.hardware_info,
        "fail": "",
    }


def tickle(ident: Identity, *, authenticated: bool, competing: bool, sso_expires_ms: int) -> dict[str, Any]:
    """REST ``/tickle`` body."""
    status = auth_status(ident, authenticated=authenticated, competing=competing)
    status.pop("fail")
    return {
        "session": ident.session_id,
        "ssoExpires": sso_expires_ms,
        "collission": False,
        "userId": ident.user_id,
        "hmds": {"error": "no bridge"},
        "iserver": {"authStatus": status},
    }
