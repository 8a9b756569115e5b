"""The trading loop's decision for one bar: values in, orders and events out.

``decide`` is the whole of what run-live decides at the open of a bar, as a pure
function (no clock, no I/O): the service reads the broker and the state, calls it, and
records its output before sending anything (docs/run-live.md, "One bar step"). Per
sleeve, in the config's order:

1. the target is the held target x the sleeve's multiplier (the mode's risk directives
   x the circuit breakers'); a ``signal`` event records it;
2. an order is needed when the target changed since the last bar, or the book's sign
   disagrees with it (a residue, a denied entry), or the sleeve's last order ended with
   part of it unfilled (``Targets.unfilled``), except for a sleeve stopped out on this
   target, which waits for a new target;
3. the wanted position is ``weight x target x equity / decision price`` base units;
4. the active risk preset caps an increase: ``|want| x price <= min(E x
   single_coin_cap_pct / 100, E x max_leverage - other gross)``; a cut is a
   ``SIZED_DOWN`` event, nothing left of the increase an ``ORDER_DENIED`` one;
5. the order (MARKET, reduce-only when it reduces) goes through the seed-002 order
   policy (``domain.order_policy``): trading state, TIF, caps, impact, rounding;
6. an order that may be sent gets a ``PRE_TRADE_COST`` event (seed 001's estimate);
7. every sleeve gets one ``DECISION`` event, seed 001 #10's standard event: the features
   hash, the engine's vote, the consensus score, the action (``buy``/``sell``/``wait``),
   size, price, costs, regime and venue (``decision_event``; docs/attribution.md). The
   settlement adds the FIFO realized PnL of its fills to it (``realized_pnl``).

With a weekly REBALANCE to execute (``DecideInputs.rebalance``, ``domain.rebalance``),
every sleeve that needs no order by rule 2 and is not stopped out is re-sized too, by the
same steps 3-6, with a LIMIT GTC order at the decision price instead of a market order
(nothing when the change is under one quantity step); ``Decision.rebalance`` says how
each sleeve took part.

Every order has its deterministic client order id (``domain.orders``), so deciding the
same bar again after a restart yields the same ids. The gross notional of the sleeves
decided so far includes this bar's orders, so the leverage cap sees them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
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
    apply_policy,
    stop_limit_for,
)
from stagectl.domain.orders import client_order_id
from stagectl.domain.pretrade_costs import CostSettings, pre_trade_cost
from stagectl.domain.rebalance import How, Rebalance, rebalance_intent
from stagectl.domain.sizing import (
    CAP_LEVERAGE,
    CAP_SINGLE_COIN,
    OpenExposure,
    SizingLimits,
    exposure_caps,
)
from stagectl.domain.types import (
    Event,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
    TradingState,
)

_ZERO = Decimal(0)
SIGNAL = "signal"
PRE_TRADE_COST = "PRE_TRADE_COST"
DECISION = "DECISION"
ENGINE = "tsmom"
"""The one engine of run-live's sleeves: time-series momentum (``domain.strategies``)."""


@dataclass(frozen=True)
class SleeveInput:
    """One sleeve at the open of the bar."""

    symbol: str
    weight: float
    held_target: float
    """The target held over this bar (signal of ``signal_delay`` bars ago), a fraction."""
    decision_price: Decimal
    """The close of the previous bar: what the order is sized at."""
    prev_dollar_volume: Decimal
    prev_spread_bps: float | None = None
    position: Decimal = _ZERO
    """The signed position held now."""
    regime: str | None = None
    """The seed 001 regime of the previous bar (``domain.regimes``); None: not known."""


@dataclass(frozen=True)
class Targets:
    """What the loop remembers of earlier bars: the last target of each sleeve, and the
    sleeves stopped out by their protective stop on that target."""

    last: Mapping[str, float] = field(default_factory=dict)
    stopped: frozenset[str] = frozenset()
    unfilled: frozenset[str] = frozenset()
    """Sleeves whose last order ended with part of it unfilled: re-sized at the next bar."""


