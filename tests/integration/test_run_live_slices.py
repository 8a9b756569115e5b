"""run-live works routed parents as child slices (docs/run-live.md, "Working a parent order").

Paper runs on the bundled data without position caps, so the sleeves' orders are large
enough to slice (the stage3 caps keep every order of the default runs a single order).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.home import Home
from stagectl.domain.execution import ExecutionStyle
from stagectl.domain.orders import child_order_id
from stagectl.domain.types import TradingState
from stagectl.exchange.paper import PaperBroker
from stagectl.services.live import run as service
from stagectl.services.live.execution import ORDER_SLICE, PARENT_CANCELED
from stagectl.services.live.feed import StepData
from stagectl.state import flags, orders, parents
from stagectl.state.db import open_state
from stagectl.state.equity import snapshots
from stagectl.state.journal import events
from stagectl.state.ledger import fills

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, 23, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _request(**overrides: Any) -> service.RunLiveRequest:
    return service.RunLiveRequest(
        start=START, end=END, breakers=False, guard=False, position_limits=False, **overrides
    )


def _home(root: Path) -> Home:
    root.mkdir(parents=True, exist_ok=True)
    return Home(root=root)


@pytest.fixture(scope="module")
def sliced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, service.RunLiveResult]:
    home = _home(tmp_path_factory.mktemp("slices") / "home")
    return home, service.run(_request(), home=home)


def _children(db: Any, parent: parents.ParentOrder) -> list[Any]:
    found = [orders.get_order(db, child_order_id(parent.parent_id, i)) for i in range(50)]
    return [o for o in found if o is not None]


def test_a_twap_parent_is_worked_over_k_bars_with_derived_child_ids(
    sliced: tuple[Home, service.RunLiveResult],
) -> None:
    _, result = sliced
    assert result.status == "completed" and result.slice_fills == "bar"
    with open_state(result.state_path) as db:
        twap = [
            p for p in parents.run_parents(db, result.run_id) if p.plan.style == ExecutionStyle.TWAP
        ]
        assert twap, "the window should route a persistent signal's order as TWAP"
        traded = {f.client_order_id: f for f in fills(db, run_id=result.run_id)}
        slices = events(db, run_id=result.run_id, event_type=ORDER_SLICE)
        for parent in twap:
            children = _children(db, parent)
            assert parent.status == parents.DONE and len(children) == parent.plan.planned == 4
            assert [c.created_at for c in children] == [
                parent.created_at + k * HOUR for k in range(4)
            ]
            assert sum((c.qty for c in children), Decimal(0)) == parent.qty
            assert sum((traded[c.client_order_id].qty for c in children), Decimal(0)) == parent.qty
            assert orders.get_order(db, parent.parent_id) is None  # the parent is never sent
    assert {e.payload["fills_against"] for e in slices} == {"bar"}  # type: ignore[index]
    assert len(slices) == sum(p.plan.planned for p in twap)


class CrashingSlices(PaperBroker):
    """A paper broker whose process dies while the n-th slice is being sent."""

    crash_at = 2
    after_accepting = True
    sent = 0

    def place(self, request: Any) -> Any:
        if request.parent_id is not None:
            type(self).sent += 1
            if type(self).sent == self.crash_at:
                if self.after_accepting:
                    super().place(request)
                raise KeyboardInterrupt("simulated crash")
        return super().place(request)


@pytest.mark.parametrize("after_accepting", [True, False])
def test_a_crash_in_the_middle_of_a_parent_resumes_it_without_sending_a_slice_twice(
    tmp_path: Path, sliced: tuple[Home, service.RunLiveResult], after_accepting: bool
) -> None:
    home = _home(tmp_path / "crash")
    CrashingSlices.sent = 0
    CrashingSlices.after_accepting = after_accepting
    with pytest.raises(KeyboardInterrupt):
        service.run(_request(), home=home, broker_factory=CrashingSlices)
    with open_state(home.state_path) as db:
        (run_id,) = db.conn.execute("SELECT run_id FROM runs").fetchone()
        (working,) = parents.working_parents(db, run_id)
        assert working.next_index == 2 and working.sent_qty < working.qty
    resumed = service.run(_request(), home=home)
    assert resumed.resumed and resumed.status == "completed"
    with open_state(home.state_path) as db:
        finished = parents.get_parent(db, working.parent_id)
        assert finished is not None and finished.status == parents.DONE
        placed = [
            row[0]
            for row in db.conn.execute(
                "SELECT record_id FROM paper_records WHERE account = ? AND kind = 'order'",
                (f"paper:{run_id}",),
            )
        ]
        rejected = events(db, run_id=run_id, event_type="ORDER_REJECTED")
        ids = [r[0] for r in db.conn.execute("SELECT client_order_id FROM orders")]
        series = [(s.ts, s.equity) for s in snapshots(db, run_id)]
        children = _children(db, finished)
    assert len(placed) == len(set(placed)) and not rejected and len(ids) == len(set(ids))
    assert {c.client_order_id for c in children} <= set(placed)
    assert sum((c.filled_qty for c in children), Decimal(0)) == finished.qty
    _, straight = sliced
    with open_state(straight.state_path) as db:
        assert series == [(s.ts, s.equity) for s in snapshots(db, straight.run_id)]


def test_the_kill_switch_in_the_middle_of_a_parent_cancels_its_remaining_slices(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path / "halt")
    halted: list[datetime] = []

    def halt_after_a_slice(data: StepData, outcome: dict[str, Any]) -> None:
        if halted:
            return
        with open_state(home.state_path) as db:
            working = parents.working_parents(db, outcome["run_id"])
            if working and working[0].next_index == 2:
                flags.set_trading_state(
                    db, "paper", TradingState.HALTED, reason="test", source="test",
                    now=data.close_ts,
                )  # fmt: skip
                halted.append(data.close_ts)

    result = service.run(_request(), home=home, on_step=halt_after_a_slice)
    assert halted and result.status == "completed"
    with open_state(home.state_path) as db:
        (canceled,) = [p for p in parents.run_parents(db, result.run_id) if p.note]
        assert canceled.status == parents.CANCELED and "HALTED" in (canceled.note or "")
        children = _children(db, canceled)
        (event,) = events(db, run_id=result.run_id, event_type=PARENT_CANCELED)
    assert len(children) == 2 < canceled.plan.planned
    assert canceled.sent_qty == sum((c.qty for c in children), Decimal(0)) < canceled.qty
    assert event.payload["slices_sent"] == 2  # type: ignore[index]


def test_paper_slices_fill_through_the_1m_bars_where_the_data_has_them(tmp_path: Path) -> None:
    """SOLUSDT has 1m bars on 2025-05-07 (00:00-12:00, from the shared data), ETHUSDT none."""
    import pandas as pd

    from stagectl.data.loaders import SAMPLE_DIR

    data = tmp_path / "data"
    data.mkdir()
    for source in SAMPLE_DIR.glob("binance_perp_*"):
        (data / source.name).symlink_to(source)
    minute = Path(__file__).parents[1] / "data" / "binance_perp_SOLUSDT_1m_ohlcv_2025-05-07.csv.gz"
    (data / minute.name).symlink_to(minute)
    request = service.RunLiveRequest(
        start=datetime(2025, 5, 6, tzinfo=UTC), end=datetime(2025, 5, 7, 11, tzinfo=UTC),
        breakers=False, guard=False, position_limits=False, replay_data=data,
    )  # fmt: skip
    result = service.run(request, home=_home(tmp_path / "home"))
    assert result.slice_fills == "ETHUSDT: bar; SOLUSDT: 1m bars"
    opens = pd.read_csv(minute, index_col="timestamp", parse_dates=True)["open"]
    with open_state(result.state_path) as db:
        sol = [p for p in parents.run_parents(db, result.run_id) if p.symbol == "SOLUSDT"]
        assert sol and all(p.status == parents.DONE for p in sol)
        traded = {f.client_order_id: f for f in fills(db, run_id=result.run_id)}
        slices = [
            e
            for e in events(db, run_id=result.run_id, event_type=ORDER_SLICE)
            if e.symbol == "SOLUSDT"
        ]
        children = [c for p in sol for c in _children(db, p)]
    assert {e.payload["fills_against"] for e in slices} == {"1m bars"}  # type: ignore[index]
    slip = Decimal("3") / Decimal(10_000)  # the strategy's slippage_bps
    for child in children:
        hour = opens[child.created_at : child.created_at + HOUR - timedelta(minutes=1)]
        assert len(hour) == 60
        mean = sum((Decimal(repr(float(o))) for o in hour), Decimal(0)) / 60
        moved = mean * (1 + slip) if child.side.value == "buy" else mean * (1 - slip)
        assert traded[child.client_order_id].price == moved
