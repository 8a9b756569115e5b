"""The fill ledger, positions and funding payments: exact money.

Quantities, prices, fees and funding amounts are Decimals stored as TEXT
(``str(Decimal)``: sign, digits and exponent survive exactly). SQL sums over
these columns are not exact; the ledger maths happens in Python on Decimals.

Fills and funding payments are idempotent: a fill is identified by
(exchange, trade_id) and a funding payment by (source, symbol, ts), so
importing the same exchange history twice records each once. Bulk inserts use
``executemany`` in one transaction (DESIGN.md: 428 k rows/s, against 119 k/s
through sqlite-utils' ``insert_all``); a file import, too big for one short
transaction, is merged in steps by ``state.ledger_imports``, and :func:`fills`
never returns the rows of an unfinished import (``state.fill_visibility``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from stagectl.domain.types import Fill, FundingPayment, Liquidity, Position, Side
from stagectl.state._codec import (
    decimal_text,
    filters,
    opt_decimal_text,
    opt_parse_decimal,
    parse_decimal,
    parse_ts,
    ts_text,
)
from stagectl.state.db import StateDB
from stagectl.state.fill_conflicts import FillConflict, offered_conflicts


@dataclass(frozen=True)
class InsertCounts:
    """How many rows a bulk insert recorded and how many were already there."""

    inserted: int
    skipped: int
    conflicts: tuple[FillConflict, ...] = ()
    """Skipped fills whose trade is recorded with other values (``state.fill_conflicts``):
    the ledger keeps the first record; the caller says so."""


_FILL_COLUMNS = (
    "exchange, trade_id, run_id, client_order_id, exchange_order_id, symbol, side, qty, price,"
    " fee, fee_currency, liquidity, ts, source"
)


FILL_ROW_FIELDS = tuple(name.strip() for name in _FILL_COLUMNS.split(","))

FillRow = tuple[str | None, ...]


def insert_fills(db: StateDB, fills: Iterable[Fill]) -> InsertCounts:
    """Record fills in one transaction; a fill already recorded is skipped (and listed in
    ``conflicts`` when its values differ from the record's).

    ``ON CONFLICT (exchange, trade_id) DO NOTHING`` rather than ``INSERT OR
    IGNORE``: only a duplicate trade is skipped, while any other violation (a
    bad side, a missing price) still fails the whole batch.
    """
    return insert_fill_rows(db, [_fill_row(fill) for fill in fills])


def insert_fill_rows(db: StateDB, rows: Sequence[FillRow]) -> InsertCounts:
    """The bulk path: record already-encoded fill rows in one transaction.

    Each row holds the values of ``FILL_ROW_FIELDS`` in that order, encoded as
    the codec does: money as ``decimal_text(Decimal)`` (``str`` of a finite
    Decimal, so the text is the exact value), the time as ``ts_text``. Callers
    that validate a million rows column by column (``metrics import``) use it
    to skip building a ``Fill`` per row; :func:`insert_fills` encodes and calls
    it. Duplicates of (exchange, trade_id) are skipped, as in ``insert_fills``.
    """
    placeholders = ", ".join("?" * len(FILL_ROW_FIELDS))
    with db.transaction() as conn:
        last_id, before = _last_fill_id(conn), conn.total_changes
        conn.executemany(
            f"INSERT INTO fills ({_FILL_COLUMNS}) VALUES ({placeholders})"
            " ON CONFLICT (exchange, trade_id) DO NOTHING",
            rows,
        )
        inserted = conn.total_changes - before
        refresh_fill_totals(conn, inserted, last_id)
        conflicts: tuple[FillConflict, ...] = ()
        if inserted < len(rows):
            offered = [dict(zip(FILL_ROW_FIELDS, row, strict=True)) for row in rows]
            conflicts = offered_conflicts(conn, offered)
    return InsertCounts(inserted=inserted, skipped=len(rows) - inserted, conflicts=conflicts)


def refresh_fill_totals(conn: Any, inserted: int, last_id: int) -> None:
    """Add the ``inserted`` fills written after fill id ``last_id`` to ``fill_totals``."""
    _update_totals(conn, inserted, last_id, None)


def _last_fill_id(conn: Any) -> int:
    """The largest fill id (0 when empty): rows inserted later have larger ids."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM fills").fetchone()[0])