@dataclass(frozen=True)
class DecideInputs:
    run_id: str
    account: str
    bar_ts: datetime
    equity: Decimal
    sleeves: Sequence[SleeveInput]
    targets: Targets
    trading_state: TradingState = TradingState.ACTIVE
    directive_multipliers: Mapping[str, float] = field(default_factory=dict)
    breaker_multiplier: float = 1.0
    limits: Mapping[str, PolicyLimits] = field(default_factory=dict)
    """The order policy per symbol (the venue's quantity step differs by symbol)."""
    default_limits: PolicyLimits = field(default_factory=PolicyLimits)
    sizing: SizingLimits | None = None
    sizing_preset: str = ""
    costs: CostSettings | None = None
    latency_ms: float = 0.0
    rebalance: Rebalance | None = None
    """A weekly REBALANCE to execute at this bar (None: none)."""


@dataclass(frozen=True)
class Decision:
    """The bar's orders (``NEW`` to send, ``DENIED`` to record), events, and targets."""

    orders: tuple[Order, ...]
    events: tuple[Event, ...]
    targets: Targets
    multipliers: Mapping[str, float]
    rebalance: Mapping[str, How] = field(default_factory=dict)
    """With a rebalance: how each sleeve took part (``domain.rebalance.How``)."""

    @property
    def to_send(self) -> tuple[Order, ...]:
        return tuple(o for o in self.orders if o.status == OrderStatus.NEW)


def decide(inputs: DecideInputs) -> Decision:
    """The orders and events of one bar; see the module docstring."""
    multipliers = {
        s.symbol: inputs.directive_multipliers.get(s.symbol, 1.0) * inputs.breaker_multiplier
        for s in inputs.sleeves
    }
    gross = {s.symbol: abs(s.position) * s.decision_price for s in inputs.sleeves}
    last, stopped = dict(inputs.targets.last), set(inputs.targets.stopped)
    unfilled = set(inputs.targets.unfilled)
    orders: list[Order] = []
    events: list[Event] = []
    how: dict[str, How] = {}
    for sleeve in inputs.sleeves:
        symbol = sleeve.symbol
        target = sleeve.held_target * multipliers[symbol]
        events.append(_signal_event(inputs, sleeve, target, multipliers[symbol]))
        needed = _needs_order(last, stopped, unfilled, symbol, target, sleeve.position)
        rebalance = inputs.rebalance if not needed and symbol not in stopped else None
        if inputs.rebalance is not None:
            how[symbol] = "market" if needed else "stopped" if rebalance is None else "in line"
        last[symbol] = target
        if not needed and rebalance is None:
            events.append(decision_event(inputs, sleeve, target, ()))
            continue
        stopped.discard(symbol)
        unfilled.discard(symbol)
        others = sum((v for s, v in gross.items() if s != symbol), _ZERO)
        decided = _sleeve_order(inputs, sleeve, target, others, rebalance)
        orders.extend(decided.orders)
        events.extend(decided.events)
        events.append(decision_event(inputs, sleeve, target, decided.events, decided.orders))
        for order in decided.orders:
            if order.status == OrderStatus.NEW:
                after = sleeve.position + order.signed_qty
                gross[symbol] = abs(after) * sleeve.decision_price
        if rebalance is not None and decided.orders:
            sent = any(o.status == OrderStatus.NEW for o in decided.orders)
            how[symbol] = "limit" if sent else "denied"
    targets = Targets(last, frozenset(stopped), frozenset(unfilled))
    return Decision(tuple(orders), tuple(events), targets, multipliers, how)


@dataclass(frozen=True)
class _SleeveDecision:
    orders: tuple[Order, ...] = ()
    events: tuple[Event, ...] = ()


