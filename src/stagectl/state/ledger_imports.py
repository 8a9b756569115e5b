"""Imports of trades into the fill ledger: their records, from start to complete.

``metrics import`` (and ``metrics fetch``) used to write a whole file in one ``BEGIN
IMMEDIATE`` transaction: a million fills held the write lock for ~6-10 s, longer than a
paper or live run waits for it (docs/ledger.md, "Importing trades"). Now an import is a
record in ``fill_imports`` (migration ``0008_fill_imports``) and moves in steps that each
hold the lock briefly:

1. Under :func:`merge_lock` (one importer per database at a time), :func:`start_import`
   resumes the unfinished import with the same :class:`ImportKey` (same content, account,
   source and given symbol) or starts one. Any other unfinished import belongs to a
   process that is gone (it would hold the lock): it is marked ``discarding`` and the
   caller deletes its rows with :func:`discard_rows`.
2. ``state.ledger_merge`` stages the validated rows in the importer's own TEMP tables and
   merges them into ``fills`` in short transactions. Every row carries the import's id, so
   no reader sees it (``state.fill_visibility``); ``fill_import_totals`` and the record's
   progress move in the same transactions.
3. :func:`complete_import` marks the import ``complete`` and adds its totals to
   ``fill_totals`` in one short transaction: all its rows become visible at once.

A process killed anywhere leaves no visible row of its import. Rerunning the same import
resumes it after the rows it merged (they are also protected by the unique trade key), and
completes it once; a later import of other content discards it instead. An import of
content already complete merges again and adds nothing (every row is a duplicate).
"""

from __future__ import annotations

import fcntl
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stagectl.state._codec import ts_text
from stagectl.state.db import StateDB
from stagectl.state.ledger_totals import (
    SymbolTotal,
    add_to_totals,
    has_totals,
    keep_mark,
    largest_fill_id,
)

MERGING, DISCARDING, DISCARDED, COMPLETE = "merging", "discarding", "discarded", "complete"

# Rows deleted per transaction when an import is discarded, and the pause between two such
# transactions: a delete costs about what an insert does, so the bounds of a merge step
# (state.ledger_merge.MERGE_BATCH_ROWS and MERGE_PAUSE_S, which says why a pause).
DISCARD_BATCH_ROWS = 10_000
DISCARD_PAUSE_S = 0.015
MERGE_LOCK_POLL_S = 0.1
"""How often an import waiting for another one's merge on PostgreSQL asks for the lock."""


@dataclass(frozen=True)
class ImportKey:
    """What an import writes: its content (sha256 of the file's bytes, or of fetched
    trades), the account (``fills.exchange``), the source and the symbol given for a file
    without one. Two runs with the same key write the same rows."""

    content_sha256: str
    account: str
    source: str
    symbol: str | None = None


@dataclass(frozen=True)
class FillImport:
    """An import record: ``merged_rows`` staged rows offered to ``fills`` so far, of which
    ``inserted`` were new (the rest were already recorded); ``totals`` are the inserted
    rows' per-symbol totals, as in ``fill_import_totals``."""

    import_id: int
    origin: str
    status: str
    merged_rows: int
    inserted: int
    totals: Mapping[str, SymbolTotal] = field(default_factory=dict)


class ImportSuperseded(RuntimeError):
    """The import record is no longer this process's to merge (another process discarded
    it: it found the merge lock free while this one was still running)."""


