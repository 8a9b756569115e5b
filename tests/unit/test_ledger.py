"""FIFO ledger: hand-computed sequences, conventions for fees, and exactness properties."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain.ledger import fifo_realized
from stagectl.domain.ledger_windows import pnl_windows, window_metrics
from stagectl.domain.types import Fill

T0 = datetime(2025, 11, 12, 14, 0, tzinfo=UTC)
D = Decimal


def fill(
    side: str,
    qty: str,
    price: str,
    fee: str = "0",
    fee_currency: str = "USDT",
    *,
    n: int = 0,
    symbol: str = "SOLUSDT",
    liquidity: str = "maker",
    seconds: float = 0,
) -> Fill:
    return Fill(
        trade_id=f"t{n}",
        ts=T0 + timedelta(seconds=seconds),
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency=fee_currency,
        liquidity=liquidity,  # type: ignore[arg-type]
    )


def reference_fifo(fills: list[Fill]) -> tuple[list[Decimal], dict[str, list[list[Decimal]]]]:
    """The textbook Decimal loop: a deque of [signed qty, price] lots per symbol."""
    books: dict[str, deque[list[Decimal]]] = {}
    out = []
    for f in fills:
        lots = books.setdefault(f.symbol, deque())
        delta, realized = f.book_delta, -f.fee_quote
        while delta and lots and (lots[0][0] > 0) != (delta > 0):
            lot = lots[0]
            take = min(abs(delta), abs(lot[0]))
            sign = 1 if lot[0] > 0 else -1
            realized += sign * take * (f.price - lot[1])
            lot[0] -= sign * take
            delta += sign * take
            if not lot[0]:
                lots.popleft()
        if delta:
            lots.append([delta, f.price])
        out.append(realized)
    return out, {s: [list(lot) for lot in lots] for s, lots in books.items() if lots}


def test_sell_consumes_oldest_lot_and_splits_the_next() -> None:
    fills = [fill("buy", "2", "100"), fill("buy", "1", "110"), fill("sell", "2.5", "120")]
    result = fifo_realized(fills)
    # 2 @ 100 -> +40, then 0.5 of the 110 lot -> +5
    assert result.realized_pnl() == [D(0), D(0), D(45)]
    (lot,) = result.lots["SOLUSDT"]
    assert (lot.qty, lot.price, lot.trade_id) == (D("0.5"), D(110), "t0")


def test_flip_long_to_short_opens_a_short_lot_with_the_remainder() -> None:
    fills = [fill("buy", "1", "100"), fill("sell", "3", "105", n=1)]
    result = fifo_realized(fills)
    assert result.realized(1) == D(5)
    (lot,) = result.lots["SOLUSDT"]
    assert (lot.qty, lot.price, lot.trade_id) == (D(-2), D(105), "t1")


def test_flip_short_to_long_realizes_short_gain_and_opens_long() -> None:
    fills = [fill("sell", "1", "100"), fill("sell", "1", "102"), fill("buy", "3", "99", n=2)]
    result = fifo_realized(fills)
    # shorts at 100 and 102 covered at 99: +1 and +3
    assert result.realized(2) == D(4)
    (lot,) = result.lots["SOLUSDT"]
    assert (lot.qty, lot.price) == (D(1), D(99))
    assert result.unrealized("SOLUSDT", D(101)) == D(2)


def test_quote_fee_reduces_realized_and_rebate_increases_it() -> None:
    fills = [fill("buy", "1", "100", "0.02"), fill("sell", "1", "101", "-0.01")]
    result = fifo_realized(fills)
    assert result.realized_pnl() == [D("-0.02"), D("1.01")]
    assert result.total_realized() == D("0.99")


def test_base_fee_on_buy_leaves_smaller_lot_at_fill_price_and_charges_fee_value() -> None:
    result = fifo_realized([fill("buy", "1.0", "100", "0.001", "SOL")])
    (lot,) = result.lots["SOLUSDT"]
    assert (lot.qty, lot.price) == (D("0.999"), D(100))
    assert result.realized(0) == D("-0.1")  # 0.001 SOL x 100


def test_base_fee_on_sell_removes_extra_quantity_from_the_book() -> None:
    fills = [fill("buy", "2", "100"), fill("sell", "1", "110", "0.01", "SOL")]
    result = fifo_realized(fills)
    # 1.01 closed at 110 against 100 -> +10.1, fee 0.01 x 110 = 1.1
    assert result.realized(1) == D("9.0")
    assert result.inventory("SOLUSDT") == D("0.99")


def test_fee_in_a_third_currency_is_refused_when_booked() -> None:
    with pytest.raises(ValueError, match="neither the base nor the quote"):
        fifo_realized([fill("buy", "1", "100", "0.01", "BNB")])


def test_symbols_are_booked_independently_with_their_own_scales() -> None:
    fills = [
        fill("buy", "0.001", "40000.5", symbol="BTCUSDT"),
        fill("buy", "10", "2.5", symbol="XRPUSDT"),
        fill("sell", "0.001", "40010.25", symbol="BTCUSDT"),
        fill("sell", "4", "2.6", symbol="XRPUSDT"),
    ]
    result = fifo_realized(fills)
    assert result.realized_pnl() == [D(0), D(0), D("0.00975"), D("0.4")]
    assert result.inventory("XRPUSDT") == D(6)
    assert "BTCUSDT" not in result.lots


def test_values_too_large_for_int64_stay_exact() -> None:
    fills = [
        fill("buy", "123456789.123456789", "98765432.12345678"),
        fill("sell", "100000000.000000001", "98765433.99999999"),
    ]
    result = fifo_realized(fills)
    expected, _ = reference_fifo(fills)
    assert result.realized_units.dtype == object
    assert result.realized_pnl() == expected


def test_window_metrics_consume_lots_carried_in_from_before() -> None:
    before = [fill("buy", "1", "100", n=0), fill("buy", "1", "104", n=1)]
    window = [
        fill("sell", "1.5", "106", "0.03", n=2, liquidity="maker"),
        fill("buy", "0.5", "105", "0.05", n=3, liquidity="taker"),
    ]
    m = window_metrics(before, window, {"SOLUSDT": D(107)})
    sol = m.by_symbol["SOLUSDT"]
    # sell 1.5: 1 @ 100 (+6) + 0.5 @ 104 (+1) - 0.03; buy: -0.05
    assert sol.realized_fifo_quote == D("6.92")
    assert (sol.inventory_start, sol.inventory_end) == (D(2), D(1))
    # open: 0.5 @ 104 and 0.5 @ 105 at mark 107 -> 1.5 + 1.0
    assert sol.unrealized_quote == D("2.5")
    assert sol.cash_flow_quote == D("159") - D("52.5") - D("0.08")
    assert (sol.volume_base, sol.notional_quote, sol.fees_quote) == (D(2), D("211.5"), D("0.08"))
    assert (sol.buys, sol.sells, sol.maker_share) == (1, 1, 0.5)
    assert m.realized_fifo_quote == D("6.92")


def test_window_metrics_need_a_mark_for_open_inventory() -> None:
    with pytest.raises(ValueError, match="no mark price"):
        window_metrics([], [fill("buy", "1", "100")], {})


def test_pnl_windows_bucket_fills_and_seed_lots_from_history() -> None:
    fills = [
        fill("buy", "1", "100", seconds=-10),
        fill("sell", "0.5", "102", n=1, seconds=30),
        fill("sell", "0.5", "99", "0.01", n=2, seconds=350),
    ]
    mids = pd.Series(
        [100.0, 102.0, 99.0],
        index=pd.DatetimeIndex([T0, T0 + timedelta(seconds=300), T0 + timedelta(seconds=600)]),
    )
    table = pnl_windows(fills, 300, T0, T0 + timedelta(seconds=600), mids)
    assert table["fills"].tolist() == [1, 1]
    assert table["realized_fifo_quote"].tolist() == [1.0, -0.51]
    assert table["inventory_delta_base"].tolist() == [-0.5, -0.5]
    assert table["mid_return"].tolist() == pytest.approx([0.02, 99 / 102 - 1])


qty_st = st.decimals(min_value=D("0.001"), max_value=D("50"), places=3)
price_st = st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2)
fee_st = st.decimals(min_value=D("-0.5"), max_value=D("2"), places=4)
fill_st = st.tuples(st.sampled_from(["buy", "sell"]), qty_st, price_st, fee_st, st.booleans())


Row = tuple[str, Decimal, Decimal, Decimal, bool]


def build(rows: list[Row]) -> list[Fill]:
    fills = []
    for i, (side, qty, price, fee, in_base) in enumerate(rows):
        base_fee = (fee / 1000).quantize(D("0.000001"))
        if in_base and (side == "sell" or base_fee < qty):
            fills.append(fill(side, str(qty), str(price), str(base_fee), "SOL", n=i))
        else:
            fills.append(fill(side, str(qty), str(price), str(fee), "USDT", n=i))
    return fills


@settings(max_examples=150, deadline=None)
@given(st.lists(fill_st, min_size=1, max_size=40), price_st)
def test_realized_plus_unrealized_equals_mark_to_market_minus_fees(
    rows: list[Row], mark: Decimal
) -> None:
    fills = build(rows)
    result = fifo_realized(fills)
    gross_cash = sum((-f.signed_qty * f.price for f in fills), D(0))
    quote_fees = sum((f.fee for f in fills if not f.fee_in_base), D(0))
    inventory = sum((f.book_delta for f in fills), D(0))
    assert result.inventory("SOLUSDT") == inventory
    lhs = result.total_realized() + result.unrealized("SOLUSDT", mark)
    assert lhs == gross_cash + inventory * mark - quote_fees


@settings(max_examples=100, deadline=None)
@given(st.lists(fill_st, min_size=1, max_size=60))
def test_vectorised_fifo_matches_decimal_loop_fill_by_fill(rows: list[Row]) -> None:
    fills = build(rows)
    result = fifo_realized(fills)
    expected, lots = reference_fifo(fills)
    assert result.realized_pnl() == expected
    got = [[lot.qty, lot.price] for lot in result.lots.get("SOLUSDT", ())]
    assert got == lots.get("SOLUSDT", [])


def test_empty_fill_list_has_no_pnl() -> None:
    result = fifo_realized([])
    assert result.total_realized() == 0
    assert len(result.realized_units) == 0
    assert isinstance(result.realized_units, np.ndarray)


@pytest.mark.parametrize("seed", range(6))
def test_inventories_equal_the_fifo_inventory_digit_for_digit(seed: int) -> None:
    """``window_metrics`` takes the carried-in inventory from the summed book deltas, not
    from booking the lots: the same value and the same text as the FIFO's."""
    from stagectl.domain.ledger_windows import inventories

    rng = np.random.default_rng(seed)
    fills = []
    for n in range(int(rng.integers(0, 60))):
        symbol = "SOLUSDT" if rng.random() < 0.7 else "ETHUSDT"
        qty = str(D(int(rng.integers(1, 5000))).scaleb(-int(rng.integers(0, 4))))
        fee, currency = [("0", ""), ("0.020", "USDT"), ("0.0004", symbol[:3])][n % 3]
        side = "buy" if rng.random() < 0.55 else "sell"
        if currency == symbol[:3] and side == "buy" and D(fee) >= D(qty):
            fee, currency = "0", ""
        fills.append(fill(side, qty, "100.50", fee, currency, n=n, symbol=symbol))
    fifo = fifo_realized(fills)
    expected = {s: str(fifo.inventory(s)) for s in fifo.lots}
    assert {s: str(v) for s, v in inventories(fills).items()} == expected


