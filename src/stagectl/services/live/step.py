"""The open of one run-live bar: read, decide, write ahead, send (docs/run-live.md).

1. read, with no transaction open: the mode's trading state and risk directives (state),
   the account's equity and positions (the broker), the circuit breakers' multiplier, the
   run's weekly rebalance due at this bar (``rebalance.plan_at_bar``);
2. decide: ``domain.decide.decide``, a pure function of those values (with the execution
   router on, on the positions the run's working parents will leave; ``execution``);
3. write ahead, one short transaction: every order of the decision, routed (a sliced
   order's first slice in its place, and the working parents' next slices), is recorded
   (``new``, or ``denied`` with its code) with its deterministic client order id, with
   the bar's events, the parents' progress and the rebalance plan's step, before
   anything is sent;
4. send, with no transaction open: an order recorded ``new`` is first looked up at the
   broker by its client order id and placed only when the broker does not know it (no
   order is sent twice);
5. one short transaction records what the broker answered (or its rejection).

No broker call ever happens while a write transaction is open: a slow or retrying
exchange never holds the state database's write lock (the hourly guard and an import
keep writing). Settlement at the bar's close is ``settle``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from stagectl.domain.decide import DecideInputs, Decision, SleeveInput, decide
from stagectl.domain.order_policy import PolicyLimits
from stagectl.domain.pretrade_costs import CostSettings
from stagectl.domain.sizing import SizingLimits
from stagectl.domain.types import Event, Mode, Order, OrderStatus, OrderType, TradingState
from stagectl.errors import StateLockedError
from stagectl.exchange.broker import Broker
from stagectl.exchange.errors import OrderRejected
from stagectl.services.live import execution
from stagectl.services.live.artifacts import ORDER_REJECTED
from stagectl.services.live.book import RunBook
from stagectl.services.live.breakers import BreakerState, evaluate
from stagectl.services.live.execution import Routed, RouterSettings
from stagectl.services.live.feed import StepData
from stagectl.services.live.rebalance import PlanAtBar, plan_at_bar, record_at_open
from stagectl.state import directives, flags, journal, orders, parents
from stagectl.state.db import StateDB
from stagectl.state.parents import ParentOrder

T = TypeVar("T")
WRITE_ATTEMPTS = 3
"""A locked database is retried this many times (each waits the busy timeout) in a bar."""


@dataclass
class LiveContext:
    """One run's loop: its state, broker, settings and carried book."""

    db: StateDB
    broker: Broker
    run_id: str
    mode: Mode
    account: str
    """The book's name in ``positions`` and the ``source`` of its funding payments."""
    exchange: str
    """The ledger's venue for this run's fills and orders: ``paper`` or the exchange id."""
    limits: PolicyLimits
    alerts: Any
    tolerance_usd: Decimal
    initial_equity: Decimal
    stop_limits: bool
    book: RunBook = field(default_factory=RunBook)
    fills_since: datetime | None = None
    """The run's first bar: fills and funding before it belong to no run of this loop."""
    qty_steps: dict[str, Decimal] = field(default_factory=dict)
    """The venue's amount increment per symbol (default: ``limits.qty_step``)."""
    breakers: BreakerState | None = None
    """Circuit breakers (None: ``--no-breakers``)."""
    sizing: SizingLimits | None = None
    """The active risk preset's single-coin and leverage caps (None: not applied)."""
    costs: CostSettings | None = None
    """The pre-trade cost estimate (None: not recorded)."""
    sizing_preset: str = ""
    on_retry: Callable[[str], None] | None = None
    """Told when a locked database is retried (the loop's alert line)."""
    router: RouterSettings | None = None
    """The execution router (``services.live.execution``); None: every order as decided."""

    def limits_for(self, symbol: str) -> PolicyLimits:
        step = self.qty_steps.get(symbol)
        return self.limits if step is None else replace(self.limits, qty_step=step)

    def write(self, what: str, work: Callable[[], T]) -> T:
        """Run ``work`` in one write transaction, retried while the database is locked."""

        def in_transaction() -> T:
            with self.db.transaction():
                return work()

        return self.retrying(what, in_transaction)

    def retrying(self, what: str, work: Callable[[], T]) -> T:
        return retry_locked(what, work, self.on_retry)


def retry_locked(
    what: str, work: Callable[[], T], on_retry: Callable[[str], None] | None = None
) -> T:
    """Run ``work``; a locked database is transient: retried up to ``WRITE_ATTEMPTS`` times
    (each waits the busy timeout), then raised. ``work`` must be safe to redo."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return work()
        except StateLockedError:
            if attempt == WRITE_ATTEMPTS:
                raise
            if on_retry is not None:
                on_retry(f"{what}: the state database is locked; retrying")
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Opened:
    """What the open of a bar decided and sent."""

    decision: Decision
    trading_state: str
    equity: Decimal
    counts: dict[str, int]
    directive_multipliers: dict[str, float] = field(default_factory=dict)
    """Per sleeve, what the mode's risk directives asked of this bar."""
    rebalance_limits: tuple[str, ...] = ()
    """The client order ids of the weekly rebalance's limit orders decided at this bar."""
    limit_timeout_s: float = 0.0


