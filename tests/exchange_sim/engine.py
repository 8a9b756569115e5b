"""The simulated venue behind the loopback server: markets, a clock, orders, fills, funding.

Money is Decimal. Matching rules (documented in docs/exchange.md):

- the clock is simulated (``now_ms``) and moves only when the test calls ``advance``;
- the current bar is the one whose open time is the latest at or before ``now_ms``;
- a MARKET order fills at the current bar's open, moved against the taker by
  ``slippage_bps`` (buy higher, sell lower), rounded to the tick;
- a LIMIT order that is marketable at the current open fills at once at the open
  (taker); otherwise it rests and fills at its price on a later bar that trades
  through it (buy: low < price; sell: high > price) as maker;
- reduce-only orders that would open or grow a position are rejected (-2022);
- a new client order id equal to one of an open order is rejected (-4116): like
  Binance, uniqueness is only enforced among open orders;
- funding is settled at every 8h funding time the clock passes, from the real
  funding series: a long pays ``amount * mark * rate`` when the rate is positive.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

ZERO = Decimal(0)
BPS = Decimal(10_000)
FUNDING_INTERVAL_MS = 8 * 3_600_000


class SimError(Exception):
    """A Binance-style error response: ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


@dataclass
class SimMarket:
    """One USD-M perpetual: candles (bar open times in ms) and the funding series."""

    symbol: str
    base: str
    quote: str
    open_ms: np.ndarray
    ohlcv: np.ndarray  # rows: open, high, low, close, volume
    timeframe_ms: int
    funding_ms: np.ndarray
    funding_rate: np.ndarray
    tick: Decimal = Decimal("0.01")
    step: Decimal = Decimal("0.001")
    min_notional: Decimal = Decimal("5")

    @classmethod
    def from_frames(
        cls, symbol: str, candles: pd.DataFrame, funding: pd.Series | None = None
    ) -> SimMarket:
        index = pd.DatetimeIndex(candles.index)
        open_ms = (index.as_unit("ms").asi8).astype(np.int64)
        timeframe_ms = int(np.min(np.diff(open_ms))) if len(open_ms) > 1 else 3_600_000
        cols = ["open", "high", "low", "close", "volume"]
        ohlcv = candles[cols].to_numpy(dtype=np.float64)
        if funding is None or funding.empty:
            funding_ms = np.zeros(0, dtype=np.int64)
            rates = np.zeros(0)
        else:
            funding_ms = pd.DatetimeIndex(funding.index).as_unit("ms").asi8.astype(np.int64)
            rates = funding.to_numpy(dtype=np.float64)
        quote = "USDT" if symbol.endswith("USDT") else symbol[-4:]
        return cls(
            symbol, symbol[: -len(quote)], quote, open_ms, ohlcv, timeframe_ms, funding_ms, rates
        )

    def bar_index(self, now_ms: int) -> int:
        index = int(np.searchsorted(self.open_ms, now_ms, side="right")) - 1
        if index < 0:
            raise SimError(-1000, f"no market data for {self.symbol} at {now_ms}", 500)
        return index

    def price(self, row: int, column: int) -> Decimal:
        return self.round_tick(_dec(self.ohlcv[row, column]))

    def round_tick(self, price: Decimal) -> Decimal:
        return (price / self.tick).quantize(Decimal(1), ROUND_HALF_UP) * self.tick


@dataclass
class SimOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    orig_qty: Decimal
    price: Decimal
    time_in_force: str
    reduce_only: bool
    time_ms: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    update_ms: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    def to_json(self) -> dict[str, Any]:
        avg = self.cum_quote / self.executed_qty if self.executed_qty else ZERO
        return {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status,
            "clientOrderId": self.client_order_id,
            "price": _fmt(self.price),
            "avgPrice": _fmt(avg),
            "origQty": _fmt(self.orig_qty),
            "executedQty": _fmt(self.executed_qty),
            "cumQty": _fmt(self.executed_qty),
            "cumQuote": _fmt(self.cum_quote),
            "timeInForce": self.time_in_force,
            "type": self.type,
            "origType": self.type,
            "reduceOnly": self.reduce_only,
            "closePosition": False,
            "side": self.side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "time": self.time_ms,
            "updateTime": self.update_ms or self.time_ms,
        }


@dataclass
class SimTrade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    realized_pnl: Decimal
    maker: bool
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "buyer": self.side == "BUY",
            "commission": _fmt(self.commission),
            "commissionAsset": "USDT",
            "id": self.trade_id,
            "maker": self.maker,
            "orderId": self.order_id,
            "price": _fmt(self.price),
            "qty": _fmt(self.qty),
            "quoteQty": _fmt(self.price * self.qty),
            "realizedPnl": _fmt(self.realized_pnl),
            "side": self.side,
            "positionSide": "BOTH",
            "symbol": self.symbol,
            "time": self.time_ms,
        }


@dataclass
class SimPosition:
    amount: Decimal = ZERO  # signed: > 0 long
    entry_price: Decimal = ZERO
    leverage: int = 5


