"""The state database: WAL, foreign keys, transactions, locking and migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.domain.types import Fill
from stagectl.errors import (
    EXIT_EXTERNAL,
    EXIT_USAGE,
    InputError,
    InternalError,
    StateLockedError,
)
from stagectl.state.db import open_state
from stagectl.state.ledger import fills, insert_fills
from stagectl.state.migration_names import MIGRATION_NAMES
from stagectl.state.migrations import apply_migrations, registered_names
from stagectl.state.runs import Run, get_run, start_run

T0 = datetime(2024, 6, 7, 8, 0, tzinfo=UTC)

TABLES_BY_MIGRATION = {
    "0001_runs_and_ledger": {
        "runs",
        "equity_snapshots",
        "orders",
        "fills",
        "positions",
        "funding_payments",
    },
    "0002_risk_controls": {
        "trading_flags",
        "trading_flag_history",
        "guard_decisions",
        "risk_directives",
    },
    "0003_journal": {"events", "incidents"},
    "0004_reports": {"reports"},
    "0005_paper_book": {"paper_books", "paper_records"},
    "0006_ledger_totals": {"fill_totals"},
    "0007_one_state": {"trading_states", "legacy_merges"},
    "0008_fill_imports": {"fill_imports", "fill_import_totals"},
    "0009_simulated_fills": set(),
    "0010_directive_lifecycle": set(),
    "0011_directive_reviews": set(),
    "0012_rebalance_plans": {"rebalance_plans"},
    "0013_notification_log": {"notification_log"},
    "0014_fill_totals_mark": {"fill_totals_mark"},
    "0015_telegram_offsets": {"telegram_offsets"},
    "0016_run_leases": {"run_leases"},
    "0017_loop_latency": {"loop_latency"},
    "0018_parent_orders": {"parent_orders"},
    "0019_fill_lot_checkpoints": {"fill_lot_checkpoints"},
}
TABLES_DROPPED_BY_MIGRATION = {"0007_one_state": {"trading_flags"}}


def _tables_after(names: tuple[str, ...] | list[str]) -> set[str]:
    tables: set[str] = set()
    for name in names:
        tables = (tables | TABLES_BY_MIGRATION[name]) - TABLES_DROPPED_BY_MIGRATION.get(name, set())
    return tables


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows if not row[0].startswith(("sqlite_", "_sqlite"))}


def _fill(trade_id: str, **changes: object) -> Fill:
    values: dict[str, object] = {
        "account": "binanceusdm",
        "trade_id": trade_id,
        "symbol": "ETHUSDT",
        "side": "buy",
        "qty": Decimal("0.125"),
        "price": Decimal("3512.37"),
        "fee": Decimal("0.21953"),
        "ts": T0,
        "source": "paper",
    }
    values.update(changes)
    return Fill(**values)  # type: ignore[arg-type]


@contextmanager
def write_lock(path: Path, *, exclusive: bool = False) -> Iterator[None]:
    """Hold the database's write lock (or, exclusive, all access) from a second connection."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        if exclusive:
            other.execute("PRAGMA locking_mode = EXCLUSIVE")
            other.execute("BEGIN EXCLUSIVE")
        else:
            other.execute("BEGIN IMMEDIATE")
        other.execute("CREATE TABLE IF NOT EXISTS lock_holder (x INTEGER)")
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_open_state_creates_parent_directories_and_a_wal_database(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state" / "stagectl.db"
    with open_state(path) as db:
        assert path.is_file()
        assert db.journal_mode() == "wal"
        assert db.foreign_keys_enabled()
        assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == db.busy_timeout_ms
        assert db.schema_version() == len(MIGRATION_NAMES)
        assert db.pending_migrations() == []
        assert _tables(db.conn) == _tables_after(MIGRATION_NAMES)


def test_registered_migrations_match_the_light_list_of_names() -> None:
    assert registered_names() == list(MIGRATION_NAMES)
    assert list(TABLES_BY_MIGRATION) == list(MIGRATION_NAMES)


def test_reopening_a_current_database_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "stagectl.db"
    open_state(path).close()
    with open_state(path) as db:
        assert apply_migrations(db) == []
        assert db.applied_migrations() == list(MIGRATION_NAMES)


@pytest.mark.parametrize("stop_index", range(len(MIGRATION_NAMES)))
def test_a_database_stopped_part_way_upgrades_to_the_latest_schema(
    tmp_path: Path, stop_index: int
) -> None:
    path = tmp_path / "stagectl.db"
    sqlite3.connect(path).close()
    with open_state(path, migrate=False) as db:
        applied = apply_migrations(db, stop_before=MIGRATION_NAMES[stop_index])
        assert applied == list(MIGRATION_NAMES[:stop_index])
        assert db.schema_version() == stop_index
        assert db.pending_migrations() == list(MIGRATION_NAMES[stop_index:])
        assert _tables(db.conn) == _tables_after(MIGRATION_NAMES[:stop_index])
        if stop_index > 0:
            db.conn.execute(
                "INSERT INTO runs (run_id, kind, mode, started_at, status)"
                " VALUES ('r-old', 'run-live', 'paper', '2024-06-07T08:00:00.000000Z', 'running')"
            )
    with open_state(path) as db:
        assert db.schema_version() == len(MIGRATION_NAMES)
        assert _tables(db.conn) == _tables_after(MIGRATION_NAMES)
        if stop_index > 0:
            assert get_run(db, "r-old") is not None


def test_a_schema_newer_than_this_stagectl_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stagectl.db"
    with open_state(path) as db, db.transaction() as conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
            " VALUES ('stagectl', '9999_from_the_future', '2030-01-01')"
        )
    with pytest.raises(InputError, match="9999_from_the_future"):
        open_state(path)


