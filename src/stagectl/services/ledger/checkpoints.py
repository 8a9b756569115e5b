"""Writing the ledger's lot checkpoints (``state.ledger_checkpoints``) after an import.

A checkpoint every ``SPACING`` fills of a symbol, the newest ``KEEP`` kept, so a window
over recent fills starts from one at most ``SPACING`` fills (plus ties) before it. A refresh
books forward from the symbol's newest checkpoint; when there is none, or it lies more than
``REACH`` fills back, it starts afresh ``REACH`` fills before the newest fill, from the lots
the running totals and a short backward scan give there, so a first import of millions
of fills never reads its whole history for them. A symbol whose position is made of more
than ``MAX_LOTS`` open lots gets no checkpoint.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagectl.services.ledger.reads import book_lots, newest_lots

if TYPE_CHECKING:
    from stagectl.state.db import StateDB
    from stagectl.state.ledger_checkpoints import LedgerRows, LotText

SPACING = 2048
KEEP = 64
REACH = 4 * SPACING
MAX_LOTS = 2 * SPACING
"""A position made of more open lots gets no checkpoint (readers walk back for it): the
checkpoint would cost as much to read as the walk, and its storage would grow with it."""


def refresh(db: StateDB, symbols: Iterable[str]) -> int:
    """Bring the checkpoints of ``symbols`` up to their newest fills, in one write
    transaction; returns how many were written. Nothing while the ledger's totals are not
    trusted, nor for a symbol with rows of an unfinished import."""
    from stagectl.state import ledger_checkpoints as checkpoints

    written = 0
    with db.transaction() as conn:
        if not checkpoints.trusted(conn):
            return 0
        for symbol in sorted(set(symbols)):
            if not checkpoints.pending_rows(conn, symbol):
                written += _refresh_symbol(db, symbol)
            checkpoints.prune(conn, symbol, KEEP)
    return written


def _refresh_symbol(db: StateDB, symbol: str) -> int:
    from stagectl.state import ledger_checkpoints as checkpoints
    from stagectl.state._codec import parse_ts

    conn = db.conn
    newest = checkpoints.newest(conn, symbol)
    rows = None
    if newest is not None:
        seed, start = newest.lots, newest.before_ts
        rows = checkpoints.rows_between(conn, symbol, start, None, limit=REACH)
    written = 0
    if rows is None:
        back = checkpoints.fill_time_back(conn, symbol, REACH)
        if back is None:  # a short history: book it from its first fill
            seed, start = (), ""
        else:
            lots = _lots_at(db, symbol, parse_ts(back))
            if lots is None:
                return written
            seed, start = tuple(_lot_text(fill) for fill in lots), back
            checkpoints.write(conn, checkpoints.LotCheckpoint(symbol, start, seed))
            written += 1
        rows = checkpoints.rows_between(conn, symbol, start, None, limit=2 * REACH)
        if rows is None:  # more than REACH fills share the newest times: leave it
            return written
    return written + _book_forward(db, symbol, seed, rows)


def _book_forward(db: StateDB, symbol: str, seed: tuple[LotText, ...], rows: LedgerRows) -> int:
    """Checkpoints at every ``SPACING``-th of ``rows`` (the fills after ``seed``'s time)."""
    from stagectl.state import ledger_checkpoints as checkpoints

    written, done = 0, 0
    for i in range(SPACING, len(rows), SPACING):
        boundary = rows.times[i]
        upto = bisect_left(rows.times, boundary)  # the fills before it (ts < boundary)
        if upto <= done:
            continue
        seed = tuple(book_lots(symbol, seed, rows.part(done, upto)))
        if len(seed) > MAX_LOTS:
            return written
        checkpoints.write(db.conn, checkpoints.LotCheckpoint(symbol, boundary, seed))
        written, done = written + 1, upto
    return written


def _lots_at(db: StateDB, symbol: str, before: datetime) -> list[Any] | None:
    """The open lots before ``before`` from the running totals and a backward scan; None
    without trusted totals or with more than ``MAX_LOTS`` lots."""
    from stagectl.state.ledger_reads import position_before

    position = position_before(db, symbol, before)
    if position is None:
        return None
    lots = newest_lots(db, symbol, before, position, max_lots=MAX_LOTS)
    return None if lots is None or len(lots) > MAX_LOTS else lots


def _lot_text(fill: Any) -> LotText:
    """An opening domain Fill (``reads.carried_lots``) as a stored lot."""
    from stagectl.state._codec import ts_text

    qty = str(fill.qty) if fill.side == "buy" else f"-{fill.qty}"
    return (qty, str(fill.price), fill.trade_id, ts_text(fill.ts))
