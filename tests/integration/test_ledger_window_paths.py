"""``metrics window`` answers the same on 1,000 real Binance ETHUSDT perp trades (booked as
our own fills, with USDT and ETH fees) whichever way it finds the lots carried in: the
totals trusted through ``fill_totals_mark``, the totals checked by counting the history, or
the full FIFO scan without totals."""

from __future__ import annotations

import csv
import gzip
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.home import Home
from stagectl.state.db import open_state
from tests.conftest import SHARED_DATA, Run

TRADES = SHARED_DATA / "binance_perp_ETHUSDT_trades_2023-02-02.csv.gz"
HEADER = "timestamp,trade_id,symbol,side,price,amount,fee,fee_currency,liquidity\n"


def import_file(tmp_path: Path) -> tuple[Path, list[datetime]]:
    """The trades in the import format, and their times."""
    lines, times = [HEADER], []
    with gzip.open(TRADES, "rt") as handle:
        for k, row in enumerate(csv.DictReader(handle)):
            fee, currency = ("-0.0001", "USDT") if k % 3 else ("0.0001", "ETH")
            liquidity = "maker" if k % 2 else "taker"
            lines.append(
                f"{row['timestamp']},{row['trade_id']},ETHUSDT,{row['taker_side']},"
                f"{row['price']},{row['amount']},{fee},{currency},{liquidity}\n"
            )
            times.append(datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")))
    path = tmp_path / "eth.csv"
    path.write_text("".join(lines))
    return path, times


def windows(run: Run, untils: list[datetime]) -> list[Any]:
    out = []
    for until in untils:
        result = run(
            ["metrics", "window", "--seconds", "30", "--until", until.isoformat(), "--json"]
        )
        assert result.exit_code == 0, result.output
        out.append(result.json())
    return out


def test_window_is_the_same_from_the_mark_the_count_and_the_scan(
    run: Run, home: Path, tmp_path: Path
) -> None:
    if not TRADES.exists():
        pytest.skip("shared ETH trades not available")
    path, times = import_file(tmp_path)
    assert run(["metrics", "import", str(path)]).exit_code == 0
    span = times[-1] - times[0]
    untils = [times[0] + span * k / 7 + timedelta(microseconds=1) for k in range(8)]
    state = Home.resolve(home).state_path
    with open_state(state) as db:
        assert db.conn.execute("SELECT count(*) FROM fill_totals_mark").fetchone()[0] == 1
    from_mark = windows(run, untils)
    carried = [w["symbols"]["ETHUSDT"]["inventory_start"] for w in from_mark]
    assert sum(lots != "0" for lots in carried) >= 4  # most windows carry lots in
    with open_state(state) as db, db.transaction() as conn:
        conn.execute("DELETE FROM fill_totals_mark")
    from_count = windows(run, untils)
    with open_state(state) as db, db.transaction() as conn:
        conn.execute("DELETE FROM fill_totals")
    from_scan = windows(run, untils)
    assert from_mark == from_count == from_scan
