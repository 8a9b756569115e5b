"""The weekly review's weight-drift decision, recorded for the trading loop (seed 003 §3.1).

``risk-guard --weekly`` (without ``--dry-run``) records its REBALANCE or SKIP for the run
it reviewed in ``rebalance_plans``, with an event (``REBALANCE_PLANNED`` or
``REBALANCE_SKIP``), in one transaction. That row is how a REBALANCE reaches run-live:
the run's loop executes it at the first bar that opens at or after the review's as-of
time (``services/live/rebalance.py``; docs/run-live.md, "The weekly rebalance"). A review
rerun for the same run and as-of time records nothing new.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from stagectl.domain.rebalance import REBALANCE_PLANNED, REBALANCE_SKIP
from stagectl.domain.types import Event, Mode
from stagectl.state import journal, runs
from stagectl.state.db import StateDB
from stagectl.state.rebalance import RebalancePlan, record_plan


def record(
    db: StateDB,
    *,
    run_id: str,
    now: datetime,
    drift: Any,
    mode: Mode,
    recorded_at: datetime | None = None,
) -> dict[str, Any]:
    """Record the review's ``drift`` (``domain.weekly.WeightDriftDecision``) for ``run_id``
    as of ``now``; what was recorded, for the review's report."""
    run = runs.get_run(db, run_id)
    rebalance = drift.decision == "REBALANCE"
    plan = RebalancePlan(
        run_id=run_id,
        mode=run.mode if run is not None else mode,  # type: ignore[arg-type]
        as_of=now,
        decision=drift.decision,
        state="pending" if rebalance else "skipped",
        limit_timeout_s=float(drift.orders[0].timeout_s) if drift.orders else 0.0,
        plan={
            "tolerance_pct_points": drift.tolerance_pct_points,
            "total_value": drift.total_value,
            "target_weights_pct": {s.symbol: s.target_weight_pct for s in drift.sleeves},
            "sleeves": [asdict(s) for s in drift.sleeves],
            "orders": [asdict(o) for o in drift.orders],
            "estimated_cost": drift.estimated_cost,
            "cost_bps_assumed": drift.cost_bps_assumed,
        },
        recorded_at=recorded_at or datetime.now(UTC),
        closed_at=None if rebalance else now,
    )
    with db.transaction():
        plan_id, created = record_plan(db, plan)
        if created:
            journal.record_event(db, _event(plan, plan_id))
    return {
        "id": plan_id,
        "recorded": created,
        "decision": plan.decision,
        "state": plan.state if created else "recorded before",
    }


def _event(plan: RebalancePlan, plan_id: int) -> Event:
    drift = {s["symbol"]: round(s["drift_pct_points"], 6) for s in plan.plan["sleeves"]}
    shown = ", ".join(f"{s} {d:+.2f} pp" for s, d in drift.items())
    if plan.decision == "REBALANCE":
        kind = REBALANCE_PLANNED
        message = f"weekly review: REBALANCE ({shown}); run-live executes plan {plan_id} next bar"
    else:
        kind, message = REBALANCE_SKIP, f"weekly review: SKIP ({shown})"
    return Event(
        ts=plan.as_of,
        event_type=kind,
        severity="MEDIUM" if plan.decision == "REBALANCE" else "INFO",
        run_id=plan.run_id,
        action=plan.decision,
        message=message,
        costs_bps=plan.plan["cost_bps_assumed"],
        payload={
            "plan_id": plan_id,
            "decision": plan.decision,
            "drift_pct_points": drift,
            "tolerance_pct_points": plan.plan["tolerance_pct_points"],
            "estimated_cost_usd": plan.plan["estimated_cost"],
        },
    )
