"""The paper broker: the Broker protocol over simulated fills on real bars (docs/run-live.md).

Fill rules (one bar = open, high, low, close of one candle; the broker's clock is the
simulated time, moved by :meth:`PaperBroker.process_bar`):

- MARKET: fills in full at the next bar's open, moved ``slippage_bps`` against us
  (``open * (1 + s)`` for a buy, ``open * (1 - s)`` for a sell); taker fee.
- LIMIT placed at a bar open: marketable at that open (buy: ``open <= P``) fills at
  ``min(P, open * (1 + s))`` (sell: ``max``) as taker; otherwise it rests, and a resting
  limit fills at ``P`` as maker in the first later bar whose range reaches it (buy:
  ``low <= P``). IOC fills at arrival or expires; GTC rests until filled or canceled.
- STOP_LIMIT (type ``stop_limit``, released at ``stop_price``): a sell stop triggers when
  a bar trades at or below the stop (``low <= stop``), a buy stop at or above (``high >=
  stop``). Triggered inside
  the bar it fills at ``max(limit, stop * (1 - s))`` (buy: ``min(limit, stop * (1 + s))``)
  as taker; when the bar *opens* through the stop it fills at the open the same way if
  the open is within the limit, else it becomes a resting limit.
- Reduce-only: an order that would increase the position is rejected when placed; at
  fill time a reduce-only fill is cut to the position, and expires when flat.
- Fees: ``qty * price * fee_bps / 1e4``; funding on :meth:`settle_funding`:
  ``qty * mark * rate`` paid by longs when the rate is positive (received by shorts).
- The open alone (:meth:`PaperBroker.process_open`): what the first seconds of a bar can
  fill, i.e. market orders and limits marketable at the open, at the prices above;
  nothing else moves until :meth:`PaperBroker.process_bar` runs the whole bar. The loop
  uses it as the paper market of a rebalance's limit timeout (docs/run-live.md).
- A slice of a routed parent (``Order.parent_id``, a market order) is worked through the
  bar where the bar's 1m bars are given to :meth:`PaperBroker.process_bar`: an equal clip
  at each minute's open, moved ``slippage_bps`` against us, filled at their average (taker);
  without 1m bars it fills at the bar's open like any market order.
- Fills are whole (no partial fills). Trade ids are ``<client order id>-<n>``, so a
  replayed fill is the same ledger row.

The book (cash, positions, open orders, counters) and every order, fill and funding
record live in a :class:`PaperStore` (``stagectl.state.paper_book`` keeps them in the
paper state database), written through on every change, so a restart resumes the book.
Cash is ``initial + realized - fees - funding``; equity is cash plus unrealized PnL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from stagectl.domain.types import (
    Balance,
    Fill,
    FundingPayment,
    KeyPermissions,
    Liquidity,
    Mark,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from stagectl.exchange.errors import OrderNotFound, OrderRejected

_BPS = Decimal(10_000)
_ZERO = Decimal(0)
_MONEY_STEP = Decimal("1E-10")
ORDER, FILL, FUNDING = "order", "fill", "funding"

Record = tuple[str, str, str, datetime, dict[str, Any]]
"""(kind, record id, symbol, ts, body): one order, fill or funding record."""


class PaperStore(Protocol):
    """Where the paper book lives; every ``commit`` is atomic."""

    def load_book(self) -> dict[str, Any] | None: ...

    def get_record(self, kind: str, record_id: str) -> dict[str, Any] | None: ...

    def records_since(
        self, kind: str, since: datetime, symbol: str | None = None
    ) -> list[dict[str, Any]]: ...

    def commit(self, book: dict[str, Any], records: Iterable[Record], now: datetime) -> None: ...


@dataclass(frozen=True)
class Bar:
    """One candle: ``ts`` is its open time, ``close_ts`` the instant it closes."""

    ts: datetime
    close_ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


class PaperBroker:
    """A simulated USD-M account; conventions in the module docstring."""

    name = "paper"
    order_latency_ms = 0.0
    post_only = False

    def __init__(
        self,
        store: PaperStore,
        *,
        initial_balance: Decimal,
        taker_fee_bps: Decimal,
        maker_fee_bps: Decimal,
        slippage_bps: Decimal,
        start: datetime,
        currency: str = "USDT",
        margin_leverage: Decimal = Decimal(1),
    ) -> None:
        self.store = store
        self.taker_fee = taker_fee_bps / _BPS
        self.maker_fee = maker_fee_bps / _BPS
        self.slippage = slippage_bps / _BPS
        self.margin_leverage = margin_leverage
        book = store.load_book()
        self.resumed = book is not None
        self.book: dict[str, Any] = book or {
            "currency": currency,
            "initial": str(initial_balance),
            "cash": str(initial_balance),
            "clock": start.isoformat(),
            "next_order": 1,
            "positions": {},
            "open": [],
            "funded_until": {},
        }

    # --- book helpers ----------------------------------------------------------------

    @property
    def cash(self) -> Decimal:
        return Decimal(self.book["cash"])

    @property
    def initial_balance(self) -> Decimal:
        return Decimal(self.book["initial"])

    @property
    def clock(self) -> datetime:
        return datetime.fromisoformat(self.book["clock"])

    def _position(self, symbol: str) -> tuple[Decimal, Decimal, Decimal | None]:
        row = self.book["positions"].get(symbol)
        if row is None:
            return _ZERO, _ZERO, None
        mark = row.get("mark")
        return Decimal(row["qty"]), Decimal(row["entry"]), None if mark is None else Decimal(mark)

    def position_qty(self, symbol: str) -> Decimal:
        return self._position(symbol)[0]

    def equity(self) -> Decimal:
        """Cash plus the unrealized PnL of every position at its last mark."""
        return self.cash + sum((self._unrealized(s) for s in self.book["positions"]), _ZERO)

    def _unrealized(self, symbol: str) -> Decimal:
        qty, entry, mark = self._position(symbol)
        return _ZERO if mark is None or qty == 0 else qty * (mark - entry)

    def _order(self, client_order_id: str) -> dict[str, Any] | None:
        return self.store.get_record(ORDER, client_order_id)

    def _commit(self, records: list[Record]) -> None:
        """Write the book through; when the write fails (a locked database), the book is
        reloaded as the store has it, so a retried call starts from what was recorded."""
        try:
            self.store.commit(self.book, records, self.clock)
        except BaseException:
            self.book = self.store.load_book() or self.book
            raise

    # --- the Broker protocol ---------------------------------------------------------

    def server_time(self) -> datetime:
        return self.clock

    def book_top(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        return None  # bars have no book

    def key_permissions(self) -> KeyPermissions | None:
        return None  # no key

    def order_type_refusal(self, order_type: OrderType) -> str | None:
        return None  # market, limit and stop-limit are all simulated

    def balances(self) -> list[Balance]:
        used = sum(
            (abs(q) * (m or e) for q, e, m in map(self._position, self.book["positions"])),
            _ZERO,
        )
        used /= self.margin_leverage
        cash = self.cash
        return [Balance(self.book["currency"], cash - used, used, cash)]

    def positions(self) -> list[Position]:
        out = []
        for symbol in sorted(self.book["positions"]):
            qty, entry, mark = self._position(symbol)
            if qty != 0:
                out.append(Position(symbol, qty, entry, mark, self._unrealized(symbol), Decimal(1)))
        return out

    def marks(self, symbols: Sequence[str]) -> dict[str, Mark]:
        """The last bar close each symbol was marked at, stamped with the broker's clock."""
        out = {}
        for symbol in symbols:
            row = self.book["positions"].get(symbol)
            if row is not None and row.get("mark") is not None:
                out[symbol] = Mark(symbol, Decimal(row["mark"]), self.clock)
        return out

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        found = []
        for cid in self.book["open"]:
            order = self._order(cid)
            if order is not None and (symbol is None or order["symbol"] == symbol):
                found.append(_as_order(order))
        return found

    def place(self, order: Order) -> Order:
        """Place a market, limit or stop-limit order (``stop_price``: the trigger)."""
        return self._place(order)

    def fetch_order(self, symbol: str, *, client_order_id: str) -> Order | None:
        order = self._order(client_order_id)
        return None if order is None or order["symbol"] != symbol else _as_order(order)

    def cancel(self, symbol: str, *, client_order_id: str) -> Order:
        order = self._order(client_order_id)
        if order is None or order["symbol"] != symbol:
            raise OrderNotFound(f"paper cancel order: no order {client_order_id} on {symbol}")
        if order["status"] == "open":
            order = self._close(order, "canceled")
            self._commit([_order_record(order)])
        return _as_order(order)

    def cancel_all(self, symbol: str) -> None:
        records = []
        for cid in list(self.book["open"]):
            order = self._order(cid)
            if order is not None and order["symbol"] == symbol:
                records.append(_order_record(self._close(order, "canceled")))
        if records:
            self._commit(records)

    def fills_since(self, symbol: str, since: datetime) -> list[Fill]:
        return [_fill(body) for body in self.store.records_since(FILL, since, symbol)]

    def funding_since(self, since: datetime, symbol: str | None = None) -> list[FundingPayment]:
        return [_funding(body) for body in self.store.records_since(FUNDING, since, symbol)]

    # --- the simulated market --------------------------------------------------------

    def process_bar(self, symbol: str, bar: Bar, fine: Sequence[Bar] = ()) -> list[Fill]:
        """Run one bar of ``symbol`` through the open orders; mark at the close. A slice of
        a routed parent is worked through ``fine`` (the bar's 1m bars) where given."""
        records: list[Record] = []
        fills: list[Fill] = []
        for cid in list(self.book["open"]):
            order = self._order(cid)
            if order is None or order["symbol"] != symbol:
                continue
            price: Decimal | None
            if order.get("slice") and fine and order["type"] == "market":
                price, maker = _through(order, fine, self.slippage), False
            else:
                price, maker = _match(order, bar, self.slippage)
            if price is not None:
                fill = self._fill_order(order, price, maker, bar.ts, records)
                if fill is not None:
                    fills.append(fill)
            elif order["type"] == "limit" and order["tif"] == "IOC":
                records.append(_order_record(self._close(order, "expired")))
            else:
                order["rested"] = True
                records.append(_order_record(order))
        qty, entry, _ = self._position(symbol)
        if symbol in self.book["positions"] or qty != 0:
            self.book["positions"][symbol] = {"qty": str(qty), "entry": str(entry)}
            self.book["positions"][symbol]["mark"] = str(bar.close)
        self.book["clock"] = max(self.clock, bar.close_ts).isoformat()
        self._commit(records)
        return fills

    def process_open(self, symbol: str, bar: Bar) -> list[Fill]:
        """Run only the open of ``bar``: market orders, and limits placed at this open that
        are marketable there, fill as :meth:`process_bar` would fill them; resting limits,
        stops, the mark and the clock wait for :meth:`process_bar`. Safe to redo."""
        records: list[Record] = []
        fills: list[Fill] = []
        for cid in list(self.book["open"]):
            order = self._order(cid)
            if order is None or order["symbol"] != symbol or order["type"] == "stop_limit":
                continue
            price = None if order["rested"] else _at_open(order, bar, self.slippage)
            if price is not None:
                fill = self._fill_order(order, price, False, bar.ts, records)
                if fill is not None:
                    fills.append(fill)
        if records:
            self._commit(records)
        return fills

    def settle_funding(self, symbol: str, ts: datetime, rate: Decimal) -> FundingPayment | None:
        """Charge one funding settlement at ``ts`` on the position held at that instant."""
        done = self.book["funded_until"].get(symbol)
        if done is not None and datetime.fromisoformat(done) >= ts:
            return None
        self.book["funded_until"][symbol] = ts.isoformat()
        qty, entry, mark = self._position(symbol)
        if qty == 0:
            self._commit([])
            return None
        paid = (qty * (mark or entry) * rate).quantize(_MONEY_STEP)
        self.book["cash"] = str(self.cash - paid)
        body = {
            "symbol": symbol,
            "payment_id": f"{symbol}:{ts.isoformat()}",
            "amount": str(-paid),
            "currency": self.book["currency"],
            "ts": ts.isoformat(),
            "rate": str(rate),
            "position_qty": str(qty),
        }
        self._commit([(FUNDING, body["payment_id"], symbol, ts, body)])
        return _funding(body)

    # --- internals -------------------------------------------------------------------

    def _place(self, request: Order) -> Order:
        cid = request.client_order_id
        if self._order(cid) is not None:
            raise OrderRejected(f"paper create order: duplicate client order id {cid}")
        priced = request.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        if request.qty <= 0 or (priced and not request.price):
            raise OrderRejected(f"paper create order: {cid} needs a positive amount and price")
        if request.type == OrderType.STOP_LIMIT and not request.stop_price:
            raise OrderRejected(f"paper create order: stop-limit {cid} needs a stop price")
        qty = self.position_qty(request.symbol)
        if request.reduce_only and (qty == 0 or (qty > 0) == (request.side == Side.BUY)):
            raise OrderRejected(
                f"paper create order: reduce-only {cid} would increase the position ({qty})"
            )
        order: dict[str, Any] = {
            "symbol": request.symbol,
            "order_id": f"paper-{self.book['next_order']}",
            "client_order_id": cid,
            "status": "open",
            "side": request.side.value,
            "type": request.type.value,
            "tif": (request.time_in_force or TimeInForce.GTC).value,
            "amount": str(request.qty),
            "filled": "0",
            "price": None if request.price is None or not priced else str(request.price),
            "stop_price": None if request.stop_price is None else str(request.stop_price),
            "average": None,
            "reduce_only": request.reduce_only,
            "ts": self.clock.isoformat(),
            "rested": False,
            "triggered": False,
            "fills": 0,
            "slice": request.parent_id is not None,
        }
        self.book["next_order"] += 1
        self.book["open"].append(cid)
        self._commit([_order_record(order)])
        return _as_order(order)

    def _close(self, order: dict[str, Any], status: str) -> dict[str, Any]:
        order["status"] = status
        if order["client_order_id"] in self.book["open"]:
            self.book["open"].remove(order["client_order_id"])
        return order

    def _fill_order(
        self,
        order: dict[str, Any],
        price: Decimal,
        maker: bool,
        ts: datetime,
        records: list[Record],
    ) -> Fill | None:
        symbol, side = order["symbol"], order["side"]
        qty = Decimal(order["amount"]) - Decimal(order["filled"])
        position = self.position_qty(symbol)
        if order["reduce_only"]:
            if position == 0 or (position > 0) == (side == "buy"):
                records.append(_order_record(self._close(order, "expired")))
                return None
            qty = min(qty, abs(position))
        fee = (qty * price * (self.maker_fee if maker else self.taker_fee)).quantize(_MONEY_STEP)
        self._book_fill(symbol, qty if side == "buy" else -qty, price, fee)
        order["fills"] += 1
        order["filled"] = str(Decimal(order["filled"]) + qty)
        order["average"] = str(price)
        self._close(order, "closed")
        trade_id = f"{order['client_order_id']}-{order['fills']}"
        body = {
            "symbol": symbol,
            "trade_id": trade_id,
            "order_id": order["order_id"],
            "client_order_id": order["client_order_id"],
            "side": side,
            "price": str(price),
            "amount": str(qty),
            "fee": str(fee),
            "fee_currency": self.book["currency"],
            "maker": maker,
            "ts": ts.isoformat(),
        }
        records.extend([_order_record(order), (FILL, trade_id, symbol, ts, body)])
        return _fill(body)

    def _book_fill(self, symbol: str, delta: Decimal, price: Decimal, fee: Decimal) -> None:
        """Average-cost position update; realized PnL and the fee go to cash."""
        qty, entry, mark = self._position(symbol)
        realized = _ZERO
        after = qty + delta
        if qty == 0 or (qty > 0) == (delta > 0):
            entry = (qty * entry + delta * price) / after
        else:
            closed = min(abs(delta), abs(qty))
            realized = closed * (price - entry) * (1 if qty > 0 else -1)
            if after == 0:
                entry = _ZERO
            elif (after > 0) != (qty > 0):
                entry = price
        self.book["cash"] = str(self.cash + realized - fee)
        row = {"qty": str(after), "entry": str(entry)}
        row["mark"] = str(mark if mark is not None else price)
        self.book["positions"][symbol] = row


