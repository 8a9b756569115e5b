"""Parent orders the execution router works as child slices (``parent_orders``, migration
``0018_parent_orders``; docs/run-live.md, "Working a parent order").

A parent is recorded when its first slice is decided and moved along (next slice, quantity
sent, last bar) in the same transaction as each later slice's write-ahead record; its
children are ordinary ``orders`` rows. Every call runs inside the caller's transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from stagectl.domain.execution import ExecutionStyle, ParentPlan
from stagectl.domain.types import Side
from stagectl.state._codec import (
    decimal_text,
    opt_parse_ts,
    opt_ts_text,
    parse_decimal,
    parse_ts,
    ts_text,
)
from stagectl.state.db import StateDB

WORKING, DONE, CANCELED = "working", "done", "canceled"
_COLUMNS = (
    "parent_id, run_id, symbol, side, qty, price, reduce_only, style, reason, planned,"
    " schedule_json, status, next_index, sent_qty, last_bar, created_at, updated_at, note"
)


@dataclass(frozen=True)
class ParentOrder:
    """A routed order worked as slices, and how far it got."""

    parent_id: str
    run_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    """The decision price the parent was sized at."""
    reduce_only: bool
    plan: ParentPlan
    created_at: datetime
    status: str = WORKING
    next_index: int = 0
    sent_qty: Decimal = Decimal(0)
    last_bar: datetime | None = None
    """The bar whose open decided the last slice (None: none yet)."""
    updated_at: datetime | None = None
    note: str | None = None
    """Why it was canceled."""


def insert_parent(db: StateDB, parent: ParentOrder) -> None:
    """Record a new parent (a parent id already recorded is left as it is)."""
    db.conn.execute(
        f"INSERT INTO parent_orders ({_COLUMNS}) VALUES"
        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (parent_id) DO NOTHING",
        _row(parent),
    )


def update_parent(db: StateDB, parent: ParentOrder) -> None:
    """Write a parent's progress: status, next slice, quantity sent, last bar, note."""
    db.conn.execute(
        "UPDATE parent_orders SET status = ?, next_index = ?, sent_qty = ?, last_bar = ?,"
        " updated_at = ?, note = ? WHERE parent_id = ?",
        (
            parent.status,
            parent.next_index,
            decimal_text(parent.sent_qty),
            opt_ts_text(parent.last_bar),
            ts_text(parent.updated_at or parent.created_at),
            parent.note,
            parent.parent_id,
        ),
    )


def get_parent(db: StateDB, parent_id: str) -> ParentOrder | None:
    row = db.conn.execute(
        f"SELECT {_COLUMNS} FROM parent_orders WHERE parent_id = ?", (parent_id,)
    ).fetchone()
    return None if row is None else _parent(row)


def working_parents(db: StateDB, run_id: str) -> list[ParentOrder]:
    """The run's parents still being worked, oldest first."""
    rows = db.conn.execute(
        f"SELECT {_COLUMNS} FROM parent_orders WHERE run_id = ? AND status = ?"
        " ORDER BY created_at, parent_id",
        (run_id, WORKING),
    ).fetchall()
    return [_parent(row) for row in rows]


def run_parents(db: StateDB, run_id: str) -> list[ParentOrder]:
    """Every parent of the run, oldest first."""
    rows = db.conn.execute(
        f"SELECT {_COLUMNS} FROM parent_orders WHERE run_id = ? ORDER BY created_at, parent_id",
        (run_id,),
    ).fetchall()
    return [_parent(row) for row in rows]


def _row(parent: ParentOrder) -> tuple[Any, ...]:
    plan = parent.plan
    return (
        parent.parent_id,
        parent.run_id,
        parent.symbol,
        parent.side.value,
        decimal_text(parent.qty),
        decimal_text(parent.price),
        int(parent.reduce_only),
        plan.style.value,
        plan.reason,
        plan.planned,
        json.dumps([decimal_text(q) for q in plan.schedule]),
        parent.status,
        parent.next_index,
        decimal_text(parent.sent_qty),
        opt_ts_text(parent.last_bar),
        ts_text(parent.created_at),
        ts_text(parent.updated_at or parent.created_at),
        parent.note,
    )


def _parent(row: Any) -> ParentOrder:
    schedule = tuple(parse_decimal(q) for q in json.loads(row[10]))
    plan = ParentPlan(ExecutionStyle(row[7]), row[8], int(row[9]), schedule)
    return ParentOrder(
        parent_id=row[0],
        run_id=row[1],
        symbol=row[2],
        side=Side(row[3]),
        qty=parse_decimal(row[4]),
        price=parse_decimal(row[5]),
        reduce_only=bool(row[6]),
        plan=plan,
        created_at=parse_ts(row[15]),
        status=row[11],
        next_index=int(row[12]),
        sent_qty=parse_decimal(row[13]),
        last_bar=opt_parse_ts(row[14]),
        updated_at=parse_ts(row[16]),
        note=row[17],
    )
