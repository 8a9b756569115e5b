"""A loopback Binance USD-M futures simulator for testing stagectl through real ccxt.

It serves, on 127.0.0.1 (port 0: the OS picks a free one), the REST endpoints
ccxt 4.5's ``binanceusdm`` calls:

- load_markets: ``GET /fapi/v1/exchangeInfo`` (and ``GET /sapi/v1/capital/config/getall``
  when ``fetchCurrencies`` is left on with credentials; stubbed as ``[]``);
- fetch_time ``/fapi/v1/time``; fetch_ohlcv ``/fapi/v1/klines``; funding
  ``/fapi/v1/premiumIndex`` and ``/fapi/v1/fundingRate``; fetch_order_book
  ``/fapi/v1/depth`` (the book :meth:`ExchangeSim.set_book` sets, else one level
  ``SimState.book_spread_bps`` around the mark) and fetch_trading_fee
  ``/fapi/v1/commissionRate`` (the rates :meth:`ExchangeSim.set_commission` sets);
- create/fetch/cancel order ``POST/GET/DELETE /fapi/v1/order`` (``newClientOrderId``,
  ``origClientOrderId``); ``/fapi/v1/openOrders``; ``DELETE /fapi/v1/allOpenOrders``;
- fetch_positions ``/fapi/v3/positionRisk`` (plus ``/fapi/v1/leverageBracket``, which
  ccxt loads first); fetch_balance ``/fapi/v3/account``; fetch_my_trades
  ``/fapi/v1/userTrades``; funding payments ``/fapi/v1/income``; set_leverage
  ``POST /fapi/v1/leverage``. The v2 positionRisk/account paths answer too.
- the key's permissions ``GET /sapi/v1/account/apiRestrictions`` (Binance's "API key
  restrictions"): two keys are known, ``API_KEY`` (futures trading, no withdrawals, IP
  allowlist on) and ``READ_KEY`` (reading only; order routes answer -2015 for it), and
  :meth:`ExchangeSim.set_key_restrictions` changes what either reports.

Signed endpoints check ``X-MBX-APIKEY`` (-2015) and the HMAC-SHA256 ``signature`` over
the query string plus body (-1022), and the ``timestamp``/``recvWindow`` against the
wall clock (-1021), as Binance does. Orders match against real candles (the bundled
sample through ``stagectl.data.load_candles`` by default); the rules are in
``tests.exchange_sim.engine``.

Pointing ccxt at it: replace the host of every ``urls['api']`` entry, keeping the
path, e.g. ``"https://fapi.binance.com/fapi/v1"`` -> ``"http://127.0.0.1:PORT/fapi/v1"``.
``stagectl.exchange.ccxt_broker.make_exchange(..., base_url=sim.base_url)`` does exactly
that (and ``stagectl data fetch --base-url URL``). By hand::

    exchange = ccxt.binanceusdm({"apiKey": API_KEY, "secret": API_SECRET,
                                 "options": {"fetchCurrencies": False}})
    for name, url in exchange.urls["api"].items():
        path = urllib.parse.urlsplit(url).path
        exchange.urls["api"][name] = sim.base_url + path

Faults (``ExchangeSim`` methods, or ``POST /_sim/fault`` with the same fields):
latency, an HTTP status (429 with ``Retry-After``, 5xx), a timeout (sleep past the
client's timeout, after or before accepting the request), a dropped connection (after
or before accepting), and partial fills. ``POST /_sim/advance?bars=N`` moves the clock.

Manual use: ``python -m tests.exchange_sim [--port 8765] [--start 2024-01-03T00:00Z]``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any

import pandas as pd

from tests.exchange_sim.engine import Engine, SimMarket, SimOrder
from tests.exchange_sim.server import (
    API_KEY,
    API_SECRET,
    READ_KEY,
    READ_SECRET,
    Fault,
    Handler,
    RequestRecord,
    SimState,
)

__all__ = [
    "API_KEY",
    "API_SECRET",
    "READ_KEY",
    "READ_SECRET",
    "ExchangeSim",
    "SimOrder",
    "running_sim",
]

DEFAULT_START = "2024-01-03T00:00:00Z"


class ExchangeSim:
    """A running simulator: the base URL, the engine, faults and the request log."""

    def __init__(
        self,
        *,
        candles: dict[str, pd.DataFrame] | None = None,
        funding: dict[str, pd.Series] | None = None,
        start: str | pd.Timestamp = DEFAULT_START,
        wallet_usdt: Decimal = Decimal("10000"),
        slippage_bps: Decimal = Decimal("0"),
        port: int = 0,
    ) -> None:
        if candles is None:
            from stagectl.data import load_candles, load_funding

            candles = {"ETHUSDT": load_candles("ETHUSDT")}
            funding = {"ETHUSDT": load_funding("ETHUSDT")}
        funding = funding or {}
        markets = {
            symbol: SimMarket.from_frames(symbol, frame, funding.get(symbol))
            for symbol, frame in candles.items()
        }
        start_ms = int(pd.Timestamp(start).value // 1_000_000)
        self.engine = Engine(markets, start_ms, wallet=wallet_usdt, slippage_bps=slippage_bps)
        self.state = SimState(self.engine)
        handler = type("SimHandler", (Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> ExchangeSim:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- the clock and the book ---------------------------------------------------------

    def advance(self, *, bars: int = 0, ms: int = 0) -> int:
        return self.engine.advance(bars=bars, ms=ms)

    def reset(self, *, now: datetime, wallet_usdt: Decimal = Decimal("10000")) -> None:
        """A fresh account on the running server: no orders, trades, income, positions,
        pending partial fills, faults or logged requests; the wallet refilled; the clock at
        ``now``. Tests share one server per module (the candles load once) and reset it.
        """
        engine = self.engine
        with engine.lock:
            engine.orders.clear()
            engine.trades.clear()
            engine.income.clear()
            engine.positions.clear()
            engine.partial_fill_ratios.clear()
            engine.wallet = wallet_usdt
            engine.now_ms = int(now.timestamp() * 1000)
        with self.state.lock:
            self.state.faults.clear()
            self.state.requests.clear()

    @property
    def orders(self) -> list[SimOrder]:
        with self.engine.lock:
            return list(self.engine.orders)

    def requests(self, path: str | None = None, method: str | None = None) -> list[RequestRecord]:
        with self.state.lock:
            return [
                r
                for r in self.state.requests
                if (path is None or r.path == path) and (method is None or r.method == method)
            ]

    def set_key_restrictions(self, api_key: str, **restrictions: Any) -> None:
        """Change what ``apiRestrictions`` reports for ``api_key`` (e.g.
        ``enableWithdrawals=True``, ``ipRestrict=False``)."""
        with self.state.lock:
            secret, current = self.state.keys[api_key]
            self.state.keys[api_key] = (secret, {**current, **restrictions})

    def set_book(
        self, symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
    ) -> None:
        """The order book ``/fapi/v1/depth`` serves: ``(price, qty)`` levels, best first."""
        with self.state.lock:
            self.state.books[symbol] = ([list(b) for b in bids], [list(a) for a in asks])

    def set_commission(self, *, maker: str, taker: str) -> None:
        """The account's fee rates ``/fapi/v1/commissionRate`` reports (fractions)."""
        with self.state.lock:
            self.state.commission = (maker, taker)

    # --- faults -------------------------------------------------------------------------

    def _add(self, **fields: Any) -> None:
        with self.state.lock:
            self.state.faults.append(Fault(**fields))

    def inject_latency(
        self, seconds: float, *, count: int = 1, path: str | None = None, method: str | None = None
    ) -> None:
        self._add(kind="latency", seconds=seconds, count=count, path=path, method=method)

    def inject_status(
        self,
        status: int,
        *,
        retry_after_s: int | None = None,
        count: int = 1,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (429, 418, 5xx)."""
        self._add(
            kind="status",
            status=status,
            retry_after_s=retry_after_s,
            count=count,
            path=path,
            method=method,
        )

    def inject_timeout(
        self,
        seconds: float,
        *,
        after_accept: bool = True,
        count: int = 1,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Sleep ``seconds`` (past the client's timeout) after or before processing."""
        self._add(
            kind="timeout",
            seconds=seconds,
            after_accept=after_accept,
            count=count,
            path=path,
            method=method,
        )

    def inject_drop(
        self,
        *,
        after_accept: bool = True,
        count: int = 1,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Close the connection without an answer, after (or before) processing the request."""
        self._add(kind="drop", after_accept=after_accept, count=count, path=path, method=method)

    def inject_partial_fill(self, ratio: Decimal, *, count: int = 1) -> None:
        """The next ``count`` fills on arrival fill only ``ratio`` of the quantity."""
        with self.engine.lock:
            self.engine.partial_fill_ratios.extend([Decimal(ratio)] * count)


@contextmanager
def running_sim(**options: Any) -> Iterator[ExchangeSim]:
    """Start a simulator on a free loopback port and stop it afterwards."""
    sim = ExchangeSim(**options).start()
    try:
        yield sim
    finally:
        sim.stop()
