"""Move a desk's state between backends (SQLite <-> PostgreSQL), verified row for row.

The source is read in one read transaction (one snapshot of it), the destination is
written in one write transaction, and before that transaction commits every table is
compared: the same row count and the same digest on both sides. The digest is the sum,
modulo 2**256, of the SHA-256 of each row's canonical JSON, so it does not depend on the
order the rows come back in (PostgreSQL's text collation may order keys differently from
SQLite). A mismatch rolls the whole copy back: the destination is never half-written.
Both sides are read ``BATCH_ROWS`` at a time (PostgreSQL through a server-side cursor), so
the copy's memory does not grow with a table.

Ids are copied as they are (the references between tables stay right); PostgreSQL's
identity sequences are then moved past the largest id copied. ``orders`` rows are copied
in their insertion order (SQLite's rowid, PostgreSQL's ``rowid`` column), the order the
trading loop reads a run's orders in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from stagectl.errors import CheckFailed, InputError
from stagectl.state.db import StateDB, stream_rows
from stagectl.state.ledger_reads import snapshot

BATCH_ROWS = 5000
FIRST_TABLES = ("runs", "guard_decisions", "fill_imports")
"""Tables others reference (foreign keys are checked at once on SQLite): copied first."""
WRITTEN_BY_MIGRATIONS = frozenset({"fill_totals_mark"})
"""Tables a fresh database already has rows in (its migrations wrote them)."""
_MODULUS = 2**256


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int
    digest: str


class _Digest:
    """A running row count and order-independent digest, fed one row at a time."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    def add(self, row: Sequence[Any]) -> Sequence[Any]:
        encoded = json.dumps(list(row), separators=(",", ":")).encode()
        self.total = (
            self.total + int.from_bytes(hashlib.sha256(encoded).digest(), "big")
        ) % _MODULUS
        self.count += 1
        return row

    def result(self) -> tuple[int, str]:
        return self.count, f"{self.total:064x}"


def table_digest(rows: Iterable[Sequence[Any]]) -> tuple[int, str]:
    """The row count and order-independent digest of ``rows``."""
    digest = _Digest()
    for row in rows:
        digest.add(row)
    return digest.result()


def check_empty(db: StateDB, where: str) -> None:
    """Refuse a destination that holds any desk data."""
    if db.pending_migrations() and not db.applied_migrations():
        return
    full = {
        table: count
        for table, count in db.row_counts().items()
        if count and table not in WRITTEN_BY_MIGRATIONS
    }
    if full:
        tables = ", ".join(f"{name} ({count})" for name, count in sorted(full.items()))
        raise InputError(
            f"the destination is not empty: {tables}; copy into a new database", where=where
        )


def check_current(db: StateDB, where: str) -> None:
    if db.pending_migrations():
        raise InputError(
            f"the source's schema is behind ({len(db.pending_migrations())} pending "
            "migrations); run `stagectl --state SRC init` first",
            where=where,
        )


def copy_state(source: StateDB, destination: StateDB) -> list[TableCopy]:
    """Copy every table of ``source`` into the empty, migrated ``destination``."""
    tables = _ordered(source.table_names())
    missing = sorted(set(tables) - set(destination.table_names()))
    if missing:
        raise InputError(f"the destination lacks tables {missing}", where=str(destination.path))
    copied: list[TableCopy] = []
    with snapshot(source), destination.transaction() as conn:
        for table in WRITTEN_BY_MIGRATIONS & set(tables):
            conn.execute(f'DELETE FROM "{table}"')
        for table in tables:
            columns = source.columns(table)
            names = ", ".join(f'"{column}"' for column in columns)
            insert = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'
            # The source is read once: its rows are counted and digested on their way
            # into the batches; only the destination is read back.
            read = _Digest()
            rows = stream_rows(source, _select(source, table, columns), BATCH_ROWS)
            for batch in _batches(read.add(row) for row in rows):
                conn.executemany(insert, batch)
            want = read.result()
            got = table_digest(
                stream_rows(destination, _select(destination, table, columns), BATCH_ROWS)
            )
            if want != got:
                raise CheckFailed(
                    f"table {table}: the copy has {got[0]} rows (digest {got[1][:12]}) but "
                    f"the source {want[0]} (digest {want[1][:12]}); nothing was written",
                    where=str(destination.path),
                )
            copied.append(TableCopy(table, want[0], want[1]))
        if destination.backend == "postgresql":
            _advance_identities(destination, tables)
    return copied


def _ordered(tables: list[str]) -> list[str]:
    first = [name for name in FIRST_TABLES if name in tables]
    return first + [name for name in tables if name not in first]


def _select(db: StateDB, table: str, columns: list[str]) -> str:
    names = ", ".join(f'"{column}"' for column in columns)
    if table == "orders" or db.backend == "sqlite":
        return f'SELECT {names} FROM "{table}" ORDER BY rowid'
    return f'SELECT {names} FROM "{table}"' + (" ORDER BY id" if "id" in columns else "")


def _batches(rows: Iterable[Sequence[Any]]) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _advance_identities(db: StateDB, tables: list[str]) -> None:
    """Move each ``id`` identity past the largest id copied, so new rows get new ids."""
    from stagectl.state.pg import identity_tables

    for table in sorted(identity_tables() & set(tables)):
        db.conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
            f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
        )
