"""The state on PostgreSQL: the URL, its password, `state info` and `state copy` both ways.

Runs against the throwaway server of tests/pg.py (skipped only when its binaries are
absent)."""

from __future__ import annotations

import os
import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.state_url import (
    PASSWORD_FILE_ENV,
    PostgresURL,
    mask_url,
    parse_state_location,
    password_from_file,
)
from stagectl.domain.types import Event, Fill
from stagectl.errors import InputError, StateLockedError
from stagectl.state import copy as state_copy
from stagectl.state import pg
from stagectl.state.db import open_state, stream_rows
from stagectl.state.journal import record_event
from stagectl.state.ledger import insert_fills
from stagectl.state.ledger_reads import snapshot
from stagectl.state.runs import Run, start_run
from tests.conftest import Run as CliRun
from tests.integration.paper_seed import Seed
from tests.integration.paper_seed import write as write_seed
from tests.integration.test_ledger_totals import T0, random_rows, write

START = datetime(2024, 10, 1, tzinfo=UTC)
END = datetime(2024, 10, 8, tzinfo=UTC)


def test_a_url_with_a_password_is_refused_and_the_message_masks_it() -> None:
    with pytest.raises(InputError) as refused:
        parse_state_location("postgresql://desk:s3cret@db.internal:5432/desk")
    assert "s3cret" not in str(refused.value)
    assert "postgresql://desk:***@db.internal:5432/desk" in str(refused.value)
    assert mask_url("postgres://u:p@h/d") == "postgres://u:***@h/d"


def test_a_url_with_a_bad_port_is_a_usage_error_that_shows_no_password() -> None:
    with pytest.raises(InputError) as refused:
        parse_state_location("postgresql://desk:s3cret@db.internal:abc/desk")
    assert "s3cret" not in str(refused.value) and "Port could not be cast" in str(refused.value)


def test_a_path_stays_a_path_and_a_url_names_its_database() -> None:
    assert parse_state_location("state/x.db") == Path("state/x.db")
    url = parse_state_location("postgres://desk@db.internal/desk?sslmode=require")
    assert url == PostgresURL("postgresql://desk@db.internal/desk?sslmode=require")
    assert isinstance(url, PostgresURL) and url.database == "desk"
    with pytest.raises(InputError, match="names no database"):
        parse_state_location("postgresql://desk@db.internal/")


def test_the_password_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret))
    secret.chmod(0o644)
    with pytest.raises(InputError, match="readable by others") as loose:
        password_from_file()
    assert "hunter2" not in str(loose.value)
    secret.chmod(0o600)
    assert password_from_file() == "hunter2"


def test_placeholders_become_psycopgs_and_quoted_text_is_left_alone() -> None:
    assert pg.translate("SELECT ? WHERE a LIKE '50%?' AND b = ?", True) == (
        "SELECT %s WHERE a LIKE '50%%?' AND b = %s",
        None,
    )
    assert pg.translate("WHERE i = ?1 AND r BETWEEN ?2 AND ?3 OR j = ?1", True) == (
        "WHERE i = %s AND r BETWEEN %s AND %s OR j = %s",
        (0, 1, 2, 0),
    )
    assert pg.translate("WHERE id > ? AND +run_id = ? AND x = a + b", True)[0] == (
        "WHERE id > %s AND run_id = %s AND x = a + b"
    )


def test_state_info_shows_the_backend_server_and_schema(run: CliRun, pg_server: Any) -> None:
    url = pg_server.new_database()
    before = run(["--state", url, "state", "info", "--json"])
    assert before.exit_code == 0, before.stderr
    assert before.json()["schema"]["version"] == 0
    assert run(["--state", url, "init"]).exit_code == 0
    info = run(["--state", url, "state", "info", "--json"]).json()
    assert info["backend"] == "postgresql"
    assert info["server_version"].startswith("15.")
    assert info["schema"]["status"] == "up to date"
    assert info["tables"]["fills"] == 0