def _sleeve_order(
    inputs: DecideInputs,
    sleeve: SleeveInput,
    target: float,
    others: Decimal,
    rebalance: Rebalance | None = None,
) -> _SleeveDecision:
    """The sleeve's market order to its size, or with ``rebalance`` its limit order at the
    decision price (none when the change is under one quantity step)."""
    price, equity, held = sleeve.decision_price, inputs.equity, sleeve.position
    limits = inputs.limits.get(sleeve.symbol, inputs.default_limits)
    want = Decimal(repr(sleeve.weight * target)) * equity / price
    want, capped = _preset_caps(inputs, sleeve.symbol, want, held, price, others)
    delta = want - held
    if delta == 0 or (rebalance is not None and abs(delta) < limits.qty_step):
        return _SleeveDecision(events=capped)
    reducing = abs(want) < abs(held) and (want == 0 or (want > 0) == (held > 0))
    intent = f"target {target:+.6f}" if rebalance is None else rebalance_intent(rebalance.plan_id)
    proposed = Order(
        client_order_id=client_order_id(inputs.run_id, sleeve.symbol, inputs.bar_ts, intent),
        symbol=sleeve.symbol,
        side=Side.of(delta),
        type=OrderType.MARKET if rebalance is None else OrderType.LIMIT,
        qty=abs(delta),
        created_at=inputs.bar_ts,
        price=price,
        time_in_force=None if rebalance is None else TimeInForce.GTC,
        reduce_only=reducing,
        account=inputs.account,
        run_id=inputs.run_id,
    )
    market = MarketContext(
        price=price,
        bar_dollar_volume=sleeve.prev_dollar_volume,
        position_qty=held,
        equity=equity,
        other_gross_notional=others,
        trading_state=inputs.trading_state,
    )
    result, policy_events = apply_policy(proposed, market, limits)
    events = [
        *capped,
        *(policy_event(inputs.run_id, inputs.bar_ts, proposed.client_order_id, e)
          for e in policy_events),
    ]  # fmt: skip
    if isinstance(result, Denial):
        denied = replace(proposed, status=OrderStatus.DENIED, reason=result.code)
        return _SleeveDecision((denied,), tuple(events))
    cost = _cost_event(inputs, sleeve, result)
    return _SleeveDecision((result,), tuple(events if cost is None else [*events, cost]))


def _needs_order(
    last: Mapping[str, float],
    stopped: set[str],
    unfilled: set[str],
    symbol: str,
    target: float,
    held: Decimal,
) -> bool:
    """Trade when the target changed, or the book's sign disagrees with it (a residue, a
    denied entry), or the last order left part of it unfilled, except for a sleeve stopped
    out on this target (it waits for a change)."""
    if last.get(symbol, 0.0) != target:
        return True
    if symbol in stopped:
        return False
    if symbol in unfilled:
        return True
    sign = 0 if target == 0 else (1 if target > 0 else -1)
    book = 0 if held == 0 else (1 if held > 0 else -1)
    return sign != book


def _preset_caps(
    inputs: DecideInputs,
    symbol: str,
    want: Decimal,
    held: Decimal,
    price: Decimal,
    others_usd: Decimal,
) -> tuple[Decimal, tuple[Event, ...]]:
    """The active preset's single-coin and leverage caps on an increase (``domain.sizing``).

    The cap bounds the post-trade notional of the sleeve: ``|want| x price <=
    min(E x single_coin_cap_pct / 100, E x max_leverage - other gross)``; an order that
    reduces the position is never cut. A cut is a ``SIZED_DOWN`` event, nothing left of
    the increase an ``ORDER_DENIED`` event, each with the cap's code."""
    if inputs.sizing is None or (abs(want) <= abs(held) and (want >= 0) == (held >= 0)):
        return want, ()
    headroom = exposure_caps(
        float(inputs.equity), inputs.sizing, OpenExposure(gross_notional_usd=float(others_usd))
    )
    caps = {code: max(headroom[code], 0.0) for code in (CAP_SINGLE_COIN, CAP_LEVERAGE)}
    code = min(caps, key=lambda name: caps[name])
    cap_qty = Decimal(repr(caps[code])) / price
    if abs(want) <= cap_qty:
        return want, ()
    same_side = held != 0 and (held > 0) == (want > 0)
    allowed = max(cap_qty, abs(held) if same_side else _ZERO)
    capped = allowed if want > 0 else -allowed
    kind = SIZED_DOWN if capped != held else ORDER_DENIED
    reason = (
        f"{symbol} target {want:.6f} capped at {cap_qty:.6f} by the "
        f"{inputs.sizing_preset} preset ({code})"
    )
    event = PolicyEvent(
        kind, code, symbol, Side.BUY if want > held else Side.SELL, abs(want - held),
        abs(capped - held), reason,
        {"cap_notional_usd": round(caps[code], 6), "preset": inputs.sizing_preset},
    )  # fmt: skip
    cid = client_order_id(inputs.run_id, symbol, inputs.bar_ts, "cap")
    return capped, (policy_event(inputs.run_id, inputs.bar_ts, cid, event),)


