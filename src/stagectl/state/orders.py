"""Orders, keyed by their deterministic client order id.

Before sending an order a service looks its id up here: an id that is already
recorded was decided before (a restart replaying the same bar) and must not be
sent again. ``upsert_order`` records a new order or moves a known one along
(status, exchange id, filled quantity); what the order *is* (symbol, side,
quantity, prices) can never change under the same id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stagectl.domain.types import OPEN_STATUSES, Order, OrderStatus, OrderType, Side, TimeInForce
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

_COLUMNS = (
    "client_order_id, exchange, exchange_order_id, run_id, symbol, side, type, time_in_force,"
    " qty, price, stop_price, reduce_only, status, filled_qty, reason, created_at, updated_at"
)
_IDENTITY = ("account", "symbol", "side", "type", "qty", "price", "stop_price", "reduce_only")


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
            " exchange_order_id = coalesce(excluded.exchange_order_id, orders.exchange_order_id),"
            " time_in_force = coalesce(excluded.time_in_force, orders.time_in_force),"
            " status = excluded.status, filled_qty = excluded.filled_qty,"
            " reason = coalesce(excluded.reason, orders.reason), updated_at = excluded.updated_at",
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
    statuses = sorted(s.value for s in OPEN_STATUSES)
    sql = f"SELECT {_COLUMNS} FROM orders WHERE status IN ({', '.join('?' * len(statuses))})"
    params: list[Any] = list(statuses)
    if run_id is not None:
        sql += " AND run_id = ?"
        params.append(run_id)
    if symbol is not None:
        sql += " AND symbol = ?"
        params.append(symbol)
    sql += " ORDER BY created_at, client_order_id"
    return [_order(found) for found in db.conn.execute(sql, params)]


def run_orders(db: StateDB, run_id: str) -> list[Order]:
    """Every order of a run in the order it was decided."""
    rows = db.conn.execute(
        f"SELECT {_COLUMNS} FROM orders WHERE run_id = ? ORDER BY created_at, rowid", (run_id,)
    )
    return [_order(row) for row in rows]


def run_orders_since(db: StateDB, run_id: str, since: datetime) -> list[Order]:
    """The run's orders decided at or after ``since``, in the order they were decided."""
    rows = db.conn.execute(
        f"SELECT {_COLUMNS} FROM orders WHERE run_id = ? AND created_at >= ?"
        " ORDER BY created_at, rowid",
        (run_id, ts_text(since)),
    )
    return [_order(row) for row in rows]


def decided_at(db: StateDB, run_id: str, created_at: datetime) -> list[Order]:
    """The run's orders decided at one bar (``created_at``, the bar's open), in order."""
    rows = db.conn.execute(
        f"SELECT {_COLUMNS} FROM orders WHERE run_id = ? AND created_at = ? ORDER BY rowid",
        (run_id, ts_text(created_at)),
    )
    return [_order(row) for row in rows]


def denied_counts(db: StateDB, run_id: str) -> dict[str, int]:
    """How many of a run's orders the pre-trade policy denied, by denial code."""
    rows = db.conn.execute(
        "SELECT coalesce(reason, 'unknown'), count(*) FROM orders"
        " WHERE run_id = ? AND status = 'denied' GROUP BY 1 ORDER BY 2 DESC, 1",
        (run_id,),
    )
    return {str(code): int(n) for code, n in rows}


def client_order_ids(db: StateDB, run_id: str, exchange_order_ids: list[str]) -> dict[str, str]:
    """The client order ids of a run's orders by their exchange order ids (a venue's fills
    name the order by its exchange id only)."""
    if not exchange_order_ids:
        return {}
    marks = ", ".join("?" * len(exchange_order_ids))
    rows = db.conn.execute(
        "SELECT exchange_order_id, client_order_id FROM orders"
        f" WHERE run_id = ? AND exchange_order_id IN ({marks})",
        (run_id, *exchange_order_ids),
    )
    return {str(row[0]): str(row[1]) for row in rows}


def _check_same_order(existing: Order, order: Order) -> None:
    changed = [name for name in _IDENTITY if getattr(existing, name) != getattr(order, name)]
    if changed:
        raise InternalError(
            f"client order id {order.client_order_id} is already recorded for a different "
            f"order ({', '.join(changed)} differ); refusing to overwrite it"
        )


def _row(order: Order) -> tuple[Any, ...]:
    return (
        order.client_order_id,
        order.account,
        order.exchange_order_id,
        order.run_id,
        order.symbol,
        Side(order.side).value,
        OrderType(order.type).value,
        None if order.time_in_force is None else TimeInForce(order.time_in_force).value,
        decimal_text(order.qty),
        opt_decimal_text(order.price),
        opt_decimal_text(order.stop_price),
        int(order.reduce_only),
        OrderStatus(order.status).value,
        decimal_text(order.filled_qty),
        order.reason,
        ts_text(order.created_at),
        ts_text(order.updated_at or order.created_at),
    )


def _order(row: tuple[Any, ...]) -> Order:
    return Order(
        client_order_id=row[0],
        account=row[1],
        exchange_order_id=row[2],
        run_id=row[3],
        symbol=row[4],
        side=Side(row[5]),
        type=OrderType(row[6]),
        time_in_force=None if row[7] is None else TimeInForce(row[7]),
        qty=parse_decimal(row[8]),
        price=opt_parse_decimal(row[9]),
        stop_price=opt_parse_decimal(row[10]),
        reduce_only=bool(row[11]),
        status=OrderStatus(row[12]),
        filled_qty=parse_decimal(row[13]),
        reason=row[14],
        created_at=parse_ts(row[15]),
        updated_at=parse_ts(row[16]),
    )


VENUE_OUTCOME_WINDOW = 50
"""How many of a venue's latest sent orders its reliability is measured over."""
_NEVER_SENT = (OrderStatus.NEW, OrderStatus.DENIED, OrderStatus.NOT_SENT)


def venue_order_outcomes(
    db: StateDB, exchange: str, window: int = VENUE_OUTCOME_WINDOW
) -> tuple[int, int]:
    """(sent, rejected) among ``exchange``'s latest ``window`` orders that reached it.

    Orders never sent (denied by the policy, not yet acknowledged, found unknown after a
    restart) say nothing of the venue and are left out.
    """
    marks = ", ".join("?" * len(_NEVER_SENT))
    rows = db.conn.execute(
        f"SELECT status FROM orders WHERE exchange = ? AND status NOT IN ({marks})"
        " ORDER BY created_at DESC LIMIT ?",
        (exchange, *(s.value for s in _NEVER_SENT), window),
    ).fetchall()
    rejected = sum(1 for (status,) in rows if status == OrderStatus.REJECTED.value)
    return len(rows), rejected
