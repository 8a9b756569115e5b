"""emergency-close, the steps: act on a prepared plan and record every step.

Reduce-only first (when ACTIVE), cancel the open orders, close the positions with
reduce-only MARKET orders in up to ``MAX_ROUNDS`` rounds (a round cancels what is left
of the previous round's orders, then closes what is still open, so a partial fill is
finished by the next round), HALT, then verify by reading the book again. Each step is
an incident (rule ``EMERGENCY_CLOSE``) in the state database.

No close is ever sent twice: before sending, the close's client id is looked up at the
broker; an id the broker already knows is never sent again, and the next sequence number
is used only when that earlier order is finished (:func:`_free_client_id`).
"""

from __future__ import annotations

from typing import Any

from stagectl.domain.types import Mode, Order, OrderType, Position, Side, TradingState
from stagectl.exchange.errors import ExchangeError
from stagectl.services.trading.emergency_plan import (
    RULE,
    SOURCE,
    Book,
    EmergencyCloseResult,
    Now,
    Venue,
    close_order_id,
    position_dict,
    read_book,
)
from stagectl.state import flags, journal
from stagectl.state.db import StateDB

MAX_ROUNDS = 3
MAX_SEQUENCE = 20


def execute(
    db: StateDB,
    venues: list[Venue],
    result: EmergencyCloseResult,
    *,
    now: Now,
    reason: str,
) -> EmergencyCloseResult:
    """Run the steps of a prepared plan; the result says what was done and what is left."""
    if result.nothing_to_do:
        _incident(db, result, now, "noop", "INFO", "already flat and HALTED: nothing done")
        result.after = result.before
        return result
    state = TradingState(result.trading_state_before)
    if state == TradingState.ACTIVE:
        _set_state(db, result, now, TradingState.REDUCE_ONLY, reason, "reduce_only")
    _cancel_orders(db, venues, result, now)
    for round_number in range(1, MAX_ROUNDS + 1):
        if not _close_round(db, venues, result, now, round_number):
            break
    if TradingState(result.trading_state_after) != TradingState.HALTED:
        _set_state(db, result, now, TradingState.HALTED, reason, "disable_trading")
    _verify(db, venues, result, now)
    return result


def trading_mode(venue_mode: str) -> Mode:
    """The trading mode whose state an emergency close sets: the paper books' or live."""
    return "paper" if venue_mode == "paper" else "live"


def halt_only(db: StateDB, mode: str, *, now: Now, reason: str, why: str) -> None:
    """The exchange cannot be read: stop trading locally and record why."""
    book = trading_mode(mode)
    if flags.get_trading_state(db, book).state != TradingState.HALTED:
        flags.set_trading_state(
            db, book, TradingState.HALTED, reason=reason, source=SOURCE, now=now()
        )
    journal.record_incident(
        db,
        journal.Incident(
            ts=now(),
            rule=RULE,
            severity="CRITICAL",
            action="exchange_unreachable",
            message=why,
            market_state={"mode": mode},
        ),
    )


def _set_state(
    db: StateDB,
    result: EmergencyCloseResult,
    now: Now,
    state: TradingState,
    reason: str,
    action: str,
) -> None:
    change = flags.set_trading_state(
        db, trading_mode(result.mode), state, reason=reason, source=SOURCE, now=now()
    )
    result.trading_state_after = state.value
    message = f"trading state {change.from_state.value} -> {change.to_state.value}: {reason}"
    _incident(db, result, now, action, "HIGH", message)


def _cancel_orders(
    db: StateDB, venues: list[Venue], result: EmergencyCloseResult, now: Now
) -> None:
    for venue in venues:
        symbols = sorted(
            {o.symbol for o in result.before.open_orders if o.account == venue.account}
        )
        for symbol in symbols:
            try:
                venue.broker.cancel_all(symbol)
                message = f"canceled all open orders of {venue.account} {symbol}"
                severity = "HIGH"
            except ExchangeError as error:
                message = f"cancel all orders of {venue.account} {symbol} failed: {error}"
                result.errors.append(message)
                severity = "CRITICAL"
            result.steps.append(
                {
                    "step": "cancel_orders",
                    "account": venue.account,
                    "symbol": symbol,
                    "message": message,
                }
            )
            _incident(db, result, now, "cancel_orders", severity, message, record_step=False)


def _close_round(
    db: StateDB, venues: list[Venue], result: EmergencyCloseResult, now: Now, round_number: int
) -> bool:
    """One round of closes; False when there was nothing left to close."""
    try:
        book = read_book(venues, result.symbols)
    except ExchangeError as error:
        result.errors.append(f"round {round_number}: cannot read positions: {error}")
        return False
    if not book.positions:
        return False
    by_account = {v.account: v for v in venues}
    for holding in book.positions:
        venue = by_account[holding.account]
        outcome = _close_one(venue, holding, book, round_number, now)
        result.orders.append(outcome)
        severity = "CRITICAL" if outcome.get("error") else "HIGH"
        _incident(
            db,
            result,
            now,
            "close_position",
            severity,
            outcome["message"],
            fills=[outcome],
            record_step=False,
        )
        result.steps.append({"step": "close_position", **outcome})
    return True


