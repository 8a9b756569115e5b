"""One bar step of run-live (docs/run-live.md, "One bar step").

1. decide, in one transaction (the write-ahead of the step): trading state and risk
   directives at the bar open, the held target x multiplier per sleeve, the order
   needed to reach it, the order policy; every order is recorded (``new``, or
   ``denied``) with its deterministic client order id before anything is sent;
2. send: an order recorded ``new`` is first looked up at the broker by its client
   order id and sent only when the broker does not know it (no order is sent twice);
3. the market moves (paper: the broker runs the bar and its funding settlements);
4. settle, in one transaction: fills fetched from the last known fill and inserted
   idempotently, order states, funding, positions, protective stops, reconciliation,
   the equity snapshot (stamped at the bar close: the step is complete), margin and
   mark alerts, signal checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from stagectl.domain.guards import Denial
from stagectl.domain.order_policy import (
    ORDER_DENIED,
    SIZED_DOWN,
    MarketContext,
    PolicyEvent,
    PolicyLimits,
    ProposedOrder,
    apply_policy,
    stop_limit_for,
)
from stagectl.domain.orders import client_order_id
from stagectl.domain.sizing import (
    CAP_LEVERAGE,
    CAP_SINGLE_COIN,
    OpenExposure,
    SizingLimits,
    exposure_caps,
)
from stagectl.domain.types import Mode, TradingState
from stagectl.exchange.broker import OrderAck, OrderRequest
from stagectl.exchange.errors import OrderRejected
from stagectl.services.live.artifacts import ORDER_REJECTED
from stagectl.services.live.breakers import BreakerState, evaluate
from stagectl.services.live.feed import StepData
from stagectl.services.strategy.costs import CostSettings, pre_trade_cost
from stagectl.state import directives, flags, journal, orders
from stagectl.state.db import StateDB

_ZERO = Decimal(0)
PRE_TRADE_COST = "PRE_TRADE_COST"
MARGIN_SEVERITY = {"NORMAL": "INFO", "WARNING": "MEDIUM", "CRITICAL": "CRITICAL"}


@dataclass
class LoopMemory:
    """What the loop carries from one step to the next (rebuilt from the last snapshot)."""

    last_target: dict[str, float] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)
    margin_window: str = "NORMAL"


@dataclass
class LiveContext:
    db: StateDB
    broker: Any
    run_id: str
    exchange: str
    limits: PolicyLimits
    alerts: Any
    tolerance_usd: Decimal
    initial_equity: Decimal
    stop_limits: bool
    memory: LoopMemory
    paper: bool = True
    account: str = "paper"
    """The book's name in ``positions`` and the ``source`` of its funding payments."""
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
    latency_ms: float = 0.0
    """The last measured order round trip (the latency penalty of the next estimate)."""

    @property
    def mode(self) -> Mode:
        """The trading mode whose state and directives this run obeys."""
        return "paper" if self.paper else "live"

    def limits_for(self, symbol: str) -> PolicyLimits:
        step = self.qty_steps.get(symbol)
        return self.limits if step is None else replace(self.limits, qty_step=step)


@dataclass(frozen=True)
class Intent:
    order: orders.Order
    request: OrderRequest


def multipliers(db: StateDB, mode: Mode, symbols: list[str], now: datetime) -> dict[str, float]:
    """Per sleeve: the product of the mode's active directives' multipliers that apply to it."""
    out = dict.fromkeys(symbols, 1.0)
    for directive in directives.active_directives(db, mode=mode, now=now):
        for symbol in symbols:
            if directive.sleeve is None or directive.sleeve == symbol:
                out[symbol] *= float(directive.multiplier)
    return out


def account_equity(ctx: LiveContext) -> Decimal:
    """Paper: cash + unrealized. Exchange: the USDT margin balance (ccxt's ``total`` of a
    USD-M account is wallet balance + unrealized PnL, so nothing is added to it)."""
    if ctx.paper:
        return Decimal(ctx.broker.equity())
    return sum((b.total for b in ctx.broker.balances() if b.asset == "USDT"), _ZERO)


def positions_by_symbol(ctx: LiveContext) -> dict[str, tuple[Decimal, Decimal]]:
    return {p.symbol: (p.amount, p.entry_price) for p in ctx.broker.positions()}


