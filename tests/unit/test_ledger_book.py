"""The fill-by-fill FIFO book of the trading loop equals the vectorised ledger FIFO."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain import ledger
from stagectl.domain.ledger_book import FifoBook
from tests.unit.test_ledger import Row, build, fill, fill_st, price_st


def test_a_sell_through_zero_realizes_the_long_and_opens_a_short_lot() -> None:
    book = FifoBook()
    assert book.add(fill("buy", "1", "100", "0.1", "USDT", n=0)) == 0
    assert book.add(fill("buy", "1", "110", "0.1", "USDT", n=1)) == 0
    realized = book.add(fill("sell", "3", "120", "0.3", "USDT", n=2))
    assert realized == D(30)  # 1 x (120 - 100) + 1 x (120 - 110), gross of the fee
    symbol = book.book("SOLUSDT")
    assert [(lot.qty, lot.price) for lot in symbol.lots] == [(D(-1), D(120))]
    assert (symbol.realized_gross, symbol.fees) == (D(30), D("0.5"))
    assert symbol.unrealized(D(115)) == D(5)


@settings(max_examples=150, deadline=None)
@given(st.lists(fill_st, min_size=1, max_size=60), price_st)
def test_the_loop_book_equals_fifo_realized_fill_by_fill(rows: list[Row], mark: D) -> None:
    fills = build(rows)
    expected = ledger.fifo_realized(fills)
    book = FifoBook()
    net = []
    for row in fills:
        gross = book.add(row)
        net.append(gross - row.fee_quote)
    assert net == expected.realized_pnl()
    symbol = book.book("SOLUSDT")
    assert [(lot.qty, lot.price) for lot in symbol.lots] == [
        (lot.qty, lot.price) for lot in expected.lots.get("SOLUSDT", ())
    ]
    assert symbol.unrealized(mark) == expected.unrealized("SOLUSDT", mark)
    assert symbol.realized_gross - symbol.fees == expected.total_realized()
