"""Rows of an unfinished import are in the fills table but no ledger read sees them
(state.fill_visibility): not state.ledger.fills (the guard's and run-live's reads), not the
metrics reads (state.ledger_reads), not the running totals' trust check."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from stagectl.domain.types import Fill
from stagectl.state.db import StateDB, open_state
from stagectl.state.ledger import fills, insert_fills
from stagectl.state.ledger_reads import (
    fill_prices,
    fill_span,
    has_fills,
    last_fill_price,
    position_before,
    symbols_with_fills,
    window_fills,
)
from stagectl.state.migrations import apply_migrations

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def live_fill(k: int, symbol: str = "SOLUSDT", side: str = "buy") -> Fill:
    return Fill(
        account="binanceusdm",
        trade_id=f"{symbol}:{k}",
        symbol=symbol,
        side=side,
        qty=Decimal("1.5"),
        price=Decimal(100 + k),
        fee=Decimal("0.01"),
        fee_currency="USDT",
        ts=T0 + timedelta(minutes=k),
        source="live",
    )


def hide_rows(db: StateDB, status: str, rows: list[tuple[str, str, str, int]]) -> None:
    """Write what a half-merged import leaves behind: an import record with ``status``, its
    rows ``(trade_id, symbol, side, minute)`` in fills, and their count per symbol."""
    with db.transaction() as conn:
        import_id = conn.execute(
            "INSERT INTO fill_imports (content_sha256, account, source, origin, status,"
            " after_fill_id, started_at, updated_at) VALUES ('ab', 'acct', 'import', 'f.csv',"
            " ?, 0, '2025-03-01T00:00:00.000000Z', '2025-03-01T00:00:00.000000Z')",
            (status,),
        ).lastrowid
        for trade_id, symbol, side, minute in rows:
            ts = (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            conn.execute(
                "INSERT INTO fills (exchange, trade_id, symbol, side, qty, price, fee, ts,"
                " source, import_id) VALUES ('acct', ?, ?, ?, '7', '999', '0', ?, 'import', ?)",
                (trade_id, symbol, side, ts, import_id),
            )
        for symbol in {row[1] for row in rows}:
            conn.execute(
                "INSERT INTO fill_import_totals (import_id, symbol, fills, position)"
                " VALUES (?, ?, ?, '0')",
                (import_id, symbol, sum(1 for row in rows if row[1] == symbol)),
            )


def test_no_ledger_read_sees_the_rows_of_an_unfinished_import(tmp_path: Path) -> None:
    with open_state(tmp_path / "stagectl.db") as db:
        insert_fills(db, [live_fill(k, side="sell" if k == 3 else "buy") for k in range(4)])
        seen = fills(db)
        hide_rows(
            db,
            "merging",
            [
                ("SOLUSDT:h1", "SOLUSDT", "buy", 1),
                ("SOLUSDT:h9", "SOLUSDT", "sell", 9),
                ("XRPUSDT:h1", "XRPUSDT", "buy", 2),
            ],
        )
        assert fills(db) == seen
        assert symbols_with_fills(db) == ["SOLUSDT"]
        assert not has_fills(db, "XRPUSDT")
        end = T0 + timedelta(hours=1)
        assert [f.trade_id for f in window_fills(db, "SOLUSDT", T0, end)] == [
            f.trade_id for f in seen
        ]
        assert fill_span(db, "SOLUSDT") == (T0, T0 + timedelta(minutes=3))
        assert last_fill_price(db, "SOLUSDT", end) == Decimal(103)
        assert list(fill_prices(db, "SOLUSDT").prices) == ["100", "101", "102", "103"]
        # The totals still count exactly the visible fills, so they are trusted:
        assert position_before(db, "SOLUSDT", end) == Decimal("3.0")
        insert_fills(db, [live_fill(20)])  # a live write meanwhile keeps them exact
        assert position_before(db, "SOLUSDT", end + timedelta(hours=1)) == Decimal("4.5")


def test_a_discarded_import_is_as_invisible_as_a_merging_one(tmp_path: Path) -> None:
    with open_state(tmp_path / "stagectl.db") as db:
        hide_rows(db, "discarding", [("SOLUSDT:h1", "SOLUSDT", "buy", 1)])
        assert fills(db) == []
        assert symbols_with_fills(db) == []
        assert position_before(db, "SOLUSDT", T0 + timedelta(hours=1)) is None


def test_fills_recorded_before_the_imports_table_stay_visible_after_the_upgrade(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stagectl.db"
    sqlite3.connect(path).close()
    with open_state(path, migrate=False) as db:
        apply_migrations(db, stop_before="0008_fill_imports")
        insert_fills(db, [live_fill(k) for k in range(3)])
        before = fills(db)
        assert len(before) == 3
    with open_state(path) as db:
        assert fills(db) == before
        assert position_before(db, "SOLUSDT", T0 + timedelta(hours=1)) == Decimal("4.5")
