"""`stagectl state info`: every exit path, --json, and the fast import path."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from stagectl.state.migration_names import MIGRATION_NAMES
from tests.conftest import Run


def _migrated_to(path: Path, version: int) -> None:
    from stagectl.state.db import open_state
    from stagectl.state.migrations import apply_migrations

    path.parent.mkdir(parents=True, exist_ok=True)
    sqlite3.connect(path).close()
    with open_state(path, migrate=False) as db:
        stop = MIGRATION_NAMES[version] if version < len(MIGRATION_NAMES) else None
        apply_migrations(db, stop_before=stop)


def test_state_info_json_reports_version_tables_and_size(run: Run, home: Path) -> None:
    assert run(["init"]).exit_code == 0
    result = run(["state", "info", "--json"])
    assert result.exit_code == 0, result.stderr
    document = result.json()
    state = home / "state" / "stagectl.db"
    assert document["path"] == str(state)
    assert document["size_bytes"] == state.stat().st_size
    assert document["journal_mode"] == "wal"
    assert document["schema"] == {
        "version": len(MIGRATION_NAMES),
        "latest": len(MIGRATION_NAMES),
        "pending": [],
        "unknown": [],
        "status": "up to date",
    }
    assert document["tables"]["fills"] == 0
    assert "_sqlite_migrations" not in document["tables"]


def test_state_info_counts_rows(run: Run, home: Path) -> None:
    run(["init"])
    conn = sqlite3.connect(home / "state" / "stagectl.db")
    conn.executemany(
        "INSERT INTO reports (kind, sha256, signed, generated_at) VALUES ('x', ?, 0, 't')",
        [("a",), ("b",)],
    )
    conn.commit()
    conn.close()
    assert run(["state", "info", "--json"]).json()["tables"]["reports"] == 2
    human = run(["state", "info"])
    assert human.exit_code == 0
    assert any(line.split() == ["reports", "2"] for line in human.stdout.splitlines())


def test_state_info_lists_pending_migrations_of_an_old_database(run: Run, home: Path) -> None:
    _migrated_to(home / "state" / "stagectl.db", 2)
    result = run(["state", "info", "--json"])
    assert result.exit_code == 0
    schema = result.json()["schema"]
    assert (schema["version"], schema["pending"]) == (2, list(MIGRATION_NAMES[2:]))
    human = run(["state", "info"]).stdout
    assert f"schema version: 2 of {len(MIGRATION_NAMES)}" in human
    assert f"pending: {MIGRATION_NAMES[2]}" in human


def test_state_info_honours_the_state_option(run: Run, tmp_path: Path) -> None:
    elsewhere = tmp_path / "paper.db"
    _migrated_to(elsewhere, len(MIGRATION_NAMES))
    result = run(["--state", elsewhere, "state", "info", "--json"])
    assert result.exit_code == 0
    assert result.json()["path"] == str(elsewhere)


def test_state_info_without_a_database_exits_2_and_creates_nothing(run: Run, home: Path) -> None:
    result = run(["state", "info", "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    path = home / "state" / "stagectl.db"
    assert result.stderr == f"stagectl: no state database at {path}; run `stagectl init`\n"
    assert not (home / "state").exists()


def test_state_info_on_a_file_that_is_not_a_database_exits_2(run: Run, home: Path) -> None:
    bogus = home / "notes.db"
    bogus.write_text("ts,equity\n" * 50)
    result = run(["--state", bogus, "state", "info"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"stagectl: {bogus}: not a SQLite database")


def test_state_info_on_a_locked_database_exits_3(run: Run, home: Path) -> None:
    run(["init"])
    holder = sqlite3.connect(home / "state" / "stagectl.db", isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute(
        "INSERT INTO reports (kind, sha256, signed, generated_at) VALUES ('x','h',0,'t')"
    )
    try:
        result = run(["state", "info", "--json"], env={"STAGECTL_BUSY_TIMEOUT_MS": "50"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "locked" in result.stderr


def test_state_info_does_not_import_sqlite_utils_or_pandas(run: Run, home: Path) -> None:
    run(["init"])
    script = (
        "import sys\n"
        "from stagectl.cli.main import main\n"
        "code = main(['state', 'info', '--json'])\n"
        "names = ('sqlite_utils', 'pandas', 'numpy', 'rich', 'ccxt')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + script],
        capture_output=True,
        text=True,
        check=False,
        cwd=home,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert json.loads(done.stdout)["schema"]["status"] == "up to date"


def test_state_info_lists_a_paper_run_with_its_snapshots_and_fills(run: Run, home: Path) -> None:
    paper = run(["run-live", "--start", "2026-03-01", "--end", "2026-03-03T23:00Z", "--json"])
    assert paper.exit_code == 0, paper.stderr
    summary = paper.json()
    document = run(["state", "info", "--json"]).json()
    (listed,) = document["runs"]
    assert listed["run_id"] == summary["run_id"]
    assert (listed["mode"], listed["account"], listed["status"]) == (
        "paper",
        f"paper:{summary['run_id']}",
        "completed",
    )
    assert listed["equity_snapshots"] == summary["bars"] == 72
    assert listed["fills"] == summary["fills"]
    assert not (home / "state" / "paper.db").exists()
    text = run(["state", "info"])
    assert summary["run_id"] in text.stdout and "paper" in text.stdout