def random_ledger(seed: int, n: int = 120) -> list[Fill]:
    """Two symbols, position flips, quote fees and rebates, base fees, mixed precision."""
    rng = np.random.default_rng(seed)
    fills = []
    for k in range(n):
        symbol = "SOLUSDT" if rng.random() < 0.7 else "ETHUSDT"
        qty = str(D(int(rng.integers(1, 5000))).scaleb(-int(rng.integers(0, 4))))
        price = str(D(int(rng.integers(9_000, 11_000))).scaleb(-int(rng.integers(0, 3))))
        fee, currency = [("0", ""), ("-0.020", "USDT"), ("0.0004", symbol[:3])][k % 3]
        side = "buy" if rng.random() < 0.5 else "sell"
        if currency == symbol[:3] and side == "buy" and D(fee) >= D(qty):
            fee, currency = "0", ""
        fills.append(fill(side, qty, price, fee, currency, n=k, symbol=symbol, seconds=k))
    return fills


def window_view(metrics: object) -> dict[str, dict[str, str]]:
    """Every per-symbol figure of a WindowMetrics as text (digit for digit)."""
    return {
        symbol: {name: str(value) for name, value in vars(m).items()}
        for symbol, m in metrics.by_symbol.items()  # type: ignore[attr-defined]
    }