@dataclass
class SimIncome:
    tran_id: int
    symbol: str
    income_type: str
    income: Decimal
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "incomeType": self.income_type,
            "income": _fmt(self.income),
            "asset": "USDT",
            "info": "",
            "time": self.time_ms,
            "tranId": self.tran_id,
            "tradeId": "",
        }


@dataclass
class Engine:
    """The venue's state; every public method holds the lock (the server is threaded)."""

    markets: dict[str, SimMarket]
    now_ms: int
    wallet: Decimal = Decimal("10000")
    taker_fee_bps: Decimal = Decimal("5")
    maker_fee_bps: Decimal = Decimal("2")
    slippage_bps: Decimal = Decimal("0")
    orders: list[SimOrder] = field(default_factory=list)
    trades: list[SimTrade] = field(default_factory=list)
    income: list[SimIncome] = field(default_factory=list)
    positions: dict[str, SimPosition] = field(default_factory=dict)
    partial_fill_ratios: list[Decimal] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _next_id: int = 1000

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def market(self, symbol: str | None) -> SimMarket:
        if not symbol or symbol not in self.markets:
            raise SimError(-1121, "Invalid symbol.")
        return self.markets[symbol]

    def position(self, symbol: str) -> SimPosition:
        return self.positions.setdefault(symbol, SimPosition())

    def mark(self, symbol: str) -> Decimal:
        market = self.market(symbol)
        return market.price(market.bar_index(self.now_ms), 0)

    # --- the clock ----------------------------------------------------------------------

    def advance(self, *, bars: int = 0, ms: int = 0) -> int:
        """Move the clock; bars are the first market's bars. Settle what the clock passes."""
        with self.lock:
            step = ms + bars * next(iter(self.markets.values())).timeframe_ms
            target = self.now_ms + step
            for market in self.markets.values():
                self._settle(market, self.now_ms, target)
            self.now_ms = target
            return self.now_ms

    def _settle(self, market: SimMarket, start_ms: int, end_ms: int) -> None:
        """Fill resting orders on every bar opened in (start, end]; pay funding."""
        first = int(np.searchsorted(market.open_ms, start_ms, side="right"))
        last = int(np.searchsorted(market.open_ms, end_ms, side="right"))
        for row in range(first, last):
            bar_ms = int(market.open_ms[row])
            self._pay_funding(market, bar_ms, row)
            for order in [o for o in self.orders if o.symbol == market.symbol and o.is_open]:
                self._fill_resting(market, order, row, bar_ms)

    def _pay_funding(self, market: SimMarket, bar_ms: int, row: int) -> None:
        hit = np.flatnonzero(market.funding_ms == bar_ms)
        position = self.positions.get(market.symbol)
        if hit.size == 0 or position is None or position.amount == 0:
            return
        rate = _dec(market.funding_rate[int(hit[0])])
        payment = -(position.amount * market.price(row, 0) * rate).quantize(Decimal("1e-8"))
        self.wallet += payment
        self.income.append(SimIncome(self._id(), market.symbol, "FUNDING_FEE", payment, bar_ms))

    def _fill_resting(self, market: SimMarket, order: SimOrder, row: int, bar_ms: int) -> None:
        if order.type == "MARKET":
            self._fill(order, market.price(row, 0), order.remaining, maker=False, at_ms=bar_ms)
            return
        low, high = _dec(market.ohlcv[row, 2]), _dec(market.ohlcv[row, 1])
        crossed = low < order.price if order.side == "BUY" else high > order.price
        if crossed:
            self._fill(order, order.price, order.remaining, maker=True, at_ms=bar_ms)

    # --- orders -------------------------------------------------------------------------

    def place(self, params: dict[str, str]) -> SimOrder:
        with self.lock:
            order = self._new_order(params)
            self._check_margin_and_reduce_only(order)
            self.orders.append(order)
            self._fill_on_arrival(order)
            return order

    def _new_order(self, params: dict[str, str]) -> SimOrder:
        market = self.market(params.get("symbol"))
        side = _required(params, "side").upper()
        order_type = _required(params, "type").upper()
        if side not in ("BUY", "SELL") or order_type not in ("MARKET", "LIMIT"):
            raise SimError(-1116, "Invalid orderType.")
        qty = _decimal_param(params, "quantity")
        if qty <= 0 or qty % market.step:
            raise SimError(-1111, "Precision is over the maximum defined for this asset.")
        price = _decimal_param(params, "price") if order_type == "LIMIT" else ZERO
        if order_type == "LIMIT" and (price <= 0 or price % market.tick):
            raise SimError(-1111, "Precision is over the maximum defined for this asset.")
        client_id = params.get("newClientOrderId") or f"sim-{self._next_id + 1}"
        if len(client_id) > 36 or not all(c.isalnum() or c in ".:/_-" for c in client_id):
            raise SimError(-4015, "Client order id is not valid.")
        if any(o.client_order_id == client_id and o.is_open for o in self.orders):
            raise SimError(-4116, "ClientOrderId is duplicated.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        reference = price if order_type == "LIMIT" else self.mark(market.symbol)
        if not reduce_only and qty * reference < market.min_notional:
            raise SimError(
                -4164,
                f"Order's notional must be no smaller than {market.min_notional} "
                "(unless you choose reduce only).",
            )
        tif = params.get("timeInForce", "GTC") if order_type == "LIMIT" else "GTC"
        return SimOrder(
            self._id(),
            client_id,
            market.symbol,
            side,
            order_type,
            qty,
            price,
            tif,
            reduce_only,
            self.now_ms,
        )

    def _check_margin_and_reduce_only(self, order: SimOrder) -> None:
        position = self.position(order.symbol)
        signed = order.orig_qty if order.side == "BUY" else -order.orig_qty
        if order.reduce_only and (
            position.amount == 0
            or (position.amount > 0) == (signed > 0)
            or abs(signed) > abs(position.amount)
        ):
            raise SimError(-2022, "ReduceOnly Order is rejected.")
        if order.reduce_only:
            return
        price = order.price or self.mark(order.symbol)
        needed = order.orig_qty * price / position.leverage
        if needed > self.available_balance():
            raise SimError(-2019, "Margin is insufficient.")

    def _fill_on_arrival(self, order: SimOrder) -> None:
        market = self.market(order.symbol)
        open_price = market.price(market.bar_index(self.now_ms), 0)
        if order.type == "MARKET":
            slip = open_price * self.slippage_bps / BPS
            price = market.round_tick(
                open_price + slip if order.side == "BUY" else open_price - slip
            )
        elif (order.side == "BUY" and order.price >= open_price) or (
            order.side == "SELL" and order.price <= open_price
        ):
            if order.time_in_force == "GTX":  # post-only: would take, so it expires
                order.status = "EXPIRED"
                return
            price = open_price
        else:
            return
        qty = order.orig_qty
        if self.partial_fill_ratios:
            ratio = self.partial_fill_ratios.pop(0)
            qty = max(market.step, (qty * ratio // market.step) * market.step)
        self._fill(order, price, qty, maker=False, at_ms=self.now_ms)

    def _fill(
        self, order: SimOrder, price: Decimal, qty: Decimal, *, maker: bool, at_ms: int
    ) -> None:
        fee_bps = self.maker_fee_bps if maker else self.taker_fee_bps
        commission = (price * qty * fee_bps / BPS).quantize(Decimal("1e-8"))
        realized = self._apply_to_position(order.symbol, order.side, qty, price)
        self.wallet += realized - commission
        order.executed_qty += qty
        order.cum_quote += price * qty
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        order.update_ms = at_ms
        self.trades.append(
            SimTrade(
                self._id(),
                order.order_id,
                order.symbol,
                order.side,
                price,
                qty,
                commission,
                realized,
                maker,
                at_ms,
            )
        )

    def _apply_to_position(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """Update the one-way position; return the realized PnL of the part that closes."""
        position = self.position(symbol)
        signed = qty if side == "BUY" else -qty
        realized = ZERO
        if position.amount == 0 or (position.amount > 0) == (signed > 0):
            total = position.amount + signed
            position.entry_price = (
                position.entry_price * abs(position.amount) + price * qty
            ) / abs(total)
            position.amount = total
            return realized
        closing = min(qty, abs(position.amount))
        direction = 1 if position.amount > 0 else -1
        realized = (price - position.entry_price) * closing * direction
        position.amount += signed
        if position.amount == 0:
            position.entry_price = ZERO
        elif (position.amount > 0) != (direction > 0):
            position.entry_price = price
        return realized

    def find(self, symbol: str, params: dict[str, str]) -> SimOrder:
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        if not order_id and not client_id:
            raise SimError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        matches = [
            o
            for o in self.orders
            if o.symbol == symbol
            and (str(o.order_id) == order_id if order_id else o.client_order_id == client_id)
        ]
        if not matches:
            raise SimError(-2013, "Order does not exist.")
        return matches[-1]

    def cancel(self, symbol: str, params: dict[str, str]) -> SimOrder:
        with self.lock:
            try:
                order = self.find(symbol, params)
            except SimError as error:
                raise SimError(-2011, "Unknown order sent.") from error
            if not order.is_open:
                raise SimError(-2011, "Unknown order sent.")
            order.status = "CANCELED"
            order.update_ms = self.now_ms
            return order

    def cancel_all(self, symbol: str) -> None:
        with self.lock:
            for order in self.orders:
                if order.symbol == symbol and order.is_open:
                    order.status = "CANCELED"
                    order.update_ms = self.now_ms

    # --- account ------------------------------------------------------------------------

    def unrealized(self) -> Decimal:
        return sum(
            (
                (self.mark(s) - p.entry_price) * p.amount
                for s, p in self.positions.items()
                if p.amount
            ),
            ZERO,
        )

    def initial_margin(self) -> Decimal:
        return sum(
            (abs(p.amount) * self.mark(s) / p.leverage for s, p in self.positions.items()), ZERO
        )

    def available_balance(self) -> Decimal:
        return self.wallet + self.unrealized() - self.initial_margin()


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise SimError(
            -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def _decimal_param(params: dict[str, str], name: str) -> Decimal:
    try:
        return Decimal(_required(params, name))
    except ArithmeticError as error:
        raise SimError(-1102, f"Mandatory parameter '{name}' was malformed.") from error