def _at_open(order: dict[str, Any], bar: Bar, slip: Decimal) -> Decimal | None:
    """The taker fill price at ``bar``'s open of a market order or of a limit (not resting)
    marketable there; None for a limit that is not."""
    buy = order["side"] == "buy"
    moved = bar.open * (1 + slip) if buy else bar.open * (1 - slip)
    if order["type"] == "market":
        return moved
    limit = Decimal(order["price"])
    if (bar.open <= limit) if buy else (bar.open >= limit):
        return min(limit, moved) if buy else max(limit, moved)
    return None


def _through(order: dict[str, Any], fine: Sequence[Bar], slip: Decimal) -> Decimal:
    """A market slice worked through the bar: an equal clip at each 1m bar's open, moved
    ``slip`` against us; the fill is at the clips' average price."""
    total = sum((bar.open for bar in fine), _ZERO)
    mean = total / len(fine)
    return mean * (1 + slip) if order["side"] == "buy" else mean * (1 - slip)


def _match(order: dict[str, Any], bar: Bar, slip: Decimal) -> tuple[Decimal | None, bool]:
    """The fill price of ``order`` in ``bar`` (None: no fill) and whether it is maker."""
    buy = order["side"] == "buy"
    if order["type"] == "market":
        return _at_open(order, bar, slip), False
    limit = Decimal(order["price"])
    if order["type"] == "stop_limit" and not order["triggered"]:
        stop = Decimal(order["stop_price"])
        through_open = bar.open >= stop if buy else bar.open <= stop
        reached = bar.high >= stop if buy else bar.low <= stop
        if not reached:
            return None, False
        order["triggered"] = True
        touch = bar.open if through_open else stop
        if (touch <= limit) if buy else (touch >= limit):
            moved = touch * (1 + slip) if buy else touch * (1 - slip)
            return (min(limit, moved) if buy else max(limit, moved)), False
        order["rested"] = True
    if not order["rested"]:
        price = _at_open(order, bar, slip)
        if price is not None:
            return price, False
        if order["tif"] == "IOC":
            return None, False
    if (bar.low <= limit) if buy else (bar.high >= limit):
        return limit, True
    return None, False