def decide(ctx: LiveContext, data: StepData) -> tuple[list[Intent], dict[str, Any]]:
    """Step 1: the orders of this bar, recorded before sending (one transaction)."""
    db, symbols = ctx.db, list(data.sleeves)
    with db.transaction():
        state = flags.get_trading_state(db, ctx.mode).state
        mult = multipliers(db, ctx.mode, symbols, data.ts)
        equity = account_equity(ctx)
        held = positions_by_symbol(ctx)
        intents: list[Intent] = []
        events: list[journal.Event] = []
        breaker_mult = 1.0
        if ctx.breakers is not None:
            breaker_mult, fired = evaluate(
                db,
                ctx.run_id,
                ctx.breakers,
                initial_equity=float(ctx.initial_equity),
                sleeve_start_usd={
                    s: sleeve.weight * float(ctx.initial_equity)
                    for s, sleeve in data.sleeves.items()
                },
                bar_ts=data.ts,
            )
            events.extend(fired)
            mult = {s: m * breaker_mult for s, m in mult.items()}
        gross = {
            s: abs(held.get(s, (_ZERO, _ZERO))[0]) * data.sleeves[s].decision_price for s in symbols
        }
        for symbol in symbols:
            sleeve = data.sleeves[symbol]
            target = sleeve.held_target * mult[symbol]
            qty_now = held.get(symbol, (_ZERO, _ZERO))[0]
            events.append(_signal_event(ctx, data, symbol, target, mult[symbol], breaker_mult))
            needed = _needs_order(ctx.memory, symbol, target, qty_now)
            ctx.memory.last_target[symbol] = target
            if not needed:
                continue
            ctx.memory.stopped.discard(symbol)
            price = sleeve.decision_price
            want = Decimal(repr(sleeve.weight * target)) * equity / price
            others = sum((v for s, v in gross.items() if s != symbol), _ZERO)
            want, capped = _preset_caps(ctx, data.ts, symbol, want, qty_now, price, equity, others)
            events.extend(capped)
            delta = want - qty_now
            if delta == 0:
                continue
            reducing = abs(want) < abs(qty_now) and (want == 0 or (want > 0) == (qty_now > 0))
            proposed = ProposedOrder(
                symbol=symbol,
                side="buy" if delta > 0 else "sell",
                kind="MARKET",
                qty=abs(delta),
                reduce_only=reducing,
                intent=f"target {target:+.6f}",
            )
            market = MarketContext(
                price=price,
                bar_dollar_volume=sleeve.prev_dollar_volume,
                position_qty=qty_now,
                equity=equity,
                other_gross_notional=others,
                trading_state=TradingState(state),
            )
            result, policy_events = apply_policy(proposed, market, ctx.limits_for(symbol))
            cid = client_order_id(ctx.run_id, symbol, data.ts, proposed.intent)
            events.extend(policy_event(ctx, data.ts, cid, e) for e in policy_events)
            intent = _record_intent(ctx, data.ts, cid, proposed, result, price)
            if intent is not None:
                cost = _cost_event(ctx, data, cid, intent.order)
                if cost is not None:
                    events.append(cost)
                intents.append(intent)
                after = qty_now + (
                    intent.order.qty if proposed.side == "buy" else -intent.order.qty
                )
                gross[symbol] = abs(after) * price
        journal.record_events(db, events)
    return intents, {"trading_state": str(state), "multipliers": mult, "equity": equity}


def _preset_caps(
    ctx: LiveContext,
    ts: datetime,
    symbol: str,
    want: Decimal,
    qty_now: Decimal,
    price: Decimal,
    equity: Decimal,
    others_usd: Decimal,
) -> tuple[Decimal, list[journal.Event]]:
    """The active preset's single-coin and leverage caps on an increase (``domain.sizing``).

    The cap bounds the post-trade notional of the sleeve: ``|want| x price <=
    min(E x single_coin_cap_pct / 100, E x max_leverage - other gross)``; an order that
    reduces the position is never cut. A cut is a ``SIZED_DOWN`` event, nothing left of
    the increase an ``ORDER_DENIED`` event, each with the cap's code."""
    if ctx.sizing is None or (abs(want) <= abs(qty_now) and (want >= 0) == (qty_now >= 0)):
        return want, []
    headroom = exposure_caps(
        float(equity), ctx.sizing, OpenExposure(gross_notional_usd=float(others_usd))
    )
    caps = {code: max(headroom[code], 0.0) for code in (CAP_SINGLE_COIN, CAP_LEVERAGE)}
    code = min(caps, key=lambda name: caps[name])
    cap_qty = Decimal(repr(caps[code])) / price
    if abs(want) <= cap_qty:
        return want, []
    same_side = qty_now != 0 and (qty_now > 0) == (want > 0)
    allowed = max(cap_qty, abs(qty_now) if same_side else _ZERO)
    capped = allowed if want > 0 else -allowed
    side = "buy" if want > qty_now else "sell"
    kind = SIZED_DOWN if capped != qty_now else ORDER_DENIED
    reason = (
        f"{symbol} target {_fmt_qty(want)} capped at {_fmt_qty(cap_qty)} by the "
        f"{ctx.sizing_preset} preset ({code})"
    )
    event = PolicyEvent(
        kind, code, symbol, side, abs(want - qty_now), abs(capped - qty_now), reason,
        {"cap_notional_usd": round(caps[code], 6), "preset": ctx.sizing_preset},
    )  # fmt: skip
    return capped, [policy_event(ctx, ts, client_order_id(ctx.run_id, symbol, ts, "cap"), event)]


