"""The FIFO ledger on 1,000 real Binance ETHUSDT perp trades, booked as our own fills."""

from __future__ import annotations

import csv
import gzip
from datetime import datetime
from decimal import Decimal

import pytest

from stagectl.domain.ledger import fifo_realized
from stagectl.domain.ledger_windows import window_metrics
from stagectl.domain.types import Fill
from tests.conftest import SHARED_DATA
from tests.unit.test_ledger import reference_fifo

TRADES = SHARED_DATA / "binance_perp_ETHUSDT_trades_2023-02-02.csv.gz"


@pytest.fixture(scope="module")
def eth_fills() -> list[Fill]:
    if not TRADES.exists():
        pytest.skip("shared ETH trades not available")
    fills = []
    with gzip.open(TRADES, "rt") as fh:
        for row in csv.DictReader(fh):
            price, qty = Decimal(row["price"]), Decimal(row["amount"])
            fills.append(
                Fill(
                    trade_id=row["trade_id"],
                    ts=datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")),
                    symbol="ETHUSDT",
                    side="buy" if row["taker_side"] == "buy" else "sell",
                    qty=qty,
                    price=price,
                    fee=(qty * price * Decimal("0.0002")).quantize(Decimal("0.00000001")),
                    fee_currency="USDT",
                    liquidity="taker",
                )
            )
    return fills


def test_fifo_on_real_trades_matches_decimal_loop_exactly(eth_fills: list[Fill]) -> None:
    expected, lots = reference_fifo(eth_fills)
    result = fifo_realized(eth_fills)
    assert result.realized_pnl() == expected
    assert [[lot.qty, lot.price] for lot in result.lots["ETHUSDT"]] == lots["ETHUSDT"]


def test_window_metrics_split_anywhere_add_up_to_the_whole(eth_fills: list[Fill]) -> None:
    mark = {"ETHUSDT": eth_fills[-1].price}
    whole = window_metrics([], eth_fills, mark).by_symbol["ETHUSDT"]
    first = window_metrics([], eth_fills[:377], mark).by_symbol["ETHUSDT"]
    second = window_metrics(eth_fills[:377], eth_fills[377:], mark).by_symbol["ETHUSDT"]
    assert first.realized_fifo_quote + second.realized_fifo_quote == whole.realized_fifo_quote
    assert second.inventory_start == first.inventory_end
    assert whole.realized_fifo_quote + whole.unrealized_quote == (
        whole.cash_flow_quote + whole.inventory_end * mark["ETHUSDT"]
    )


def test_window_from_carried_lots_equals_the_window_from_the_full_history(
    eth_fills: list[Fill],
) -> None:
    """The lots open at a window's start handed over as lots (what ``metrics window`` does)
    give the figures of booking their opening fills digit for digit, and those of booking
    the whole history by value."""
    from tests.unit.test_ledger import window_view

    mark = {"ETHUSDT": eth_fills[-1].price}
    for cut in (1, 250, 377, 800, len(eth_fills) - 1):
        before, window = eth_fills[:cut], eth_fills[cut:]
        lots = fifo_realized(before).lots
        assert lots, cut
        opening = [lot.opening_fill() for lot in lots["ETHUSDT"]]
        got = window_metrics([], window, mark, carried=lots)
        assert window_view(got) == window_view(window_metrics(opening, window, mark))
        history = window_metrics(before, window, mark).by_symbol["ETHUSDT"]
        assert vars(got.by_symbol["ETHUSDT"]) == vars(history)
