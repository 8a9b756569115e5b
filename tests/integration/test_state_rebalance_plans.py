"""The rebalance plans a weekly review records and the trading loop moves along."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stagectl.config.state_url import StateLocation
from stagectl.state import rebalance as plans
from stagectl.state.db import StateDB, open_state
from stagectl.state.rebalance import RebalancePlan

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


def plan(as_of: datetime, decision: str = "REBALANCE", run_id: str = "paper-1") -> RebalancePlan:
    return RebalancePlan(
        run_id=run_id,
        mode="paper",
        as_of=as_of,
        decision=decision,  # type: ignore[arg-type]
        state="pending" if decision == "REBALANCE" else "skipped",
        limit_timeout_s=10.0,
        plan={"target_weights_pct": {"ETHUSDT": 54.0, "SOLUSDT": 46.0}, "estimated_cost": 1.12},
        recorded_at=as_of,
    )


def _db(state_url: StateLocation) -> StateDB:
    return open_state(state_url)


def test_a_review_rerun_at_the_same_time_records_nothing_new(state_url: StateLocation) -> None:
    with _db(state_url) as db:
        first = plans.record_plan(db, plan(MONDAY))
        again = plans.record_plan(db, plan(MONDAY))
        assert first == (first[0], True) and again == (first[0], False)
        assert len(plans.plans(db)) == 1
        assert plans.plans(db)[0].target_weights_pct == {"ETHUSDT": 54.0, "SOLUSDT": 46.0}


def test_a_newer_review_supersedes_the_pending_rebalance_of_its_run_only(
    state_url: StateLocation,
) -> None:
    with _db(state_url) as db:
        old, _ = plans.record_plan(db, plan(MONDAY))
        other, _ = plans.record_plan(db, plan(MONDAY, run_id="paper-2"))
        plans.record_plan(db, plan(MONDAY + 24 * HOUR, decision="SKIP"))
        states = {p.id: p.state for p in plans.plans(db)}
        assert states[old] == "superseded" and states[other] == "pending"
        assert plans.plan_for_bar(db, "paper-1", MONDAY + 48 * HOUR) is None


def test_the_loop_finds_a_plan_from_its_as_of_time_and_again_when_it_redoes_that_bar(
    state_url: StateLocation,
) -> None:
    with _db(state_url) as db:
        plan_id, _ = plans.record_plan(db, plan(MONDAY))
        assert plans.plan_for_bar(db, "paper-1", MONDAY - HOUR) is None
        due = plans.plan_for_bar(db, "paper-1", MONDAY + HOUR)
        assert due is not None and (due.id, due.state) == (plan_id, "pending")
        plans.start_execution(db, plan_id, MONDAY + HOUR, {"sleeves": {}})
        redone = plans.plan_for_bar(db, "paper-1", MONDAY + HOUR)
        assert redone is not None and (redone.state, redone.bar_ts) == ("executing", MONDAY + HOUR)
        assert plans.plan_for_bar(db, "paper-1", MONDAY + 2 * HOUR) is None
        plans.finish_execution(db, plan_id, MONDAY + 2 * HOUR, {"cost_usd": "0.5"})
        (done,) = plans.plans(db)
        assert (done.state, done.cost, done.closed_at) == (
            "executed",
            {"cost_usd": "0.5"},
            MONDAY + 2 * HOUR,
        )
