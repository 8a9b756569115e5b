"""The live drawdown gauge's reference is the run's highest settled equity, carried
across a restart (it was the peak since the process started, so a restart reset the
gauge to 0 in the middle of a drawdown)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from stagectl.cli._live_metrics import LiveMetrics
from stagectl.services.live.book import load_run_book
from stagectl.state.db import open_state
from tests.conftest import Run


def test_a_resumed_run_book_carries_the_runs_peak_equity(run: Run, home: Path) -> None:
    result = run(["run-live", "--start", "2026-03-01", "--end", "2026-03-08", "--json"])
    assert result.exit_code == 0, result.stderr
    run_id = result.json()["run_id"]
    with sqlite3.connect(home / "state" / "stagectl.db") as conn:
        equities = [
            float(r[0])
            for r in conn.execute(
                "SELECT equity FROM equity_snapshots WHERE run_id = ? ORDER BY ts", (run_id,)
            )
        ]
    assert len(equities) > 100 and max(equities) > equities[-1]  # ends below its peak
    with open_state(home / "state" / "stagectl.db") as db:
        assert load_run_book(db, run_id).peak_equity == max(equities)


def test_the_gauge_measures_from_the_outcomes_peak_not_the_process_start() -> None:
    metrics = LiveMetrics("127.0.0.1", 0, "paper")
    try:
        outcome = {
            "run_id": "r1",
            "equity": "9000",
            "peak_equity": 10_000.0,
            "sleeves": {},
            "margin": {"used_margin": "0", "utilization_pct": 0.0},
            "fills": 0,
            "reconciliation": {"drift_usd": 0.0},
        }
        metrics.step(SimpleNamespace(close_ts=SimpleNamespace(timestamp=lambda: 0.0)), outcome)
        gauge = metrics.registry.get_sample_value("stagectl_live_drawdown_ratio")
    finally:
        metrics.close()
    assert gauge == pytest.approx(0.1)  # the first bar after a restart, 10 % under the run's peak