def _fmt_qty(value: Decimal) -> str:
    return f"{value:.6f}"


def _cost_event(
    ctx: LiveContext, data: StepData, cid: str, order: orders.Order
) -> journal.Event | None:
    """The seed 001 pre-trade cost estimate of an order about to be sent (no edge: the
    TSMOM sleeves give none, so the safety margin is not applied and nothing is blocked)."""
    if ctx.costs is None:
        return None
    sleeve = data.sleeves[order.symbol]
    notional = float(order.qty * sleeve.decision_price)
    estimate = pre_trade_cost(
        ctx.costs,
        spread_bps=ctx.costs.spread_floor_bps
        if sleeve.prev_spread_bps is None
        else sleeve.prev_spread_bps,
        notional_usd=notional,
        bar_dollar_volume=float(sleeve.prev_dollar_volume),
        latency_ms=ctx.latency_ms,
    )
    return journal.Event(
        ts=data.ts,
        event_type=PRE_TRADE_COST,
        run_id=ctx.run_id,
        symbol=order.symbol,
        action=order.side,
        size_usd=notional,
        price=float(sleeve.decision_price),
        costs_bps=estimate["costs_bps"],
        expected_edge_bps=None,
        payload={"client_order_id": cid, **estimate},
    )


def _needs_order(memory: LoopMemory, symbol: str, target: float, qty_now: Decimal) -> bool:
    """Trade when the target changed, or the book's sign disagrees with it (a residue, a
    denied entry), except for a sleeve stopped out on this target (it waits for a change)."""
    changed = memory.last_target.get(symbol, 0.0) != target
    if changed:
        return True
    if symbol in memory.stopped:
        return False
    sign = 0 if target == 0 else (1 if target > 0 else -1)
    book = 0 if qty_now == 0 else (1 if qty_now > 0 else -1)
    return sign != book


def _record_intent(
    ctx: LiveContext,
    ts: datetime,
    cid: str,
    proposed: ProposedOrder,
    result: ProposedOrder | Denial,
    price: Decimal,
) -> Intent | None:
    existing = orders.get_order(ctx.db, cid)
    if isinstance(result, Denial):
        if existing is None:
            orders.upsert_order(
                ctx.db, _order_row(ctx, ts, cid, proposed, price, "denied", result.code)
            )
        return None
    if existing is not None:
        if existing.status != "new":
            return None
        return Intent(existing, _request(existing))
    row = _order_row(ctx, ts, cid, result, price, "new", None)
    orders.upsert_order(ctx.db, row)
    return Intent(row, _request(row))


def _order_row(
    ctx: LiveContext,
    ts: datetime,
    cid: str,
    order: ProposedOrder,
    price: Decimal,
    status: str,
    reason: str | None,
) -> orders.Order:
    """MARKET orders record the decision (signal) price in ``price``: the reference the
    realized slippage is measured against."""
    return orders.Order(
        client_order_id=cid,
        exchange=ctx.exchange,
        symbol=order.symbol,
        side=order.side,
        type=order.kind.lower(),
        qty=order.qty,
        status=status,
        created_at=ts,
        updated_at=ts,
        run_id=ctx.run_id,
        time_in_force=order.time_in_force,
        price=order.limit_price if order.limit_price is not None else price,
        stop_price=order.stop_price,
        reduce_only=order.reduce_only,
        reason=reason,
    )


def _request(order: orders.Order) -> OrderRequest:
    market = order.type == "market"
    return OrderRequest(
        symbol=order.symbol,
        side="buy" if order.side == "buy" else "sell",
        type="market" if market else "limit",
        amount=order.qty,
        client_order_id=order.client_order_id,
        price=None if market else order.price,
        reduce_only=order.reduce_only,
        time_in_force="GTC" if order.time_in_force in (None, "GTC") else "IOC",
    )


