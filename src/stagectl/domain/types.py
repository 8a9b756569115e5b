"""The trading vocabulary every layer speaks (docs/architecture.md, "One vocabulary").

Each trading noun is defined here once; the exchange adapters, the state repositories,
the domain maths and the services all use these types, and only the adapters that meet
the outside world (ccxt, the fill file readers) map strings to them.

Conventions, stated once:

- Money and quantities are :class:`~decimal.Decimal`; times are timezone-aware UTC
  datetimes. Symbols are exchange ids such as ``ETHUSDT``.
- Quantities are unsigned on orders and fills (the :class:`Side` gives the direction)
  and signed on positions: ``qty`` > 0 long, < 0 short.
- Funding: ``FundingPayment.amount`` > 0 means the account *received* it, < 0 that it
  paid (the exchanges' cash-flow sign). A long pays when the rate is positive.
- Fees are costs: ``fee`` > 0 is paid, < 0 a rebate.
- A *mode* is where a run trades: ``paper`` (the paper broker, the default everywhere)
  or ``live`` (an exchange, behind ``--live``). Paper and live runs share one state
  database; the trading state and risk directives are kept per mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, get_args

Mode = Literal["paper", "live"]
MODES: tuple[Mode, ...] = get_args(Mode)
_ZERO = Decimal(0)


class TradingState(StrEnum):
    """What a mode's book may do: everything, only reduce positions, or nothing new."""

    ACTIVE = "ACTIVE"
    REDUCE_ONLY = "REDUCE_ONLY"
    HALTED = "HALTED"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: the sign of the position change."""
        return 1 if self is Side.BUY else -1

    @classmethod
    def of(cls, signed_qty: Decimal) -> Side:
        """The side that moves a position by ``signed_qty`` (> 0 buys)."""
        return cls.BUY if signed_qty > 0 else cls.SELL


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_LIMIT = "stop_limit"
    """A limit order released when the market trades through ``stop_price``."""


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"
    """Post-only: rejected instead of taking liquidity."""
    GTD = "GTD"


class OrderStatus(StrEnum):
    """Where an order is. ``NEW``: recorded before sending, not yet acknowledged (a
    restart looks it up by client order id); ``DENIED``: refused by the pre-trade policy,
    never sent; ``NOT_SENT``: recorded, then found unknown to the venue after a restart."""

    NEW = "new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    DENIED = "denied"
    NOT_SENT = "not_sent"

    @property
    def is_open(self) -> bool:
        """The venue may still fill it (or, NEW, may have it)."""
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED})


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True)
class Order:
    """One order, from the decision to its last known state.

    What the order *is* (``client_order_id``, symbol, side, type, qty, prices,
    time in force, reduce-only) never changes under one client order id; the venue's
    answer moves ``status``, ``exchange_order_id``, ``filled_qty`` and
    ``average_price``. ``price`` is the limit price (LIMIT, STOP_LIMIT) or, for a
    MARKET order, the decision price it was sized at (the reference of its slippage).
    """

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal
    created_at: datetime
    status: OrderStatus = OrderStatus.NEW
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    exchange_order_id: str | None = None
    filled_qty: Decimal = _ZERO
    average_price: Decimal | None = None
    updated_at: datetime | None = None
    account: str = ""
    """The book it belongs to: ``paper:<run id>`` or the exchange id."""
    run_id: str | None = None
    reason: str | None = None
    """Why it was denied, rejected or not sent."""
    recovered: bool = False
    """A retried create found the order an earlier attempt had already placed."""
    parent_id: str | None = None
    """The routed parent this order is a slice of (None: not a slice); not stored with the
    order (``parent_orders`` knows its children), it tells the paper broker to work the
    slice through the bar."""

    @property
    def signed_qty(self) -> Decimal:
        return self.qty * self.side.sign

    def acknowledged(self, venue: Order, now: datetime) -> Order:
        """This order moved along by the venue's view of it: status, exchange id, fills."""
        return replace(
            self,
            exchange_order_id=venue.exchange_order_id,
            status=venue.status,
            filled_qty=venue.filled_qty,
            average_price=venue.average_price,
            updated_at=max(now, self.created_at),
            recovered=venue.recovered,
        )