def _update_totals(conn: Any, inserted: int, last_id: int, batch: Mapping[str, Any] | None) -> None:
    """Keep ``fill_totals`` (state.ledger_totals) equal to the sums over the visible fills.

    ``batch`` holds the per-symbol totals of every row offered, usable when all of them were
    inserted; otherwise the rows just inserted (``id > last_id``) are read back."""
    from stagectl.state import ledger_checkpoints, ledger_totals

    if inserted == 0 or not ledger_totals.has_totals(conn):
        return
    if batch is None or inserted != sum(t.fills for t in batch.values()):
        batch = ledger_totals.new_fill_totals(conn, last_id)
    ledger_totals.add_to_totals(conn, batch, was_empty=last_id == 0)
    ledger_checkpoints.drop_stale(conn, last_id)
    ledger_totals.keep_mark(conn, last_id)


def ledger_trade_id(symbol: str, trade_id: str) -> str:
    """The ledger key of an exchange trade: ``SYMBOL:ID`` (``SOLUSDT:698759``).

    Binance (and others) number trades per symbol, so a bare id is unique only
    within one symbol; imported and fetched fills are keyed on (account,
    ``SYMBOL:ID``) so two symbols' trade 698759 are two fills, not a duplicate.
    """
    return f"{symbol}:{trade_id}"


def fills(
    db: StateDB,
    *,
    symbol: str | None = None,
    run_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Fill]:
    """Visible fills in time order (ties in insertion order), ``start <= ts < end``: the rows
    of an import that has not completed are left out (``state.fill_visibility``)."""
    from stagectl.state.fill_visibility import visible_clause

    where, params = filters({"symbol": symbol, "run_id": run_id}, start, end)
    sql = (
        f"SELECT {_FILL_COLUMNS} FROM fills WHERE {visible_clause(db.conn)}{where} ORDER BY ts, id"
    )
    return [_fill(row) for row in db.conn.execute(sql, params)]


def upsert_position(db: StateDB, position: Position) -> None:
    """Record a book's position in one symbol (``updated_at`` is required here)."""
    if position.updated_at is None:
        raise ValueError("a recorded position needs its updated_at")
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO positions (account, symbol, qty, avg_entry_price, run_id, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, symbol) DO UPDATE SET"
            " qty = excluded.qty, avg_entry_price = excluded.avg_entry_price,"
            " run_id = excluded.run_id, updated_at = excluded.updated_at",
            (
                position.account,
                position.symbol,
                decimal_text(position.qty),
                decimal_text(position.entry_price),
                position.run_id,
                ts_text(position.updated_at),
            ),
        )


