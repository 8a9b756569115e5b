"""Which recorded fills a reader sees: every fill except those of an unfinished import;
and which the desk's ledger counts: those, less the simulated ones (:func:`ledger_clause`).

``metrics import`` merges a file into ``fills`` in short transactions (docs/ledger.md,
"Importing trades"); every row it writes carries the import's ``import_id``
(``fill_imports``, migration ``0008_fill_imports``), and the import's rows become visible
together, in the one transaction that marks it ``complete``. Until then (while it merges,
after it was killed, while an abandoned one is being discarded) its rows are in ``fills``
but no reader counts them: every query of ``state`` that reads fills adds
:func:`visible_clause`, and ``state.ledger_totals`` subtracts
:func:`unfinished_fill_count` from its index-only count. A database migrated before
``0008`` has no imports table, and every fill is visible.
"""

from __future__ import annotations

from stagectl.state.db import Connection, has_table

UNFINISHED_IMPORT_IDS = "SELECT id FROM fill_imports WHERE status <> 'complete'"
SIMULATED_SOURCES = ("paper", "backtest")
"""Fills no real account made: paper runs' and recorded backtests' (``shadow``). They stay in
``fills`` (a run's own reads find them by run id) but the desk's ledger never counts them."""
SIMULATED_SQL = "('paper', 'backtest')"


def has_fill_imports(conn: Connection) -> bool:
    """Whether the database has the imports table (migration ``0008_fill_imports``)."""
    return has_table(conn, "fill_imports")


def visible_clause(conn: Connection, table: str = "fills") -> str:
    """A SQL condition true for the visible rows of ``table`` (a name or alias of
    ``fills``); ``1`` on a database without imports. The subquery runs once per statement
    over a handful of rows (``fill_imports_unfinished`` is a partial index)."""
    if not has_fill_imports(conn):
        return "1"
    return f"({table}.import_id IS NULL OR {table}.import_id NOT IN ({UNFINISHED_IMPORT_IDS}))"


def ledger_clause(conn: Connection, table: str = "fills") -> str:
    """The fills of the desk's ledger (``metrics``, ``regime-analyze``, the totals): visible
    and made by a real account, not a paper run or a recorded backtest."""
    return f"{visible_clause(conn, table)} AND {table}.source NOT IN {SIMULATED_SQL}"


def simulated_fill_count(conn: Connection, symbol: str) -> int:
    """How many rows of ``symbol`` are simulated (an index-only count on the partial
    ``fills_simulated`` index; a database before ``0009`` counts them by a scan)."""
    row = conn.execute(
        f"SELECT count(*) FROM fills WHERE symbol = ? AND source IN {SIMULATED_SQL}", (symbol,)
    ).fetchone()
    return int(row[0])


def unfinished_fill_count(conn: Connection, symbol: str) -> int:
    """How many rows of ``symbol`` in ``fills`` belong to unfinished imports (each merge
    and discard step keeps ``fill_import_totals`` equal to the rows it left in ``fills``)."""
    if not has_fill_imports(conn):
        return 0
    row = conn.execute(
        "SELECT coalesce(sum(t.fills), 0) FROM fill_import_totals AS t"
        f" WHERE t.symbol = ? AND t.import_id IN ({UNFINISHED_IMPORT_IDS})",
        (symbol,),
    ).fetchone()
    return int(row[0])