def directive_multipliers(
    db: StateDB, mode: Mode, symbols: Sequence[str], now: datetime, run_id: str | None = None
) -> dict[str, float]:
    """Per sleeve: the product of the mode's active directives' multipliers that apply to it
    (a paper directive only in the run it judged)."""
    out = dict.fromkeys(symbols, 1.0)
    for directive in directives.active_directives(db, mode=mode, now=now, run_id=run_id):
        for symbol in symbols:
            if directive.sleeve is None or directive.sleeve == symbol:
                out[symbol] *= float(directive.multiplier)
    return out


def open_bar(ctx: LiveContext, data: StepData) -> Opened:
    """Steps 1-5 of the module docstring for the bar opening at ``data.ts``."""
    symbols = list(data.sleeves)
    state = flags.get_trading_state(ctx.db, ctx.mode).state
    multipliers = directive_multipliers(ctx.db, ctx.mode, symbols, data.ts, ctx.run_id)
    equity = ctx.broker.equity()
    held = {p.symbol: p.qty for p in ctx.broker.positions()}
    breaker_mult, fired = _breakers(ctx, data)
    at_bar = plan_at_bar(ctx, data)

    def decided(positions: dict[str, Decimal]) -> Decision:
        return decide(
            DecideInputs(
                run_id=ctx.run_id,
                account=ctx.exchange,
                bar_ts=data.ts,
                equity=equity,
                sleeves=[_sleeve_input(data, symbol, positions.get(symbol)) for symbol in symbols],
                targets=ctx.book.targets,
                trading_state=state,
                directive_multipliers=multipliers,
                breaker_multiplier=breaker_mult,
                limits={symbol: ctx.limits_for(symbol) for symbol in symbols},
                default_limits=ctx.limits,
                sizing=ctx.sizing,
                sizing_preset=ctx.sizing_preset,
                costs=ctx.costs,
                latency_ms=ctx.broker.order_latency_ms,
                rebalance=None if at_bar is None else at_bar.rebalance,
            )
        )

    working = _working_parents(ctx, data.ts)
    stopping = execution.to_cancel(working, state, set(), data.ts)
    if state != TradingState.ACTIVE:
        working = []  # all cancelled: decide on the real positions
    decision = decided(execution.projected_positions(held, working))
    superseded = {o.symbol for o in decision.to_send} & {p.symbol for p in working}
    if superseded:
        stopping += execution.to_cancel(working, state, superseded, data.ts)
        working = [p for p in working if p.symbol not in superseded]
        decision = decided(execution.projected_positions(held, working))
    urgent = {s for s in symbols if state != TradingState.ACTIVE or decision.multipliers[s] < 1.0}
    books = _books(ctx, decision)
    to_send, transfers = ctx.write(
        "record the bar's orders",
        lambda: _write_ahead(
            ctx, data, decision, fired, at_bar, _Routing(working, stopping, urgent, books)
        ),
    )
    ctx.book.targets = decision.targets
    for symbol, moved in transfers.items():
        ctx.book.transfers[symbol] = ctx.book.transfers.get(symbol, 0.0) + moved
    counts = send(ctx, to_send, data.ts)
    limits = tuple(
        o.client_order_id
        for o in decision.orders
        if o.type == OrderType.LIMIT and o.status == OrderStatus.NEW
    )
    rebalance = None if at_bar is None else at_bar.rebalance
    timeout = 0.0 if rebalance is None else rebalance.limit_timeout_s
    return Opened(decision, state.value, equity, counts, multipliers, limits, timeout)


def _sleeve_input(data: StepData, symbol: str, position: Decimal | None) -> SleeveInput:
    sleeve = data.sleeves[symbol]
    return SleeveInput(
        symbol=symbol,
        weight=sleeve.weight,
        held_target=sleeve.held_target,
        decision_price=sleeve.decision_price,
        prev_dollar_volume=sleeve.prev_dollar_volume,
        prev_spread_bps=sleeve.prev_spread_bps,
        regime=sleeve.regime,
        position=Decimal(0) if position is None else position,
    )


@dataclass(frozen=True)
class _Routing:
    """What the write-ahead needs to route the bar's orders (router on)."""

    working: list[ParentOrder]
    """The parents decided at earlier bars that go on at this one."""
    stopping: list[tuple[ParentOrder, Event]]
    urgent: set[str]
    books: dict[str, tuple[Decimal, Decimal] | None]


def _working_parents(ctx: LiveContext, now: datetime) -> list[ParentOrder]:
    """The run's working parents decided before this bar (a parent decided at this bar is
    decided again by a redo, which finds it recorded)."""
    if ctx.router is None:
        return []
    found = ctx.retrying(
        "read the working parents", lambda: parents.working_parents(ctx.db, ctx.run_id)
    )
    return [p for p in found if p.created_at < now]


def _books(ctx: LiveContext, decision: Decision) -> dict[str, tuple[Decimal, Decimal] | None]:
    """The best bid and ask of each symbol with a market order to route, read from the
    broker before the write-ahead transaction opens."""
    if ctx.router is None:
        return {}
    wanted = {o.symbol for o in decision.to_send if o.type == OrderType.MARKET}
    return {symbol: ctx.broker.book_top(symbol) for symbol in sorted(wanted)}


