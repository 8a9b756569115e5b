"""regime-analyze's ledger side reads the fills inside the candles' range through an index.

The candles are a month of the bundled real SOLUSDT 1h data; the ledger holds that month's
fills and many unrelated ones (ETHUSDT at the same times, SOLUSDT months before and after).
Every statement the ledger side runs against ``fills`` is checked with ``EXPLAIN QUERY
PLAN``: each is a SEARCH of an index, never a SCAN of the table or of a whole index, and
each that reads rows (not an index-only count) searches a time range of the symbol.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.config.home import Home
from stagectl.data import SAMPLE_DIR
from stagectl.services.ledger import importer, regime_analyze
from stagectl.state.db import open_state
from stagectl.state.ledger_reads import position_before, snapshot

HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity\n"
MAY = datetime(2025, 5, 1, tzinfo=UTC)


@pytest.fixture
def may_candles(tmp_path: Path) -> Path:
    """May 2025 of the bundled SOLUSDT perp 1h candles."""
    with gzip.open(SAMPLE_DIR / "binance_perp_SOLUSDT_1h_ohlcv.csv.gz", "rt") as source:
        lines = source.readlines()
    rows = [line for line in lines[1:] if line.startswith("2025-05-")]
    path = tmp_path / "binance_perp_SOLUSDT_1h_ohlcv_2025-05.csv.gz"
    with gzip.open(path, "wt") as out:
        out.write(lines[0] + "".join(rows))
    return path


def fill_rows(symbol: str, first: datetime, count: int, step_s: int, tag: str) -> list[str]:
    rows = []
    for k in range(count):
        stamp = (first + timedelta(seconds=k * step_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        side = "buy" if k % 2 == 0 else "sell"
        rows.append(f"{stamp},{tag}{k},{symbol},{side},{150 + k % 7},0.5,0,,maker\n")
    return rows


def test_every_ledger_read_searches_an_index(home: Path, tmp_path: Path, may_candles: Path) -> None:
    rows = fill_rows("SOLUSDT", MAY + timedelta(days=3), 400, 600, "in")
    rows += fill_rows("ETHUSDT", MAY, 5000, 500, "eth")
    rows += fill_rows("SOLUSDT", MAY - timedelta(days=120), 5000, 900, "old")
    rows += fill_rows("SOLUSDT", MAY + timedelta(days=40), 8000, 300, "new")
    fills = tmp_path / "fills.csv"
    fills.write_text(HEADER + "".join(rows))
    importer.run(importer.ImportRequest(path=fills), home=Home.resolve(home))
    candles = regime_analyze.load_candles((may_candles,))

    statements: list[str] = []
    with open_state(Home.resolve(home).state_path) as db, snapshot(db):
        db.conn.set_trace_callback(statements.append)
        windows = regime_analyze.ledger_windows(db, "SOLUSDT", 300, candles)
        db.conn.set_trace_callback(None)
        reads = [sql for sql in statements if " FROM fills" in sql]
        plans = {
            sql: [row[-1] for row in db.conn.execute(f"EXPLAIN QUERY PLAN {sql}")] for sql in reads
        }
    assert windows is not None and int(windows["fills"].sum()) == 400
    assert reads, statements
    for sql, plan in plans.items():
        if "max(id)" in sql:  # the totals' mark check: the last entry of the rowid b-tree
            assert plan == ["SEARCH fills"], (sql, plan)
            continue
        on_fills = [step for step in plan if step.split()[1:2] == ["fills"]]
        assert on_fills, (sql, plan)
        assert all(step.startswith("SEARCH fills USING ") for step in on_fills), (sql, plan)
        if not sql.startswith("SELECT count(*)"):  # rows, not an index-only count: a time range
            assert all("ts<" in step or "ts>" in step for step in on_fills), (sql, plan)


def test_the_position_before_a_time_is_summed_on_the_smaller_side(
    home: Path, tmp_path: Path
) -> None:
    """Early in a long ledger the position comes from the few fills before the time, late in
    it from the totals less the few fills after: equal either way to the plain sum."""
    rows = fill_rows("SOLUSDT", MAY, 3001, 60, "x")  # buys and sells of 0.5: ends long 0.5
    fills = tmp_path / "fills.csv"
    fills.write_text(HEADER + "".join(rows))
    importer.run(importer.ImportRequest(path=fills), home=Home.resolve(home))
    with open_state(Home.resolve(home).state_path) as db, snapshot(db):
        for minutes, expected in ((0, "0"), (3, "0.5"), (4, "0"), (2999, "0.5"), (3001, "0.5")):
            statements: list[str] = []
            db.conn.set_trace_callback(statements.append)
            position = position_before(db, "SOLUSDT", MAY + timedelta(minutes=minutes))
            db.conn.set_trace_callback(None)
            assert position == Decimal(expected), minutes
            summed = [sql for sql in statements if "SELECT side, qty" in sql]
            assert len(summed) == 1
            assert ("ts < " in summed[0]) == (minutes < 1500), summed