def test_missing_database_without_migrate_is_an_input_error_and_creates_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "stagectl.db"
    with pytest.raises(InputError, match="run `stagectl init`") as raised:
        open_state(path, migrate=False)
    assert raised.value.exit_code == EXIT_USAGE
    assert not path.parent.exists()


def test_a_file_that_is_not_sqlite_is_an_input_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "stagectl.db"
    path.write_text("date,open,high,low,close\n" * 100)
    for migrate in (True, False):
        with pytest.raises(InputError) as raised:
            open_state(path, migrate=migrate)
        assert raised.value.where == str(path)
        assert raised.value.exit_code == EXIT_USAGE


def test_a_write_past_the_busy_timeout_raises_state_locked(tmp_path: Path) -> None:
    path = tmp_path / "stagectl.db"
    open_state(path).close()
    with open_state(path, busy_timeout_ms=50) as db, write_lock(path):
        with pytest.raises(StateLockedError) as raised:
            insert_fills(db, [_fill("t1")])
        assert raised.value.exit_code == EXIT_EXTERNAL
        assert raised.value.where == str(path)
        assert not db.conn.in_transaction
    with open_state(path) as db:
        assert insert_fills(db, [_fill("t1")]).inserted == 1


def test_readers_are_not_blocked_by_a_writer_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "stagectl.db"
    with open_state(path) as db:
        insert_fills(db, [_fill("t1")])
    with open_state(path, busy_timeout_ms=50) as db, write_lock(path):
        assert [f.trade_id for f in fills(db)] == ["t1"]


def test_opening_an_exclusively_locked_database_raises_state_locked(tmp_path: Path) -> None:
    path = tmp_path / "stagectl.db"
    open_state(path).close()
    with write_lock(path, exclusive=True), pytest.raises(StateLockedError):
        open_state(path, migrate=False, busy_timeout_ms=50)


def test_busy_timeout_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGECTL_BUSY_TIMEOUT_MS", "1234")
    with open_state(tmp_path / "stagectl.db") as db:
        assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    monkeypatch.setenv("STAGECTL_BUSY_TIMEOUT_MS", "soon")
    with pytest.raises(InputError, match="milliseconds"):
        open_state(tmp_path / "stagectl.db")


def test_a_failed_transaction_leaves_nothing_half_written(tmp_path: Path) -> None:
    with open_state(tmp_path / "stagectl.db") as db:
        with pytest.raises(sqlite3.IntegrityError), db.transaction():
            start_run(db, Run("r1", "run-live", "paper", started_at=T0))
            insert_fills(db, [_fill("t1", run_id="r1"), _fill("t2", run_id="no-such-run")])
        assert get_run(db, "r1") is None
        assert fills(db) == []
        assert not db.conn.in_transaction


def test_a_failed_inner_write_spoils_the_whole_transaction_even_when_caught(
    tmp_path: Path,
) -> None:
    with open_state(tmp_path / "stagectl.db") as db:
        with pytest.raises(InternalError, match="rolled back"), db.transaction():
            start_run(db, Run("r1", "run-live", "paper", started_at=T0))
            with pytest.raises(sqlite3.IntegrityError):
                insert_fills(db, [_fill("t1"), _fill("t2", run_id="no-such-run")])
        assert get_run(db, "r1") is None
        assert fills(db) == []
        start_run(db, Run("r2", "run-live", "paper", started_at=T0))
        assert get_run(db, "r2") is not None


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    with open_state(tmp_path / "stagectl.db") as db, pytest.raises(sqlite3.IntegrityError):
        insert_fills(db, [_fill("t1", run_id="no-such-run")])


def test_the_timing_hook_records_each_committed_write_transaction_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timings = tmp_path / "txn.us"
    with open_state(tmp_path / "state.db") as db:  # opened before: not timed
        start_run(db, Run("r0", "backtest", "paper", started_at=datetime(2026, 1, 1, tzinfo=UTC)))
    assert not timings.exists()
    monkeypatch.setenv("STAGECTL_TXN_TIMING_FILE", str(timings))
    with open_state(tmp_path / "state.db") as db:
        with db.transaction():  # one outer transaction, its inner block joins it
            start_run(
                db, Run("r1", "backtest", "paper", started_at=datetime(2026, 1, 1, tzinfo=UTC))
            )
        with pytest.raises(RuntimeError), db.transaction():  # rolled back: not a commit
            raise RuntimeError("boom")
        start_run(db, Run("r2", "backtest", "paper", started_at=datetime(2026, 1, 1, tzinfo=UTC)))
    lines = timings.read_text().splitlines()
    assert len(lines) == 2 and all(int(line) >= 0 for line in lines)