def send(ctx: LiveContext, intents: list[Intent], now: datetime) -> dict[str, int]:
    """Step 2: look each order up by client order id; send only the unknown ones."""
    counts = {"sent": 0, "recovered": 0, "rejected": 0}
    for intent in intents:
        cid = intent.order.client_order_id
        ack = ctx.broker.fetch_order(intent.order.symbol, client_order_id=cid)
        if ack is not None:
            counts["recovered"] += 1
        else:
            try:
                if intent.order.type == "stop_limit":
                    ack = ctx.broker.place_stop_limit(intent.request, intent.order.stop_price)
                else:
                    sent_at = time.monotonic()
                    ack = ctx.broker.place(intent.request)
                    if not ctx.paper:
                        ctx.latency_ms = (time.monotonic() - sent_at) * 1000.0
            except OrderRejected as error:
                counts["rejected"] += 1
                _record_rejection(ctx, intent.order, error.message, now)
                continue
            counts["sent"] += 1
        with ctx.db.transaction():
            orders.upsert_order(ctx.db, acked(intent.order, ack, now))
    return counts


def acked(order: orders.Order, ack: OrderAck, now: datetime) -> orders.Order:
    status = {"closed": "filled"}.get(ack.status, ack.status)
    return replace(
        order,
        exchange_order_id=ack.order_id,
        status=status,
        filled_qty=ack.filled,
        updated_at=max(now, order.created_at),
    )


def _record_rejection(ctx: LiveContext, order: orders.Order, message: str, now: datetime) -> None:
    with ctx.db.transaction():
        orders.upsert_order(ctx.db, replace(order, status="rejected", reason=message[:300]))
        journal.record_event(
            ctx.db,
            journal.Event(
                ts=now,
                event_type=ORDER_REJECTED,
                severity="MEDIUM",
                run_id=ctx.run_id,
                symbol=order.symbol,
                message=message[:300],
                payload={"client_order_id": order.client_order_id, "code": "EXCHANGE_REJECTED"},
            ),
        )


def _signal_event(
    ctx: LiveContext, data: StepData, symbol: str, target: float, mult: float, breaker: float
) -> journal.Event:
    sleeve = data.sleeves[symbol]
    return journal.Event(
        ts=data.ts,
        event_type="signal",
        run_id=ctx.run_id,
        symbol=symbol,
        action=f"target {target:+g}",
        price=float(sleeve.decision_price),
        payload={
            "held_target": sleeve.held_target,
            "multiplier": mult,
            "breaker_multiplier": breaker,
            "target": target,
        },
    )


def policy_event(ctx: LiveContext, ts: datetime, cid: str, event: PolicyEvent) -> journal.Event:
    denied = event.event_type == ORDER_DENIED
    return journal.Event(
        ts=ts,
        event_type=event.event_type,
        severity="LOW" if denied else "INFO",
        run_id=ctx.run_id,
        symbol=event.symbol,
        message=event.reason,
        action=event.code,
        payload={
            "client_order_id": cid,
            "code": event.code,
            "side": event.side,
            "original_qty": str(event.original_qty),
            "adjusted_qty": str(event.adjusted_qty),
            "reason": event.reason,
            **dict(event.details),
        },
    )


# --- protective stop-limits ----------------------------------------------------------


def protective_stops(ctx: LiveContext, data: StepData) -> list[Intent]:
    """Keep one reduce-only stop-limit per open position, ``stop_distance_pct`` from its
    entry; recorded before sending, replaced when the position changes, canceled when flat."""
    intents: list[Intent] = []
    held = positions_by_symbol(ctx)
    with ctx.db.transaction():
        for symbol in data.sleeves:
            qty, entry = held.get(symbol, (_ZERO, _ZERO))
            live = [
                o
                for o in orders.open_orders(ctx.db, run_id=ctx.run_id, symbol=symbol)
                if o.type == "stop_limit" and o.status != "new"
            ]
            wanted = None if qty == 0 else stop_limit_for(symbol, qty, entry, ctx.limits)
            keep = [
                o
                for o in live
                if wanted is not None and o.qty == wanted.qty and o.side == wanted.side
            ]
            for order in live:
                if order not in keep:
                    ack = ctx.broker.cancel(symbol, client_order_id=order.client_order_id)
                    orders.upsert_order(ctx.db, acked(order, ack, data.close_ts))
            if wanted is None or keep:
                continue
            market = MarketContext(
                price=data.sleeves[symbol].bar.close,
                bar_dollar_volume=data.sleeves[symbol].prev_dollar_volume,
                position_qty=qty,
                equity=account_equity(ctx),
            )
            result, policy_events = apply_policy(wanted, market, ctx.limits)
            cid = client_order_id(ctx.run_id, symbol, data.ts, f"stop {qty}")
            journal.record_events(
                ctx.db, [policy_event(ctx, data.close_ts, cid, e) for e in policy_events]
            )
            intent = _record_intent(
                ctx, data.close_ts, cid, wanted, result, data.sleeves[symbol].bar.close
            )
            if intent is not None:
                intents.append(intent)
    return intents
