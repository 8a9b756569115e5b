"""The weekly rebalance inside the trading loop (seed 003 §3.1), and what an order that
fills in parts leaves behind (docs/run-live.md, "The weekly rebalance", "Partial fills").

The weekly review decides REBALANCE or SKIP (``domain.weekly.weight_drift``) and records
it in the state database; the loop executes a REBALANCE at the first bar that opens at or
after the review's as-of time. Conventions, each used below:

- **Capital.** A sleeve's capital is its standalone equity (``weight x initial equity``
  plus its own PnL) plus the capital transferred into it by rebalances. A rebalance moves
  capital between sleeves so each holds ``weight_i x sum(capital)``:
  ``transfer_i = weight_i x sum(capital) - capital_i`` (the transfers sum to 0, so the
  account's equity does not change). The weekly review measures the drift on capital, so
  a rebalanced book reads as on target until its sleeves' PnL moves it again.
- **Orders.** Each sleeve is re-sized to the loop's own size, ``weight x target x equity
  / decision price``; a sleeve whose signal trades at this bar is re-sized by that market
  order already. A rebalance order is a LIMIT GTC at the decision price (the close of the
  bar before) with the client order id of intent ``rebalance <plan id>``; what it has not
  filled after ``limit_timeout_s`` is cancelled and sent as a MARKET order of intent
  ``fallback <limit's client order id>``, decided at the same bar: a restart finds both
  by id and sends neither twice.
- **Cost.** The real cost of a sleeve's rebalance is ``fees + slippage`` over its fills,
  slippage ``sign x (fill price - decision price) x qty`` (sign +1 buy, -1 sell: adverse
  is positive), in USD and in bps of the filled notional; the estimate is the pre-trade
  cost (``domain.pretrade_costs``, recorded as ``PRE_TRADE_COST`` when the limit was
  decided) on the same filled quantity at the decision price.
- **Remainders.** An order that ended (cancelled or expired) with at least one quantity
  step unfilled, whose remainder no fallback carries, leaves its sleeve short of its
  size: the loop re-sizes that sleeve at the next bar (``Targets.unfilled``) and never
  counts the unfilled part as traded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

from stagectl.domain.orders import client_order_id
from stagectl.domain.types import Event, Fill, Liquidity, Order, OrderStatus, OrderType, Side

REBALANCE_PLANNED = "REBALANCE_PLANNED"
REBALANCE_SKIP = "REBALANCE_SKIP"
REBALANCE_STARTED = "REBALANCE_STARTED"
REBALANCE_REFUSED = "REBALANCE_REFUSED"
REBALANCE_EXPIRED = "REBALANCE_EXPIRED"
REBALANCE_FALLBACK = "REBALANCE_FALLBACK"
REBALANCE_COST = "REBALANCE_COST"
ORDER_REMAINDER = "ORDER_REMAINDER"

PLAN_LIFETIME = timedelta(days=7)
"""A REBALANCE not executed within a week of its review is stale: the next review decides."""
WEIGHT_TOLERANCE = 1e-9
_ZERO = Decimal(0)
_ENDED = frozenset({OrderStatus.CANCELED, OrderStatus.EXPIRED})

How = Literal["limit", "market", "in line", "denied", "stopped"]
"""How a sleeve takes part in a rebalance: its own limit order; the loop's market order of
this bar (a new target, or a re-size), which sizes it already; nothing to trade (within
one quantity step, or capped); its order denied by the policy; stopped out, waiting for a
new target."""


@dataclass(frozen=True)
class Rebalance:
    """A REBALANCE the loop executes at this bar."""

    plan_id: int
    limit_timeout_s: float


def rebalance_intent(plan_id: int) -> str:
    return f"rebalance {plan_id}"


def fallback_intent(limit_client_order_id: str) -> str:
    return f"fallback {limit_client_order_id}"


def fallback_client_order_id(limit: Order) -> str:
    """The id of the market order that carries a limit's remainder: a function of the
    limit (its run, symbol and decision bar, ``created_at``), so it is the same after a
    restart."""
    return client_order_id(
        limit.run_id or "", limit.symbol, limit.created_at, fallback_intent(limit.client_order_id)
    )


def plan_due(as_of: datetime, bar_ts: datetime) -> Literal["not yet", "due", "expired"]:
    """A plan reviewed at ``as_of`` is executed at the first bar opening at or after it,
    unless that bar opens ``PLAN_LIFETIME`` or more later."""
    if bar_ts < as_of:
        return "not yet"
    return "expired" if bar_ts - as_of >= PLAN_LIFETIME else "due"


def weights_refusal(
    plan_weights_pct: Mapping[str, float], weights: Mapping[str, float]
) -> str | None:
    """Why the loop cannot execute a plan (None: it can): the plan's sleeves and target
    weights (percent) must be the run's sleeves and weights (fractions), since the loop
    sizes every sleeve by its own weight and a rebalance to other weights would not last."""
    if set(plan_weights_pct) != set(weights):
        return (
            f"the plan's sleeves ({', '.join(sorted(plan_weights_pct))}) are not the run's "
            f"({', '.join(sorted(weights))})"
        )
    differ = [
        f"{s} {plan_weights_pct[s]:g} % vs {weights[s] * 100:g} %"
        for s in sorted(weights)
        if abs(plan_weights_pct[s] / 100.0 - weights[s]) > WEIGHT_TOLERANCE
    ]
    if differ:
        return (
            "the weekly review's target weights are not the strategy's sleeve weights ("
            + "; ".join(differ)
            + "): make weekly.target_weights_pct equal the strategy's weight_pct"
        )
    return None


def capital_transfers(
    capital: Mapping[str, float], weights: Mapping[str, float]
) -> dict[str, float]:
    """``transfer_i = weight_i x sum(capital) - capital_i`` (weights are fractions that sum
    to 1): what each sleeve receives (> 0) or gives up (< 0) to hold its weight."""
    total = sum(capital[s] for s in weights)
    return {s: weights[s] * total - capital[s] for s in weights}


def round_down(qty: Decimal, step: Decimal) -> Decimal:
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step


def unfilled_qty(order: Order) -> Decimal:
    return max(order.qty - order.filled_qty, _ZERO)


def fallback_order(limit: Order, qty_step: Decimal) -> Order | None:
    """The market order for what ``limit`` left unfilled once the venue took it and it
    ended (cancelled or expired), rounded down to the venue's step; None when it filled,
    was never taken (rejected, denied, not sent) or less than one step is left. It keeps
    the limit's decision price (the reference of its slippage), side and reduce-only flag."""
    remainder = round_down(unfilled_qty(limit), qty_step)
    if remainder <= 0 or limit.status not in _ENDED:
        return None
    return Order(
        client_order_id=fallback_client_order_id(limit),
        symbol=limit.symbol,
        side=limit.side,
        type=OrderType.MARKET,
        qty=remainder,
        created_at=limit.created_at,
        price=limit.price,
        reduce_only=limit.reduce_only,
        account=limit.account,
        run_id=limit.run_id,
    )


