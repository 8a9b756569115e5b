"""The incremental live guard (``services.guard.stream``) on a finished paper run: equal to
cron's full-history evaluation at every hour, whether it followed the run from its first
bar or started half-way (a resumed loop); rows recorded late, or stamped after ``now``;
and reads that cost the new rows, not the run's history."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from stagectl.config.home import Home
from stagectl.config.loader import load_risk_guard
from stagectl.domain.risk_indicators import compute_indicators
from stagectl.domain.risk_rules import DecisionTable, evaluate_rules
from stagectl.domain.types import FundingPayment
from stagectl.services.guard import history as gi
from stagectl.services.guard.live import STALE_AFTER
from stagectl.services.guard.stream import IncrementalGuard
from stagectl.services.live import run as service
from stagectl.state import ledger
from stagectl.state.db import StateDB, open_state
from stagectl.state.equity import snapshots
from tests.guard_equality import same

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 4, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, str]:
    """35 days of paper trading without the in-loop guard: every window fills."""
    home = Home(root=tmp_path_factory.mktemp("stream") / "home")
    request = service.RunLiveRequest(start=START, end=END, guard=False)
    return home, service.run(request, home=home).run_id


def cron_at_every_hour(db: StateDB, config: Any, run_id: str, now: datetime) -> dict[Any, Any]:
    """Cron's full-history decision at each hour up to ``now``, from one read: the same
    functions as ``risk-guard --now``, every hour at once (a decision at t uses the rows
    up to t only)."""
    history = gi.read_history(db, run_id=run_id, now=now)
    assert history is not None
    inputs, data = gi.build_inputs(history, config, now=now)
    times = pd.DatetimeIndex(inputs.equity.index)
    table = evaluate_rules(
        compute_indicators(inputs),
        config.rules,
        times,
        daily_utc=config.schedule.daily_utc,
        near_threshold_pct=config.near_threshold_pct,
    )
    out = {}
    for i, at in enumerate(times):
        one = DecisionTable(
            times[i : i + 1],
            table.action_rank[i : i + 1],
            table.severity_rank[i : i + 1],
            table.breach_matrix[:, i : i + 1],
            table.near_matrix[:, i : i + 1],
            table.keys,
            table.values[:, i : i + 1],
        )
        hour = at.to_pydatetime()
        seen = {**data, "last_snapshot": hour}
        out[hour] = gi.decision_dict(one, config, seen, now=hour, stale_after=STALE_AFTER)
    return out


def assert_same_decision(streamed: dict[str, Any], batch: dict[str, Any]) -> None:
    for key in ("at", "bar", "action", "severity", "hits", "near", "indicators"):
        assert same(streamed[key], batch[key]), (streamed["at"], key)


def test_the_stream_equals_cron_at_every_hour_and_a_resumed_one_catches_up(
    finished: tuple[Home, str],
) -> None:
    home, run_id = finished
    config, _ = load_risk_guard(home, None)
    with open_state(home.state_path) as db:
        hours = [s.ts for s in snapshots(db, run_id)]
        batch = cron_at_every_hour(db, config, run_id, hours[-1])
        followed = IncrementalGuard(config, run_id=run_id, mode="paper")
        resumed = IncrementalGuard(config, run_id=run_id, mode="paper")
        actions = set()
        for i, now in enumerate(hours):
            decision = followed.evaluate(db, now).decision
            assert_same_decision(decision, batch[now])
            actions.add(decision["action"])
            if i >= len(hours) // 2:  # a loop restarted half-way reads the run once
                assert_same_decision(resumed.evaluate(db, now).decision, decision)
    assert len(hours) == 840 and {"FLATTEN_ALL", "NO_ACTION"} <= actions
    assert (followed.rebuilds, resumed.rebuilds) == (0, 0)
    assert decision["indicators"]["return_30d_pct"] is not None  # every window was full


@pytest.fixture
def copied(finished: tuple[Home, str], tmp_path: Path) -> tuple[Home, str]:
    home, run_id = finished
    shutil.copytree(home.root, tmp_path / "home")
    return Home(root=tmp_path / "home"), run_id


def test_a_row_recorded_for_an_hour_already_judged_starts_the_stream_over(
    copied: tuple[Home, str],
) -> None:
    home, run_id = copied
    config, _ = load_risk_guard(home, None)
    with open_state(home.state_path) as db:
        hours = [s.ts for s in snapshots(db, run_id)][:200]
        guard = IncrementalGuard(config, run_id=run_id, mode="paper")
        for now in hours[:150]:
            guard.evaluate(db, now)
        late = hours[149] - timedelta(hours=6, minutes=-17)  # reported six hours late
        ledger.insert_funding(
            db,
            [
                FundingPayment(
                    symbol="ETHUSDT",
                    ts=late,
                    rate=Decimal("0.01"),
                    amount=Decimal("-250"),
                    account="paper",
                    run_id=run_id,
                )
            ],
        )
        for i, now in enumerate(hours[150:]):
            decision = guard.evaluate(db, now).decision
            if i in (0, 1, 2, 25, 49):
                assert_same_decision(decision, cron_at_every_hour(db, config, run_id, now)[now])
        assert guard.rebuilds == 1 and guard.lag == 8
        assert decision["indicators"]["funding_drag_bps_per_day"] is not None


def test_rows_stamped_after_now_wait_for_their_hour(copied: tuple[Home, str]) -> None:
    home, run_id = copied
    config, _ = load_risk_guard(home, None)
    with open_state(home.state_path) as db:
        hours = [s.ts for s in snapshots(db, run_id)][:60]
        guard = IncrementalGuard(config, run_id=run_id, mode="paper")
        for now in hours[:-2]:
            guard.evaluate(db, now)
        ahead = hours[-2] + timedelta(minutes=20)  # paid just after the bar's close
        payment = FundingPayment(
            symbol="SOLUSDT",
            ts=ahead,
            rate=Decimal("0.01"),
            amount=Decimal("-90"),
            account="paper",
            run_id=run_id,
        )
        ledger.insert_funding(db, [payment])
        for now in hours[-2:]:
            decision = guard.evaluate(db, now).decision
            assert_same_decision(decision, cron_at_every_hour(db, config, run_id, now)[now])
        assert guard.rebuilds == 0
        drag = decision["indicators"]["funding_drag_bps_per_day"]
        assert drag is not None and drag > 0.01  # counted at the hour it belongs to


@pytest.mark.parametrize("read", ["equity_snapshots", "fills", "funding_payments", "events"])
def test_the_reads_after_a_cursor_search_the_row_id_range_not_the_run(
    finished: tuple[Home, str], read: str
) -> None:
    from stagectl.state import equity, journal

    home, run_id = finished
    queries = {
        "equity_snapshots": lambda db: equity.snapshots_after(db, run_id, 10**9),
        "fills": lambda db: ledger.fills_after(db, run_id, 10**9),
        "funding_payments": lambda db: ledger.funding_after(db, run_id, 10**9),
        "events": lambda db: journal.events_after(
            db, run_id=run_id, event_type="signal_check", after_id=10**9
        ),
    }
    with open_state(home.state_path) as db:
        plans: list[str] = []
        db.conn.set_trace_callback(plans.append)
        assert queries[read](db) == []
        db.conn.set_trace_callback(None)
        sql = next(q for q in plans if q.lstrip().upper().startswith("SELECT") and read in q)
        plan = " ".join(str(row[-1]) for row in db.conn.execute("EXPLAIN QUERY PLAN " + sql))
    assert "INTEGER PRIMARY KEY (rowid>?)" in plan, plan