def _close_one(
    venue: Venue, holding: Position, book: Book, round_number: int, now: Now
) -> dict[str, Any]:
    """Cancel what still rests on the symbol, then send one reduce-only market close."""
    broker, symbol = venue.broker, holding.symbol
    side = Side.SELL if holding.qty > 0 else Side.BUY
    outcome: dict[str, Any] = {
        "round": round_number,
        "account": venue.account,
        "symbol": symbol,
        "position": str(holding.qty),
        "side": side.value,
        "amount": str(abs(holding.qty)),
    }
    try:
        if any(o.account == venue.account and o.symbol == symbol for o in book.open_orders):
            broker.cancel_all(symbol)
            if broker.open_orders(symbol):
                raise _Blocked(f"{symbol} still has open orders after cancel; not sending a close")
        cid, existing = _free_client_id(broker, venue.account, holding)
        outcome["client_order_id"] = cid
        if existing is not None:
            outcome.update(
                status=existing.status.value, filled=str(existing.filled_qty), recovered=True
            )
            outcome["message"] = (
                f"close {cid} of {symbol} is already at the exchange ({existing.status})"
            )
            return outcome
        request = Order(
            client_order_id=cid,
            symbol=symbol,
            side=side,
            type=OrderType.MARKET,
            qty=abs(holding.qty),
            created_at=now(),
            reduce_only=True,
            account=venue.account,
        )
        ack = broker.place(request)
        venue.settle(symbol)
        final = broker.fetch_order(symbol, client_order_id=cid) or ack
        outcome.update(
            status=final.status.value,
            filled=str(final.filled_qty),
            average_price=None if final.average_price is None else str(final.average_price),
            recovered=ack.recovered,
        )
        outcome["message"] = (
            f"closed {venue.account} {symbol} {holding.qty}: {side} {final.filled_qty} of "
            f"{abs(holding.qty)} ({final.status}, {cid})"
        )
    except (ExchangeError, _Blocked) as error:
        outcome["error"] = str(error)
        outcome["message"] = f"close of {venue.account} {symbol} {holding.qty} failed: {error}"
    return outcome


class _Blocked(Exception):
    """A close that is not sent because sending it could double an earlier one."""


def _free_client_id(broker: Any, account: str, holding: Position) -> tuple[str, Any]:
    """The first close id for this position the broker does not know, or an open one.

    A known id whose order is finished (filled, canceled, expired) belonged to an
    earlier close of the same position size; the position is still there, so the next
    sequence number is used. A known id whose order is still open is returned with it:
    that close is in flight and must not be sent again.
    """
    for sequence in range(MAX_SEQUENCE):
        cid = close_order_id(account, holding.symbol, holding.qty, sequence)
        existing = broker.fetch_order(holding.symbol, client_order_id=cid)
        if existing is None:
            return cid, None
        if existing.status.is_open:
            return cid, existing
    raise _Blocked(
        f"{MAX_SEQUENCE} earlier closes of {holding.symbol} {holding.qty} exist; "
        "check the exchange by hand"
    )


def _verify(db: StateDB, venues: list[Venue], result: EmergencyCloseResult, now: Now) -> None:
    try:
        after = read_book(venues, result.symbols)
    except ExchangeError as error:
        result.errors.append(f"verify: cannot read positions: {error}")
        result.after = Book(result.before.positions, result.before.open_orders)
        _incident(
            db,
            result,
            now,
            "verify",
            "CRITICAL",
            f"could not verify the book ({error}); assume the positions are still open",
        )
        return
    result.after = after
    if after.positions:
        left = ", ".join(f"{h.account} {h.symbol} {h.qty}" for h in after.positions)
        _incident(db, result, now, "verify", "CRITICAL", f"residual positions: {left}")
    else:
        _incident(db, result, now, "verify", "INFO", "verified flat: no position is open")


def _incident(
    db: StateDB,
    result: EmergencyCloseResult,
    now: Now,
    action: str,
    severity: str,
    message: str,
    *,
    fills: list[Any] | None = None,
    record_step: bool = True,
) -> None:
    if record_step:
        result.steps.append({"step": action, "message": message})
    journal.record_incident(
        db,
        journal.Incident(
            ts=now(),
            rule=RULE,
            severity=severity,
            action=action,
            message=message,
            market_state={
                "mode": result.mode,
                "accounts": result.accounts,
                "symbols": result.symbols,
                "positions_before": [position_dict(h) for h in result.before.positions],
            },
            fills=fills or [],
        ),
    )