@contextmanager
def merge_lock(db: StateDB, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Exclusive right to merge imports into this database, held while the block runs.

    An advisory lock on ``<state>.import-lock`` (``flock``): the kernel releases it when
    the process exits, however it exits, so finding it free proves that no process is
    merging and that every unfinished import was abandoned. ``on_wait`` is called once if
    another import holds it (this one then waits for it to finish).

    On PostgreSQL: a session advisory lock of the importer's connection, which the server
    drops when that session ends (the process exits, or its connection is lost), with the
    same proof."""
    if db.backend == "postgresql":
        with _pg_merge_lock(db, on_wait):
            yield
        return
    path = db.file.with_name(db.file.name + ".import-lock")
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _pg_merge_lock(db: StateDB, on_wait: Callable[[], None] | None) -> Iterator[None]:
    from stagectl.state.pg import IMPORT_LOCK_KEY

    def take() -> bool:
        row = db.conn.execute("SELECT pg_try_advisory_lock(?)", (IMPORT_LOCK_KEY,)).fetchone()
        return bool(row[0])

    if not take():
        if on_wait is not None:
            on_wait()
        while not take():
            time.sleep(MERGE_LOCK_POLL_S)
    try:
        yield
    finally:
        db.conn.execute("SELECT pg_advisory_unlock(?)", (IMPORT_LOCK_KEY,))


def start_import(db: StateDB, key: ImportKey, origin: str) -> tuple[FillImport, list[FillImport]]:
    """The import to merge ``key`` into (the unfinished one with this key, or a new one) and
    the other unfinished imports, now marked ``discarding``. Call under :func:`merge_lock`."""
    now = ts_text(datetime.now(UTC))
    resume: FillImport | None = None
    abandoned: list[FillImport] = []
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT id, origin, status, merged_rows, inserted, content_sha256, account, source,"
            " symbol FROM fill_imports WHERE status IN (?, ?) ORDER BY id",
            (MERGING, DISCARDING),
        ).fetchall()
        for row in rows:
            record = FillImport(*row[:5])
            same = ImportKey(*row[5:]) == key
            if resume is None and same and record.status == MERGING:
                resume = record
                continue
            if record.status == MERGING:
                conn.execute(
                    "UPDATE fill_imports SET status = ?, updated_at = ? WHERE id = ?",
                    (DISCARDING, now, record.import_id),
                )
            abandoned.append(_with_status(record, DISCARDING))
        if resume is None:
            cursor = conn.execute(
                "INSERT INTO fill_imports (content_sha256, account, source, symbol, origin,"
                " status, after_fill_id, started_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, (SELECT coalesce(max(id), 0) FROM fills), ?, ?)",
                (
                    key.content_sha256,
                    key.account,
                    key.source,
                    key.symbol,
                    origin,
                    MERGING,
                    now,
                    now,
                ),
            )
            resume = FillImport(int(cursor.lastrowid or 0), origin, MERGING, 0, 0)
        else:
            conn.execute(
                "UPDATE fill_imports SET origin = ?, updated_at = ? WHERE id = ?",
                (origin, now, resume.import_id),
            )
            resume = replace(resume, totals=_import_totals(conn, resume.import_id))
    return resume, abandoned


def _key_values(key: ImportKey) -> tuple[str, str, str, str | None]:
    return key.content_sha256, key.account, key.source, key.symbol


def unfinished_imports(db: StateDB) -> list[FillImport]:
    """Imports whose rows are in ``fills`` but not visible: merging or being discarded."""
    rows = db.conn.execute(
        "SELECT id, origin, status, merged_rows, inserted FROM fill_imports"
        " WHERE status IN (?, ?) ORDER BY id",
        (MERGING, DISCARDING),
    ).fetchall()
    return [FillImport(*row) for row in rows]


def complete_import(db: StateDB, fill_import: FillImport) -> FillImport:
    """Make every row of the import visible, with its totals, in one short transaction."""
    now = ts_text(datetime.now(UTC))
    with db.transaction() as conn:
        check_merging(conn, fill_import.import_id)
        conn.execute(
            "UPDATE fill_imports SET status = ?, completed_at = ?, updated_at = ? WHERE id = ?",
            (COMPLETE, now, now, fill_import.import_id),
        )
        if has_totals(conn):
            add_to_totals(conn, _import_totals(conn, fill_import.import_id), was_empty=False)
    return _with_status(fill_import, COMPLETE)


def discard_rows(
    db: StateDB, fill_import: FillImport, *, batch_rows: int = DISCARD_BATCH_ROWS
) -> int:
    """Delete the rows of an import being discarded, ``batch_rows`` per transaction, then
    mark it ``discarded``; returns how many rows were deleted. The rows were never visible,
    so ``fill_totals`` does not change; ``fill_import_totals`` shrinks with every step so
    that readers' counts stay exact."""
    import_id = fill_import.import_id
    deleted = 0
    while True:
        if deleted:
            time.sleep(DISCARD_PAUSE_S)
        with db.transaction() as conn:
            after, remaining = conn.execute(
                "SELECT (SELECT after_fill_id FROM fill_imports WHERE id = ?1),"
                " (SELECT coalesce(sum(fills), 0) FROM fill_import_totals WHERE import_id = ?1)",
                (import_id,),
            ).fetchone()
            rows = []
            if remaining:
                rows = conn.execute(
                    "SELECT id, symbol FROM fills WHERE id > ? AND import_id = ? ORDER BY id"
                    " LIMIT ?",
                    (after, import_id, batch_rows),
                ).fetchall()
            if not rows:
                conn.execute("DELETE FROM fill_import_totals WHERE import_id = ?", (import_id,))
                conn.execute(
                    "UPDATE fill_imports SET status = ?, updated_at = ? WHERE id = ?",
                    (DISCARDED, ts_text(datetime.now(UTC)), import_id),
                )
                return deleted
            last, largest = rows[-1][0], largest_fill_id(conn)
            conn.execute(
                "DELETE FROM fills WHERE id > ? AND id <= ? AND import_id = ?",
                (after, last, import_id),
            )
            keep_mark(conn, largest)
            for symbol, count in Counter(symbol for _, symbol in rows).items():
                conn.execute(
                    "UPDATE fill_import_totals SET fills = fills - ?"
                    " WHERE import_id = ? AND symbol = ?",
                    (count, import_id, symbol),
                )
            conn.execute(
                "UPDATE fill_imports SET after_fill_id = ?, updated_at = ? WHERE id = ?",
                (last, ts_text(datetime.now(UTC)), import_id),
            )
            deleted += len(rows)


def discard_import(db: StateDB, fill_import: FillImport) -> int:
    """Give up this process's own import (a bad row or a conflicting trade found after it
    began merging): mark it ``discarding``, delete its rows, then its record, so the
    ledger's tables are as they were before it started. Returns how many rows were
    deleted. (Interrupted, it is left ``discarding`` for the next import to finish.)"""
    with db.transaction() as conn:
        check_merging(conn, fill_import.import_id)
        conn.execute(
            "UPDATE fill_imports SET status = ?, updated_at = ? WHERE id = ?",
            (DISCARDING, ts_text(datetime.now(UTC)), fill_import.import_id),
        )
    deleted = discard_rows(db, _with_status(fill_import, DISCARDING))
    with db.transaction() as conn:
        conn.execute(
            "DELETE FROM fill_imports WHERE id = ?1 AND status = ?2 AND NOT EXISTS (SELECT 1"
            " FROM fills WHERE id > fill_imports.after_fill_id AND import_id = ?1)",
            (fill_import.import_id, DISCARDED),
        )
    return deleted


def check_merging(conn: Any, import_id: int) -> int:
    """Inside a write transaction: raise unless the import is still merging; returns the
    largest fill id (0 when empty): the rows written next get larger ids."""
    status, last_id = conn.execute(
        "SELECT (SELECT status FROM fill_imports WHERE id = ?),"
        " (SELECT coalesce(max(id), 0) FROM fills)",
        (import_id,),
    ).fetchone()
    if status != MERGING:
        raise ImportSuperseded(
            f"import {import_id} is {status or 'gone'}: another process took over "
            "the state database's imports while this one was running"
        )
    return int(last_id)


def _import_totals(conn: Any, import_id: int) -> dict[str, SymbolTotal]:
    rows = conn.execute(
        "SELECT symbol, fills, position FROM fill_import_totals WHERE import_id = ? AND fills > 0",
        (import_id,),
    )
    return {
        symbol: SymbolTotal(fills, Decimal(position))
        if position is not None
        else SymbolTotal(fills, Decimal(0), bookable=False)
        for symbol, fills, position in rows
    }


def _with_status(record: FillImport, status: str) -> FillImport:
    return replace(record, status=status)
