"""Orders, keyed by their deterministic client order id.

Before sending an order a service looks its id up here: an id that is already
recorded was decided before (a restart replaying the same bar) and must not be
sent again. ``upsert_order`` records a new order or moves a known one along
(status, exchange id, filled quantity); what the order *is* (symbol, side,
quantity, prices) can never change under the same id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from stagectl.errors import InternalError
from stagectl.state._codec import (
    decimal_text,
    opt_decimal_text,
    opt_parse_decimal,
    parse_decimal,
    parse_ts,
    ts_text,
)
from stagectl.state.db import StateDB

OPEN_STATUSES = ("new", "submitted", "open", "partially_filled")


@dataclass(frozen=True)
class Order:
    client_order_id: str
    exchange: str
    symbol: str
    side: str
    type: str
    qty: Decimal
    status: str
    created_at: datetime
    updated_at: datetime
    run_id: str | None = None
    exchange_order_id: str | None = None
    time_in_force: str | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    filled_qty: Decimal = Decimal(0)
    reason: str | None = None


_COLUMNS = (
    "client_order_id, exchange, exchange_order_id, run_id, symbol, side, type, time_in_force,"
    " qty, price, stop_price, reduce_only, status, filled_qty, reason, created_at, updated_at"
)
_IDENTITY = ("exchange", "symbol", "side", "type", "qty", "price", "stop_price", "reduce_only")


def upsert_order(db: StateDB, order: Order) -> bool:
    """Insert the order, or update its status fields; True when it was new.

    Raises InternalError when the id is already recorded for a different
    order: two decisions producing one id is a bug, and sending would be wrong.
    """
    row = _row(order)
    with db.transaction() as conn:
        existing = get_order(db, order.client_order_id)
        if existing is not None:
            _check_same_order(existing, order)
        conn.execute(
            f"INSERT INTO orders ({_COLUMNS}) VALUES ({', '.join('?' * len(row))})"
            " ON CONFLICT (client_order_id) DO UPDATE SET"
            " exchange_order_id = coalesce(excluded.exchange_order_id, exchange_order_id),"
            " time_in_force = coalesce(excluded.time_in_force, time_in_force),"
            " status = excluded.status, filled_qty = excluded.filled_qty,"
            " reason = coalesce(excluded.reason, reason), updated_at = excluded.updated_at",
            row,
        )
    return existing is None


def get_order(db: StateDB, client_order_id: str) -> Order | None:
    found = db.conn.execute(
        f"SELECT {_COLUMNS} FROM orders WHERE client_order_id = ?", (client_order_id,)
    ).fetchone()
    return None if found is None else _order(found)


def open_orders(
    db: StateDB, *, run_id: str | None = None, symbol: str | None = None
) -> list[Order]:
    """Orders not yet filled, cancelled, rejected or expired, oldest first."""
    sql = f"SELECT {_COLUMNS} FROM orders WHERE status IN ({', '.join('?' * len(OPEN_STATUSES))})"
    params: list[Any] = list(OPEN_STATUSES)
    if run_id is not None:
        sql += " AND run_id = ?"
        params.append(run_id)
    if symbol is not None:
        sql += " AND symbol = ?"
        params.append(symbol)
    sql += " ORDER BY created_at, client_order_id"
    return [_order(found) for found in db.conn.execute(sql, params)]


def _check_same_order(existing: Order, order: Order) -> None:
    changed = [name for name in _IDENTITY if getattr(existing, name) != getattr(order, name)]
    if changed:
        raise InternalError(
            f"client order id {order.client_order_id} is already recorded for a different "
            f"order ({', '.join(changed)} differ); refusing to overwrite it"
        )


def _row(order: Order) -> tuple[Any, ...]:
    if order.side not in ("buy", "sell"):
        raise ValueError(f"order side must be buy or sell, got {order.side!r}")
    return (
        order.client_order_id,
        order.exchange,
        order.exchange_order_id,
        order.run_id,
        order.symbol,
        order.side,
        order.type,
        order.time_in_force,
        decimal_text(order.qty),
        opt_decimal_text(order.price),
        opt_decimal_text(order.stop_price),
        int(order.reduce_only),
        order.status,
        decimal_text(order.filled_qty),
        order.reason,
        ts_text(order.created_at),
        ts_text(order.updated_at),
    )


def _order(row: tuple[Any, ...]) -> Order:
    return Order(
        client_order_id=row[0],
        exchange=row[1],
        exchange_order_id=row[2],
        run_id=row[3],
        symbol=row[4],
        side=row[5],
        type=row[6],
        time_in_force=row[7],
        qty=parse_decimal(row[8]),
        price=opt_parse_decimal(row[9]),
        stop_price=opt_parse_decimal(row[10]),
        reduce_only=bool(row[11]),
        status=row[12],
        filled_qty=parse_decimal(row[13]),
        reason=row[14],
        created_at=parse_ts(row[15]),
        updated_at=parse_ts(row[16]),
    )
