"""Staging an import's rows and merging them into ``fills`` in short write transactions.

Inside :func:`merge_session` (under ``state.ledger_imports.merge_lock``), the importer
alternates two steps for every batch of at most ``MERGE_BATCH_ROWS`` trades:

- :meth:`MergeSession.stage` writes the batch into TEMP tables of the importer's own
  connection. They are private to it, so staging takes no lock on the state database;
  it runs in the pause the importer leaves between two merge transactions.
- :meth:`MergeSession.merge` copies the staged rows into ``fills`` (file order, duplicates
  of a recorded trade skipped) with the import's id, the rows' totals into
  ``fill_import_totals`` and the record's progress, in one ``BEGIN IMMEDIATE``
  transaction. When a staged trade was already recorded (in the ledger, or earlier in
  the same import), the same transaction compares the two records
  (``state.fill_conflicts``) and raises ``FillConflict``, rolling the step back, if they
  differ. A background thread then checkpoints the WAL on its own connection, so the
  WAL stays small without the importer waiting for it.

Between the end of one merge transaction and the start of the next, the write lock stays
free for at least ``MERGE_PAUSE_S``.

The same SQL runs on PostgreSQL: its TEMP tables are the session's (``pg_temp``, searched
first, as SQLite's ``temp`` schema is), the staged trades' order is an identity column
named ``rowid`` (SQLite's implicit one), and there is no WAL of ours to checkpoint.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stagectl.state._codec import ts_text
from stagectl.state.db import StateDB
from stagectl.state.fill_conflicts import check_recorded
from stagectl.state.ledger_checkpoints import drop_stale
from stagectl.state.ledger_imports import FillImport, check_merging
from stagectl.state.ledger_totals import EXACT, SymbolTotal, keep_mark, new_fill_totals

# Rows per merge transaction. Measured on the 2-core build machine (docs/performance.md):
# a 10,000-row step held the write lock 20-40 ms (median) and 50-94 ms at the most while
# importing a million fills, about 170 ms with other jobs loading both cores, so a
# concurrent writer (a run-live bar) waits well under its busy timeout.
MERGE_BATCH_ROWS = 10_000

# The least time the write lock stays free between two merge transactions. A writer that
# finds the lock taken retries 0, 1, 3, 8, 18, 33, 53, 78, 103 ms after its first attempt
# (SQLite's busy handler; then every 50-100 ms), so a free window of 15 ms ending within its
# first ~35 ms of waiting always holds a retry: a 10,000-row step holds the lock 20-35 ms on
# a quiet machine, so the writer gets in at the next pause instead of racing the importer.
# Measured (docs/performance.md): with 15 ms a concurrent writer waited at most ~50-110 ms;
# with no pause, up to 430 ms. Staging the next chunk fills most of the pause.
MERGE_PAUSE_S = 0.015

# Trades staged per INSERT statement: one statement binding 100 rows' values costs a
# fraction of 100 single-row executions (the per-execution overhead is most of it).
STAGE_GROUP_ROWS = 100

# The low-cardinality columns of an imported trade, staged once per distinct combination.
TRADE_KIND_FIELDS = ("symbol", "side", "fee", "fee_currency", "liquidity", "exchange_order_id")


@dataclass(frozen=True)
class TradePart:
    """Consecutive staged trades merged in one transaction, with their per-symbol totals
    (``ledger_totals.SymbolTotal``) when known; None: read back what was inserted."""

    rows: int
    totals: Mapping[str, SymbolTotal] | None = None


@dataclass(frozen=True)
class TradeBatch:
    """Trades read together, split for staging (docs/ledger.md, "How a million rows stay
    fast").

    Each trade is ``(trade_id, kind, qty, price, ts)``, where ``kind`` indexes ``kinds``:
    the distinct ``TRADE_KIND_FIELDS`` tuples (symbol, side, fee, ...) of the batch. In
    file order, ``groups`` hold the values of ``STAGE_GROUP_ROWS`` trades each, flattened,
    and ``tail`` the remaining trades one by one. All text is encoded as the codec does.
    ``parts`` split the ``count`` trades, in order, into merge transactions of at most
    ``MERGE_BATCH_ROWS``. ``row_numbers`` are the trades' rows in their input (file lines),
    for naming a trade in an error."""

    groups: Sequence[Sequence[Any]]
    tail: Sequence[Sequence[Any]]
    count: int
    kinds: Sequence[Sequence[str | None]]
    parts: Sequence[TradePart]
    row_numbers: Sequence[int] = ()


@dataclass(frozen=True)
class MergeStep:
    """One merge transaction, reported to the caller after it committed."""

    import_id: int
    merged_rows: int  # the import's staged rows merged so far
    inserted: int  # of them new
    held_s: float  # how long the transaction held the write lock


@contextmanager
def merge_session(db: StateDB) -> Iterator[MergeSession]:
    """The TEMP tables, the background checkpointer and the pacing of one import's merge.

    Meanwhile the importer's connection does not checkpoint on commit (SQLite's automatic
    checkpoint runs inside ``COMMIT``, after the lock is released but before the call
    returns, so it would delay the next step and blur the time a step holds the lock)."""
    conn = db.conn
    if db.backend == "postgresql":
        conn.execute(_STAGE_TABLE.format(rowid="rowid BIGINT GENERATED ALWAYS AS IDENTITY, "))
        conn.execute(_KINDS_TABLE)
        try:
            yield MergeSession(db, None)
        finally:
            conn.execute("DROP TABLE IF EXISTS stagectl_trade_stage")
            conn.execute("DROP TABLE IF EXISTS stagectl_trade_kinds")
        return
    autocheckpoint = int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(_STAGE_TABLE.format(rowid=""))
    conn.execute(_KINDS_TABLE)
    checkpointer = _Checkpointer(db)
    try:
        yield MergeSession(db, checkpointer)
    finally:
        checkpointer.close()
        conn.execute("DROP TABLE IF EXISTS temp.stagectl_trade_stage")
        conn.execute("DROP TABLE IF EXISTS temp.stagectl_trade_kinds")
        conn.execute(f"PRAGMA wal_autocheckpoint = {autocheckpoint}")


# The staging tables, private to the importer's connection (unqualified names below find
# them first on both backends: SQLite searches ``temp`` before ``main``, PostgreSQL
# ``pg_temp`` before the schema).
_STAGE_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS stagectl_trade_stage ({rowid}trade_id TEXT, kind INTEGER,"
    " qty TEXT, price TEXT, ts TEXT)"
)
_KINDS_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS stagectl_trade_kinds (kind INTEGER PRIMARY KEY,"
    " symbol TEXT, side TEXT, fee TEXT, fee_currency TEXT, liquidity TEXT,"
    " exchange_order_id TEXT)"
)
_STAGE_COLUMNS = "stagectl_trade_stage (trade_id, kind, qty, price, ts)"


class MergeSession:
    """Stages batches and merges them, pacing the merge transactions."""

    def __init__(self, db: StateDB, checkpointer: _Checkpointer | None) -> None:
        self._db = db
        self._checkpointer = checkpointer
        self._lock_freed = 0.0  # when the last merge transaction committed

    def stage(self, batch: TradeBatch) -> None:
        """Replace the staged trades by ``batch``."""
        conn = self._db.conn
        conn.execute("DELETE FROM stagectl_trade_stage")
        conn.execute("DELETE FROM stagectl_trade_kinds")
        conn.executemany(
            "INSERT INTO stagectl_trade_kinds VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(k, *kind) for k, kind in enumerate(batch.kinds)],
        )
        one = "(?, ?, ?, ?, ?)"
        insert = f"INSERT INTO {_STAGE_COLUMNS} VALUES "
        conn.executemany(insert + ", ".join([one] * STAGE_GROUP_ROWS), batch.groups)
        conn.executemany(insert + one, batch.tail)

    def merge(
        self,
        fill_import: FillImport,
        batch: TradeBatch,
        *,
        skip: int = 0,
        after_step: Callable[[MergeStep], None] | None = None,
    ) -> FillImport:
        """Copy the staged trades of ``batch`` (but the first ``skip``: merged by an earlier
        run) into ``fills``, one transaction per part, in file order; returns the record as
        it stands after the last step. ``after_step`` is called after each commit.

        Raises ``state.fill_conflicts.FillConflict`` (the step rolled back; earlier steps
        stay merged, invisible, for the caller to discard) when a trade is already
        recorded with other values."""
        row = self._db.conn.execute("SELECT min(rowid) FROM stagectl_trade_stage").fetchone()
        first_rowid = int(row[0] or 1)
        start = 0
        for part in batch.parts:
            end = start + part.rows
            if end > skip:
                begin = max(start, skip)
                totals = part.totals if begin == start else None
                rest = MERGE_PAUSE_S - (time.perf_counter() - self._lock_freed)
                if rest > 0:
                    time.sleep(rest)
                fill_import, step = _merge_part(
                    self._db, fill_import, first_rowid, (begin, end - 1), totals
                )
                self._lock_freed = time.perf_counter()
                if self._checkpointer is not None:
                    self._checkpointer.request()
                if after_step is not None:
                    after_step(step)
            start = end
        return fill_import


def _merge_part(
    db: StateDB,
    fill_import: FillImport,
    base_rowid: int,
    positions: tuple[int, int],
    totals: Mapping[str, SymbolTotal] | None,
) -> tuple[FillImport, MergeStep]:
    """One merge transaction: the trades at ``positions`` (first and last, inclusive) of
    the batch staged from ``base_rowid``. As few statements as possible: each one hands
    Python's GIL back and forth with the import's reader thread while the write lock is
    held; the check of already recorded trades runs only when some were."""
    first_rowid, last_rowid = base_rowid + positions[0], base_rowid + positions[1]
    rows = last_rowid - first_rowid + 1
    import_totals = fill_import.totals
    with db.transaction() as conn:
        locked = time.perf_counter()
        last_id = check_merging(conn, fill_import.import_id)
        before = conn.total_changes
        conn.execute(_MERGE_SQL, (fill_import.import_id, first_rowid, last_rowid))
        inserted = conn.total_changes - before
        if inserted != rows:
            check_recorded(conn, fill_import.import_id, base_rowid, positions)
        if inserted:
            if inserted != rows or totals is None:
                totals = new_fill_totals(conn, last_id)
            import_totals = _write_import_totals(conn, fill_import, totals)
            drop_stale(conn, last_id)
            keep_mark(conn, last_id)
        conn.execute(
            "UPDATE fill_imports SET merged_rows = merged_rows + ?, inserted = inserted + ?,"
            " updated_at = ? WHERE id = ?",
            (rows, inserted, ts_text(datetime.now(UTC)), fill_import.import_id),
        )
    held = time.perf_counter() - locked
    merged = replace(
        fill_import,
        merged_rows=fill_import.merged_rows + rows,
        inserted=fill_import.inserted + inserted,
        totals=import_totals,
    )
    return merged, MergeStep(merged.import_id, merged.merged_rows, merged.inserted, held)


_MERGE_SQL = (
    "INSERT INTO fills (exchange, trade_id, run_id, client_order_id, exchange_order_id,"
    " symbol, side, qty, price, fee, fee_currency, liquidity, ts, source, import_id)"
    " SELECT i.account, k.symbol || ':' || s.trade_id, NULL, NULL, k.exchange_order_id,"
    " k.symbol, k.side, s.qty, s.price, k.fee, k.fee_currency, k.liquidity, s.ts, i.source,"
    " i.id FROM fill_imports AS i, stagectl_trade_stage AS s"
    " JOIN stagectl_trade_kinds AS k ON k.kind = s.kind"
    " WHERE i.id = ?1 AND s.rowid BETWEEN ?2 AND ?3 ORDER BY s.rowid"
    " ON CONFLICT (exchange, trade_id) DO NOTHING"
)


def _write_import_totals(
    conn: Any, fill_import: FillImport, step: Mapping[str, SymbolTotal]
) -> dict[str, SymbolTotal]:
    """The import's per-symbol totals plus a merge step's (exact Decimal sums), written to
    ``fill_import_totals`` for the step's symbols; returns them all."""
    totals = dict(fill_import.totals)
    for symbol, more in step.items():
        had = totals.get(symbol)
        if had is None:
            totals[symbol] = more
        elif had.bookable and more.bookable:
            totals[symbol] = SymbolTotal(
                had.fills + more.fills, EXACT.add(had.position, more.position)
            )
        else:
            totals[symbol] = SymbolTotal(had.fills + more.fills, Decimal(0), bookable=False)
    conn.executemany(
        "INSERT INTO fill_import_totals (import_id, symbol, fills, position)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (import_id, symbol) DO UPDATE SET"
        " fills = excluded.fills, position = excluded.position",
        [
            (fill_import.import_id, symbol, total.fills, _position_text(total))
            for symbol, total in totals.items()
            if symbol in step
        ],
    )
    return totals


def _position_text(total: SymbolTotal) -> str | None:
    return str(total.position) if total.bookable else None


class _Checkpointer:
    """Checkpoints the WAL (PASSIVE: it never waits for, nor blocks, a writer) on its own
    connection, in a thread, whenever a merge step asks: the copying overlaps the next
    steps instead of delaying them. A checkpoint that fails is left to the next one (or to
    SQLite's automatic checkpoints): it only keeps the WAL short. Requests go through a
    ``queue.SimpleQueue`` (single C calls; see ``services.ledger.importer._ChunkReader``
    for why not an ``Event``), and the requests that piled up meanwhile are served by one
    checkpoint."""

    def __init__(self, db: StateDB) -> None:
        self._conn = sqlite3.connect(
            db.file,
            timeout=db.busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        self._wanted: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="metrics-import-checkpoint")
        self._thread.daemon = True
        self._thread.start()

    def request(self) -> None:
        self._wanted.put(None)

    def _work(self) -> None:
        while True:
            self._wanted.get()
            with suppress(queue.Empty):
                while True:
                    self._wanted.get_nowait()
            if self._closing:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                continue

    def close(self) -> None:
        self._closing = True
        self._wanted.put(None)
        self._thread.join()
        self._conn.close()