def _order_record(order: dict[str, Any]) -> Record:
    ts = datetime.fromisoformat(order["ts"])
    return (ORDER, order["client_order_id"], order["symbol"], ts, dict(order))


_STATUS = {"closed": OrderStatus.FILLED}


def _as_order(order: dict[str, Any]) -> Order:
    price, average, stop = order.get("price"), order.get("average"), order.get("stop_price")
    filled = Decimal(order["filled"])
    status = _STATUS.get(order["status"]) or OrderStatus(order["status"])
    if status == OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    kind = OrderType(order["type"])
    return Order(
        client_order_id=order["client_order_id"],
        symbol=order["symbol"],
        side=Side(order["side"]),
        type=kind,
        qty=Decimal(order["amount"]),
        created_at=datetime.fromisoformat(order["ts"]),
        status=status,
        price=None if price is None else Decimal(price),
        stop_price=None if stop is None else Decimal(stop),
        time_in_force=None if kind == OrderType.MARKET else TimeInForce(order["tif"]),
        reduce_only=bool(order["reduce_only"]),
        exchange_order_id=order["order_id"],
        filled_qty=filled,
        average_price=None if average is None else Decimal(average),
    )


def _fill(body: dict[str, Any]) -> Fill:
    return Fill(
        trade_id=body["trade_id"],
        ts=datetime.fromisoformat(body["ts"]),
        symbol=body["symbol"],
        side=Side(body["side"]),
        qty=Decimal(body["amount"]),
        price=Decimal(body["price"]),
        fee=Decimal(body["fee"]),
        fee_currency=body["fee_currency"],
        liquidity=Liquidity.MAKER if body["maker"] else Liquidity.TAKER,
        order_id=body["order_id"],
        client_order_id=body.get("client_order_id"),
    )


def _funding(body: dict[str, Any]) -> FundingPayment:
    return FundingPayment(
        symbol=body["symbol"],
        ts=datetime.fromisoformat(body["ts"]),
        amount=Decimal(body["amount"]),
        payment_id=body["payment_id"],
        currency=body["currency"],
        rate=Decimal(body["rate"]) if body.get("rate") is not None else None,
        position_qty=Decimal(body["position_qty"]) if body.get("position_qty") else None,
    )
