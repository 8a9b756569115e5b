"""PostgreSQL under the same repositories: a connection that speaks the SQL they write.

The repositories write one SQL dialect, the common ground of SQLite and PostgreSQL
(``ON CONFLICT ... DO UPDATE/NOTHING``, ``excluded.``, ``coalesce``, partial indexes), with
SQLite's ``?`` placeholders, and use the :mod:`sqlite3` connection API (``execute``,
``executemany``, ``rowcount``, ``lastrowid``, ``total_changes``, ``in_transaction``).
:class:`PgConnection` gives a psycopg 3 connection that API, so every repository,
transaction and migration runs unchanged on both backends:

- ``?`` and ``?N`` become psycopg's ``%s`` (a literal ``%`` is doubled); SQLite's planner
  hint ``+column`` becomes ``column``; booleans are sent
  as 0/1, as SQLite stores them (the schema's flags are ``INTEGER CHECK (x IN (0, 1))``).
- ``lastrowid``: an ``INSERT`` into a table keyed by an ``id`` identity gets
  ``RETURNING id``.
- ``BEGIN IMMEDIATE`` (SQLite: take the one write lock up front) becomes ``BEGIN`` plus a
  transaction-scoped advisory lock on one key: writers queue exactly as on SQLite, so
  every read-then-write a repository does inside a transaction (the fill totals, an
  order's upsert check) keeps its meaning, while readers never wait (MVCC). Waiting is
  bounded by ``lock_timeout`` (the busy timeout); past it the command fails with exit 3.
  A plain ``BEGIN`` (a consistent read, ``state.ledger_reads.snapshot``) is
  ``REPEATABLE READ``: its reads see one snapshot, as a SQLite read transaction does.
- Errors come back as :mod:`sqlite3`'s classes (``IntegrityError``, ``OperationalError``,
  ``DatabaseError``), the names services already catch through ``state.db.DatabaseError``.

The schema is SQLite's migrations translated once (:func:`schema_script`): ``STRICT``
dropped, ``INTEGER`` -> ``BIGINT``, ``REAL`` -> ``DOUBLE PRECISION``, an ``id INTEGER
PRIMARY KEY`` -> an identity column, ``json_extract`` -> ``->>``, the one trigger as a
PL/pgSQL function; ``orders`` gets a ``rowid`` identity (its insertion order, which
SQLite's implicit rowid gives the queries that order by it).

psycopg is imported only when a ``postgresql://`` state is opened (``stagectl[postgres]``).
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from stagectl.config.state_url import PostgresURL, password_from_file
from stagectl.errors import ExternalError, InputError, first_line

if TYPE_CHECKING:
    import psycopg

_streams = itertools.count(1)
WRITE_LOCK_KEY = 0x5354_4147_4543_544C
"""The advisory lock every write transaction holds ("STAGECTL"): one writer at a time."""
IMPORT_LOCK_KEY = 0x5354_4147_494D_5054
"""The session advisory lock of the one process merging imports ("STAGIMPT"),
``state.ledger_imports.merge_lock``: the server drops it when the session ends."""
MIGRATIONS_TABLE = "stagectl_migrations"
INSTALL_HINT = "pip install 'stagectl[postgres]'"


class PgIntegrityError(sqlite3.IntegrityError):
    """A PostgreSQL constraint violation, as the repositories' sqlite3 class."""


class PgOperationalError(sqlite3.OperationalError):
    """A PostgreSQL lock timeout, lost connection or serialization failure."""


class PgDatabaseError(sqlite3.DatabaseError):
    """Any other PostgreSQL error."""


def _as_sqlite_error(error: Exception) -> sqlite3.Error:
    import psycopg
    from psycopg import errors

    message = first_line(error)
    if isinstance(error, errors.LockNotAvailable | errors.QueryCanceled):
        # lock_timeout (55P03) and statement cancels: "is locked" is what is_locked_error reads.
        return PgOperationalError(f"database is locked ({message})")
    if isinstance(error, psycopg.IntegrityError):
        return PgIntegrityError(message)
    if isinstance(error, psycopg.OperationalError):
        return PgOperationalError(message)
    return PgDatabaseError(message)


