"""Fold a home's old ``state/paper.db`` into its one state database (docs/state.md).

Before one state, ``run-live --paper`` kept its runs in ``HOME/state/paper.db`` while
every other command read ``HOME/state/stagectl.db``. The first open of the state
database beside such a file merges it:

1. the old file is checkpointed and migrated to the current schema in place (the
   migrations keep every row), so both files have the same tables and columns;
2. one transaction copies every row into the state database: rows with a natural key
   (runs, orders, fills, positions, funding payments, snapshots, the paper books) are
   skipped when already there; rows keyed by a row id (events, guard decisions,
   incidents, directives, reports, trading-state history) get new ids, and the
   references to guard decisions are rewritten. The paper book's trading state
   replaces the paper mode's; directives and history rows without a mode become paper's.
   The same transaction records the merge id in ``legacy_merges``;
3. the old file is renamed ``paper.db.merged-<UTC time>``, never deleted.

The merge id is a random id written into the old file itself (its own ``legacy_merges``
table, path ``MERGE_ID_MARK``) before anything is copied, so it survives a crash while
the file's bytes do not stay the same (every open rewrites its header). A merge that
stopped anywhere leaves either nothing or everything copied; a rerun finds the merge id
recorded, copies nothing and only renames the file.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stagectl.state._codec import ts_text
from stagectl.state.db import StateDB
from stagectl.state.ledger import refresh_fill_totals

LEGACY_PAPER_DB = "paper.db"
MERGE_ID_MARK = "(this file's merge id)"
HOME_STATE_DB = "stagectl.db"

# tables whose rows carry a natural key: INSERT ... ON CONFLICT DO NOTHING
_KEYED = (
    "runs",
    "orders",
    "fills",
    "positions",
    "funding_payments",
    "equity_snapshots",
    "paper_books",
    "paper_records",
)
# tables keyed by a row id, copied in id order with new ids
_BY_ROW_ID = ("events", "reports")


@dataclass(frozen=True)
class LegacyMerge:
    """What a merge did: the file, where it went, and the rows copied per table."""

    source: Path
    renamed_to: Path
    rows: dict[str, int]
    already_merged: bool

    def notice(self) -> str:
        if self.already_merged:
            return f"{self.source} was already merged; renamed it to {self.renamed_to.name}"
        copied = sum(self.rows.values())
        return (
            f"merged the paper state {self.source} into the state database ({copied} rows: "
            f"{self.rows.get('runs', 0)} runs, {self.rows.get('fills', 0)} fills, "
            f"{self.rows.get('equity_snapshots', 0)} equity snapshots); the old file is "
            f"kept as {self.renamed_to.name}"
        )


def legacy_paper_db(state_path: Path) -> Path | None:
    """The old paper state beside the home's state database, when there is one."""
    if state_path.name != HOME_STATE_DB:
        return None
    legacy = state_path.with_name(LEGACY_PAPER_DB)
    if not legacy.is_file() or legacy.resolve() == state_path.resolve():
        return None
    return legacy


def merge_legacy_paper_db(db: StateDB, legacy: Path, *, now: datetime) -> LegacyMerge:
    """Merge ``legacy`` into ``db`` (migrated, current) and rename it; see the module doc."""
    from stagectl.state.db import open_state

    with open_state(legacy) as old:
        merge_id = _merge_id(old.sqlite_conn, now)
        old.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        old.conn.execute("PRAGMA journal_mode = DELETE")
    rows: dict[str, int] = {}
    # ATTACH and DETACH are refused inside a transaction: the copy runs between them.
    db.conn.execute("ATTACH DATABASE ? AS legacy", (str(legacy),))
    try:
        with db.transaction() as conn:
            done = conn.execute(
                "SELECT 1 FROM main.legacy_merges WHERE merge_id = ?", (merge_id,)
            ).fetchone()
            if done is None:
                rows = _copy_all(db.sqlite_conn)
                conn.execute(
                    "INSERT INTO main.legacy_merges (merge_id, path, merged_at, rows_json)"
                    " VALUES (?, ?, ?, ?)",
                    (merge_id, str(legacy), ts_text(now), json.dumps(rows, sort_keys=True)),
                )
    finally:
        db.conn.execute("DETACH DATABASE legacy")
    target = legacy.with_name(f"{legacy.name}.merged-{now.strftime('%Y%m%dT%H%M%SZ')}")
    legacy.rename(target)
    return LegacyMerge(legacy, target, rows, already_merged=done is not None)


