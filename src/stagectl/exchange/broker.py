"""The Broker protocol and the plain values that cross it (docs/exchange.md).

Money and quantities are Decimal; times are timezone-aware UTC datetimes. Symbols
are exchange ids such as ``ETHUSDT`` (the unified ccxt symbol is accepted on input).
Every order carries a ``client_order_id`` (see ``stagectl.domain.orders``), which is
what makes placing it idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
TimeInForce = Literal["GTC", "IOC", "FOK", "GTX"]


@dataclass(frozen=True)
class OrderRequest:
    """An order to send: ``price`` only for limit orders."""

    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    client_order_id: str
    price: Decimal | None = None
    reduce_only: bool = False
    time_in_force: TimeInForce = "GTC"


@dataclass(frozen=True)
class OrderAck:
    """The exchange's view of one order after an operation on it.

    ``status`` is ccxt's unified status: open, closed (fully filled), canceled,
    expired, rejected. ``recovered`` is True when a retried create found the order
    that an earlier attempt had already placed.
    """

    symbol: str
    order_id: str
    client_order_id: str | None
    status: str
    side: str
    type: str
    amount: Decimal
    filled: Decimal
    price: Decimal | None
    average_price: Decimal | None
    reduce_only: bool
    timestamp: datetime | None
    recovered: bool = False


@dataclass(frozen=True)
class Position:
    """A net (one-way) position: ``amount`` > 0 long, < 0 short."""

    symbol: str
    amount: Decimal
    entry_price: Decimal
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    leverage: Decimal | None


@dataclass(frozen=True)
class Balance:
    """One asset of the account: total = free + used (margin and open orders)."""

    asset: str
    free: Decimal
    used: Decimal
    total: Decimal


@dataclass(frozen=True)
class FillRecord:
    """One execution; ``trade_id`` is the exchange's unique trade id (the ledger's key)."""

    symbol: str
    trade_id: str
    order_id: str
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    maker: bool
    timestamp: datetime


@dataclass(frozen=True)
class FundingPayment:
    """One funding settlement on the account: ``amount`` < 0 is paid, > 0 received."""

    symbol: str
    payment_id: str
    amount: Decimal
    currency: str
    timestamp: datetime


class Broker(Protocol):
    """What services need from a venue (paper or real); implementations raise ExternalError."""

    def server_time(self) -> datetime: ...

    def balances(self) -> list[Balance]: ...

    def positions(self) -> list[Position]: ...

    def open_orders(self, symbol: str | None = None) -> list[OrderAck]: ...

    def place(self, request: OrderRequest) -> OrderAck: ...

    def fetch_order(self, symbol: str, *, client_order_id: str) -> OrderAck | None: ...

    def cancel(self, symbol: str, *, client_order_id: str) -> OrderAck: ...

    def cancel_all(self, symbol: str) -> None: ...

    def fetch_fills(self, symbol: str, since: datetime) -> list[FillRecord]: ...

    def funding_payments(
        self, since: datetime, symbol: str | None = None
    ) -> list[FundingPayment]: ...