def test_an_unreachable_server_is_an_external_failure(run: CliRun, pg_server: Any) -> None:
    url = f"postgresql://postgres@127.0.0.1:{pg_server.port}/no_such_database"
    result = run(["--state", url, "state", "info"])
    assert result.exit_code == 3
    assert "cannot connect to the state database" in result.stderr


def test_a_writer_waits_for_the_other_then_fails_with_exit_3(pg_server: Any) -> None:
    """Writers queue on one advisory lock as they do on SQLite's write lock: a second one
    waits its busy timeout, then fails (StateLockedError, exit 3)."""
    url = parse_state_location(pg_server.new_database())
    holder = open_state(url)
    waiter = open_state(url, busy_timeout_ms=200)
    try:
        with holder.transaction():
            start_run(holder, Run("r1", "run-live", "paper", started_at=START))
            with pytest.raises(StateLockedError) as locked:
                start_run(waiter, Run("r2", "run-live", "paper", started_at=START))
            assert locked.value.exit_code == 3
        start_run(waiter, Run("r2", "run-live", "paper", started_at=START))
        assert holder.row_counts()["runs"] == 2
    finally:
        holder.close()
        waiter.close()


def test_concurrent_writers_lose_no_increment(pg_server: Any) -> None:
    """Read-then-write inside a transaction (the fill totals do it) stays exact with
    several writers at once: the write lock serialises them."""
    url = parse_state_location(pg_server.new_database())
    open_state(url).close()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with open_state(url, busy_timeout_ms=30_000) as db:
                for i in range(10):
                    fill = Fill(
                        account="binanceusdm", trade_id=f"{n}-{i}", symbol="ETHUSDT",
                        side="buy", qty=Decimal("0.1"), price=Decimal("3000"), fee=Decimal(0),
                        fee_currency="USDT", liquidity="taker", ts=START, source="live",
                    )  # fmt: skip
                    insert_fills(db, [fill])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with open_state(url) as db:
        row = db.conn.execute("SELECT fills, position FROM fill_totals").fetchone()
    assert (row[0], Decimal(row[1])) == (40, Decimal("4.0"))


def test_state_copy_moves_a_desk_to_postgresql_and_back_verified(
    run: CliRun, home: Path, pg_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_copy, "BATCH_ROWS", 7)  # several batches of every table
    source = home / "state" / "stagectl.db"
    write_seed(source, Seed(start=START, end=END))
    url = pg_server.new_database()
    there = run(["state", "copy", str(source), url, "--json"])
    assert there.exit_code == 0, there.stderr
    copied = there.json()
    assert copied["verified"] is True
    assert copied["tables"]["fills"]["rows"] > 0
    assert copied["tables"]["equity_snapshots"]["rows"] > 0

    back = tmp_path / "back.db"
    returned = run(["state", "copy", url, str(back), "--json"])
    assert returned.exit_code == 0, returned.stderr
    assert returned.json()["tables"] == copied["tables"]

    # The same desk read through either backend: the same runs, tables and trading state.
    sqlite_info = run(["--state", str(source), "state", "info", "--json"]).json()
    pg_info = run(["--state", url, "state", "info", "--json"]).json()
    assert pg_info["tables"] == sqlite_info["tables"]
    assert pg_info["runs"] == sqlite_info["runs"]

    # New rows on PostgreSQL get new ids after the copied ones.
    with open_state(parse_state_location(url)) as db:
        start_run(db, Run("after-copy", "run-live", "paper", started_at=END))
        new_id = record_event(db, Event(ts=END, event_type="NOTE", run_id="after-copy"))
    assert new_id > copied["tables"]["events"]["rows"]


def test_state_copy_refuses_a_destination_with_desk_data(
    run: CliRun, home: Path, pg_server: Any
) -> None:
    source = home / "state" / "stagectl.db"
    with open_state(source) as db:
        start_run(db, Run("r1", "run-live", "paper", started_at=START))
    url = pg_server.new_database()
    assert run(["state", "copy", str(source), url]).exit_code == 0
    again = run(["state", "copy", str(source), url])
    assert again.exit_code == 2
    assert "the destination is not empty: runs (1)" in again.stderr
    assert os.path.getsize(source) > 0