@lru_cache(maxsize=512)
def translate(sql: str, with_params: bool) -> tuple[str, tuple[int, ...] | None]:
    """SQLite placeholders to psycopg's, and the parameter order for ``?N``.

    Returns the SQL and, when it used numbered placeholders, the 0-based index of the
    parameter each ``%s`` takes. SQLite's unary ``+column`` (keeps the planner off the
    column's index; PostgreSQL has no unary plus on text) becomes the column. Text
    inside single quotes is left alone."""
    out: list[str] = []
    order: list[int] = []
    numbered = False
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char == "'":
            end = sql.index("'", i + 1)
            while end + 1 < n and sql[end + 1] == "'":
                end = sql.index("'", end + 2)
            literal = sql[i : end + 1]
            out.append(literal.replace("%", "%%") if with_params else literal)
            i = end + 1
            continue
        if char == "?":
            j = i + 1
            while j < n and sql[j].isdigit():
                j += 1
            if j > i + 1:
                numbered = True
                order.append(int(sql[i + 1 : j]) - 1)
            else:
                order.append(len(order))
            out.append("%s")
            i = j
            continue
        if char == "+" and _unary_plus(sql, i):
            i += 1  # SQLite's ``+column`` (no index on it, a planner hint): the column
            continue
        if char == "%" and with_params:
            out.append("%%")
        else:
            out.append(char)
        i += 1
    return "".join(out), tuple(order) if numbered else None


def _unary_plus(sql: str, i: int) -> bool:
    """Whether the ``+`` at ``i`` prefixes a column name (``AND +run_id = ?``)."""
    after = sql[i + 1 : i + 2]
    return (after.isalpha() or after == "_") and (i == 0 or sql[i - 1] in " (")


_INSERT_TABLE = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)


def _params(params: Sequence[Any], order: tuple[int, ...] | None) -> list[Any]:
    values = [int(value) if isinstance(value, bool) else value for value in params]
    return values if order is None else [values[index] for index in order]


class PgCursor:
    """What a repository reads from ``execute``: rows, ``rowcount``, ``lastrowid``."""

    def __init__(self, cursor: psycopg.Cursor[Any], lastrowid: int | None = None) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor) if self._cursor.description else iter(())


class PgConnection:
    """A psycopg connection with the part of sqlite3's connection API stagectl uses."""

    backend = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self.total_changes = 0

    @property
    def raw(self) -> psycopg.Connection[Any]:
        return self._conn

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def server_version(self) -> str:
        number = self._conn.info.server_version
        return f"{number // 10000}.{number % 10000}"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        keyword = sql.lstrip()[:16].upper()
        if keyword.startswith("BEGIN IMMEDIATE"):
            self._run("BEGIN", ())
            try:
                self._run("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
            except BaseException:
                self._run("ROLLBACK", ())  # as SQLite: a BEGIN that failed left nothing open
                raise
            return PgCursor(self._conn.cursor())
        if keyword.rstrip() == "BEGIN":
            return self._run("BEGIN ISOLATION LEVEL REPEATABLE READ", ())
        text, order = translate(sql, bool(params))
        table = _INSERT_TABLE.match(text)
        if (
            table
            and table.group(1).lower() in identity_tables()
            and "RETURNING" not in text.upper()
        ):
            cursor = self._run(text + " RETURNING id", _params(params, order))
            rows = cursor.fetchall()
            cursor.lastrowid = int(rows[-1][0]) if rows else None
            return cursor
        return self._run(text, _params(params, order) if params else ())

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        text, order = translate(sql, True)
        cursor = self._conn.cursor()
        try:
            cursor.executemany(text, [_params(row, order) for row in rows])
        except Exception as error:
            raise self._mapped(error) from error
        self.total_changes += max(cursor.rowcount, 0)
        return PgCursor(cursor)

    def stream(self, sql: str, batch_rows: int) -> Iterator[Any]:
        """The rows of a query without parameters, fetched ``batch_rows`` at a time through
        a server-side cursor (an ``execute`` holds the whole result in memory). Only inside
        a transaction, which the cursor lives in."""
        text, _ = translate(sql, False)
        with self._conn.cursor(name=f"stagectl_stream_{next(_streams)}") as cursor:
            cursor.itersize = batch_rows
            try:
                cursor.execute(text)
                yield from cursor
            except Exception as error:
                raise self._mapped(error) from error

    def executescript(self, script: str) -> None:
        self._run(script, ())

    def _run(self, sql: str, params: Sequence[Any]) -> PgCursor:
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql, params or None)
        except Exception as error:
            raise self._mapped(error) from error
        if (
            cursor.rowcount > 0
            and cursor.statusmessage
            and not cursor.statusmessage.startswith("SELECT")
        ):
            self.total_changes += cursor.rowcount
        return PgCursor(cursor)

    @staticmethod
    def _mapped(error: Exception) -> Exception:
        import psycopg

        return _as_sqlite_error(error) if isinstance(error, psycopg.Error) else error

    def close(self) -> None:
        self._conn.close()


