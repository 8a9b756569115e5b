"""The weekly rebalance in run-live's bar step (seed 003 §3.1; docs/run-live.md, "The
weekly rebalance"). The maths is ``domain.rebalance``; this module reads and writes the
plan row (``state.rebalance``) at the three points of a bar that touch it:

1. open (read, no transaction): the run's plan due at this bar: a pending REBALANCE
   reviewed at or before the bar's open, or the one this bar took before a restart;
2. write ahead (inside the bar's transaction): a plan the bar takes becomes
   ``executing`` with what the bar decided and the capital transfers
   (``REBALANCE_STARTED``); one too old ``expired``, one whose weights are not the run's
   ``refused``, each with its event;
3. settle (computed with no transaction open, written in the settlement's): the real
   cost of the plan's fills against the estimate (``REBALANCE_COST``) and ``executed``.

Between 2 and 3 the loop works the limit orders (``loop.work_limits``): the timeout, the
cancel and the market order for the remainder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stagectl.domain.jsonable import utc_minute
from stagectl.domain.rebalance import (
    REBALANCE_COST,
    REBALANCE_EXPIRED,
    REBALANCE_REFUSED,
    REBALANCE_STARTED,
    Rebalance,
    cost_legs,
    execution_cost,
    execution_record,
    plan_due,
    weights_refusal,
)
from stagectl.domain.types import Event, Fill
from stagectl.state import journal
from stagectl.state import rebalance as plans
from stagectl.state.rebalance import RebalancePlan

if TYPE_CHECKING:
    from stagectl.domain.decide import Decision
    from stagectl.services.live.feed import StepData
    from stagectl.services.live.step import LiveContext


@dataclass(frozen=True)
class PlanAtBar:
    """The run's plan at a bar open and what the bar does with it."""

    plan: RebalancePlan
    rebalance: Rebalance | None
    """Set when the bar executes it (first time, or redone after a restart)."""
    taken_before: bool = False
    """The bar took it before a restart: its write-ahead is recorded already."""
    closing: tuple[str, str] | None = None
    """(state, reason) when the bar closes it unexecuted: expired or refused."""


def plan_at_bar(ctx: LiveContext, data: StepData) -> PlanAtBar | None:
    """Step 1 of the module docstring (one indexed read)."""
    plan = plans.plan_for_bar(ctx.db, ctx.run_id, data.ts)
    if plan is None or plan.id is None:
        return None
    rebalance = Rebalance(plan.id, plan.limit_timeout_s)
    if plan.state == "executing":
        return PlanAtBar(plan, rebalance, taken_before=True)
    if plan_due(plan.as_of, data.ts) == "expired":
        return PlanAtBar(
            plan,
            None,
            closing=("expired", f"not executed within a week of {utc_minute(plan.as_of)}"),
        )
    weights = {s: b.weight for s, b in data.sleeves.items()}
    refusal = weights_refusal(plan.target_weights_pct, weights)
    if refusal is not None:
        return PlanAtBar(plan, None, closing=("refused", refusal))
    return PlanAtBar(plan, rebalance)


def sleeve_capital(ctx: LiveContext, data: StepData) -> dict[str, float]:
    """Each sleeve's capital at the bar open: the last settlement's, else its start."""
    initial = float(ctx.initial_equity)
    return {s: ctx.book.capital.get(s, b.weight * initial) for s, b in data.sleeves.items()}


def record_at_open(
    ctx: LiveContext, data: StepData, at_bar: PlanAtBar, decision: Decision
) -> dict[str, float]:
    """Step 2, inside the bar's write-ahead transaction; the capital transfers the bar
    makes (empty when it makes none)."""
    plan = at_bar.plan
    assert plan.id is not None
    if at_bar.closing is not None:
        state, reason = at_bar.closing
        plans.close_plan(ctx.db, plan.id, state, data.ts, reason)  # type: ignore[arg-type]
        kind = REBALANCE_EXPIRED if state == "expired" else REBALANCE_REFUSED
        journal.record_event(ctx.db, _event(ctx, data.ts, kind, plan, reason, {}))
        return {}
    if at_bar.rebalance is None:
        return {}
    if at_bar.taken_before:
        recorded = plan.execution or {}
        return {s: float(t) for s, t in dict(recorded.get("transfers_usd", {})).items()}
    execution = execution_record(
        at_bar.rebalance,
        data.ts,
        decision.rebalance,
        decision.orders,
        decision.events,
        {s: b.decision_price for s, b in data.sleeves.items()},
        sleeve_capital(ctx, data),
        {s: b.weight for s, b in data.sleeves.items()},
    )
    plans.start_execution(ctx.db, plan.id, data.ts, execution)
    shown = ", ".join(f"{s} {row['how']}" for s, row in execution["sleeves"].items())
    journal.record_event(
        ctx.db,
        _event(ctx, data.ts, REBALANCE_STARTED, plan, f"rebalance at this bar: {shown}", execution),
    )
    return dict(execution["transfers_usd"])


@dataclass(frozen=True)
class Executed:
    """A plan's settlement: its cost event and the row's final cost."""

    plan_id: int
    cost: dict[str, Any]
    event: Event


def settle_plan(ctx: LiveContext, data: StepData, fills: Sequence[Fill]) -> Executed | None:
    """Step 3's computation (one indexed read, no transaction open): the plan this bar
    executes and its real cost over the bar's new ``fills``."""
    plan = plans.executing_at(ctx.db, ctx.run_id, data.ts)
    if plan is None or plan.id is None:
        return None
    execution = plan.execution or {}
    cost = execution_cost(cost_legs(execution), fills)
    planned = plan.plan.get("estimated_cost")
    cost.update(
        plan_id=plan.id,
        as_of=plan.as_of,
        bar_ts=data.ts,
        review_estimate_usd=planned,
        transfers_usd=execution.get("transfers_usd", {}),
    )
    message = (
        f"rebalance cost {cost['cost_usd']} USD"
        + (f" ({cost['cost_bps']:.2f} bps)" if cost["cost_bps"] is not None else "")
        + (
            f" vs estimate {cost['estimate_usd']:.4f} USD ({cost['estimate_bps']:.2f} bps)"
            if cost["estimate_bps"] is not None
            else ""
        )
    )
    event = replace(
        _event(ctx, data.close_ts, REBALANCE_COST, plan, message, cost),
        costs_bps=cost["cost_bps"],
        size_usd=float(Decimal(cost["notional_usd"])),
    )
    return Executed(plan.id, cost, event)


def record_settled(ctx: LiveContext, data: StepData, executed: Executed) -> None:
    """Step 3's write, inside the settlement's transaction."""
    plans.finish_execution(ctx.db, executed.plan_id, data.close_ts, executed.cost)
    journal.record_event(ctx.db, executed.event)


def _event(
    ctx: LiveContext,
    ts: datetime,
    kind: str,
    plan: RebalancePlan,
    message: str,
    payload: Mapping[str, Any],
) -> Event:
    return Event(
        ts=ts,
        event_type=kind,
        severity="MEDIUM" if kind == REBALANCE_REFUSED else "INFO",
        run_id=ctx.run_id,
        action="REBALANCE",
        message=message,
        payload={"plan_id": plan.id, "as_of": plan.as_of, **payload},
    )
