"""emergency-close, the plan: the book to flatten, the steps in words, the close ids.

:func:`prepare` reads the positions and open orders of the selected symbols across the
venues and turns them into an :class:`EmergencyCloseResult` holding the plan; it changes
nothing. :func:`close_order_id` derives a close order's client id from what is closed
(the account, the symbol, the signed position and a sequence number), never from when
the command ran, so a re-run derives the same ids. The steps that act on the plan are
in ``services.emergency_steps``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stagectl.domain.orders import client_order_id
from stagectl.domain.types import Order, Position, TradingState

RULE = "EMERGENCY_CLOSE"
SOURCE = "emergency-close"
_ANCHOR = datetime(1970, 1, 1, tzinfo=UTC)
"""The fixed instant in every close order's client id: the id depends on what is
closed, not on when the command ran, so a re-run derives the same ids."""


@dataclass
class Venue:
    """One account to flatten: its broker and, for paper, how its market moves."""

    account: str
    broker: Any
    settle: Callable[[str], None] = field(default=lambda symbol: None)


def position_dict(position: Position) -> dict[str, Any]:
    """A position of the book as the report lists it (``amount``: the signed qty)."""
    return {
        "account": position.account,
        "symbol": position.symbol,
        "amount": _text(position.qty),
    }


def order_dict(order: Order) -> dict[str, Any]:
    """A resting order as the report lists it."""
    return {
        "account": order.account,
        "symbol": order.symbol,
        "client_order_id": order.client_order_id,
        "side": order.side.value,
        "amount": _text(order.qty),
        "filled": _text(order.filled_qty),
    }


@dataclass(frozen=True)
class Book:
    """Positions and open orders of the selected symbols across the venues."""

    positions: tuple[Position, ...]
    open_orders: tuple[Order, ...]

    @property
    def flat(self) -> bool:
        return not self.positions and not self.open_orders


@dataclass
class EmergencyCloseResult:
    mode: str
    state_db: str
    accounts: list[str]
    symbols: list[str] | None
    dry_run: bool
    trading_state_before: str
    before: Book
    plan: list[str]
    trading_state_after: str = ""
    nothing_to_do: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    after: Book | None = None

    @property
    def flat(self) -> bool:
        book = self.after if self.after is not None else self.before
        return not book.positions

    def to_dict(self) -> dict[str, Any]:
        after = self.after
        return {
            "mode": self.mode,
            "state_db": self.state_db,
            "accounts": self.accounts,
            "symbols": self.symbols,
            "dry_run": self.dry_run,
            "nothing_to_do": self.nothing_to_do,
            "trading_state_before": self.trading_state_before,
            "trading_state_after": self.trading_state_after,
            "plan": self.plan,
            "positions_before": [position_dict(h) for h in self.before.positions],
            "open_orders_before": [order_dict(o) for o in self.before.open_orders],
            "steps": self.steps,
            "orders": self.orders,
            "errors": self.errors,
            "flat": self.flat,
            "residual_positions": [position_dict(h) for h in after.positions] if after else [],
            "residual_open_orders": [order_dict(o) for o in after.open_orders] if after else [],
        }


Now = Callable[[], datetime]


def read_book(venues: list[Venue], symbols: list[str] | None) -> Book:
    """Positions and open orders now; an unreachable exchange raises (exit 3)."""
    positions: list[Position] = []
    resting: list[Order] = []
    for venue in venues:
        for p in venue.broker.positions():
            if p.qty != 0 and _selected(p.symbol, symbols):
                positions.append(replace(p, account=venue.account))
        for o in venue.broker.open_orders():
            if _selected(o.symbol, symbols):
                resting.append(replace(o, account=venue.account))
    return Book(tuple(positions), tuple(resting))


def _selected(symbol: str, symbols: list[str] | None) -> bool:
    return symbols is None or symbol in symbols


def plan_steps(state: TradingState, book: Book) -> list[str]:
    """What a run would do, in order, in words."""
    steps = []
    if state == TradingState.ACTIVE:
        steps.append("set trading state ACTIVE -> REDUCE_ONLY")
    for order in book.open_orders:
        steps.append(f"cancel open order {order.client_order_id} ({order.account} {order.symbol})")
    for h in book.positions:
        side = "sell" if h.qty > 0 else "buy"
        steps.append(
            f"close {h.account} {h.symbol} {h.qty}: reduce-only market {side} {abs(h.qty)}"
        )
    if state != TradingState.HALTED:
        steps.append(f"set trading state {_after_step1(state).value} -> HALTED")
    steps.append("verify flat")
    return steps


def _after_step1(state: TradingState) -> TradingState:
    return TradingState.REDUCE_ONLY if state == TradingState.ACTIVE else state


def close_order_id(account: str, symbol: str, amount: Decimal, sequence: int) -> str:
    """The client order id of the ``sequence``-th close of ``amount`` (signed) on a symbol."""
    intent = f"emergency-close {_text(amount)} #{sequence}"
    return client_order_id(f"{SOURCE}:{account}", symbol, _ANCHOR, intent)


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def prepare(
    state: TradingState,
    venues: list[Venue],
    *,
    mode: str,
    state_db: str,
    symbols: list[str] | None,
    dry_run: bool,
) -> EmergencyCloseResult:
    """Read the book and plan the run; changes nothing. Raises ExchangeError (exit 3)."""
    book = read_book(venues, symbols)
    result = EmergencyCloseResult(
        mode=mode,
        state_db=state_db,
        accounts=[v.account for v in venues],
        symbols=symbols,
        dry_run=dry_run,
        trading_state_before=state.value,
        before=book,
        plan=plan_steps(state, book),
        trading_state_after=state.value,
    )
    result.nothing_to_do = book.flat and state == TradingState.HALTED
    return result
