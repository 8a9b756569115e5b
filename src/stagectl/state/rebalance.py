"""The weekly review's rebalance decisions, as the trading loop executes them.

One row per (run, as-of time): the review's decision (REBALANCE or SKIP), its plan (the
drift table, the planned orders and their estimated cost) and, for a REBALANCE, where
it is: ``pending`` until the run's loop takes it at a bar (``executing``, with what it
decided), ``executed`` once that bar settled (with the real cost), or closed unexecuted
(``superseded`` by a newer review of the run, ``expired``, ``refused``). A SKIP is
``skipped``. Recording a review of the run supersedes its pending REBALANCE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from stagectl.domain.types import Mode
from stagectl.state._codec import (
    json_text,
    opt_json_text,
    opt_parse_ts,
    parse_json,
    parse_ts,
    ts_text,
)
from stagectl.state.db import StateDB

PlanState = Literal[
    "pending", "executing", "executed", "skipped", "superseded", "expired", "refused"
]
_COLUMNS = (
    "id, run_id, mode, as_of, decision, state, limit_timeout_s, plan_json, bar_ts,"
    " execution_json, cost_json, reason, recorded_at, closed_at"
)


@dataclass(frozen=True)
class RebalancePlan:
    run_id: str
    mode: Mode
    as_of: datetime
    decision: Literal["REBALANCE", "SKIP"]
    state: PlanState
    limit_timeout_s: float
    plan: Mapping[str, Any]
    recorded_at: datetime
    bar_ts: datetime | None = None
    """The bar that executed it."""
    execution: Mapping[str, Any] | None = None
    cost: Mapping[str, Any] | None = None
    reason: str | None = None
    closed_at: datetime | None = None
    id: int | None = None

    @property
    def target_weights_pct(self) -> dict[str, float]:
        return {str(k): float(v) for k, v in dict(self.plan.get("target_weights_pct", {})).items()}


def record_plan(db: StateDB, plan: RebalancePlan) -> tuple[int, bool]:
    """Record a review's decision; (its id, True) when new. The same run and as-of time
    recorded before gives that row's id and False (a rerun of the review records nothing).
    A new row supersedes the run's pending REBALANCE."""
    with db.transaction() as conn:
        found = conn.execute(
            "SELECT id FROM rebalance_plans WHERE run_id = ? AND as_of = ?",
            (plan.run_id, ts_text(plan.as_of)),
        ).fetchone()
        if found is not None:
            return int(found[0]), False
        conn.execute(
            "UPDATE rebalance_plans SET state = 'superseded', closed_at = ?,"
            " reason = 'a newer weekly review of the run' WHERE run_id = ? AND state = 'pending'",
            (ts_text(plan.recorded_at), plan.run_id),
        )
        cursor = conn.execute(
            f"INSERT INTO rebalance_plans ({_COLUMNS.split(', ', 1)[1]})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                plan.run_id,
                plan.mode,
                ts_text(plan.as_of),
                plan.decision,
                plan.state,
                float(plan.limit_timeout_s),
                json_text(dict(plan.plan)),
                None if plan.bar_ts is None else ts_text(plan.bar_ts),
                opt_json_text(None if plan.execution is None else dict(plan.execution)),
                opt_json_text(None if plan.cost is None else dict(plan.cost)),
                plan.reason,
                ts_text(plan.recorded_at),
                None if plan.closed_at is None else ts_text(plan.closed_at),
            ),
        )
    if cursor.lastrowid is None:
        raise RuntimeError("SQLite returned no row id for an insert")
    return cursor.lastrowid, True


def plan_for_bar(db: StateDB, run_id: str, bar_ts: datetime) -> RebalancePlan | None:
    """The REBALANCE the run's bar at ``bar_ts`` must act on: the one executing at that bar
    (a redone bar), else the latest pending one reviewed at or before it."""
    at = ts_text(bar_ts)
    row = db.conn.execute(
        f"SELECT {_COLUMNS} FROM rebalance_plans WHERE run_id = ?"
        " AND ((state = 'executing' AND bar_ts = ?) OR (state = 'pending' AND as_of <= ?))"
        " ORDER BY state = 'executing' DESC, as_of DESC, id DESC LIMIT 1",
        (run_id, at, at),
    ).fetchone()
    return None if row is None else _plan(row)


def executing_at(db: StateDB, run_id: str, bar_ts: datetime) -> RebalancePlan | None:
    """The REBALANCE the run's bar at ``bar_ts`` took (its settlement records the cost)."""
    row = db.conn.execute(
        f"SELECT {_COLUMNS} FROM rebalance_plans WHERE run_id = ? AND state = 'executing'"
        " AND bar_ts = ? ORDER BY id LIMIT 1",
        (run_id, ts_text(bar_ts)),
    ).fetchone()
    return None if row is None else _plan(row)


def start_execution(
    db: StateDB, plan_id: int, bar_ts: datetime, execution: Mapping[str, Any]
) -> None:
    """A pending plan taken by the bar at ``bar_ts`` (inside the bar's write-ahead)."""
    with db.transaction() as conn:
        conn.execute(
            "UPDATE rebalance_plans SET state = 'executing', bar_ts = ?, execution_json = ?"
            " WHERE id = ? AND state = 'pending'",
            (ts_text(bar_ts), json_text(dict(execution)), plan_id),
        )


def finish_execution(db: StateDB, plan_id: int, at: datetime, cost: Mapping[str, Any]) -> None:
    """An executing plan whose bar settled: ``executed``, with its real cost."""
    with db.transaction() as conn:
        conn.execute(
            "UPDATE rebalance_plans SET state = 'executed', closed_at = ?, cost_json = ?"
            " WHERE id = ? AND state = 'executing'",
            (ts_text(at), json_text(dict(cost)), plan_id),
        )


def close_plan(
    db: StateDB, plan_id: int, state: Literal["expired", "refused"], at: datetime, reason: str
) -> None:
    """A pending plan the loop will not execute, and why."""
    with db.transaction() as conn:
        conn.execute(
            "UPDATE rebalance_plans SET state = ?, closed_at = ?, reason = ?"
            " WHERE id = ? AND state = 'pending'",
            (state, ts_text(at), reason, plan_id),
        )


def plans(db: StateDB, *, run_id: str | None = None) -> list[RebalancePlan]:
    """Every recorded review decision (of one run), oldest first."""
    where, params = ("", ()) if run_id is None else (" WHERE run_id = ?", (run_id,))
    rows = db.conn.execute(
        f"SELECT {_COLUMNS} FROM rebalance_plans{where} ORDER BY as_of, id", params
    )
    return [_plan(row) for row in rows]


def _plan(row: tuple[Any, ...]) -> RebalancePlan:
    return RebalancePlan(
        id=int(row[0]),
        run_id=row[1],
        mode=row[2],
        as_of=parse_ts(row[3]),
        decision=row[4],
        state=row[5],
        limit_timeout_s=float(row[6]),
        plan=parse_json(row[7]),
        bar_ts=opt_parse_ts(row[8]),
        execution=None if row[9] is None else parse_json(row[9]),
        cost=None if row[10] is None else parse_json(row[10]),
        reason=row[11],
        recorded_at=parse_ts(row[12]),
        closed_at=opt_parse_ts(row[13]),
    )
