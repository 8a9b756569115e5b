"""The fill ledger: exact FIFO realized PnL and the lots left open.

Conventions (docs/ledger.md has the worked examples):

- A fill's *book delta* is ``+qty`` for a buy and ``-qty`` for a sell, minus its fee when the
  fee is charged in the base currency: a buy of 1.0 with a 0.001 base fee adds a 0.999 lot at
  the fill price; a sell of 1.0 with a 0.001 base fee removes 1.001 from the book.
- Every fee is valued in quote at the fill (a base fee ``f`` is worth ``f * price``) and is
  charged to the realized PnL of the fill that paid it. Rebates are negative fees.
- Lots are queued per symbol in fill order; a fill against the position consumes the oldest
  lots first (a partly consumed lot keeps its price); the part of a fill that goes through
  zero opens a new lot on the other side at the fill price.
- Realized PnL of a closing piece: ``q * (p_close - p_lot)`` for a long lot and
  ``q * (p_lot - p_close)`` for a short lot.
- Cash flow is the quote that moved: ``+qty * price`` per sell, ``-qty * price`` per buy, minus
  fees paid in quote. Hence, from a flat book, exactly:
  ``realized + unrealized(mark) == cash_flow + inventory * mark``.

Exactness and speed: quantities and prices are turned into integers in per-symbol minor units
(the largest number of decimal places in the data), the FIFO matching runs as a vectorised
int64 computation on cumulative quantities (object integers when int64 could overflow), and
Decimal is only built for what is reported. No float touches money.

Metrics over a window and fixed-length PnL windows built on this FIFO are in
``domain.ledger_windows``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from stagectl.domain.types import Fill, Side, fee_in_base

IntArray = npt.NDArray[Any]

_INT64_SAFE = 2**62
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Lot:
    """An open lot: signed ``qty`` (+ long, - short) at ``price``, opened by ``trade_id``."""

    symbol: str
    qty: Decimal
    price: Decimal
    trade_id: str
    ts: datetime

    def opening_fill(self) -> Fill:
        """The fill that opens this lot on a flat book: a buy of a long lot's size at its
        price, a sell of a short lot's."""
        short = self.qty < 0
        return Fill(
            trade_id=self.trade_id,
            ts=self.ts,
            symbol=self.symbol,
            side=Side.SELL if short else Side.BUY,
            qty=self.qty.copy_abs(),
            price=self.price,
        )


@dataclass(frozen=True)
class FifoResult:
    """Per-fill realized PnL (input order, net of fees) and the lots left open.

    ``realized_units[i] * 10**-money_scale`` is fill i's realized PnL in quote, exactly.
    """

    realized_units: IntArray
    money_scale: int
    lots: Mapping[str, tuple[Lot, ...]] = field(default_factory=dict)

    def realized(self, index: int) -> Decimal:
        return Decimal(int(self.realized_units[index])).scaleb(-self.money_scale)

    def realized_pnl(self) -> list[Decimal]:
        return [Decimal(int(u)).scaleb(-self.money_scale) for u in self.realized_units]

    def total_realized(self, indices: Iterable[int] | None = None) -> Decimal:
        units = self.realized_units if indices is None else self.realized_units[list(indices)]
        return Decimal(int(sum(int(u) for u in units))).scaleb(-self.money_scale)

    def inventory(self, symbol: str) -> Decimal:
        return sum((lot.qty for lot in self.lots.get(symbol, ())), _ZERO)

    def unrealized(self, symbol: str, mark_price: Decimal) -> Decimal:
        """``sum(lot.qty * (mark - lot.price))`` over the symbol's open lots."""
        return sum((lot.qty * (mark_price - lot.price) for lot in self.lots.get(symbol, ())), _ZERO)


def decimal_places(value: Decimal) -> int:
    """The decimal places of ``value`` without its trailing zeros (0 for an integer, and for
    NaN or an infinity): ``max(0, -value.normalize().as_tuple().exponent)``, read from the
    normalized text, which is several times cheaper than building the digit tuple."""
    if not value.is_finite():
        return 0
    text = str(value.normalize())
    mantissa, scientific, exponent = text.partition("E")
    fraction = len(mantissa.partition(".")[2])
    return max(0, fraction - int(exponent)) if scientific else fraction


def scaled_units(values: Sequence[Decimal]) -> tuple[int, list[int]]:
    """``(places, units)``: the most decimal places among ``values`` (trailing zeros ignored)
    and every value as the exact integer ``value * 10**places``.

    Each distinct value is converted once (fills repeat prices and sizes), and the
    conversion is checked by converting back.
    """
    if not any(values):
        return 0, [0] * len(values)
    distinct = set(values)
    places = max(map(decimal_places, distinct))
    mapping: dict[Decimal, int] = {}
    for value in distinct:
        units = int(value.scaleb(places))
        if Decimal(units).scaleb(-places) != value:
            raise ValueError(f"{value} cannot be held exactly with {places} decimal places")
        mapping[value] = units
    return places, [mapping[v] for v in values]


