"""The router's parent orders and their progress (``state.parents``), on both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from stagectl.config.state_url import StateLocation
from stagectl.domain.execution import ExecutionStyle, ParentPlan
from stagectl.domain.types import Side
from stagectl.state import parents
from stagectl.state.db import open_state
from stagectl.state.parents import ParentOrder

T0 = datetime(2026, 3, 2, 1, tzinfo=UTC)
PLAN = ParentPlan(
    ExecutionStyle.TWAP, "signal persistence 83% > 70%", 4,
    (Decimal("7.357"), Decimal("7.357"), Decimal("7.357"), Decimal("7.358")),
)  # fmt: skip


def _parent(parent_id: str, created_at: datetime = T0) -> ParentOrder:
    return ParentOrder(
        parent_id=parent_id,
        run_id="live-1",
        symbol="SOLUSDT",
        side=Side.BUY,
        qty=Decimal("29.429"),
        price=Decimal("84.97"),
        reduce_only=False,
        plan=PLAN,
        created_at=created_at,
    )


def test_a_parent_round_trips_and_moves_along_until_done(state_url: StateLocation) -> None:
    with open_state(state_url) as db, db.transaction():
        first = _parent("sc-parent-1")
        parents.insert_parent(db, first)
        parents.insert_parent(db, replace(first, qty=Decimal(1)))  # a redo changes nothing
        assert parents.get_parent(db, "sc-parent-1") == replace(first, updated_at=T0)
        moved = replace(first, next_index=1, sent_qty=Decimal("7.357"), last_bar=T0, updated_at=T0)
        parents.update_parent(db, moved)
        parents.insert_parent(db, _parent("sc-parent-2", T0 + timedelta(hours=1)))
        assert [p.parent_id for p in parents.working_parents(db, "live-1")] == [
            "sc-parent-1",
            "sc-parent-2",
        ]
        assert parents.get_parent(db, "sc-parent-1") == moved
        canceled = replace(moved, status=parents.CANCELED, note="trading state HALTED")
        parents.update_parent(db, canceled)
        assert [p.parent_id for p in parents.working_parents(db, "live-1")] == ["sc-parent-2"]
        assert [p.status for p in parents.run_parents(db, "live-1")] == ["canceled", "working"]
        assert parents.working_parents(db, "live-2") == []
