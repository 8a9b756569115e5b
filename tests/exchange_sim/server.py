"""The loopback HTTP server: Binance USD-M REST routes over the simulated engine."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from tests.exchange_sim.engine import ZERO, Engine, SimError, _fmt

API_KEY = "sim-api-key-0123456789"
API_SECRET = "sim-api-secret-abcdefghijklmnopqrstuvwxyz"
READ_KEY = "sim-read-key-0123456789"
READ_SECRET = "sim-read-secret-abcdefghijklmnopqrstuvwxyz"

TRADING_KEY_RESTRICTIONS: dict[str, Any] = {
    "ipRestrict": True,
    "enableReading": True,
    "enableFutures": True,
    "enableSpotAndMarginTrading": False,
    "enableMargin": False,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "permitsUniversalTransfer": False,
}
"""What Binance's ``GET /sapi/v1/account/apiRestrictions`` tells of a well-kept live key:
futures trading, no withdrawals, IP allowlist on."""

READ_KEY_RESTRICTIONS: dict[str, Any] = {
    **TRADING_KEY_RESTRICTIONS,
    "enableFutures": False,
}
"""A read-only key: reading only."""

TRADE_ROUTES = frozenset(
    {
        ("POST", "/fapi/v1/order"),
        ("DELETE", "/fapi/v1/order"),
        ("DELETE", "/fapi/v1/allOpenOrders"),
        ("POST", "/fapi/v1/leverage"),
    }
)
"""Routes a key needs trading permission for (Binance answers -2015 otherwise)."""
KLINES_MAX = 1500
FUNDING_MAX = 1000


@dataclass
class Fault:
    """One injected failure, consumed by the next ``count`` matching requests."""

    kind: str  # latency | status | timeout | drop
    count: int = 1
    path: str | None = None
    method: str | None = None
    status: int = 503
    retry_after_s: int | None = None
    seconds: float = 0.0
    after_accept: bool = True

    def matches(self, method: str, path: str) -> bool:
        return (self.path is None or self.path == path) and (
            self.method is None or self.method == method
        )


@dataclass
class RequestRecord:
    method: str
    path: str
    params: dict[str, str]


@dataclass
class SimState:
    """What the handler threads share: the engine, faults, the request log, credentials."""

    engine: Engine
    keys: dict[str, tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: {
            API_KEY: (API_SECRET, dict(TRADING_KEY_RESTRICTIONS)),
            READ_KEY: (READ_SECRET, dict(READ_KEY_RESTRICTIONS)),
        }
    )
    """API key -> (secret, the restrictions the exchange reports for it)."""
    book_spread_bps: Decimal = Decimal(1)
    """The spread of the book ``/fapi/v1/depth`` shows around the mark."""
    faults: list[Fault] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    books: dict[str, tuple[list[list[str]], list[list[str]]]] = field(default_factory=dict)
    """Symbol -> (bids, asks) as ``[price, qty]`` strings, best first; ``/fapi/v1/depth``
    answers an empty book for a listed symbol without one."""
    commission: tuple[str, str] = ("0.000200", "0.000400")
    """(maker, taker) rates ``/fapi/v1/commissionRate`` reports."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None


Route = Callable[[SimState, dict[str, str]], Any]