@dataclass(frozen=True)
class FifoKernelResult:
    """Gross FIFO realized per fill (qty units x price units) and the open lots."""

    realized_gross: IntArray
    lot_fill_index: IntArray
    lot_qty: IntArray
    lot_price: IntArray


def fifo_kernel(delta: IntArray, price: IntArray) -> FifoKernelResult:
    """Vectorised FIFO on integer minor units for one symbol.

    Each fill's book delta splits into a closing part (towards zero, at most the position
    before it) and an opening part (the rest, on the side of the new position). Because the
    book returns to zero before it changes side, the opening pieces of all fills form one FIFO
    stream and the closing pieces consume it in order: the k-th closing piece takes the
    opening units in ``(X[k-1], X[k]]`` of the cumulative opened quantity ``Q``, and their
    signed cost is read from the cumulative signed cost ``C`` by linear interpolation inside
    the piece that holds the boundary (a partial lot). Realized of a closing piece of size q
    at price p closing a position of sign s: ``s*q*p - (C(X[k]) - C(X[k-1]))``.
    """
    n = len(delta)
    dtype = delta.dtype
    pos = np.cumsum(delta)
    prev = pos - delta
    abs_delta = np.abs(delta)
    reducing = (prev != 0) & (np.sign(delta) == -np.sign(prev))
    close_qty = np.where(reducing, np.minimum(abs_delta, np.abs(prev)), 0).astype(dtype)
    open_qty = (abs_delta - close_qty).astype(dtype)
    open_sign = np.sign(pos).astype(dtype)

    opening = np.flatnonzero(open_qty > 0)
    q_open = np.cumsum(open_qty[opening])
    signed_price = open_sign[opening] * price[opening]
    c_open = np.cumsum(open_qty[opening] * signed_price)

    realized = np.zeros(n, dtype=dtype)
    closing = np.flatnonzero(close_qty > 0)
    x_end = np.cumsum(close_qty)
    if len(closing):
        ends = x_end[closing]
        starts = ends - close_qty[closing]
        consumed = _cost_at(q_open, c_open, signed_price, ends) - _cost_at(
            q_open, c_open, signed_price, starts
        )
        side = np.sign(prev[closing]).astype(dtype)
        realized[closing] = side * close_qty[closing] * price[closing] - consumed

    closed_total = x_end[-1] if n else 0
    first = int(np.searchsorted(q_open, closed_total, side="right")) if len(q_open) else 0
    lot_index = opening[first:]
    remaining = open_qty[lot_index].copy()
    if len(remaining):
        remaining[0] = q_open[first] - closed_total
    return FifoKernelResult(
        realized_gross=realized,
        lot_fill_index=lot_index,
        lot_qty=remaining * open_sign[lot_index],
        lot_price=price[lot_index],
    )


def _cost_at(q_open: IntArray, c_open: IntArray, signed_price: IntArray, x: IntArray) -> IntArray:
    """Signed cost of the first ``x`` opened units: ``C[j] - (Q[j] - x) * s_j * p_j``."""
    j = np.searchsorted(q_open, x, side="left")
    result: IntArray = c_open[j] - (q_open[j] - x) * signed_price[j]
    return result


def fifo_realized(
    fills: Sequence[Fill], carried: Mapping[str, Sequence[Lot]] | None = None
) -> FifoResult:
    """FIFO realized PnL per fill (net of its fee, in quote) and the lots left open.

    Fills are booked in the order given (sort by ``ts`` first); symbols are independent.
    ``carried`` holds each symbol's lots open before the first of ``fills`` (oldest first,
    all on one side, as ``FifoResult.lots`` gives them): they are booked first, exactly as
    their opening fills would be (a long lot a buy of its size at its price, a short one a
    sell), without building those fills, and realize nothing themselves.
    """
    seeds = {symbol: lots for symbol, lots in (carried or {}).items() if lots}
    by_symbol = _group_by_symbol(fills)
    books = {}
    for symbol in sorted(set(by_symbol) | set(seeds)):
        idx = by_symbol.get(symbol)
        own = () if idx is None else fills if len(by_symbol) == 1 else [fills[i] for i in idx]
        books[symbol] = _book_symbol(symbol, own, seeds.get(symbol, ()))
    money_scale = max((book.money_scale for book in books.values()), default=0)
    scaled = {
        symbol: _rescale(book.realized_net, 10 ** (money_scale - book.money_scale))
        for symbol, book in books.items()
    }
    exact_int64 = all(arr.dtype == np.int64 for arr in scaled.values())
    realized: IntArray = np.zeros(len(fills), dtype=np.int64 if exact_int64 else object)
    for symbol, idx in by_symbol.items():
        realized[idx] = scaled[symbol]
    lots = {symbol: book.lots for symbol, book in books.items() if book.lots}
    return FifoResult(realized_units=realized, money_scale=money_scale, lots=lots)