@pytest.mark.parametrize("seed", range(8))
def test_window_from_carried_lots_equals_the_window_from_the_full_history(seed: int) -> None:
    """``window_metrics(carried=lots)`` books the lots open at the window start as lots: the
    same text as booking their opening fills (what ``metrics window`` did before), the same
    values as booking the whole history, and the window's realized PnL is the textbook
    Decimal FIFO's."""
    fills = random_ledger(seed)
    expected, _ = reference_fifo(fills)
    marks = {"SOLUSDT": D("100.25"), "ETHUSDT": D("99.5")}
    for cut in (0, 1, 17, 60, 119, 120):
        before, window = fills[:cut], fills[cut:]
        lots = fifo_realized(before).lots
        opening = [lot.opening_fill() for symbol in sorted(lots) for lot in lots[symbol]]
        got = window_metrics([], window, marks, carried=lots)
        assert window_view(got) == window_view(window_metrics(opening, window, marks))
        history = window_metrics(before, window, marks)
        assert {s: vars(m) for s, m in got.by_symbol.items()} == {
            s: vars(m) for s, m in history.by_symbol.items()
        }
        assert got.realized_fifo_quote == sum(expected[cut:], D(0))


def test_carried_lots_go_before_the_fills_before() -> None:
    lots = fifo_realized([fill("buy", "2", "100", n=0)]).lots
    before = [fill("sell", "0.5", "101", n=1)]
    window = [fill("sell", "1", "103", n=2)]
    sol = window_metrics(before, window, {"SOLUSDT": D(104)}, carried=lots).by_symbol["SOLUSDT"]
    assert (sol.inventory_start, sol.inventory_end) == (D("1.5"), D("0.5"))
    assert sol.realized_fifo_quote == D(3)
    assert sol.unrealized_quote == D(2)


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**30), max_value=10**30))
@settings(max_examples=300, deadline=None)
def test_decimal_places_are_the_normalized_exponent(value: Decimal) -> None:
    from stagectl.domain.ledger import decimal_places

    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    assert decimal_places(value) == max(0, -exponent)


@given(
    st.lists(
        st.one_of(
            st.decimals(places=9, min_value=-(10**9), max_value=10**9),
            st.decimals(places=0, min_value=-(10**15), max_value=10**15),
        ).map(str),
        min_size=1,
        max_size=30,
    )
)
@settings(max_examples=300, deadline=None)
def test_stored_texts_become_the_units_their_values_give(texts: list[str]) -> None:
    """``services.ledger.reads._units`` reads plain decimal text from its digits: the same
    places and integers as ``scaled_units`` of the values (exponent forms go through it)."""
    from stagectl.domain.ledger import scaled_units
    from stagectl.services.ledger.reads import _units

    assert _units(texts) == scaled_units([D(t) for t in texts])
