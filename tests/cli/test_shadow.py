"""shadow record-backtest / shadow compare and backtest --breakers/--record: exit paths."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import Run

WINDOW = ["--start", "2025-10-01", "--end", "2025-10-31"]


def _record(run: Run, run_id: str, *extra: str) -> None:
    result = run(["shadow", "record-backtest", "--run-id", run_id, *WINDOW, *extra])
    assert result.exit_code == 0, result.stderr


def test_record_backtest_writes_snapshots_and_fills(run: Run, home: Path) -> None:
    result = run(["shadow", "record-backtest", "--run-id", "base", *WINDOW, "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["snapshots"] == 744
    assert document["fills"] > 0
    with sqlite3.connect(home / "state" / "stagectl.db") as conn:
        (kind, status) = conn.execute("SELECT kind, status FROM runs").fetchone()
        fills = conn.execute("SELECT COUNT(*) FROM fills WHERE run_id = 'base'").fetchone()[0]
    assert (kind, status) == ("backtest", "completed")
    assert fills == document["fills"]


def test_recording_a_run_id_twice_exits_2(run: Run) -> None:
    _record(run, "base")
    result = run(["shadow", "record-backtest", "--run-id", "base", *WINDOW])
    assert result.exit_code == 2
    assert "already recorded" in result.stderr


def test_compare_promotes_a_cheaper_candidate_with_exit_0(run: Run) -> None:
    _record(run, "base")
    _record(run, "cheap", "--cost-multiplier", "0")
    result = run(["shadow", "compare", "--baseline", "base", "--candidate", "cheap", "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["verdict"] == {"promote": True, "reasons": []}
    assert document["tests"]["bootstrap_p_value"] < 0.05
    metrics = {m["metric"]: m for m in document["metrics"]}
    assert metrics["cost_per_trade_bps"]["candidate"] == 0.0


def test_compare_of_the_same_strategy_exits_1_not_significant(run: Run) -> None:
    _record(run, "base")
    _record(run, "again")
    result = run(["shadow", "compare", "--baseline", "base", "--candidate", "again"])
    assert result.exit_code == 1, result.stderr
    assert "paired block bootstrap p (one-sided): 1 " in result.stdout
    assert result.stdout.splitlines()[-1].startswith("verdict: DO NOT PROMOTE (NOT_SIGNIFICANT")


def test_compare_an_unknown_run_exits_2(run: Run) -> None:
    _record(run, "base")
    result = run(["shadow", "compare", "--baseline", "base", "--candidate", "ghost"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "stagectl: --candidate: no run 'ghost' in the state database"
    )


def test_compare_of_runs_too_short_to_pair_exits_2(run: Run) -> None:
    _record(run, "base")
    short = ["--start", "2025-11-01T00:00:00Z", "--end", "2025-11-01T20:00:00Z"]
    assert run(["shadow", "record-backtest", "--run-id", "short", *short]).exit_code == 0
    result = run(["shadow", "compare", "--baseline", "base", "--candidate", "short"])
    assert result.exit_code == 2
    assert "share 0 timestamps" in result.stderr


def test_compare_without_a_state_database_exits_2(run: Run) -> None:
    result = run(["shadow", "compare", "--baseline", "a", "--candidate", "b"])
    assert result.exit_code == 2
    assert "stagectl init" in result.stderr


def test_backtest_breakers_lists_firings_and_records_them_as_events(run: Run, home: Path) -> None:
    result = run(["backtest", *WINDOW, "--preset", "conservative", "--record", "guarded"])
    assert result.exit_code == 0, result.stderr
    assert "circuit breakers (conservative): daily stop 1.5 %" in result.stdout
    assert "Breakers" in result.stdout.splitlines()
    assert "recorded run guarded" in result.stderr
    document = run(["backtest", *WINDOW, "--breakers", "--json"]).json()
    section = document["body"]["metrics"]["breakers"]
    assert section["settings"]["daily_drawdown_stop_pct"] == 3.0
    with sqlite3.connect(home / "state" / "stagectl.db") as conn:
        events = conn.execute(
            "SELECT COUNT(*) FROM events WHERE run_id = 'guarded' AND event_type = 'BREAKER_FIRED'"
        ).fetchone()[0]
    assert events > 0


def test_backtest_unknown_preset_exits_2(run: Run) -> None:
    result = run(["backtest", *WINDOW, "--preset", "reckless"])
    assert result.exit_code == 2
    assert "--preset" in result.stderr