def left_short(orders: Iterable[Order], qty_steps: Mapping[str, Decimal]) -> list[Order]:
    """The orders that ended (cancelled or expired) with at least one quantity step of the
    symbol unfilled and whose remainder no fallback order among ``orders`` carries.
    Stop-limits are left out: the protective stops are re-sized to the position after
    every bar anyway."""
    given = list(orders)
    carried = {o.client_order_id for o in given}
    out = []
    for order in given:
        if order.type == OrderType.STOP_LIMIT or order.status not in _ENDED:
            continue
        step = qty_steps.get(order.symbol, Decimal("0.000001"))
        if unfilled_qty(order) < step:
            continue
        if order.type == OrderType.LIMIT and fallback_client_order_id(order) in carried:
            continue
        out.append(order)
    return out


def remainder_event(order: Order, ts: datetime, run_id: str, follow_up: str) -> Event:
    """An ``ORDER_REMAINDER`` event: what part of ``order`` did not fill, and what happens
    to it (``follow_up``)."""
    return Event(
        ts=ts,
        event_type=ORDER_REMAINDER,
        severity="LOW",
        run_id=run_id,
        symbol=order.symbol,
        action=order.side.value,
        message=(
            f"{order.symbol} {order.side.value} {order.qty} {order.type.value} order "
            f"{order.status.value} with {unfilled_qty(order)} unfilled: {follow_up}"
        ),
        payload={
            "client_order_id": order.client_order_id,
            "type": order.type.value,
            "status": order.status.value,
            "qty": str(order.qty),
            "filled_qty": str(order.filled_qty),
            "unfilled_qty": str(unfilled_qty(order)),
            "follow_up": follow_up,
        },
    )


@dataclass(frozen=True)
class CostLeg:
    """One sleeve's rebalance orders: the limit and its fallback, the price they were
    decided at, and the pre-trade cost estimate in bps (None: not estimated)."""

    symbol: str
    side: Side
    decision_price: Decimal
    decided_qty: Decimal
    limit_id: str
    fallback_id: str
    estimate_bps: float | None


def execution_cost(legs: Sequence[CostLeg], fills: Iterable[Fill]) -> dict[str, Any]:
    """The real cost of each leg against its estimate, and the totals; see the module
    docstring. A fill counts once, by its client order id; fills of other orders are
    ignored."""
    by_order: dict[str, list[Fill]] = {}
    for fill in fills:
        if fill.client_order_id:
            by_order.setdefault(fill.client_order_id, []).append(fill)
    sleeves: dict[str, dict[str, Any]] = {}
    notional = fees = slippage = _ZERO
    estimate: float | None = 0.0
    for leg in legs:
        row = _leg_cost(leg, by_order.get(leg.limit_id, []), by_order.get(leg.fallback_id, []))
        sleeves[leg.symbol] = row
        notional += Decimal(row["notional_usd"])
        fees += Decimal(row["fees_usd"])
        slippage += Decimal(row["slippage_usd"])
        estimate = (
            None
            if estimate is None or row["estimate_usd"] is None
            else estimate + row["estimate_usd"]
        )
    cost = fees + slippage
    return {
        "sleeves": sleeves,
        "notional_usd": _text(notional),
        "fees_usd": _text(fees),
        "slippage_usd": _text(slippage),
        "cost_usd": _text(cost),
        "cost_bps": _bps(cost, notional),
        "estimate_usd": None if estimate is None else round(estimate, 6),
        "estimate_bps": None
        if estimate is None or notional == 0
        else round(estimate / float(notional) * 1e4, 6),
    }