class Handler(BaseHTTPRequestHandler):
    server_version = "exchange-sim/1"
    protocol_version = "HTTP/1.1"
    state: SimState  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the request log instead."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        path = split.path
        if path.startswith("/_sim/"):
            self._control(method, path, params)
            return
        with self.state.lock:
            self.state.requests.append(RequestRecord(method, path, params))
        fault = self.state.take_fault(method, path)
        if fault is not None and not self._apply_fault_before(fault):
            return
        try:
            status, payload = 200, self._dispatch(method, path, split.query, body, params)
        except SimError as error:
            status, payload = error.status, {"code": error.code, "msg": error.msg}
        if fault is not None and fault.kind == "timeout":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        self._send(status, payload)

    def _apply_fault_before(self, fault: Fault) -> bool:
        """Apply the part of a fault that comes before processing; False: request is over."""
        if fault.kind == "latency":
            time.sleep(fault.seconds)
        elif fault.kind == "status":
            headers = {}
            if fault.retry_after_s is not None:
                headers["Retry-After"] = str(fault.retry_after_s)
            if fault.status == 429:
                payload = {
                    "code": -1003,
                    "msg": "Too many requests; current limit is 2400 requests per minute.",
                }
            else:
                payload = {"code": -1001, "msg": "Service unavailable."}
            self._send(fault.status, payload, headers)
            return False
        elif fault.kind in ("timeout", "drop") and not fault.after_accept:
            if fault.kind == "timeout":
                time.sleep(fault.seconds)
                self._send(503, {"code": -1007, "msg": "Timeout waiting for response."})
            else:
                self._drop()
            return False
        return True

    def _drop(self) -> None:
        """Close the connection without answering: the client sees a network error."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(
        self, method: str, path: str, query: str, body: str, params: dict[str, str]
    ) -> Any:
        route = ROUTES.get((method, path))
        if route is None:
            raise SimError(-5000, f"Path {path}, Method {method} is invalid", 404)
        handler, signed = route
        if signed:
            restrictions = self._authenticate(query, body, params)
            if (method, path) in TRADE_ROUTES and not restrictions.get("enableFutures"):
                raise SimError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
            params = {**params, "_api_key": self.headers.get("X-MBX-APIKEY") or ""}
        with self.state.engine.lock:
            return handler(self.state, params)

    def _authenticate(self, query: str, body: str, params: dict[str, str]) -> dict[str, Any]:
        """Binance's check: a known key, then HMAC-SHA256(secret, query + body) = signature.
        Returns the key's restrictions."""
        known = self.state.keys.get(self.headers.get("X-MBX-APIKEY") or "")
        if known is None:
            raise SimError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        secret, restrictions = known
        signature = params.get("signature", "")
        payload = _strip_signature(query) + _strip_signature(body)
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest(), signature):
            raise SimError(-1022, "Signature for this request is not valid.")
        timestamp = int(params.get("timestamp") or 0)
        recv_window = int(params.get("recvWindow") or 5000)
        wall_ms = int(time.time() * 1000)
        if timestamp > wall_ms + 1000 or wall_ms - timestamp > recv_window:
            raise SimError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return restrictions

    def _control(self, method: str, path: str, params: dict[str, str]) -> None:
        """A small control API for manual use: state, advance, fault."""
        engine = self.state.engine
        if path == "/_sim/advance" and method == "POST":
            engine.advance(bars=int(params.get("bars", "1")), ms=int(params.get("ms", "0")))
        elif path == "/_sim/fault" and method == "POST":
            fault = Fault(
                kind=params["kind"],
                count=int(params.get("count", "1")),
                path=params.get("path"),
                method=params.get("method"),
                status=int(params.get("status", "503")),
                retry_after_s=int(params["retry_after"]) if "retry_after" in params else None,
                seconds=float(params.get("seconds", "0")),
                after_accept=params.get("after_accept", "true") == "true",
            )
            with self.state.lock:
                self.state.faults.append(fault)
        elif path != "/_sim/state":
            self._send(404, {"msg": "unknown control path"})
            return
        self._send(
            200,
            {"now_ms": engine.now_ms, "orders": len(engine.orders), "wallet": _fmt(engine.wallet)},
        )


def _strip_signature(text: str) -> str:
    parts = [p for p in text.split("&") if p and not p.startswith("signature=")]
    return "&".join(parts)


# --- routes ------------------------------------------------------------------------------


def _time(state: SimState, params: dict[str, str]) -> Any:
    return {"serverTime": state.engine.now_ms}