@dataclass(frozen=True)
class Fill:
    """One execution. ``qty`` > 0 in base units, ``price`` > 0 in quote per base.

    ``trade_id`` is the venue's trade id (the ledger keys a recorded fill ``SYMBOL:id``).
    ``fee`` is in ``fee_currency``, the base or the quote asset of ``symbol``
    (``ETHUSDT``: ``ETH`` is base, ``USDT`` quote; empty means the quote); a negative fee
    is a rebate. ``liquidity`` None: the venue or file did not say (booked as taker).
    """

    trade_id: str
    ts: datetime
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal = _ZERO
    fee_currency: str = ""
    liquidity: Liquidity | None = Liquidity.TAKER
    order_id: str | None = None
    """The venue's order id."""
    client_order_id: str | None = None
    account: str = ""
    """The book it belongs to: ``paper`` for paper runs, the exchange id, an import's account."""
    run_id: str | None = None
    source: str = ""
    """How it reached the ledger: ``paper``, ``live``, ``import``, ``fetch``, ``backtest``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", Side(self.side))
        if self.liquidity is not None:
            object.__setattr__(self, "liquidity", Liquidity(self.liquidity))
        for name in ("qty", "price", "fee"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"fill {self.trade_id}: {name} must be a finite Decimal")
        if self.qty <= 0 or self.price <= 0:
            raise ValueError(f"fill {self.trade_id}: qty and price must be positive")
        if self.side is Side.BUY and self.fee >= self.qty and _base_fee(self):
            raise ValueError(f"fill {self.trade_id}: a base fee must be smaller than the qty")

    @property
    def signed_qty(self) -> Decimal:
        return self.qty * self.side.sign

    @property
    def fee_in_base(self) -> bool:
        """True when the fee is charged in the base asset (it then changes the quantity)."""
        return fee_in_base(self.symbol, self.fee_currency, self.fee)

    @property
    def book_delta(self) -> Decimal:
        """Change of the position in base units: signed qty minus a base-currency fee."""
        return self.signed_qty - (self.fee if self.fee_in_base else _ZERO)

    @property
    def fee_quote(self) -> Decimal:
        """The fee valued in quote at the fill price (negative for a rebate)."""
        return self.fee * self.price if self.fee_in_base else self.fee

    @property
    def cash_flow(self) -> Decimal:
        """Quote received (+) or paid (-): ``-signed_qty * price`` minus a quote fee."""
        quote_fee = _ZERO if self.fee_in_base else self.fee
        return -self.signed_qty * self.price - quote_fee


def _base_fee(fill: Fill) -> bool:
    """The fee is in the base asset; a fee in a third currency is refused when booked."""
    try:
        return fill.fee_in_base
    except ValueError:
        return False


def fee_in_base(symbol: str, fee_currency: str, fee: Decimal = _ZERO) -> bool:
    """Whether ``fee_currency`` is the base of ``symbol``; raises if it is neither asset.

    An empty currency is the quote (venues that do not name it charge in the quote)."""
    if fee == 0 or not fee_currency:
        return False
    plain = symbol.split(":")[0].replace("/", "").replace("-", "").upper()
    currency = fee_currency.upper()
    if plain.endswith(currency):
        return False
    if plain.startswith(currency):
        return True
    raise ValueError(
        f"fee currency {fee_currency} is neither the base nor the quote of {symbol}; "
        "convert the fee to the quote before booking it"
    )


@dataclass(frozen=True)
class Position:
    """A net (one-way) position: ``qty`` > 0 long, < 0 short.

    ``mark_price`` is the venue's mark (None when it gives none) and ``unrealized``
    the venue's unrealized PnL at that mark.
    """

    symbol: str
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal | None = None
    unrealized: Decimal = _ZERO
    leverage: Decimal | None = None
    account: str = ""
    """The book it is held in: ``paper:<run id>`` or the exchange id."""
    run_id: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class FundingPayment:
    """One funding settlement on the account: ``amount`` > 0 received, < 0 paid.

    ``rate`` is the settlement's funding rate when the venue tells it, and
    ``position_qty`` the signed position it was charged on.
    """

    symbol: str
    ts: datetime
    amount: Decimal
    payment_id: str = ""
    currency: str = "USDT"
    rate: Decimal | None = None
    position_qty: Decimal | None = None
    account: str = ""
    """The book charged: ``paper:<run id>`` or the exchange id."""
    run_id: str | None = None

    @property
    def paid(self) -> Decimal:
        """What the account paid (> 0) or received (< 0): the cost of the settlement."""
        return -self.amount


@dataclass(frozen=True)
class Balance:
    """One asset of the account: ``total = free + used`` (margin and open orders)."""

    asset: str
    free: Decimal
    used: Decimal
    total: Decimal


@dataclass(frozen=True)
class KeyPermissions:
    """What the venue reports an API key may do (Binance's "API key restrictions")."""

    can_read: bool
    can_trade: bool
    can_withdraw: bool
    ip_restricted: bool

    def describe(self) -> str:
        """``reading, trading, withdrawals off, IP allowlist on``-style summary."""
        return ", ".join(
            [
                f"reading {'on' if self.can_read else 'off'}",
                f"trading {'on' if self.can_trade else 'off'}",
                f"withdrawals {'on' if self.can_withdraw else 'off'}",
                f"IP allowlist {'on' if self.ip_restricted else 'off'}",
            ]
        )


@dataclass(frozen=True)
class Mark:
    """A mark price with the venue's timestamp of it."""

    symbol: str
    price: Decimal
    ts: datetime


@dataclass(frozen=True)
class Event:
    """One journal event: seed 001's standard event fields plus type, severity and payload."""

    ts: datetime
    event_type: str
    severity: str = "INFO"
    run_id: str | None = None
    symbol: str | None = None
    message: str | None = None
    features_hash: str | None = None
    engine_votes: Mapping[str, Any] | None = None
    consensus_score: float | None = None
    action: str | None = None
    size_usd: float | None = None
    price: float | None = None
    expected_edge_bps: float | None = None
    realized_pnl: float | None = None
    regime: str | None = None
    costs_bps: float | None = None
    payload: Mapping[str, Any] | None = field(default=None)
