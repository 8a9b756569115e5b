"""The FIFO book of one account kept fill by fill, for a loop that cannot re-read history.

:func:`stagectl.domain.ledger.fifo_realized` books a whole history at once (vectorised,
for a million imported fills). A trading loop instead learns a few fills per bar and
needs, after each bar, the realized PnL so far and the open lots at the marks: this
book carries exactly that, so a bar costs the same on day 1 and on day 365.

Conventions are ``domain.ledger``'s, and the two agree exactly (a property test feeds
both the same fills): a fill's book delta is its signed quantity minus a fee charged in
the base asset; a fill against the position consumes the oldest lots first; the part
that goes through zero opens a lot at the fill price. ``add`` returns the *gross*
realized PnL of the fill (before its fee), in quote:
``q * (p_close - p_lot)`` per closed long piece, ``q * (p_lot - p_close)`` per short one;
its fee in quote (:func:`fill_fee_quote`) is the rest of ``fifo_realized``'s net figure.
All arithmetic is Decimal: exact, and cheap at a few fills per bar.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from stagectl.domain.ledger import Lot
from stagectl.domain.types import Fill, fee_in_base

_ZERO = Decimal(0)


def fill_book_delta(fill: Fill) -> Decimal:
    """The position change of a fill: signed quantity minus a base-currency fee."""
    base_fee = fill.fee if fee_in_base(fill.symbol, fill.fee_currency, fill.fee) else _ZERO
    return fill.signed_qty - base_fee


def fill_fee_quote(fill: Fill) -> Decimal:
    """The fee valued in quote at the fill price (negative for a rebate)."""
    if fee_in_base(fill.symbol, fill.fee_currency, fill.fee):
        return fill.fee * fill.price
    return fill.fee


@dataclass
class SymbolBook:
    """One symbol's open lots (all on one side) and its running totals."""

    lots: deque[Lot] = field(default_factory=deque)
    realized_gross: Decimal = _ZERO
    fees: Decimal = _ZERO

    @property
    def position(self) -> Decimal:
        return sum((lot.qty for lot in self.lots), _ZERO)

    def unrealized(self, mark: Decimal) -> Decimal:
        """``sum(lot.qty * (mark - lot.price))`` over the open lots."""
        return sum((lot.qty * (mark - lot.price) for lot in self.lots), _ZERO)


@dataclass
class FifoBook:
    """Open lots and realized totals per symbol of one account, updated one fill at a time."""

    symbols: dict[str, SymbolBook] = field(default_factory=dict)

    def book(self, symbol: str) -> SymbolBook:
        return self.symbols.setdefault(symbol, SymbolBook())

    def add(self, fill: Fill) -> Decimal:
        """Book ``fill``; return its gross realized PnL (before its fee)."""
        book = self.book(fill.symbol)
        remaining = fill_book_delta(fill)
        realized = _ZERO
        while remaining != 0 and book.lots and (book.lots[0].qty > 0) != (remaining > 0):
            lot = book.lots[0]
            take = min(abs(remaining), abs(lot.qty))
            realized += take * (fill.price - lot.price) * (1 if lot.qty > 0 else -1)
            left = lot.qty - take * (1 if lot.qty > 0 else -1)
            if left == 0:
                book.lots.popleft()
            else:
                book.lots[0] = Lot(lot.symbol, left, lot.price, lot.trade_id, lot.ts)
            remaining -= take * (1 if remaining > 0 else -1)
        if remaining != 0:
            book.lots.append(Lot(fill.symbol, remaining, fill.price, fill.trade_id, fill.ts))
        book.realized_gross += realized
        book.fees += fill_fee_quote(fill)
        return realized

    def copy(self) -> FifoBook:
        """An independent copy (lots are immutable, so the deques are copied shallowly)."""
        return FifoBook(
            {
                symbol: SymbolBook(deque(book.lots), book.realized_gross, book.fees)
                for symbol, book in self.symbols.items()
            }
        )