def _merge_id(conn: sqlite3.Connection, now: datetime) -> str:
    """The old file's merge id, stamped into it (committed) the first time."""
    row = conn.execute(
        "SELECT merge_id FROM legacy_merges WHERE path = ?", (MERGE_ID_MARK,)
    ).fetchone()
    if row is not None:
        return str(row[0])
    merge_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO legacy_merges (merge_id, path, merged_at, rows_json) VALUES (?, ?, ?, '{}')",
        (merge_id, MERGE_ID_MARK, ts_text(now)),
    )
    return merge_id


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in conn.execute(f'PRAGMA main.table_info("{table}")')]


def _copy_all(conn: sqlite3.Connection) -> dict[str, int]:
    rows: dict[str, int] = {}
    last_fill_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM main.fills").fetchone()[0])
    for table in _KEYED:
        columns = [c for c in _columns(conn, table) if c != "id"]
        rows[table] = _insert_select(conn, table, columns, columns, conflict=True)
    refresh_fill_totals(conn, rows["fills"], last_fill_id)
    for table in _BY_ROW_ID:
        columns = [c for c in _columns(conn, table) if c != "id"]
        rows[table] = _insert_select(conn, table, columns, columns, conflict=False)
    rows["guard_decisions"] = _copy_guard_decisions(conn)
    for table in ("incidents", "risk_directives"):
        columns = [c for c in _columns(conn, table) if c != "id"]
        values = [_remapped(c) for c in columns]
        rows[table] = _insert_select(conn, table, columns, values, conflict=False)
    history = [c for c in _columns(conn, "trading_flag_history") if c != "id"]
    rows["trading_flag_history"] = _insert_select(
        conn, "trading_flag_history", history, [_remapped(c) for c in history], conflict=False
    )
    rows["trading_states"] = conn.execute(
        "INSERT INTO main.trading_states SELECT * FROM legacy.trading_states"
        " WHERE mode = 'paper' ON CONFLICT (mode) DO UPDATE SET"
        " trading_state = excluded.trading_state, reason = excluded.reason,"
        " source = excluded.source, updated_at = excluded.updated_at"
    ).rowcount
    return {table: count for table, count in rows.items() if count}


def _remapped(column: str) -> str:
    """The value copied for ``column``: decision ids through the id map, no mode -> paper."""
    if column == "guard_decision_id":
        return "(SELECT new_id FROM temp.decision_ids WHERE old_id = guard_decision_id)"
    if column == "mode":
        return "coalesce(mode, 'paper')"
    return column


def _insert_select(
    conn: sqlite3.Connection,
    table: str,
    columns: list[str],
    values: list[str],
    *,
    conflict: bool,
) -> int:
    order = " ORDER BY id" if "id" in _columns(conn, table) else ""
    sql = (
        f"INSERT INTO main.{table} ({', '.join(columns)})"
        f" SELECT {', '.join(values)} FROM legacy.{table}{' WHERE 1' if conflict else ''}{order}"
    )
    if conflict:
        sql += " ON CONFLICT DO NOTHING"
    return int(conn.execute(sql).rowcount)


def _copy_guard_decisions(conn: sqlite3.Connection) -> int:
    """Copy the decisions one by one, keeping a map from old to new ids for references."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS decision_ids (old_id INTEGER, new_id INTEGER)")
    conn.execute("DELETE FROM temp.decision_ids")
    columns = [c for c in _columns(conn, "guard_decisions") if c != "id"]
    old_rows = conn.execute(
        f"SELECT id, {', '.join(columns)} FROM legacy.guard_decisions ORDER BY id"
    ).fetchall()
    marks = ", ".join("?" * len(columns))
    for old_id, *values in old_rows:
        cursor = conn.execute(
            f"INSERT INTO main.guard_decisions ({', '.join(columns)}) VALUES ({marks})", values
        )
        conn.execute("INSERT INTO temp.decision_ids VALUES (?, ?)", (old_id, cursor.lastrowid))
    return len(old_rows)
