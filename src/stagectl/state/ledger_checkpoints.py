"""Checkpoints of the open FIFO lots per symbol (migration ``0019_fill_lot_checkpoints``).

A checkpoint ``(symbol, before_ts)`` holds the lots left open by the symbol's ledger fills
with ``ts < before_ts``, oldest first, as ``[signed qty, price, trade_id, ts]`` text. A
reader of the lots at a time T takes the newest checkpoint at or before T and books only
the fills in ``[before_ts, T)`` on top of it (``services.ledger.reads.carried_lots``), so
``metrics window`` never walks the history, however large the position.

It is a derived cache, kept honest in two ways:

- every insert of fills (``state.ledger`` and the import's merge, in the transaction that
  writes them) deletes the checkpoints of each symbol it wrote with ``before_ts`` after the
  earliest new fill (:func:`drop_stale`): a fill recorded out of order invalidates exactly
  the checkpoints it changes, and they are rebuilt from the newest one left;
- a reader uses a checkpoint only while ``fill_totals_mark`` is at the largest fill id
  (:func:`trusted`): a fill written or deleted by other means leaves the mark behind or
  removes it, and readers go back to the history.

The checkpoints are written after an import completes (``services.ledger.checkpoints``),
never while an import is unfinished (its merged rows are not visible yet).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from stagectl.state.db import Connection, has_table
from stagectl.state.fill_visibility import SIMULATED_SQL, ledger_clause

TABLE = "fill_lot_checkpoints"

LotText = tuple[str, str, str, str]
"""An open lot as stored: signed quantity, price, the opening fill's trade id and time."""


@dataclass(frozen=True)
class LedgerRows:
    """Fills of one symbol in ledger order (``ts``, then id), as stored text."""

    trade_ids: Sequence[str]
    times: Sequence[str]
    sides: Sequence[str]
    qtys: Sequence[str]
    prices: Sequence[str]
    fees: Sequence[str]
    fee_currencies: Sequence[str | None]

    def __len__(self) -> int:
        return len(self.times)

    def part(self, start: int, stop: int) -> LedgerRows:
        """Rows ``start`` to ``stop - 1``."""
        return LedgerRows(
            self.trade_ids[start:stop],
            self.times[start:stop],
            self.sides[start:stop],
            self.qtys[start:stop],
            self.prices[start:stop],
            self.fees[start:stop],
            self.fee_currencies[start:stop],
        )


EMPTY_ROWS = LedgerRows((), (), (), (), (), (), ())


@dataclass(frozen=True)
class LotCheckpoint:
    """The lots open before ``before_ts`` (``ts`` text as stored in ``fills``)."""

    symbol: str
    before_ts: str
    lots: tuple[LotText, ...]


def has_checkpoints(conn: Connection) -> bool:
    return has_table(conn, TABLE)


def trusted(conn: Connection) -> bool:
    """Whether every write of fills since the checkpoints were made went through
    ``state.ledger`` (the running totals' mark is at the largest fill id)."""
    from stagectl.state.ledger_totals import has_mark, largest_fill_id

    if not has_checkpoints(conn) or not has_mark(conn):
        return False
    row = conn.execute("SELECT last_id FROM fill_totals_mark").fetchone()
    return row is not None and int(row[0]) == largest_fill_id(conn)


def newest_at_or_before(conn: Connection, symbol: str, ts: str) -> LotCheckpoint | None:
    """The symbol's newest checkpoint with ``before_ts <= ts``, if it can be trusted."""
    if not trusted(conn):
        return None
    row = conn.execute(
        f"SELECT before_ts, lots FROM {TABLE} WHERE symbol = ? AND before_ts <= ?"
        " ORDER BY before_ts DESC LIMIT 1",
        (symbol, ts),
    ).fetchone()
    return None if row is None else _checkpoint(symbol, row)


def newest(conn: Connection, symbol: str) -> LotCheckpoint | None:
    """The symbol's newest checkpoint (trust is the caller's: see :func:`trusted`)."""
    row = conn.execute(
        f"SELECT before_ts, lots FROM {TABLE} WHERE symbol = ? ORDER BY before_ts DESC LIMIT 1",
        (symbol,),
    ).fetchone()
    return None if row is None else _checkpoint(symbol, row)