def _group_by_symbol(fills: Sequence[Fill]) -> dict[str, IntArray]:
    """Positions of each symbol's fills, in input order."""
    symbols = list(map(attrgetter("symbol"), fills))
    distinct = sorted(set(symbols))
    if len(distinct) <= 1:
        return {symbol: np.arange(len(fills)) for symbol in distinct}
    code = {symbol: k for k, symbol in enumerate(distinct)}
    codes = np.array([code[s] for s in symbols])
    return {symbol: np.flatnonzero(codes == k) for symbol, k in code.items()}


def _rescale(units: IntArray, factor: int) -> IntArray:
    """``units * factor`` without int64 overflow (object integers when it would)."""
    if factor == 1:
        return units
    largest = int(np.abs(units).max(initial=0)) if units.dtype == np.int64 else _INT64_SAFE
    if largest * factor >= _INT64_SAFE:
        units = units.astype(object)
    result: IntArray = units * factor
    return result


@dataclass(frozen=True)
class _SymbolBook:
    realized_net: IntArray
    money_scale: int
    lots: tuple[Lot, ...]


def _book_symbol(symbol: str, sym_fills: Sequence[Fill], seed: Sequence[Lot]) -> _SymbolBook:
    """Scale one symbol's fills (after the open lots ``seed``) to integers, run the kernel,
    add fees and build the lots; ``realized_net`` is the fills' (the seed realizes nothing)."""
    n_seed = len(seed)
    qty_places, qty_u = scaled_units(
        [abs(lot.qty) for lot in seed] + list(map(attrgetter("qty"), sym_fills))
    )
    price_places, price_u = scaled_units(
        [lot.price for lot in seed] + list(map(attrgetter("price"), sym_fills))
    )
    buy = np.array([lot.qty > 0 for lot in seed] + [f.side == "buy" for f in sym_fills], dtype=bool)
    fill_base_fee, fill_quote_fee = _split_fees(symbol, sym_fills)
    base_places, base_fee_u = scaled_units([_ZERO] * n_seed + fill_base_fee)
    fee_places, quote_fee_u = scaled_units([_ZERO] * n_seed + fill_quote_fee)
    if base_places > qty_places:
        qty_u = [u * 10 ** (base_places - qty_places) for u in qty_u]
        qty_places = base_places
    base_fee_u = [u * 10 ** (qty_places - base_places) for u in base_fee_u]
    money_scale = max(qty_places + price_places, fee_places)
    gross_factor = 10 ** (money_scale - qty_places - price_places)
    fee_factor = 10 ** (money_scale - fee_places)
    bound = (sum(qty_u) + sum(map(abs, base_fee_u))) * max(price_u) * gross_factor
    bound += sum(map(abs, quote_fee_u)) * fee_factor
    dtype: Any = np.int64 if bound < _INT64_SAFE else object
    base_fee_arr = np.array(base_fee_u, dtype=dtype)
    price_arr = np.array(price_u, dtype=dtype)
    qty_arr = np.array(qty_u, dtype=dtype)
    delta = np.where(buy, qty_arr, -qty_arr) - base_fee_arr
    kernel = fifo_kernel(delta, price_arr)
    fees = base_fee_arr * price_arr * gross_factor + np.array(quote_fee_u, dtype=dtype) * fee_factor
    realized_net: IntArray = (kernel.realized_gross * gross_factor - fees)[n_seed:]
    lots = []
    for k, q in zip(kernel.lot_fill_index.tolist(), kernel.lot_qty.tolist(), strict=True):
        opened: Lot | Fill = seed[k] if k < n_seed else sym_fills[k - n_seed]
        qty = Decimal(int(q)).scaleb(-qty_places)
        lots.append(Lot(symbol, qty, opened.price, opened.trade_id, opened.ts))
    return _SymbolBook(realized_net=realized_net, money_scale=money_scale, lots=tuple(lots))


def _split_fees(symbol: str, fills: Sequence[Fill]) -> tuple[list[Decimal], list[Decimal]]:
    """Each fill's fee as (base fee, quote fee); one of the two is zero."""
    fees = list(map(attrgetter("fee"), fills))
    zeros = [_ZERO] * len(fills)
    if not any(fees):
        return zeros, zeros
    in_base = {
        cur: fee_in_base(symbol, cur, Decimal(1))
        for cur in {f.fee_currency for f in fills if f.fee}
    }
    base_fee, quote_fee = list(zeros), list(zeros)
    for i, fill in enumerate(fills):
        if fill.fee:
            (base_fee if in_base[fill.fee_currency] else quote_fee)[i] = fill.fee
    return base_fee, quote_fee
