"""One state for paper and live: migration 0007 and the merge of an old ``state/paper.db``."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.domain.types import Fill, TradingState
from stagectl.state import directives, equity, flags, journal, ledger, runs
from stagectl.state.db import open_state
from stagectl.state.migrations import apply_migrations
from tests.conftest import Run

T0 = datetime(2024, 6, 7, 8, 0, tzinfo=UTC)
BEFORE_ONE_STATE = "0007_one_state"


def _old_database(path: Path) -> sqlite3.Connection:
    """A database at the schema before one state (as every stagectl before it left it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sqlite3.connect(path).close()
    with open_state(path, migrate=False) as db:
        apply_migrations(db, stop_before=BEFORE_ONE_STATE)
    return sqlite3.connect(path, isolation_level=None)


def _old_run(conn: sqlite3.Connection, run_id: str, mode: str) -> None:
    conn.execute(
        "INSERT INTO runs (run_id, kind, mode, started_at, status)"
        " VALUES (?, 'run-live', ?, '2024-06-07T08:00:00.000000Z', 'running')",
        (run_id, mode),
    )


def _old_decision(conn: sqlite3.Connection, run_id: str | None, action: str) -> int:
    cursor = conn.execute(
        "INSERT INTO guard_decisions (ts, run_id, action, severity, dry_run, rule_results_json)"
        " VALUES ('2024-06-07T09:00:00.000000Z', ?, ?, 'CRITICAL', 0, '[]')",
        (run_id, action),
    )
    return int(cursor.lastrowid or 0)


def _old_directive(conn: sqlite3.Connection, decision_id: int | None, action: str) -> None:
    conn.execute(
        "INSERT INTO risk_directives (ts, action, multiplier, guard_decision_id)"
        " VALUES ('2024-06-07T09:00:00.000000Z', ?, 0.0, ?)",
        (action, decision_id),
    )


def _old_flag(conn: sqlite3.Connection, state: str, reason: str) -> None:
    conn.execute(
        "INSERT INTO trading_flags (id, trading_state, reason, source, updated_at)"
        " VALUES (1, ?, ?, 'operator', '2024-06-07T09:30:00.000000Z')",
        (state, reason),
    )
    conn.execute(
        "INSERT INTO trading_flag_history (ts, from_state, to_state, reason, source)"
        " VALUES ('2024-06-07T09:30:00.000000Z', 'ACTIVE', ?, ?, 'operator')",
        (state, reason),
    )


def test_an_old_desk_wide_halt_becomes_the_state_of_both_modes(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = _old_database(path)
    _old_flag(conn, "HALTED", "exchange incident")
    conn.close()
    with open_state(path) as db:
        states = flags.trading_states(db)
        history = flags.trading_state_history(db)
    assert {mode: flag.state for mode, flag in states.items()} == {
        "paper": TradingState.HALTED,
        "live": TradingState.HALTED,
    }
    assert states["live"].reason == "exchange incident"
    assert [(h.mode, h.to_state) for h in history] == [(None, TradingState.HALTED)]


def test_old_directives_take_their_runs_mode_and_an_orphan_binds_both(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = _old_database(path)
    _old_run(conn, "paper-1", "paper")
    _old_run(conn, "live-1", "live")
    _old_directive(conn, _old_decision(conn, "paper-1", "FLATTEN_ALL"), "FLATTEN_ALL")
    _old_directive(conn, _old_decision(conn, "live-1", "REDUCE_RISK_50"), "REDUCE_RISK_50")
    _old_directive(conn, None, "DISABLE_SLEEVE")
    conn.close()
    at = T0 + timedelta(hours=2)
    with open_state(path) as db:
        paper = [d.action for d in directives.active_directives(db, mode="paper", now=at)]
        live = [d.action for d in directives.active_directives(db, mode="live", now=at)]
        accounts = {r.run_id: r.account for r in runs.list_runs(db)}
    assert paper == ["FLATTEN_ALL", "DISABLE_SLEEVE"]
    assert live == ["REDUCE_RISK_50", "DISABLE_SLEEVE"]
    assert accounts == {"paper-1": "paper:paper-1", "live-1": "binanceusdm"}


def _legacy_paper_db(state_dir: Path) -> None:
    """An old paper state: a paper run with a snapshot, a fill, an order event, a guard
    decision with its directive and incident, and the paper book HALTED."""
    conn = _old_database(state_dir / "paper.db")
    _old_run(conn, "paper-old", "paper")
    conn.execute(
        "INSERT INTO equity_snapshots (run_id, ts, equity) VALUES"
        " ('paper-old', '2024-06-07T09:00:00.000000Z', 10010.5)"
    )
    conn.execute(
        "INSERT INTO fills (exchange, trade_id, run_id, symbol, side, qty, price, fee, ts, source)"
        " VALUES ('paper', 'ETHUSDT:sc-1-1', 'paper-old', 'ETHUSDT', 'buy', '0.5', '3500.25',"
        " '0.875', '2024-06-07T08:00:00.000000Z', 'paper')"
    )
    conn.execute(
        "INSERT INTO events (ts, event_type, run_id, payload_json) VALUES"
        " ('2024-06-07T08:00:00.000000Z', 'signal', 'paper-old', '{}')"
    )
    decision = _old_decision(conn, "paper-old", "FLATTEN_ALL")
    _old_directive(conn, decision, "FLATTEN_ALL")
    conn.execute(
        "INSERT INTO incidents (ts, run_id, guard_decision_id, rule, severity, action, message)"
        " VALUES ('2024-06-07T09:00:00.000000Z', 'paper-old', ?, 'mdd_limit', 'CRITICAL',"
        " 'FLATTEN_ALL', 'mdd above 12 %')",
        (decision,),
    )
    _old_flag(conn, "HALTED", "paper book stopped")
    conn.close()


def _home_state(state_dir: Path) -> None:
    """The home's own state: a live run with two guard decisions (ids 1 and 2 collide)."""
    conn = _old_database(state_dir / "stagectl.db")
    _old_run(conn, "live-1", "live")
    _old_decision(conn, "live-1", "NO_ACTION")
    _old_decision(conn, "live-1", "NO_ACTION")
    conn.close()


def test_a_legacy_paper_db_is_merged_on_first_open_and_kept_renamed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"
    _home_state(state_dir)
    _legacy_paper_db(state_dir)
    with open_state(state_dir / "stagectl.db") as db:
        all_runs = {r.run_id: (r.mode, r.account) for r in runs.list_runs(db)}
        paper = flags.get_trading_state(db, "paper")
        live = flags.get_trading_state(db, "live")
        snaps = equity.snapshots(db, "paper-old")
        fills = ledger.fills(db, run_id="paper-old")
        (incident,) = journal.incidents(db)
        active = directives.active_directives(db, mode="paper", now=T0 + timedelta(hours=2))
        decisions = {d.id: d for d in directives.guard_decisions(db)}
        live_directives = directives.active_directives(db, mode="live", now=T0 + timedelta(hours=2))
    assert all_runs == {
        "live-1": ("live", "binanceusdm"),
        "paper-old": ("paper", "paper:paper-old"),
    }
    assert (paper.state, paper.reason) == (TradingState.HALTED, "paper book stopped")
    assert live.state is TradingState.ACTIVE
    assert [s.equity for s in snaps] == [10010.5]
    assert [(f.qty, f.price) for f in fills] == [(Decimal("0.5"), Decimal("3500.25"))]
    assert decisions[incident.guard_decision_id or 0].run_id == "paper-old"
    ((directive),) = active
    assert decisions[directive.guard_decision_id or 0].action == "FLATTEN_ALL"
    assert live_directives == []
    assert not (state_dir / "paper.db").exists()
    (kept,) = state_dir.glob("paper.db.merged-*")
    assert kept.stat().st_size > 0
    notice = capsys.readouterr().err
    assert "merged the paper state" in notice and kept.name in notice


def test_a_merge_interrupted_before_the_rename_copies_nothing_twice(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    _home_state(state_dir)
    _legacy_paper_db(state_dir)
    open_state(state_dir / "stagectl.db").close()
    (kept,) = state_dir.glob("paper.db.merged-*")
    shutil.copyfile(kept, state_dir / "paper.db")  # as if the rename had never happened
    with open_state(state_dir / "stagectl.db") as db:
        assert len(ledger.fills(db, run_id="paper-old")) == 1
        assert len(journal.incidents(db)) == 1
        assert len(directives.guard_decisions(db)) == 3
    assert not (state_dir / "paper.db").exists()


def test_the_merged_paper_fills_stay_out_of_the_desks_ledger_totals(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    _home_state(state_dir)
    _legacy_paper_db(state_dir)
    with open_state(state_dir / "stagectl.db") as db:
        totals = db.conn.execute("SELECT symbol, fills, position FROM fill_totals").fetchall()
        merged = ledger.fills(db, run_id="paper-old")
    assert totals == []
    assert len(merged) == 1


def test_trading_status_in_a_home_with_a_paper_db_shows_its_merged_state(
    run: Run, home: Path
) -> None:
    _home_state(home / "state")
    _legacy_paper_db(home / "state")
    result = run(["trading", "status", "--json"])
    assert result.exit_code == 0
    modes = result.json()["modes"]
    assert (modes["paper"]["trading_state"], modes["live"]["trading_state"]) == (
        "HALTED",
        "ACTIVE",
    )
    assert "merged the paper state" in result.stderr


def _ledger_fill(trade_id: str, side: str, qty: str, price: str, **where: object) -> Fill:
    values: dict[str, object] = {
        "account": "import",
        "trade_id": trade_id,
        "symbol": "ETHUSDT",
        "side": side,
        "qty": Decimal(qty),
        "price": Decimal(price),
        "fee": Decimal(0),
        "ts": T0,
        "source": "import",
    }
    values.update(where)
    return Fill(**values)  # type: ignore[arg-type]


def test_a_paper_runs_fills_never_enter_the_desks_ledger(tmp_path: Path) -> None:
    from stagectl.state import ledger_reads, ledger_totals

    with open_state(tmp_path / "stagectl.db") as db:
        runs.start_run(db, runs.Run("paper-1", "run-live", "paper", T0, account="paper:paper-1"))
        ledger.insert_fills(
            db,
            [
                _ledger_fill("ETHUSDT:1", "buy", "1", "2000"),
                _ledger_fill("ETHUSDT:2", "sell", "0.5", "2100", ts=T0 + timedelta(minutes=5)),
            ],
        )
        ledger.insert_fills(
            db,
            [
                _ledger_fill(
                    "ETHUSDT:sc-1-1",
                    "buy",
                    "3",
                    "1900",
                    account="paper",
                    source="paper",
                    run_id="paper-1",
                    ts=T0 + timedelta(minutes=1),
                )
            ],
        )
        window = ledger_reads.window_fills(db, "ETHUSDT", T0, T0 + timedelta(hours=1))
        position = ledger_totals.position_before(db.conn, "ETHUSDT", "2024-06-07T09:00:00.000000Z")
        run_fills = ledger.fills(db, run_id="paper-1")
    assert [f.trade_id for f in window] == ["ETHUSDT:1", "ETHUSDT:2"]
    assert position == Decimal("0.5")  # the totals are trusted and exclude the paper buy
    assert [f.trade_id for f in run_fills] == ["ETHUSDT:sc-1-1"]  # the run still reads its own
