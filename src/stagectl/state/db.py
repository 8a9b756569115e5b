"""The state database: one SQLite file per home, opened the same way everywhere.

Every connection runs in WAL mode (readers never wait for the writer), with a
busy timeout (a second writer waits, then fails with exit 3) and foreign keys
on. Writes go through :meth:`StateDB.transaction`, which takes the write lock
up front (``BEGIN IMMEDIATE``) so a transaction never fails half-way on a lock
upgrade: one transaction per logical write (an import, a bar step, a guard
decision). A nested ``transaction()`` block joins the outer one, so a service can
wrap several repository writes in one transaction at no extra cost.

Only :mod:`sqlite3` is imported here: ``open_state(path, migrate=False)`` is on
the fast path of ``stagectl state info``. sqlite-utils (which imports pandas)
is imported by :mod:`stagectl.state.migrations` only when migrations run.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Protocol, TextIO

from stagectl.config.state_url import PostgresURL, StateLocation
from stagectl.errors import InputError, InternalError, StateLockedError
from stagectl.state.migration_names import MIGRATION_NAMES, MIGRATION_SET, MIGRATIONS_TABLE

DatabaseError = sqlite3.Error
"""What a repository raises for a database failure it does not translate itself; callers
outside ``state`` catch this name (and pass it to :func:`translate_error`), never sqlite3."""

BUSY_TIMEOUT_ENV = "STAGECTL_BUSY_TIMEOUT_MS"
DEFAULT_BUSY_TIMEOUT_MS = 5000
TXN_TIMING_ENV = "STAGECTL_TXN_TIMING_FILE"
"""Names a file to which every write transaction appends its duration in microseconds,
one a line (``benchmarks/pg_concurrency.py``); unset, nothing is measured."""


class Cursor(Protocol):
    """What ``execute`` returns on either backend (sqlite3's cursor, ``state.pg.PgCursor``)."""

    @property
    def rowcount(self) -> int: ...
    @property
    def lastrowid(self) -> int | None: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The part of sqlite3's connection API the repositories use; ``state.pg.PgConnection``
    gives a PostgreSQL connection the same."""

    @property
    def in_transaction(self) -> bool: ...
    @property
    def total_changes(self) -> int: ...
    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...
    def close(self) -> None: ...


def is_locked_error(error: sqlite3.Error) -> bool:
    """True when SQLite gave up waiting for a lock another connection holds."""
    name = getattr(error, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "is locked" in str(error)


def locked_error(path: StateLocation, timeout_ms: int) -> StateLockedError:
    return StateLockedError(
        f"the state database is locked by another process (waited {timeout_ms} ms); "
        f"retry, or raise {BUSY_TIMEOUT_ENV}",
        where=str(path),
    )


def not_a_database_error(path: StateLocation) -> InputError:
    return InputError(
        "not a SQLite database (or it is corrupt); point --state at a stagectl state "
        "database or run `stagectl init`",
        where=str(path),
    )


def busy_timeout_from_env() -> int:
    """The busy timeout in ms: ``STAGECTL_BUSY_TIMEOUT_MS`` or the default."""
    raw = os.environ.get(BUSY_TIMEOUT_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_BUSY_TIMEOUT_MS
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise InputError(
            f"must be a whole number of milliseconds >= 0, got {raw!r}", where=BUSY_TIMEOUT_ENV
        )
    return value


@dataclass
class StateDB:
    """An open state database. Use as a context manager or call :meth:`close`.

    ``path`` is where it is: the SQLite file, or the PostgreSQL URL (no password)."""

    path: StateLocation
    conn: Connection
    busy_timeout_ms: int
    fence: Callable[[Connection], None] | None = field(default=None, repr=False)
    """Run at the start of every outermost write transaction, under the write lock: it
    raises to refuse the transaction (run-live's lease check, ``services.live.lease``)."""
    _spoiled: bool = field(default=False, repr=False)
    _timing: TextIO | None = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "postgresql" if isinstance(self.path, PostgresURL) else "sqlite"

    @property
    def file(self) -> Path:
        """The SQLite file (a PostgreSQL state has none: an internal error to ask)."""
        if isinstance(self.path, PostgresURL):
            raise InternalError("a PostgreSQL state database has no file")
        return self.path

    @property
    def sqlite_conn(self) -> sqlite3.Connection:
        """The sqlite3 connection, for the SQLite-only paths (legacy merge, sqlite-utils)."""
        if not isinstance(self.conn, sqlite3.Connection):
            raise InternalError("this operation needs a SQLite state database")
        return self.conn

    def has_table(self, name: str) -> bool:
        return has_table(self.conn, name)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` if the block raises.

        Inside another ``transaction()`` block this joins the outer transaction (no
        savepoint: a repository call inside a service's transaction costs no extra
        statements). A nested block that raises spoils the whole transaction: even if
        the caller catches the error, the outer block rolls back and raises
        :class:`~stagectl.errors.InternalError` instead of committing a half-written
        change.
        """
        if self.conn.in_transaction:
            try:
                yield self.conn
            except BaseException:
                self._spoiled = True
                raise
            return
        began = time.perf_counter() if self._timing is not None else 0.0
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            self._reraise(error)
        self._spoiled = False
        try:
            if self.fence is not None:
                self.fence(self.conn)
            yield self.conn
        except BaseException as error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError) and is_locked_error(error):
                raise locked_error(self.path, self.busy_timeout_ms) from error
            raise
        if self._spoiled:
            self.conn.execute("ROLLBACK")
            raise InternalError(
                "a write inside this transaction failed and the error was caught; the "
                "whole transaction was rolled back so nothing is half-written"
            )
        try:
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._reraise(error)
        if self._timing is not None:
            self._timing.write(f"{(time.perf_counter() - began) * 1e6:.0f}\n")

    def _reraise(self, error: sqlite3.Error) -> NoReturn:
        translated = self.translate_error(error)
        if translated is error:
            raise error
        raise translated from error

    def translate_error(self, error: sqlite3.Error) -> Exception:
        """The stagectl error for a SQLite error: locked (exit 3), not a database (exit 2).

        Any other SQLite error is returned unchanged (an internal error).
        """
        return translate_error(self.path, self.busy_timeout_ms, error)

    def applied_migrations(self) -> list[str]:
        """Names of the applied migrations of stagectl's set, in the order applied."""
        table, order = MIGRATIONS_TABLE, "rowid"
        if self.backend == "postgresql":
            from stagectl.state.pg import MIGRATIONS_TABLE as table

            order = "id"
        if not self.has_table(table):
            return []
        rows = self.conn.execute(
            f"SELECT name FROM {table} WHERE migration_set = ? ORDER BY {order}",
            (MIGRATION_SET,),
        ).fetchall()
        return [str(row[0]) for row in rows]

    def schema_version(self) -> int:
        """The number of applied migrations (0 for an empty database)."""
        return len(self.applied_migrations())

    def pending_migrations(self) -> list[str]:
        applied = set(self.applied_migrations())
        return [name for name in MIGRATION_NAMES if name not in applied]

    def row_counts(self) -> dict[str, int]:
        """Rows per table, the internal ones (sqlite_*, the migrations record) left out."""
        names = self.table_names()
        return {
            name: int(self.conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
            for name in names
        }

    def table_names(self) -> list[str]:
        """The state's tables, sorted, the internal ones left out."""
        if self.backend == "postgresql":
            from stagectl.state.pg import PgConnection, table_names

            assert isinstance(self.conn, PgConnection)
            return table_names(self.conn)
        return [
            str(row[0])
            for row in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name != ? ORDER BY name",
                (MIGRATIONS_TABLE,),
            )
        ]

    def columns(self, table: str) -> list[str]:
        """``table``'s columns in their order (PostgreSQL's ``orders.rowid``, which stands
        in for SQLite's implicit rowid, is not one: it is not data)."""
        if self.backend == "postgresql":
            rows = self.conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = ? AND column_name <> 'rowid'"
                " ORDER BY ordinal_position",
                (table,),
            )
            return [str(row[0]) for row in rows]
        return [str(row[1]) for row in self.conn.execute(f'PRAGMA table_info("{table}")')]

    def journal_mode(self) -> str:
        if self.backend == "postgresql":
            return "postgresql"
        return str(self.conn.execute("PRAGMA journal_mode").fetchone()[0])

    def storage_bytes(self) -> tuple[int, int]:
        """The database's size and its write-ahead log's: the SQLite file and its ``-wal``
        file, or PostgreSQL's ``pg_database_size`` (its WAL is the server's, not counted)."""
        if isinstance(self.path, PostgresURL):
            row = self.conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]), 0
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size, wal.stat().st_size if wal.is_file() else 0

    def server_version(self) -> str:
        """The server's version (PostgreSQL) or the SQLite library's."""
        if self.backend == "postgresql":
            from stagectl.state.pg import PgConnection

            assert isinstance(self.conn, PgConnection)
            return self.conn.server_version()
        return sqlite3.sqlite_version

    def foreign_keys_enabled(self) -> bool:
        if self.backend == "postgresql":
            return True
        return bool(self.conn.execute("PRAGMA foreign_keys").fetchone()[0])

    def close(self) -> None:
        if self._timing is not None:
            self._timing.close()
        self.conn.close()

    def time_transactions(self) -> None:
        """Append each committed write transaction's duration to ``STAGECTL_TXN_TIMING_FILE``
        when it is set (from ``BEGIN`` to the end of ``COMMIT``, lock wait included)."""
        target = os.environ.get(TXN_TIMING_ENV, "").strip()
        if target:
            self._timing = open(target, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def __enter__(self) -> StateDB:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def has_table(conn: Connection, name: str) -> bool:
    """Whether the state database has table ``name`` (either backend)."""
    if getattr(conn, "backend", "sqlite") == "postgresql":
        from stagectl.state.pg import PgConnection
        from stagectl.state.pg import has_table as pg_has_table

        assert isinstance(conn, PgConnection)
        return pg_has_table(conn, name)
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def stream_rows(db: StateDB, sql: str, batch_rows: int) -> Iterator[Any]:
    """A query's rows without holding them all: SQLite's cursor steps through them as they
    are read; PostgreSQL's are fetched ``batch_rows`` at a time through a server-side
    cursor, which needs a transaction (a read ``snapshot`` or a write ``transaction``)."""
    if db.backend == "postgresql":
        from stagectl.state.pg import PgConnection

        assert isinstance(db.conn, PgConnection)
        return db.conn.stream(sql, batch_rows)
    return iter(db.conn.execute(sql))


def open_state(
    path: StateLocation, *, migrate: bool = True, busy_timeout_ms: int | None = None
) -> StateDB:
    """Open the state database at ``path`` (a SQLite file or a PostgreSQL URL).

    With ``migrate=True`` (the default) a missing file and its parent
    directories are created, the database is switched to WAL and every pending
    migration is applied. With ``migrate=False`` nothing is created or changed
    and sqlite-utils is not imported: a missing file is an input error, and
    the caller decides what pending or unknown migrations mean for it.

    A home's old ``state/paper.db`` beside the database is merged into it on the
    first open, whatever ``migrate`` says (``state.legacy``), and a one-line
    notice says so on stderr.

    Raises InputError (exit 2) for a missing file (``migrate=False``), a file
    that is not a SQLite database or a schema newer than this stagectl, and
    StateLockedError (exit 3) when the database stays locked past the timeout.
    """
    timeout_ms = busy_timeout_from_env() if busy_timeout_ms is None else busy_timeout_ms
    if isinstance(path, PostgresURL):
        return _open_postgres(path, migrate=migrate, timeout_ms=timeout_ms)
    path = Path(path)
    legacy = _legacy_paper_db(path)
    migrate = migrate or legacy is not None
    if path.is_dir():
        raise InputError("is a directory, not a state database file", where=str(path))
    if not path.exists():
        if not migrate:
            raise InputError(f"no state database at {path}; run `stagectl init`")
        path.parent.mkdir(parents=True, exist_ok=True)
    db = _connect(path, timeout_ms)
    try:
        db.time_transactions()
        _configure(db, set_wal=migrate)
        if migrate:
            _check_known_schema(db)
            if db.pending_migrations():
                from stagectl.state.migrations import apply_migrations

                apply_migrations(db)
            if legacy is not None:
                _merge_legacy(db, legacy)
    except BaseException:
        db.close()
        raise
    return db


def _open_postgres(url: PostgresURL, *, migrate: bool, timeout_ms: int) -> StateDB:
    """A PostgreSQL state: the database must exist (``createdb``, by its administrator);
    ``migrate`` applies the pending migrations. Without it an empty database reads as
    schema version 0, as an empty SQLite file does."""
    from stagectl.state.pg import connect

    db = StateDB(path=url, conn=connect(url, timeout_ms), busy_timeout_ms=timeout_ms)
    try:
        db.time_transactions()
        if migrate:
            _check_known_schema(db)
            if db.pending_migrations():
                from stagectl.state.migrations import apply_migrations

                apply_migrations(db)
    except sqlite3.Error as error:
        db.close()
        raise _open_error(url, timeout_ms, error) from error
    except BaseException:
        db.close()
        raise
    return db


def _legacy_paper_db(path: Path) -> Path | None:
    from stagectl.state.legacy import legacy_paper_db

    return legacy_paper_db(path)


def _merge_legacy(db: StateDB, legacy: Path) -> None:
    from datetime import UTC, datetime

    from stagectl.state.legacy import merge_legacy_paper_db

    merged = merge_legacy_paper_db(db, legacy, now=datetime.now(UTC))
    print(f"stagectl: {merged.notice()}", file=sys.stderr, flush=True)


def _connect(path: Path, timeout_ms: int) -> StateDB:
    try:
        conn = sqlite3.connect(path, timeout=timeout_ms / 1000, isolation_level=None)
    except sqlite3.Error as error:
        raise InputError(f"cannot open the state database: {error}", where=str(path)) from error
    return StateDB(path=path, conn=conn, busy_timeout_ms=timeout_ms)


def _configure(db: StateDB, *, set_wal: bool) -> None:
    """Busy timeout and foreign keys per connection; WAL once per file (it persists)."""
    try:
        db.conn.execute(f"PRAGMA busy_timeout = {int(db.busy_timeout_ms)}")
        db.conn.execute("PRAGMA foreign_keys = ON")
        mode = db.journal_mode()
        if set_wal and mode.lower() != "wal":
            db.conn.execute("PRAGMA journal_mode = WAL")
        db.conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as error:
        raise _open_error(db.path, db.busy_timeout_ms, error) from error


def _check_known_schema(db: StateDB) -> None:
    """Refuse a database migrated by a newer stagectl: its schema is not ours to write."""
    try:
        applied = db.applied_migrations()
    except sqlite3.DatabaseError as error:
        raise _open_error(db.path, db.busy_timeout_ms, error) from error
    unknown = [name for name in applied if name not in MIGRATION_NAMES]
    if unknown:
        raise InputError(
            f"the state database has migrations this stagectl does not know "
            f"({', '.join(unknown)}); upgrade stagectl",
            where=str(db.path),
        )


def translate_error(path: StateLocation, timeout_ms: int, error: sqlite3.Error) -> Exception:
    """Locked past the timeout -> StateLockedError; not a database -> InputError; else as is."""
    if is_locked_error(error):
        return locked_error(path, timeout_ms)
    name = getattr(error, "sqlite_errorname", "")
    if name == "SQLITE_NOTADB" or "not a database" in str(error):
        return not_a_database_error(path)
    return error


def _open_error(path: StateLocation, timeout_ms: int, error: sqlite3.Error) -> Exception:
    translated = translate_error(path, timeout_ms, error)
    if translated is error:
        return InputError(f"cannot read the state database: {error}", where=str(path))
    return translated
