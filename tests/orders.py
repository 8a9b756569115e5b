"""Orders for tests, in the positional shape the broker tests read best."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from stagectl.domain.types import Order, OrderType, Side, TimeInForce

CREATED = datetime(2024, 1, 1, tzinfo=UTC)


def new_order(
    symbol: str,
    side: str,
    kind: str,
    qty: Decimal,
    client_order_id: str,
    price: Decimal | None = None,
    *,
    reduce_only: bool = False,
    time_in_force: str | None = None,
    stop_price: Decimal | None = None,
) -> Order:
    """A new order to place: ``kind`` market, limit or stop_limit (GTC unless told)."""
    order_type = OrderType(kind)
    tif = time_in_force or (None if order_type == OrderType.MARKET else "GTC")
    return Order(
        client_order_id=client_order_id,
        symbol=symbol,
        side=Side(side),
        type=order_type,
        qty=qty,
        created_at=CREATED,
        price=price,
        stop_price=stop_price,
        time_in_force=None if tif is None else TimeInForce(tif),
        reduce_only=reduce_only,
    )