def _checkpoint(symbol: str, row: tuple[str, str]) -> LotCheckpoint:
    lots = tuple((str(q), str(p), str(t), str(ts)) for q, p, t, ts in json.loads(row[1]))
    return LotCheckpoint(symbol=symbol, before_ts=row[0], lots=lots)


def rows_between(
    conn: Connection, symbol: str, start: str, before: str | None, *, limit: int
) -> LedgerRows | None:
    """The symbol's ledger fills with ``start <= ts < before`` (no upper bound without
    ``before``), in ledger order; None when there are more than ``limit``."""
    sql = (
        "SELECT trade_id, ts, side, qty, price, fee, fee_currency FROM fills"
        f" WHERE symbol = ? AND ts >= ? AND {ledger_clause(conn)}"
    )
    params: list[object] = [symbol, start]
    if before is not None:
        sql += " AND ts < ?"
        params.append(before)
    rows = conn.execute(sql + " ORDER BY ts, id LIMIT ?", [*params, limit + 1]).fetchall()
    if len(rows) > limit:
        return None
    if not rows:
        return EMPTY_ROWS
    columns = zip(*rows, strict=True)
    return LedgerRows(*(tuple(column) for column in columns))


def fill_time_back(conn: Connection, symbol: str, offset: int) -> str | None:
    """The time of the symbol's ledger fill ``offset`` places before its newest (None when
    it has no more fills than that): a backward scan of the (symbol, ts) index."""
    row = conn.execute(
        f"SELECT ts FROM fills WHERE symbol = ? AND {ledger_clause(conn)}"
        " ORDER BY ts DESC, id DESC LIMIT 1 OFFSET ?",
        (symbol, offset),
    ).fetchone()
    return None if row is None else str(row[0])


def write(conn: Connection, checkpoint: LotCheckpoint) -> None:
    """Store (or replace) a checkpoint, inside the caller's write transaction."""
    conn.execute(
        f"INSERT INTO {TABLE} (symbol, before_ts, lots) VALUES (?, ?, ?)"
        " ON CONFLICT (symbol, before_ts) DO UPDATE SET lots = excluded.lots",
        (
            checkpoint.symbol,
            checkpoint.before_ts,
            json.dumps([list(lot) for lot in checkpoint.lots], separators=(",", ":")),
        ),
    )


def prune(conn: Connection, symbol: str, keep: int) -> None:
    """Keep the symbol's ``keep`` newest checkpoints."""
    row = conn.execute(
        f"SELECT before_ts FROM {TABLE} WHERE symbol = ? ORDER BY before_ts DESC LIMIT 1 OFFSET ?",
        (symbol, keep),
    ).fetchone()
    if row is not None:
        conn.execute(f"DELETE FROM {TABLE} WHERE symbol = ? AND before_ts <= ?", (symbol, row[0]))


def drop_stale(conn: Connection, last_id: int) -> None:
    """Inside the transaction that inserted fills after id ``last_id``: delete each
    written symbol's checkpoints that lie after its earliest new fill (a new fill at ``t``
    changes the lots of every checkpoint with ``before_ts > t``). Free when there are no
    checkpoints; otherwise one pass over the new rows (a range of the rowid)."""
    if not has_checkpoints(conn):
        return
    if conn.execute(f"SELECT 1 FROM {TABLE} LIMIT 1").fetchone() is None:
        return
    earliest = conn.execute(
        f"SELECT symbol, min(ts) FROM fills WHERE id > ? AND source NOT IN {SIMULATED_SQL}"
        " GROUP BY symbol",
        (last_id,),
    ).fetchall()
    for symbol, ts in earliest:
        conn.execute(f"DELETE FROM {TABLE} WHERE symbol = ? AND before_ts > ?", (symbol, ts))


def pending_rows(conn: Connection, symbol: str) -> bool:
    """Whether an unfinished import holds rows of ``symbol`` (merged, not visible yet)."""
    from stagectl.state.fill_visibility import unfinished_fill_count

    return unfinished_fill_count(conn, symbol) > 0