def positions(
    db: StateDB, *, account: str | None = None, mode: str | None = None
) -> list[Position]:
    """Positions by account and symbol, flat ones included; of one account, or of the
    runs of one mode (``paper``, ``live``), when given."""
    sql = (
        "SELECT p.account, p.symbol, p.qty, p.avg_entry_price, p.run_id, p.updated_at"
        " FROM positions p LEFT JOIN runs r ON r.run_id = p.run_id WHERE 1 = 1"
    )
    params: list[Any] = []
    for column, value in (("p.account", account), ("r.mode", mode)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    sql += " ORDER BY p.account, p.symbol"
    return [
        Position(
            account=row[0],
            symbol=row[1],
            qty=parse_decimal(row[2]),
            entry_price=parse_decimal(row[3]),
            run_id=row[4],
            updated_at=parse_ts(row[5]),
        )
        for row in db.conn.execute(sql, params)
    ]


def insert_funding(db: StateDB, payments: Iterable[FundingPayment]) -> InsertCounts:
    """Record funding payments in one transaction; one already recorded is skipped.

    The column ``source`` holds the payment's account and ``amount`` what it *paid*
    (``FundingPayment.paid``: > 0 paid, < 0 received); a payment without a known rate is
    recorded at rate 0."""
    rows = [
        (
            p.account,
            p.run_id,
            p.symbol,
            ts_text(p.ts),
            decimal_text(p.rate if p.rate is not None else Decimal(0)),
            opt_decimal_text(p.position_qty),
            decimal_text(p.paid),
        )
        for p in payments
    ]
    with db.transaction() as conn:
        before = conn.total_changes
        conn.executemany(
            "INSERT INTO funding_payments (source, run_id, symbol, ts, rate, position_qty, amount)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, symbol, ts) DO NOTHING",
            rows,
        )
        inserted = conn.total_changes - before
    return InsertCounts(inserted=inserted, skipped=len(rows) - inserted)


def funding_payments(
    db: StateDB,
    *,
    symbol: str | None = None,
    run_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[FundingPayment]:
    """Funding payments in time order, ``start <= ts < end`` (of one run when given)."""
    where, params = filters({"symbol": symbol, "run_id": run_id}, start, end)
    sql = f"SELECT {_FUNDING_COLUMNS} FROM funding_payments WHERE 1 = 1{where} ORDER BY ts, id"
    return [_funding(row) for row in db.conn.execute(sql, params)]


_FUNDING_COLUMNS = "source, run_id, symbol, ts, rate, position_qty, amount"


def _funding(row: tuple[Any, ...]) -> FundingPayment:
    return FundingPayment(
        account=row[0],
        run_id=row[1],
        symbol=row[2],
        ts=parse_ts(row[3]),
        rate=parse_decimal(row[4]),
        position_qty=opt_parse_decimal(row[5]),
        amount=-parse_decimal(row[6]),
    )


def fills_after(db: StateDB, run_id: str, after_id: int) -> list[tuple[int, Fill]]:
    """The run's visible fills recorded after row ``after_id``, with their row ids, in
    insertion order: what a reader that keeps a cursor has not seen yet. The row id range
    is the search (``+run_id`` keeps SQLite off the run index), so the cost is the rows
    written since, not the run's history."""
    from stagectl.state.fill_visibility import visible_clause

    sql = (
        f"SELECT id, {_FILL_COLUMNS} FROM fills WHERE id > ? AND +run_id = ?"
        f" AND {visible_clause(db.conn)} ORDER BY id"
    )
    return [(row[0], _fill(row[1:])) for row in db.conn.execute(sql, (after_id, run_id))]


def funding_after(db: StateDB, run_id: str, after_id: int) -> list[tuple[int, FundingPayment]]:
    """The run's funding payments recorded after row ``after_id`` (as :func:`fills_after`)."""
    sql = (
        f"SELECT id, {_FUNDING_COLUMNS} FROM funding_payments WHERE id > ? AND +run_id = ?"
        " ORDER BY id"
    )
    return [(row[0], _funding(row[1:])) for row in db.conn.execute(sql, (after_id, run_id))]


def _fill_row(fill: Fill) -> tuple[Any, ...]:
    """A fill as its row: the account is the ``exchange`` column, the venue's order id
    ``exchange_order_id``; an empty fee currency and an unknown liquidity are NULL."""
    return (
        fill.account,
        fill.trade_id,
        fill.run_id,
        fill.client_order_id,
        fill.order_id,
        fill.symbol,
        fill.side.value,
        decimal_text(fill.qty),
        decimal_text(fill.price),
        decimal_text(fill.fee),
        fill.fee_currency or None,
        None if fill.liquidity is None else fill.liquidity.value,
        ts_text(fill.ts),
        fill.source,
    )


def _fill(row: tuple[Any, ...]) -> Fill:
    return Fill(
        account=row[0],
        trade_id=row[1],
        run_id=row[2],
        client_order_id=row[3],
        order_id=row[4],
        symbol=row[5],
        side=Side(row[6]),
        qty=parse_decimal(row[7]),
        price=parse_decimal(row[8]),
        fee=parse_decimal(row[9]),
        fee_currency=row[10] or "",
        liquidity=None if row[11] is None else Liquidity(row[11]),
        ts=parse_ts(row[12]),
        source=row[13],
    )