def test_the_ledger_reads_the_same_on_postgresql_after_a_copy(
    run: CliRun, home: Path, pg_server: Any, tmp_path: Path
) -> None:
    """`metrics window` (the totals, their mark and the FIFO lots) answers the same on a
    desk's SQLite state and on its PostgreSQL copy, and live inserts keep both exact."""
    rows = random_rows(random.Random(5), 400)
    assert run(["metrics", "import", write(tmp_path / "a.csv", rows)]).exit_code == 0
    url = pg_server.new_database()
    assert run(["state", "copy", str(home / "state" / "stagectl.db"), url]).exit_code == 0
    live = [
        Fill(
            account="binanceusdm", trade_id=f"SOLUSDT:live-{k}", symbol="SOLUSDT",
            side="sell" if k % 3 else "buy", qty=Decimal("0.7"), price=Decimal("101.5"),
            fee=Decimal("0.001"), fee_currency="SOL", ts=T0 + timedelta(hours=3, seconds=k),
            source="live",
        )
        for k in range(20)
    ]  # fmt: skip
    for location in (home / "state" / "stagectl.db", parse_state_location(url)):
        with open_state(location) as db:
            insert_fills(db, live)
    untils = [T0 + timedelta(minutes=m) for m in range(0, 240, 37)]
    counted = []
    for until in untils:
        answers = []
        for state in (str(home / "state" / "stagectl.db"), url):
            args = ["--state", state, "metrics", "window", "--hours", "1"]
            result = run([*args, "--until", until.isoformat(), "--json"])
            assert result.exit_code == 0, result.stderr
            answers.append({k: v for k, v in result.json().items() if k != "state"})
        assert answers[0] == answers[1], until
        counted.append(answers[0]["total"]["fills"])
    assert min(counted) == 0 and max(counted) > 200  # empty and full windows among them


def test_metrics_import_into_postgresql_reads_as_the_same_import_into_sqlite(
    run: CliRun, home: Path, pg_server: Any, tmp_path: Path
) -> None:
    """`metrics import` writes to a PostgreSQL state (it used to refuse one)."""
    url = pg_server.new_database()
    trades = write(tmp_path / "a.csv", random_rows(random.Random(1), 50))
    answers = []
    for state in (str(home / "state" / "stagectl.db"), url):
        imported = run(["--state", state, "metrics", "import", trades, "--json"])
        assert imported.exit_code == 0, imported.stderr
        args = ["--state", state, "metrics", "window", "--hours", "240", "--until"]
        window = run([*args, (T0 + timedelta(days=5)).isoformat(), "--json"])
        assert window.exit_code == 0, window.stderr
        answers.append({k: v for k, v in window.json().items() if k != "state"})
    assert answers[0] == answers[1]
    assert answers[0]["total"]["fills"] > 0


def test_a_postgresql_table_is_read_in_batches_through_a_server_side_cursor(
    pg_server: Any,
) -> None:
    """`state copy` streams a PostgreSQL table (it used to read it whole into memory)."""
    url = parse_state_location(pg_server.new_database())
    with open_state(url) as db:
        start_run(db, Run("r1", "run-live", "paper", started_at=START))
        for k in range(7):
            record_event(db, Event(ts=START + timedelta(hours=k), event_type="NOTE", run_id="r1"))
        with snapshot(db):
            rows = stream_rows(db, "SELECT id FROM events ORDER BY id", 3)
            first = next(rows)
            open_cursors = db.conn.execute("SELECT name FROM pg_cursors").fetchall()
            assert [name for (name,) in open_cursors if name.startswith("stagectl_stream_")]
            assert [first, *rows] == [(k,) for k in range(1, 8)]
