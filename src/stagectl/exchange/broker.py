"""The Broker protocol: everything the trading loop and emergency-close need from a venue.

One contract, two implementations: :class:`~stagectl.exchange.paper.PaperBroker`
(simulated fills on real bars) and :class:`~stagectl.exchange.ccxt_broker.CcxtBroker`
(an exchange through ccxt). Both take and return the domain vocabulary
(``stagectl.domain.types``): a service never needs to know which one it talks to, and
no ``if paper:`` branch exists outside this package.

Every order carries a ``client_order_id`` (``stagectl.domain.orders``), which makes
placing it idempotent: ``place`` of an id the venue already has returns that order
(``recovered=True``) or raises, never sends a second one. An order type the venue cannot
take (e.g. a stop-limit on an exchange without them) is refused with
:class:`~stagectl.exchange.errors.OrderRejected` before anything is sent. Implementations
raise :class:`~stagectl.exchange.errors.ExchangeError` subclasses for venue failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from stagectl.domain.types import (
    Balance,
    Fill,
    FundingPayment,
    KeyPermissions,
    Mark,
    Order,
    OrderType,
    Position,
)


class Broker(Protocol):
    """A venue (paper or real) as the trading loop and emergency-close see it."""

    @property
    def name(self) -> str:
        """The account's venue: ``paper`` or the ccxt exchange id."""
        ...

    @property
    def order_latency_ms(self) -> float:
        """The last order's round trip to the venue (0 for the paper broker: no network);
        the latency penalty of the next pre-trade cost estimate."""
        ...

    @property
    def post_only(self) -> bool:
        """Whether a limit order may carry TIF GTX (post-only: rejected rather than take)."""
        ...

    def book_top(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        """The best bid and ask now; None where the venue gives no book (the paper broker)
        or the book could not be read (the router then sees no spread)."""
        ...

    def server_time(self) -> datetime:
        """The venue's clock."""
        ...

    def key_permissions(self) -> KeyPermissions | None:
        """What the venue says the API key may do; None where it does not say (and for
        the paper broker, which has no key)."""
        ...

    def order_type_refusal(self, order_type: OrderType) -> str | None:
        """Why the venue cannot take orders of this type (None: it can); ``place`` refuses
        such an order unsent, and a caller can ask before it relies on one."""
        ...

    def balances(self) -> list[Balance]: ...

    def equity(self) -> Decimal:
        """The account's equity in the quote currency: wallet balance plus unrealized PnL."""
        ...

    def positions(self) -> list[Position]:
        """Every non-zero position."""
        ...

    def marks(self, symbols: Sequence[str]) -> dict[str, Mark]:
        """The mark price of each symbol with the venue's timestamp of it."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[Order]: ...

    def place(self, order: Order) -> Order:
        """Send ``order`` (market, limit or stop-limit; reduce-only honoured) once; the
        venue's view of it is returned."""
        ...

    def fetch_order(self, symbol: str, *, client_order_id: str) -> Order | None:
        """The venue's view of the order with that client id; None when it has none."""
        ...

    def cancel(self, symbol: str, *, client_order_id: str) -> Order:
        """Cancel by client id; an order already finished returns its final state."""
        ...

    def cancel_all(self, symbol: str) -> None: ...

    def fills_since(self, symbol: str, since: datetime) -> list[Fill]:
        """Every fill of ``symbol`` at or after ``since``, oldest first."""
        ...

    def funding_since(self, since: datetime, symbol: str | None = None) -> list[FundingPayment]:
        """Every funding settlement at or after ``since`` (of ``symbol`` when given)."""
        ...
