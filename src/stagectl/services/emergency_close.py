"""``stagectl emergency-close``: the seed 002 rollback plan and seed 003's kill switch.

Steps (docs/operations.md, "Rollback and emergency close"):

1. set the trading state to REDUCE_ONLY (when it is ACTIVE; HALTED stays HALTED);
2. cancel every open order of the selected symbols;
3. close every position with reduce-only MARKET orders, in up to ``MAX_ROUNDS`` rounds
   (a round cancels what is left of the previous round's orders, then closes what is
   still open, so a partial fill is finished by the next round);
4. set the trading state to HALTED;
5. verify: read positions and open orders again; anything left is the residual.

Each step is recorded as an incident (rule ``EMERGENCY_CLOSE``) in the state database.

No close is ever sent twice. A close order's client order id is a function of the
account, the symbol, the signed position it closes and a sequence number
(``stagectl.domain.orders.client_order_id``); before sending, the id is looked up at
the broker, and an id the broker already knows is never sent again (the next sequence
number is used only when that earlier order is finished). The orders are reduce-only,
so even a stale order cannot flip a position, and ``CcxtBroker.place`` recovers an
order accepted before a dropped connection instead of sending it again.

Paper books (``--paper``, the default) are the paper accounts of run-live's paper runs
in the paper state database. The paper broker fills market orders on the next bar, so
here a close fills on a flat bar at the position's last mark (its entry price when it
was never marked), with the strategy config's slippage and taker fee.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stagectl.config.home import Home
from stagectl.domain.orders import TradingState, client_order_id
from stagectl.exchange.broker import OrderRequest, Side
from stagectl.exchange.errors import ExchangeError
from stagectl.exchange.retry import RetryPolicy
from stagectl.services.trading_flags import state_path_for
from stagectl.state import flags, journal, runs
from stagectl.state.db import StateDB, open_state

RULE = "EMERGENCY_CLOSE"
SOURCE = "emergency-close"
MAX_ROUNDS = 3
MAX_SEQUENCE = 20
_ANCHOR = datetime(1970, 1, 1, tzinfo=UTC)
"""The fixed instant in every close order's client id: the id depends on what is
closed, not on when the command ran, so a re-run derives the same ids."""


@dataclass
class Venue:
    """One account to flatten: its broker and, for paper, how its market moves."""

    account: str
    broker: Any
    settle: Callable[[str], None] = field(default=lambda symbol: None)


@dataclass(frozen=True)
class Holding:
    account: str
    symbol: str
    amount: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {"account": self.account, "symbol": self.symbol, "amount": _text(self.amount)}


@dataclass(frozen=True)
class RestingOrder:
    account: str
    symbol: str
    client_order_id: str | None
    side: str
    amount: Decimal
    filled: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "symbol": self.symbol,
            "client_order_id": self.client_order_id,
            "side": self.side,
            "amount": _text(self.amount),
            "filled": _text(self.filled),
        }


@dataclass(frozen=True)
class Book:
    """Positions and open orders of the selected symbols across the venues."""

    positions: tuple[Holding, ...]
    open_orders: tuple[RestingOrder, ...]

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
            "positions_before": [h.to_dict() for h in self.before.positions],
            "open_orders_before": [o.to_dict() for o in self.before.open_orders],
            "steps": self.steps,
            "orders": self.orders,
            "errors": self.errors,
            "flat": self.flat,
            "residual_positions": [h.to_dict() for h in after.positions] if after else [],
            "residual_open_orders": [o.to_dict() for o in after.open_orders] if after else [],
        }


Now = Callable[[], datetime]


def read_book(venues: list[Venue], symbols: list[str] | None) -> Book:
    """Positions and open orders now; an unreachable exchange raises (exit 3)."""
    positions: list[Holding] = []
    resting: list[RestingOrder] = []
    for venue in venues:
        for p in venue.broker.positions():
            if p.amount != 0 and _selected(p.symbol, symbols):
                positions.append(Holding(venue.account, p.symbol, p.amount))
        for o in venue.broker.open_orders():
            if _selected(o.symbol, symbols):
                resting.append(
                    RestingOrder(
                        venue.account, o.symbol, o.client_order_id, o.side, o.amount, o.filled
                    )
                )
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
        side = "sell" if h.amount > 0 else "buy"
        steps.append(
            f"close {h.account} {h.symbol} {h.amount}: reduce-only market {side} {abs(h.amount)}"
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


def halt_only(db: StateDB, mode: str, *, now: Now, reason: str, why: str) -> None:
    """The exchange cannot be read: stop trading locally and record why."""
    if flags.get_trading_state(db).state != TradingState.HALTED:
        flags.set_trading_state(db, TradingState.HALTED, reason=reason, source=SOURCE, now=now())
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
    change = flags.set_trading_state(db, state, reason=reason, source=SOURCE, now=now())
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
        outcome = _close_one(venue, holding, book, round_number)
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


def _close_one(venue: Venue, holding: Holding, book: Book, round_number: int) -> dict[str, Any]:
    """Cancel what still rests on the symbol, then send one reduce-only market close."""
    broker, symbol = venue.broker, holding.symbol
    side: Side = "sell" if holding.amount > 0 else "buy"
    outcome: dict[str, Any] = {
        "round": round_number,
        "account": venue.account,
        "symbol": symbol,
        "position": str(holding.amount),
        "side": side,
        "amount": str(abs(holding.amount)),
    }
    try:
        if any(o.account == venue.account and o.symbol == symbol for o in book.open_orders):
            broker.cancel_all(symbol)
            if broker.open_orders(symbol):
                raise _Blocked(f"{symbol} still has open orders after cancel; not sending a close")
        cid, existing = _free_client_id(broker, venue.account, holding)
        outcome["client_order_id"] = cid
        if existing is not None:
            outcome.update(status=existing.status, filled=str(existing.filled), recovered=True)
            outcome["message"] = (
                f"close {cid} of {symbol} is already at the exchange ({existing.status})"
            )
            return outcome
        request = OrderRequest(symbol, side, "market", abs(holding.amount), cid, reduce_only=True)
        ack = broker.place(request)
        venue.settle(symbol)
        final = broker.fetch_order(symbol, client_order_id=cid) or ack
        outcome.update(
            status=final.status,
            filled=str(final.filled),
            average_price=None if final.average_price is None else str(final.average_price),
            recovered=ack.recovered,
        )
        outcome["message"] = (
            f"closed {venue.account} {symbol} {holding.amount}: {side} {final.filled} of "
            f"{abs(holding.amount)} ({final.status}, {cid})"
        )
    except (ExchangeError, _Blocked) as error:
        outcome["error"] = str(error)
        outcome["message"] = f"close of {venue.account} {symbol} {holding.amount} failed: {error}"
    return outcome


class _Blocked(Exception):
    """A close that is not sent because sending it could double an earlier one."""


def _free_client_id(broker: Any, account: str, holding: Holding) -> tuple[str, Any]:
    """The first close id for this position the broker does not know, or an open one.

    A known id whose order is finished (filled, canceled, expired) belonged to an
    earlier close of the same position size; the position is still there, so the next
    sequence number is used. A known id whose order is still open is returned with it:
    that close is in flight and must not be sent again.
    """
    for sequence in range(MAX_SEQUENCE):
        cid = close_order_id(account, holding.symbol, holding.amount, sequence)
        existing = broker.fetch_order(holding.symbol, client_order_id=cid)
        if existing is None:
            return cid, None
        if existing.status == "open":
            return cid, existing
    raise _Blocked(
        f"{MAX_SEQUENCE} earlier closes of {holding.symbol} {holding.amount} exist; "
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
        left = ", ".join(f"{h.account} {h.symbol} {h.amount}" for h in after.positions)
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
                "positions_before": [h.to_dict() for h in result.before.positions],
            },
            fills=fills or [],
        ),
    )


@dataclass(frozen=True)
class EmergencyCloseRequest:
    """``paper`` closes run-live's paper books; otherwise ``exchange`` with credentials
    from the environment or key file (docs/exchange.md)."""

    paper: bool = True
    exchange: str = "binanceusdm"
    base_url: str | None = None
    symbols: list[str] | None = None
    dry_run: bool = False
    halt_if_unreachable: bool = False
    reason: str = "emergency close (stagectl emergency-close)"
    timeout_ms: int = 10_000
    policy: RetryPolicy | None = None
    rate_limit: bool = True


Confirm = Callable[[EmergencyCloseResult], None]


def run(
    request: EmergencyCloseRequest,
    *,
    home: Home,
    confirm: Confirm,
    now: Now = lambda: datetime.now(UTC),
) -> EmergencyCloseResult:
    """Plan, confirm (``confirm`` raises to stop), then execute; ``--dry-run`` stops after
    the plan and writes nothing (not even a new state database)."""
    path = state_path_for(home, paper=request.paper)
    mode = "paper" if request.paper else request.exchange
    if request.dry_run and not path.exists():
        venues = [] if request.paper else [_exchange_venue(request)]
        return prepare(
            TradingState.ACTIVE,
            venues,
            mode=mode,
            state_db=str(path),
            symbols=request.symbols,
            dry_run=True,
        )
    db = open_state(path, migrate=not request.dry_run)
    try:
        venues = _paper_venues(db, home) if request.paper else [_exchange_venue(request)]
        state = flags.get_trading_state(db).state
        try:
            result = prepare(
                state,
                venues,
                mode=mode,
                state_db=str(path),
                symbols=request.symbols,
                dry_run=request.dry_run,
            )
        except ExchangeError as error:
            if request.dry_run or not request.halt_if_unreachable:
                raise
            halt_only(db, mode, now=now, reason=request.reason, why=str(error))
            raise type(error)(
                f"{error.message}; trading is set HALTED locally, the positions are unknown: "
                "rerun emergency-close when the exchange answers"
            ) from error
        if request.dry_run:
            return result
        if not result.nothing_to_do:
            confirm(result)
        return execute(db, venues, result, now=now, reason=request.reason)
    finally:
        db.close()


def _exchange_venue(request: EmergencyCloseRequest) -> Venue:
    from stagectl.exchange.ccxt_broker import open_broker
    from stagectl.exchange.credentials import require_credentials

    broker = open_broker(
        request.exchange,
        credentials=require_credentials(),
        base_url=request.base_url,
        timeout_ms=request.timeout_ms,
        policy=request.policy,
        rate_limit=request.rate_limit,
    )
    return Venue(account=request.exchange, broker=broker)


def _paper_venues(db: StateDB, home: Home) -> list[Venue]:
    """One venue per paper book of run-live's paper runs (account ``paper:<run id>``)."""
    from stagectl.config.loader import load_strategy
    from stagectl.exchange.paper import PaperBroker
    from stagectl.state.paper_book import StatePaperStore

    config, _ = load_strategy(home)
    fee_bps = Decimal(repr(config.costs.fee_bps))
    slippage_bps = Decimal(repr(config.costs.slippage_bps))
    venues = []
    for paper_run in runs.list_runs(db, kind="run-live", limit=10_000):
        if paper_run.mode != "paper":
            continue
        store = StatePaperStore(db, account=f"paper:{paper_run.run_id}")
        if store.load_book() is None:
            continue
        broker = PaperBroker(
            store,
            initial_balance=Decimal(0),
            taker_fee_bps=fee_bps,
            maker_fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            start=paper_run.started_at,
        )
        venues.append(Venue(store.account, broker, _paper_settle(broker)))
    return sorted(venues, key=lambda v: v.account)


def _paper_settle(broker: Any) -> Callable[[str], None]:
    """Fill the paper broker's resting market orders on a flat bar at the last mark."""
    from stagectl.exchange.paper import Bar

    def settle(symbol: str) -> None:
        held = [p for p in broker.positions() if p.symbol == symbol]
        if not held:
            return
        price = held[0].mark_price or held[0].entry_price
        clock = broker.clock
        broker.process_bar(symbol, Bar(clock, clock, price, price, price, price))

    return settle