def _breakers(ctx: LiveContext, data: StepData) -> tuple[float, list[Event]]:
    if ctx.breakers is None:
        return 1.0, []
    return evaluate(
        ctx.db,
        ctx.run_id,
        ctx.breakers,
        initial_equity=float(ctx.initial_equity),
        sleeve_start_usd={
            s: sleeve.weight * float(ctx.initial_equity) for s, sleeve in data.sleeves.items()
        },
        bar_ts=data.ts,
    )


def _write_ahead(
    ctx: LiveContext,
    data: StepData,
    decision: Decision,
    fired: Iterable[Event],
    at_bar: PlanAtBar | None,
    routing: _Routing,
) -> tuple[list[Order], dict[str, float]]:
    """Record the decision's orders (routed: children in place of their parents) and
    events, the parents' progress, and the rebalance plan's step; the orders still to be
    sent and the capital transfers of a rebalance taken at this bar.

    A client order id already recorded was decided by an earlier attempt at this bar (a
    restart): it is sent again only while it is still ``new`` (never acknowledged)."""
    routed = _route(ctx, data, decision, routing)
    to_send = record_orders(ctx, routed.orders)
    journal.record_events(
        ctx.db, [*fired, *decision.events, *(e for _, e in routing.stopping), *routed.events]
    )
    transfers = {} if at_bar is None else record_at_open(ctx, data, at_bar, decision)
    return to_send, transfers


def _route(ctx: LiveContext, data: StepData, decision: Decision, routing: _Routing) -> Routed:
    """The decision through the router (inside the write-ahead transaction): the parents it
    cancels and moves along are written here; the orders and events are the caller's."""
    if ctx.router is None:
        return Routed(decision.orders, (), ())
    steps = {symbol: ctx.limits_for(symbol).qty_step for symbol in data.sleeves}
    live = ctx.mode == "live"
    fresh = execution.route(
        ctx.db, routing.books, ctx.broker.post_only, ctx.router, data, decision.orders,
        run_id=ctx.run_id, account=ctx.exchange, urgent=routing.urgent, steps=steps, live=live,
    )  # fmt: skip
    going = execution.next_children(
        ctx.db, routing.working, data, steps, ctx.router, account=ctx.exchange, live=live
    )
    for parent, _ in routing.stopping:
        parents.update_parent(ctx.db, parent)
    for parent in (*fresh.parents, *going.parents):
        parents.insert_parent(ctx.db, parent)
        parents.update_parent(ctx.db, parent)
    return Routed(
        (*fresh.orders, *going.orders), (*fresh.parents, *going.parents),
        (*fresh.events, *going.events),
    )  # fmt: skip


def record_orders(ctx: LiveContext, decided: Iterable[Order]) -> list[Order]:
    """Record decided orders (inside the caller's transaction); the ones to send. An order
    already recorded is sent again only while it is still ``new``; a slice keeps its
    parent (which the orders table does not store)."""
    to_send: list[Order] = []
    for order in decided:
        existing = orders.get_order(ctx.db, order.client_order_id)
        if existing is None:
            orders.upsert_order(ctx.db, order)
            if order.status == OrderStatus.NEW:
                to_send.append(order)
        elif existing.status == OrderStatus.NEW:
            to_send.append(replace(existing, parent_id=order.parent_id))
    return to_send


def send(ctx: LiveContext, to_send: Sequence[Order], now: datetime) -> dict[str, int]:
    """Look each order up by client order id; place only the unknown ones; then record the
    answers in one transaction. The broker is called with no transaction open."""
    counts = {"sent": 0, "recovered": 0, "rejected": 0}
    answered: list[Order] = []
    rejected: list[tuple[Order, str]] = []
    for order in to_send:
        venue = ctx.broker.fetch_order(order.symbol, client_order_id=order.client_order_id)
        if venue is not None:
            counts["recovered"] += 1
        else:
            try:
                venue = ctx.broker.place(order)
            except OrderRejected as error:
                counts["rejected"] += 1
                rejected.append((order, error.message))
                continue
            counts["sent"] += 1
        answered.append(order.acknowledged(venue, now))
    if answered or rejected:
        ctx.write(
            "record the broker's answers", lambda: _record_answers(ctx, answered, rejected, now)
        )
    return counts


def _record_answers(
    ctx: LiveContext, answered: list[Order], rejected: list[tuple[Order, str]], now: datetime
) -> None:
    for order in answered:
        orders.upsert_order(ctx.db, order)
    for order, message in rejected:
        orders.upsert_order(
            ctx.db,
            replace(order, status=OrderStatus.REJECTED, reason=message[:300], updated_at=now),
        )
        journal.record_event(
            ctx.db,
            Event(
                ts=now,
                event_type=ORDER_REJECTED,
                severity="MEDIUM",
                run_id=ctx.run_id,
                symbol=order.symbol,
                message=message[:300],
                payload={"client_order_id": order.client_order_id, "code": "EXCHANGE_REJECTED"},
            ),
        )