def _leg_cost(leg: CostLeg, limit_fills: list[Fill], market_fills: list[Fill]) -> dict[str, Any]:
    fills = [*limit_fills, *market_fills]
    filled = sum((f.qty for f in fills), _ZERO)
    notional = sum((f.qty * f.price for f in fills), _ZERO)
    fees = sum((f.fee_quote for f in fills), _ZERO)
    slippage = sum((f.side.sign * (f.price - leg.decision_price) * f.qty for f in fills), _ZERO)
    at_decision = float(filled * leg.decision_price)
    estimate = None if leg.estimate_bps is None else round(at_decision * leg.estimate_bps / 1e4, 6)
    cost = fees + slippage
    cost_bps = _bps(cost, notional)
    return {
        "side": leg.side.value,
        "decision_price": str(leg.decision_price),
        "decided_qty": str(leg.decided_qty),
        "filled_qty": _text(filled),
        "limit_filled_qty": _text(sum((f.qty for f in limit_fills), _ZERO)),
        "market_filled_qty": _text(sum((f.qty for f in market_fills), _ZERO)),
        "maker_qty": _text(sum((f.qty for f in fills if f.liquidity == Liquidity.MAKER), _ZERO)),
        "notional_usd": _text(notional),
        "fees_usd": _text(fees),
        "slippage_usd": _text(slippage),
        "cost_usd": _text(cost),
        "cost_bps": cost_bps,
        "estimate_bps": leg.estimate_bps,
        "estimate_usd": estimate,
        "difference_bps": None
        if cost_bps is None or leg.estimate_bps is None
        else round(cost_bps - leg.estimate_bps, 6),
        "limit_client_order_id": leg.limit_id,
        "fallback_client_order_id": leg.fallback_id,
    }


def _bps(cost: Decimal, notional: Decimal) -> float | None:
    return None if notional == 0 else round(float(cost / notional) * 1e4, 6)


def execution_record(
    rebalance: Rebalance,
    bar_ts: datetime,
    how: Mapping[str, How],
    orders: Sequence[Order],
    events: Sequence[Event],
    decision_prices: Mapping[str, Decimal],
    capital: Mapping[str, float],
    weights: Mapping[str, float],
) -> dict[str, Any]:
    """What the bar at ``bar_ts`` decided for the plan: per sleeve how it takes part, its
    capital before and after the transfer (``capital_transfers`` to ``weights``), and for a
    limit its order, its fallback's id and its pre-trade estimate (the order's
    ``PRE_TRADE_COST`` event; None when costs are not estimated)."""
    estimates = {
        str((e.payload or {}).get("client_order_id")): e.costs_bps
        for e in events
        if e.event_type == "PRE_TRADE_COST"
    }
    transfers = capital_transfers(capital, weights)
    sleeves: dict[str, dict[str, Any]] = {
        symbol: {
            "how": taken,
            "decision_price": str(decision_prices[symbol]),
            "capital_before_usd": round(capital[symbol], 6),
            "transfer_usd": round(transfers[symbol], 6),
            "capital_after_usd": round(capital[symbol] + transfers[symbol], 6),
        }
        for symbol, taken in how.items()
    }
    for order in orders:
        if order.type != OrderType.LIMIT or order.status != OrderStatus.NEW:
            continue
        sleeves[order.symbol].update(
            client_order_id=order.client_order_id,
            fallback_client_order_id=fallback_client_order_id(order),
            side=order.side.value,
            qty=str(order.qty),
            estimate_bps=estimates.get(order.client_order_id),
        )
    return {
        "plan_id": rebalance.plan_id,
        "bar_ts": bar_ts,
        "limit_timeout_s": rebalance.limit_timeout_s,
        "transfers_usd": {s: round(t, 6) for s, t in transfers.items()},
        "sleeves": sleeves,
    }


def cost_legs(execution: Mapping[str, Any]) -> list[CostLeg]:
    """The limit legs of a recorded ``execution_record``."""
    legs = []
    for symbol, row in dict(execution.get("sleeves", {})).items():
        if row.get("how") != "limit" or "client_order_id" not in row:
            continue
        legs.append(
            CostLeg(
                symbol=symbol,
                side=Side(row["side"]),
                decision_price=Decimal(row["decision_price"]),
                decided_qty=Decimal(row["qty"]),
                limit_id=row["client_order_id"],
                fallback_id=row["fallback_client_order_id"],
                estimate_bps=row.get("estimate_bps"),
            )
        )
    return legs


def _text(value: Decimal) -> str:
    """A Decimal as plain text (``0.00000000``, never ``0E-8``)."""
    return format(value, "f")