def _cost_event(inputs: DecideInputs, sleeve: SleeveInput, order: Order) -> Event | None:
    """The seed 001 pre-trade cost estimate of an order about to be sent (no edge: the
    TSMOM sleeves give none, so the safety margin is not applied and nothing is blocked)."""
    costs = inputs.costs
    if costs is None:
        return None
    notional = float(order.qty * sleeve.decision_price)
    spread = costs.spread_floor_bps if sleeve.prev_spread_bps is None else sleeve.prev_spread_bps
    estimate = pre_trade_cost(
        costs,
        spread_bps=spread,
        notional_usd=notional,
        bar_dollar_volume=float(sleeve.prev_dollar_volume),
        latency_ms=inputs.latency_ms,
    )
    return Event(
        ts=inputs.bar_ts,
        event_type=PRE_TRADE_COST,
        run_id=inputs.run_id,
        symbol=order.symbol,
        action=order.side.value,
        size_usd=notional,
        price=float(sleeve.decision_price),
        costs_bps=estimate["costs_bps"],
        expected_edge_bps=None,
        payload={"client_order_id": order.client_order_id, **estimate},
    )


def _signal_event(
    inputs: DecideInputs, sleeve: SleeveInput, target: float, multiplier: float
) -> Event:
    return Event(
        ts=inputs.bar_ts,
        event_type=SIGNAL,
        run_id=inputs.run_id,
        symbol=sleeve.symbol,
        action=f"target {target:+g}",
        price=float(sleeve.decision_price),
        payload={
            "held_target": sleeve.held_target,
            "multiplier": multiplier,
            "breaker_multiplier": inputs.breaker_multiplier,
            "target": target,
        },
    )


