"""The fill ledger, positions and funding: idempotent imports and exact Decimals."""

from __future__ import annotations

import itertools
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.config.state_url import StateLocation
from stagectl.domain.types import Fill, FundingPayment, Position
from stagectl.state.db import StateDB, open_state
from stagectl.state.ledger import (
    fills,
    funding_payments,
    insert_fills,
    insert_funding,
    positions,
    upsert_position,
)

T0 = datetime(2024, 6, 7, 8, 0, tzinfo=UTC)


def _fill(trade_id: str, *, ts: datetime = T0, symbol: str = "ETHUSDT", **changes: object) -> Fill:
    values: dict[str, object] = {
        "account": "binanceusdm",
        "trade_id": trade_id,
        "symbol": symbol,
        "side": "sell",
        "qty": Decimal("1.5"),
        "price": Decimal("3500.10"),
        "fee": Decimal("-0.000525"),
        "fee_currency": "USDT",
        "liquidity": "maker",
        "ts": ts,
        "source": "import",
    }
    values.update(changes)
    return Fill(**values)  # type: ignore[arg-type]


def test_importing_the_same_fills_twice_records_each_once(state_url: StateLocation) -> None:
    with open_state(state_url) as db:
        first = insert_fills(db, [_fill("1"), _fill("2"), _fill("2")])
        assert (first.inserted, first.skipped) == (2, 1)
        second = insert_fills(db, [_fill("1"), _fill("2"), _fill("3")])
        assert (second.inserted, second.skipped) == (1, 2)
        assert [f.trade_id for f in fills(db)] == ["1", "2", "3"]


def test_a_known_trade_with_other_values_is_kept_and_reported_not_dropped_silently(
    state_url: StateLocation,
) -> None:
    """The run's own fill path once skipped a second record of a trade whatever its
    values; the skip stays (the ledger keeps the first record) but is now reported."""
    with open_state(state_url) as db:
        insert_fills(db, [_fill("1"), _fill("2")])
        same = insert_fills(db, [_fill("1", qty=Decimal("1.50"))])  # the same number
        assert (same.inserted, same.skipped, same.conflicts) == (0, 1, ())
        other = insert_fills(db, [_fill("3"), _fill("2", qty=Decimal("2"), price=Decimal("1"))])
        assert (other.inserted, other.skipped) == (1, 1)
        [conflict] = other.conflicts
        assert (conflict.position, conflict.symbol, conflict.trade_id) == (1, "ETHUSDT", "2")
        assert conflict.differences == (("qty", "2", "1.5"), ("price", "1", "3500.10"))
        assert conflict.stored.source == "import"
        assert [f.qty for f in fills(db) if f.trade_id == "2"] == [Decimal("1.5")]


def test_the_same_trade_id_on_another_exchange_is_another_fill(state_url: StateLocation) -> None:
    with open_state(state_url) as db:
        counts = insert_fills(db, [_fill("1"), _fill("1", account="paper")])
        assert (counts.inserted, counts.skipped) == (2, 0)


def test_fills_come_back_equal_in_time_order_and_filtered(state_url: StateLocation) -> None:
    later = _fill("b", ts=T0 + timedelta(hours=1), symbol="SOLUSDT")
    earlier = _fill("a", ts=T0 + timedelta(microseconds=1))
    with open_state(state_url) as db:
        insert_fills(db, [later, earlier])
        assert fills(db) == [earlier, later]
        assert fills(db, symbol="SOLUSDT") == [later]
        assert fills(db, start=T0 + timedelta(minutes=1)) == [later]
        assert fills(db, end=T0 + timedelta(hours=1)) == [earlier]


def test_a_batch_with_one_fill_the_database_refuses_records_none_of_them(
    state_url: StateLocation,
) -> None:
    with open_state(state_url) as db:
        with pytest.raises(sqlite3.IntegrityError):
            insert_fills(db, [_fill("1"), _fill("2", run_id="no-such-run")])
        assert fills(db) == []


def test_funding_payments_are_idempotent_per_source_symbol_and_time(
    state_url: StateLocation,
) -> None:
    payment = FundingPayment(
        account="binanceusdm",
        symbol="ETHUSDT",
        ts=T0,
        rate=Decimal("0.0001"),
        amount=Decimal("-0.35001"),
        position_qty=Decimal("1.0"),
    )
    with open_state(state_url) as db:
        assert insert_funding(db, [payment]).inserted == 1
        again = insert_funding(db, [payment, payment])
        assert (again.inserted, again.skipped) == (0, 2)
        assert funding_payments(db, symbol="ETHUSDT") == [payment]


def test_positions_upsert_per_account_and_symbol(state_url: StateLocation) -> None:
    with open_state(state_url) as db:
        book = {"account": "paper", "updated_at": T0}
        upsert_position(db, Position("ETHUSDT", Decimal("1.5"), Decimal("3500"), **book))
        short = Position("ETHUSDT", Decimal("-0.25"), Decimal("3600.5"), **book)
        upsert_position(db, short)
        upsert_position(db, Position("SOLUSDT", Decimal("0"), Decimal("0"), **book))
        assert [p.symbol for p in positions(db, account="paper")] == ["ETHUSDT", "SOLUSDT"]
        assert positions(db)[0] == short


exact_decimals = st.decimals(allow_nan=False, allow_infinity=False)
positive_decimals = st.decimals(min_value=Decimal("1E-30"), allow_nan=False, allow_infinity=False)
_db_dir = tempfile.TemporaryDirectory()
_shared: list[StateDB] = []
_trade_ids = itertools.count()


def _shared_db() -> StateDB:
    """One database for every example: hypothesis runs the test body many times."""
    if not _shared:
        _shared.append(open_state(Path(_db_dir.name) / "stagectl.db"))
    return _shared[0]


@settings(max_examples=200, deadline=None)
@given(qty=positive_decimals, price=positive_decimals, fee=exact_decimals)
def test_decimals_survive_the_ledger_exactly(qty: Decimal, price: Decimal, fee: Decimal) -> None:
    trade_id = str(next(_trade_ids))
    fill = _fill(trade_id, symbol=f"S{trade_id}", qty=qty, price=price, fee=fee)
    db = _shared_db()
    insert_fills(db, [fill])
    (stored,) = fills(db, symbol=fill.symbol)
    assert stored == fill
    for written, read in ((qty, stored.qty), (price, stored.price), (fee, stored.fee)):
        assert isinstance(read, Decimal)
        assert read.as_tuple() == written.as_tuple()