def _exchange_info(state: SimState, params: dict[str, str]) -> Any:
    engine = state.engine
    symbols = [
        {
            "symbol": m.symbol,
            "pair": m.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": m.base,
            "quoteAsset": m.quote,
            "marginAsset": m.quote,
            "pricePrecision": 2,
            "quantityPrecision": 3,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01",
                    "maxPrice": "1000000",
                    "tickSize": _fmt(m.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "stepSize": _fmt(m.step),
                    "maxQty": "10000",
                    "minQty": _fmt(m.step),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "stepSize": _fmt(m.step),
                    "maxQty": "10000",
                    "minQty": _fmt(m.step),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": _fmt(m.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": ["LIMIT", "MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        }
        for m in engine.markets.values()
    ]
    return {
        "timezone": "UTC",
        "serverTime": engine.now_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": symbols,
    }


def _klines(state: SimState, params: dict[str, str]) -> Any:
    """Bars opened at or before the clock; the current bar shows only its open (in progress)."""
    engine = state.engine
    market = engine.market(params.get("symbol"))
    if params.get("interval") != _interval(market.timeframe_ms):
        raise SimError(-1120, "Invalid interval.")
    limit = min(int(params.get("limit") or 500), KLINES_MAX)
    start = int(params.get("startTime") or 0)
    end = min(int(params.get("endTime") or engine.now_ms), engine.now_ms)
    mask = (market.open_ms >= start) & (market.open_ms <= end)
    rows = np.flatnonzero(mask)
    rows = rows[:limit] if "startTime" in params else rows[-limit:]
    current = market.bar_index(engine.now_ms)
    out = []
    for row in rows:
        o, h, low, c = (_fmt(market.price(int(row), k)) for k in range(4))
        v = _fmt(Decimal(repr(float(market.ohlcv[row, 4]))))
        if row == current:
            h, low, c, v = o, o, o, "0"
        open_ms = int(market.open_ms[row])
        out.append(
            [open_ms, o, h, low, c, v, open_ms + market.timeframe_ms - 1, "0", 0, "0", "0", "0"]
        )
    return out


def _interval(timeframe_ms: int) -> str:
    minutes = timeframe_ms // 60_000
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _funding_rate(state: SimState, params: dict[str, str]) -> Any:
    engine = state.engine
    market = engine.market(params.get("symbol"))
    limit = min(int(params.get("limit") or 100), FUNDING_MAX)
    start = int(params.get("startTime") or 0)
    end = min(int(params.get("endTime") or engine.now_ms), engine.now_ms)
    rows = np.flatnonzero((market.funding_ms >= start) & (market.funding_ms <= end))
    rows = rows[:limit] if "startTime" in params else rows[-limit:]
    return [
        {
            "symbol": market.symbol,
            "fundingTime": int(market.funding_ms[r]),
            "fundingRate": _fmt(Decimal(repr(float(market.funding_rate[r])))),
            "markPrice": "",
        }
        for r in rows
    ]


def _premium_index(state: SimState, params: dict[str, str]) -> Any:
    engine = state.engine

    def one(symbol: str) -> dict[str, Any]:
        market = engine.market(symbol)
        past = np.flatnonzero(market.funding_ms <= engine.now_ms)
        rate = _fmt(Decimal(repr(float(market.funding_rate[past[-1]])))) if past.size else "0"
        mark = _fmt(engine.mark(symbol))
        next_ms = (engine.now_ms // 28_800_000 + 1) * 28_800_000
        return {
            "symbol": symbol,
            "markPrice": mark,
            "indexPrice": mark,
            "estimatedSettlePrice": mark,
            "lastFundingRate": rate,
            "interestRate": "0.00010000",
            "nextFundingTime": next_ms,
            "time": engine.now_ms,
        }

    if params.get("symbol"):
        return one(params["symbol"])
    return [one(s) for s in engine.markets]


def _order_post(state: SimState, params: dict[str, str]) -> Any:
    return state.engine.place(params).to_json()


def _order_get(state: SimState, params: dict[str, str]) -> Any:
    engine = state.engine
    return engine.find(engine.market(params.get("symbol")).symbol, params).to_json()


def _order_delete(state: SimState, params: dict[str, str]) -> Any:
    engine = state.engine
    return engine.cancel(engine.market(params.get("symbol")).symbol, params).to_json()


def _open_orders(state: SimState, params: dict[str, str]) -> Any:
    symbol = params.get("symbol")
    if symbol:
        state.engine.market(symbol)
    return [
        o.to_json() for o in state.engine.orders if o.is_open and (not symbol or o.symbol == symbol)
    ]


def _cancel_all(state: SimState, params: dict[str, str]) -> Any:
    state.engine.cancel_all(state.engine.market(params.get("symbol")).symbol)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def _position_risk(state: SimState, params: dict[str, str]) -> Any:
    engine = state.engine
    out = []
    for symbol, position in engine.positions.items():
        if params.get("symbol") and params["symbol"] != symbol:
            continue
        mark = engine.mark(symbol)
        notional = position.amount * mark
        margin = abs(notional) / position.leverage
        out.append(
            {
                "symbol": symbol,
                "positionSide": "BOTH",
                "positionAmt": _fmt(position.amount),
                "entryPrice": _fmt(position.entry_price),
                "breakEvenPrice": _fmt(position.entry_price),
                "markPrice": _fmt(mark),
                "unRealizedProfit": _fmt((mark - position.entry_price) * position.amount),
                "liquidationPrice": "0",
                "isolatedMargin": "0",
                "notional": _fmt(notional),
                "marginAsset": "USDT",
                "isolatedWallet": "0",
                "initialMargin": _fmt(margin),
                "maintMargin": _fmt(abs(notional) * Decimal("0.004")),
                "positionInitialMargin": _fmt(margin),
                "openOrderInitialMargin": "0",
                "adl": 0,
                "bidNotional": "0",
                "askNotional": "0",
                "updateTime": engine.now_ms,
            }
        )
    return out


def _account(state: SimState, params: dict[str, str]) -> Any:
    engine = state.engine
    unrealized = engine.unrealized()
    margin = engine.initial_margin()
    available = engine.available_balance()
    wallet = engine.wallet
    asset = {
        "asset": "USDT",
        "walletBalance": _fmt(wallet),
        "unrealizedProfit": _fmt(unrealized),
        "marginBalance": _fmt(wallet + unrealized),
        "maintMargin": "0",
        "initialMargin": _fmt(margin),
        "positionInitialMargin": _fmt(margin),
        "openOrderInitialMargin": "0",
        "crossWalletBalance": _fmt(wallet),
        "crossUnPnl": _fmt(unrealized),
        "availableBalance": _fmt(available),
        "maxWithdrawAmount": _fmt(available),
        "updateTime": engine.now_ms,
    }
    return {
        "totalInitialMargin": _fmt(margin),
        "totalMaintMargin": "0",
        "totalWalletBalance": _fmt(wallet),
        "totalUnrealizedProfit": _fmt(unrealized),
        "totalMarginBalance": _fmt(wallet + unrealized),
        "totalPositionInitialMargin": _fmt(margin),
        "totalOpenOrderInitialMargin": "0",
        "totalCrossWalletBalance": _fmt(wallet),
        "totalCrossUnPnl": _fmt(unrealized),
        "availableBalance": _fmt(available),
        "maxWithdrawAmount": _fmt(available),
        "assets": [asset],
        "positions": [
            {
                "symbol": r["symbol"],
                "positionSide": "BOTH",
                "positionAmt": r["positionAmt"],
                "unrealizedProfit": r["unRealizedProfit"],
                "isolatedMargin": "0",
                "notional": r["notional"],
                "isolatedWallet": "0",
                "initialMargin": r["initialMargin"],
                "maintMargin": r["maintMargin"],
                "updateTime": engine.now_ms,
            }
            for r in _position_risk(state, {})
        ],
    }


def _user_trades(state: SimState, params: dict[str, str]) -> Any:
    symbol = state.engine.market(params.get("symbol")).symbol
    start = int(params.get("startTime") or 0)
    end = int(params.get("endTime") or 2**62)
    from_id = int(params.get("fromId") or 0)
    limit = min(int(params.get("limit") or 500), 1000)
    trades = [
        t
        for t in state.engine.trades
        if t.symbol == symbol and start <= t.time_ms <= end and t.trade_id >= from_id
    ]
    return [t.to_json() for t in trades[:limit]]


def _income(state: SimState, params: dict[str, str]) -> Any:
    start = int(params.get("startTime") or 0)
    end = int(params.get("endTime") or 2**62)
    kind = params.get("incomeType")
    limit = min(int(params.get("limit") or 100), 1000)
    rows = [
        i
        for i in state.engine.income
        if start <= i.time_ms <= end
        and (not kind or i.income_type == kind)
        and (not params.get("symbol") or i.symbol == params["symbol"])
    ]
    return [i.to_json() for i in rows[:limit]]


def _leverage(state: SimState, params: dict[str, str]) -> Any:
    symbol = state.engine.market(params.get("symbol")).symbol
    leverage = int(params.get("leverage") or 0)
    if not 1 <= leverage <= 125:
        raise SimError(-4028, "Leverage is not valid")
    state.engine.position(symbol).leverage = leverage
    return {"leverage": leverage, "maxNotionalValue": "1000000", "symbol": symbol}


def _leverage_bracket(state: SimState, params: dict[str, str]) -> Any:
    return [
        {
            "symbol": s,
            "brackets": [
                {
                    "bracket": 1,
                    "initialLeverage": 125,
                    "notionalCap": 1000000,
                    "notionalFloor": 0,
                    "maintMarginRatio": 0.004,
                    "cum": 0,
                }
            ],
        }
        for s in state.engine.markets
    ]


def _api_restrictions(state: SimState, params: dict[str, str]) -> Any:
    _, restrictions = state.keys[params["_api_key"]]
    return {"createTime": 1_700_000_000_000, **restrictions}


def _depth(state: SimState, params: dict[str, str]) -> Any:
    """The book :meth:`ExchangeSim.set_book` set for the symbol; without one, a one-level
    book around the mark, ``book_spread_bps`` wide (rounded to the tick)."""
    engine = state.engine
    market = engine.market(params.get("symbol"))
    limit = int(params.get("limit") or 500)
    now = engine.now_ms
    with state.lock:
        book = state.books.get(market.symbol)
    if book is None:
        mark = engine.mark(market.symbol)
        half = mark * state.book_spread_bps / Decimal(20_000)
        bid, ask = market.round_tick(mark - half), market.round_tick(mark + half)
        book = ([[_fmt(bid), "1000"]], [[_fmt(ask), "1000"]])
    bids, asks = book
    return {"lastUpdateId": now, "E": now, "T": now, "bids": bids[:limit], "asks": asks[:limit]}


def _commission_rate(state: SimState, params: dict[str, str]) -> Any:
    market = state.engine.market(params.get("symbol"))
    maker, taker = state.commission
    return {"symbol": market.symbol, "makerCommissionRate": maker, "takerCommissionRate": taker}


def _empty_list(state: SimState, params: dict[str, str]) -> Any:
    return []


ROUTES: dict[tuple[str, str], tuple[Route, bool]] = {
    ("GET", "/fapi/v1/ping"): (lambda s, p: {}, False),
    ("GET", "/fapi/v1/time"): (_time, False),
    ("GET", "/fapi/v1/exchangeInfo"): (_exchange_info, False),
    ("GET", "/fapi/v1/klines"): (_klines, False),
    ("GET", "/fapi/v1/fundingRate"): (_funding_rate, False),
    ("GET", "/fapi/v1/premiumIndex"): (_premium_index, False),
    ("GET", "/fapi/v1/depth"): (_depth, False),
    ("GET", "/fapi/v1/commissionRate"): (_commission_rate, True),
    ("POST", "/fapi/v1/order"): (_order_post, True),
    ("GET", "/fapi/v1/order"): (_order_get, True),
    ("DELETE", "/fapi/v1/order"): (_order_delete, True),
    ("GET", "/fapi/v1/openOrders"): (_open_orders, True),
    ("DELETE", "/fapi/v1/allOpenOrders"): (_cancel_all, True),
    ("GET", "/fapi/v2/positionRisk"): (_position_risk, True),
    ("GET", "/fapi/v3/positionRisk"): (_position_risk, True),
    ("GET", "/fapi/v2/account"): (_account, True),
    ("GET", "/fapi/v3/account"): (_account, True),
    ("GET", "/fapi/v1/userTrades"): (_user_trades, True),
    ("GET", "/fapi/v1/income"): (_income, True),
    ("POST", "/fapi/v1/leverage"): (_leverage, True),
    ("GET", "/fapi/v1/leverageBracket"): (_leverage_bracket, True),
    ("GET", "/sapi/v1/capital/config/getall"): (_empty_list, True),
    ("GET", "/sapi/v1/account/apiRestrictions"): (_api_restrictions, True),
}

__all__ = [
    "API_KEY",
    "API_SECRET",
    "READ_KEY",
    "READ_SECRET",
    "ROUTES",
    "ZERO",
    "Fault",
    "Handler",
    "SimState",
    "ThreadingHTTPServer",
]