def features_hash(inputs: DecideInputs, sleeve: SleeveInput) -> str:
    """The first 16 hex digits of the SHA-256 of what the sleeve's decision read: the bar,
    the held target, the decision price, the previous bar's dollar volume and spread, the
    position, the multipliers and the trading state (equal inputs give equal hashes)."""
    features = {
        "bar_ts": inputs.bar_ts.isoformat(),
        "symbol": sleeve.symbol,
        "held_target": sleeve.held_target,
        "weight": sleeve.weight,
        "decision_price": str(sleeve.decision_price),
        "prev_dollar_volume": str(sleeve.prev_dollar_volume),
        "prev_spread_bps": sleeve.prev_spread_bps,
        "position": str(sleeve.position),
        "directive_multiplier": inputs.directive_multipliers.get(sleeve.symbol, 1.0),
        "breaker_multiplier": inputs.breaker_multiplier,
        "trading_state": inputs.trading_state.value,
        "regime": sleeve.regime,
    }
    text = json.dumps(features, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def decision_event(
    inputs: DecideInputs,
    sleeve: SleeveInput,
    target: float,
    events: Sequence[Event],
    decided: Sequence[Order] = (),
) -> Event:
    """The sleeve's standard event (seed 001 #10). The TSMOM sleeve is one engine: its vote
    is the side and strength of the held target (it gives no probability, so ``prob`` is
    None and its reliability 1); the consensus score of one voter is its signed strength
    after the multipliers, ``target``. The action is the side of the order to send (``wait``
    when none is sent; a denied order's code is in the payload); size and costs are the
    sent order's notional and pre-trade estimate; expected edge is None (TSMOM gives none)."""
    sent = next((o for o in decided if o.status == OrderStatus.NEW), None)
    denied = [o.reason for o in decided if o.status == OrderStatus.DENIED]
    cost = next((e for e in events if e.event_type == PRE_TRADE_COST), None)
    held = sleeve.held_target
    vote = {"side": "buy" if held > 0 else "sell" if held < 0 else "flat", "strength": abs(held),
            "prob": None, "reliability": 1.0}  # fmt: skip
    price = float(sleeve.decision_price)
    return Event(
        ts=inputs.bar_ts,
        event_type=DECISION,
        run_id=inputs.run_id,
        symbol=sleeve.symbol,
        features_hash=features_hash(inputs, sleeve),
        engine_votes={ENGINE: vote},
        consensus_score=target,
        action="wait" if sent is None else sent.side.value,
        size_usd=0.0 if sent is None else float(sent.qty) * price,
        price=price,
        expected_edge_bps=None,
        regime=sleeve.regime,
        costs_bps=None if cost is None else cost.costs_bps,
        payload={
            "venue": inputs.account,
            "sleeve": sleeve.symbol,
            "engine": ENGINE,
            "client_order_id": None if sent is None else sent.client_order_id,
            "order_type": None if sent is None else sent.type.value,
            "qty": None if sent is None else str(sent.qty),
            "denied": denied,
            "position": str(sleeve.position),
        },
    )


def policy_event(run_id: str, ts: datetime, cid: str, event: PolicyEvent) -> Event:
    """A policy's SIZED_DOWN or ORDER_DENIED as a journal event."""
    denied = event.event_type == ORDER_DENIED
    return Event(
        ts=ts,
        event_type=event.event_type,
        severity="LOW" if denied else "INFO",
        run_id=run_id,
        symbol=event.symbol,
        message=event.reason,
        action=event.code,
        payload={
            "client_order_id": cid,
            "code": event.code,
            "side": event.side.value,
            "original_qty": str(event.original_qty),
            "adjusted_qty": str(event.adjusted_qty),
            "reason": event.reason,
            **dict(event.details),
        },
    )


@dataclass(frozen=True)
class StopInputs:
    """What the protective stops of a bar need: the positions after the bar, the stop
    orders open now, the bar's close (the policy's reference) and its dollar volume."""

    run_id: str
    account: str
    bar_ts: datetime
    close_ts: datetime
    equity: Decimal
    positions: Mapping[str, Position]
    open_stops: Sequence[Order]
    closes: Mapping[str, Decimal]
    dollar_volumes: Mapping[str, Decimal]
    limits: PolicyLimits


@dataclass(frozen=True)
class StopDecision:
    """Stops to cancel (no longer the right size or side), stops to place, and events."""

    cancel: tuple[Order, ...]
    place: tuple[Order, ...]
    events: tuple[Event, ...]


def protective_stops(inputs: StopInputs) -> StopDecision:
    """One reduce-only stop-limit per open position, ``stop_distance_pct`` from its
    entry; an open stop of another size or side is canceled, none is kept when flat."""
    cancel: list[Order] = []
    place: list[Order] = []
    events: list[Event] = []
    for symbol in inputs.closes:
        position = inputs.positions.get(symbol)
        qty = _ZERO if position is None else position.qty
        live = [o for o in inputs.open_stops if o.symbol == symbol]
        wanted = None
        if position is not None and qty != 0:
            cid = client_order_id(inputs.run_id, symbol, inputs.bar_ts, f"stop {qty}")
            wanted = stop_limit_for(
                symbol,
                qty,
                position.entry_price,
                inputs.limits,
                client_order_id=cid,
                created_at=inputs.close_ts,
            )
        keep = [
            o for o in live if wanted is not None and (o.qty, o.side) == (wanted.qty, wanted.side)
        ]
        cancel.extend(o for o in live if o not in keep)
        if wanted is None or keep:
            continue
        market = MarketContext(
            price=inputs.closes[symbol],
            bar_dollar_volume=inputs.dollar_volumes[symbol],
            position_qty=qty,
            equity=inputs.equity,
        )
        wanted = replace(wanted, account=inputs.account, run_id=inputs.run_id)
        result, policy_events = apply_policy(wanted, market, inputs.limits)
        events.extend(
            policy_event(inputs.run_id, inputs.close_ts, wanted.client_order_id, e)
            for e in policy_events
        )
        if isinstance(result, Denial):
            place.append(replace(wanted, status=OrderStatus.DENIED, reason=result.code))
        else:
            place.append(result)
    return StopDecision(tuple(cancel), tuple(place), tuple(events))


def order_payload(order: Order) -> dict[str, Any]:
    """An order's identity as event payload text."""
    return {
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "qty": str(order.qty),
    }