def connect(url: PostgresURL, timeout_ms: int) -> PgConnection:
    """Connect in autocommit mode (transactions are explicit, as with sqlite3's
    ``isolation_level=None``), with ``lock_timeout`` set to the busy timeout."""
    try:
        import psycopg
    except ImportError:
        raise InputError(
            f"a PostgreSQL state needs the psycopg driver: {INSTALL_HINT}", where=str(url)
        ) from None
    password = password_from_file()
    options: dict[str, Any] = {"autocommit": True, "connect_timeout": 10}
    if password is not None:
        options["password"] = password
    try:
        conn = psycopg.connect(url.url, **options)
    except psycopg.Error as error:
        raise ExternalError(
            f"cannot connect to the state database: {first_line(error)}", where=str(url)
        ) from None
    conn.execute(f"SET lock_timeout = {int(timeout_ms)}")
    conn.execute("SET TIME ZONE 'UTC'")
    return PgConnection(conn)


def has_table(conn: PgConnection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()
    return bool(row[0])


def table_names(conn: PgConnection) -> list[str]:
    """The state's tables, the migrations record left out."""
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE' AND table_name <> ? ORDER BY table_name",
        (MIGRATIONS_TABLE,),
    )
    return [str(row[0]) for row in rows]


# --- the schema ---------------------------------------------------------------------------

_IDENTITY = re.compile(r"CREATE TABLE (\w+) \(\s*id INTEGER PRIMARY KEY\b")

_FILLS_DELETED_UNMARK = """
CREATE FUNCTION fills_deleted_unmark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.import_id IS NULL
       OR OLD.import_id NOT IN (SELECT id FROM fill_imports WHERE status <> 'complete') THEN
        DELETE FROM fill_totals_mark;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER fills_deleted_unmark AFTER DELETE ON fills
    FOR EACH ROW EXECUTE FUNCTION fills_deleted_unmark();
"""


@lru_cache(maxsize=1)
def identity_tables() -> frozenset[str]:
    """Tables keyed by an ``id INTEGER PRIMARY KEY`` (an identity on PostgreSQL)."""
    from stagectl.state.migrations import SCRIPTS

    return frozenset(name for script in SCRIPTS for name in _IDENTITY.findall(script))


def schema_script(name: str, sqlite_script: str) -> str:
    """A SQLite migration script as PostgreSQL runs it (see the module docstring)."""
    script = re.sub(r"\)\s*STRICT;", ");", sqlite_script)
    script = re.sub(
        r"\bid INTEGER PRIMARY KEY\b",
        "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        script,
    )
    script = re.sub(r"\bINTEGER\b", "BIGINT", script)
    script = re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)
    script = re.sub(r"json_extract\(([\w.]+), '\$\.(\w+)'\)", r"(\1::json ->> '\2')", script)
    script = re.sub(
        r"CREATE TRIGGER fills_deleted_unmark .*?END;", _FILLS_DELETED_UNMARK, script, flags=re.S
    )
    if name == "0001_runs_and_ledger":
        script += "\nALTER TABLE orders ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY;\n"
    return script


def ensure_migrations_table(conn: PgConnection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " migration_set TEXT NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL,"
        " UNIQUE (migration_set, name))"
    )
