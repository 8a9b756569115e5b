"""The live risk guard on a seeded state database: decisions, incidents, directives."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from stagectl.config.home import Home
from stagectl.domain.types import (
    Event,
    Fill,
    FundingPayment,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from stagectl.errors import ExternalError, InputError
from stagectl.services.guard.live import LiveGuardRequest, run
from stagectl.state import directives, journal, ledger, orders
from stagectl.state.db import open_state
from stagectl.state.equity import EquitySnapshot, record_snapshots
from stagectl.state.runs import Run, finish_run, start_run

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOURS = 40 * 24
CRASH_FROM = HOURS - 30  # the last 30 hours lose about 16 %


def _path() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Portfolio and sleeve equity: a calm uptrend, then SOL crashes in the last 30 hours."""
    rng = np.random.default_rng(7)
    eth = 5400 * np.cumprod(1 + 0.0004 + 0.002 * rng.standard_normal(HOURS))
    sol = 4600 * np.cumprod(1 + 0.0004 + 0.002 * rng.standard_normal(HOURS))
    sol[CRASH_FROM:] = sol[CRASH_FROM - 1] * np.linspace(0.99, 0.62, HOURS - CRASH_FROM)
    return eth + sol, eth, sol


def _seed(state: Path, *, hours: int = HOURS, skip: tuple[int, ...] = ()) -> None:
    total, eth, sol = _path()
    with open_state(state) as db:
        start_run(db, Run("paper-1", "run-live", "paper", T0))
        record_snapshots(
            db,
            [
                EquitySnapshot(
                    "paper-1",
                    T0 + timedelta(hours=h, seconds=3),
                    float(total[h]),
                    sleeves={
                        "ETHUSDT": {"equity": float(eth[h]), "position": 1.0, "state": 1},
                        "SOLUSDT": {"equity": float(sol[h]), "position": 1.0, "state": 1},
                    },
                )
                for h in range(hours)
                if h not in skip
            ],
        )
        fill_ts = T0 + timedelta(hours=100, minutes=1)
        order_time = T0 + timedelta(hours=100)
        orders.upsert_order(
            db,
            Order(
                client_order_id="sc-1",
                symbol="ETHUSDT",
                side=Side.BUY,
                type=OrderType.LIMIT,
                qty=Decimal("1"),
                created_at=order_time,
                status=OrderStatus.FILLED,
                time_in_force=TimeInForce.GTC,
                account="paper",
                run_id="paper-1",
                price=Decimal("2000"),
            ),
        )
        journal.record_events(
            db,
            [
                Event(
                    ts=T0 + timedelta(hours=h),
                    event_type="signal_check",
                    run_id="paper-1",
                    payload={"paper": 1, "replay": -1 if h == 99 else 1},
                )
                for h in range(96, 101)
            ],
        )
        ledger.insert_fills(
            db,
            [
                Fill(
                    "t1",
                    fill_ts,
                    "ETHUSDT",
                    Side.BUY,
                    Decimal("1"),
                    Decimal("2001"),
                    Decimal("0.1"),
                    account="paper",
                    source="paper",
                    run_id="paper-1",
                    client_order_id="sc-1",
                )
            ],
        )
        ledger.insert_funding(
            db,
            [
                FundingPayment(
                    "ETHUSDT",
                    T0 + timedelta(hours=8 * k),
                    Decimal("-0.1"),  # 0.1 paid
                    rate=Decimal("0.0001"),
                    account="paper",
                    run_id="paper-1",
                )
                for k in range(HOURS // 8)
            ],
        )


@pytest.fixture
def seeded(tmp_path: Path) -> Home:
    home = Home(root=tmp_path)
    _seed(home.state_path)
    return home


def at_hour(h: int) -> datetime:
    return T0 + timedelta(hours=h, minutes=10)


def test_calm_hour_recommends_no_action_and_writes_no_directive(seeded: Home) -> None:
    result = run(LiveGuardRequest(now=at_hour(CRASH_FROM - 2), dry_run=False), home=seeded, env={})
    assert result.decision["action"] == "NO_ACTION"
    assert result.exit_code == 0
    assert result.directives == []
    with open_state(seeded.state_path) as db:
        recorded = directives.guard_decisions(db)
    assert [d.action for d in recorded] == ["NO_ACTION"]
    assert recorded[0].severity in ("INFO", "LOW")


def test_crash_flattens_records_incident_with_market_state_and_a_directive(seeded: Home) -> None:
    result = run(LiveGuardRequest(now=at_hour(HOURS - 1), dry_run=False), home=seeded, env={})
    rules = {h["rule"] for h in result.decision["hits"]}
    assert {"mdd_limit", "sleeve_mdd_limit"} <= rules
    assert result.decision["action"] == "FLATTEN_ALL"
    assert result.decision["severity"] == "CRITICAL"
    assert result.exit_code == 1
    mdd = next(h for h in result.decision["hits"] if h["rule"] == "mdd_limit")
    total, _, _ = _path()
    expected = (total.max() - total[HOURS - 1]) / total.max() * 100
    assert mdd["value"] == pytest.approx(expected)
    assert [d["action"] for d in result.directives] == ["FLATTEN_ALL"]
    with open_state(seeded.state_path) as db:
        incidents = journal.incidents(db)
        active = directives.active_directives(db, mode="paper", now=at_hour(HOURS - 1))
        live = directives.active_directives(db, mode="live", now=at_hour(HOURS - 1))
    assert live == []  # a paper run's guard never sizes the live book
    assert {i.rule for i in incidents} >= {"mdd_limit", "sleeve_mdd_limit"}
    assert all(i.guard_decision_id == result.decision_id for i in incidents)
    assert incidents[0].market_state["sleeves"]["SOLUSDT"]["position"] == 1.0
    assert [(d.action, d.multiplier) for d in active] == [("FLATTEN_ALL", 0.0)]


def test_dry_run_records_the_decision_but_no_directive(seeded: Home) -> None:
    result = run(LiveGuardRequest(now=at_hour(HOURS - 1), dry_run=True), home=seeded, env={})
    assert result.decision["action"] == "FLATTEN_ALL"
    assert result.directives == []
    with open_state(seeded.state_path) as db:
        assert directives.active_directives(db, mode="paper", now=at_hour(HOURS)) == []
        assert directives.guard_decisions(db)[0].dry_run is True
        assert journal.incidents(db)  # the incident log is kept in a dry run too


def test_an_active_directive_is_not_issued_twice(seeded: Home) -> None:
    run(LiveGuardRequest(now=at_hour(HOURS - 2), dry_run=False), home=seeded, env={})
    second = run(LiveGuardRequest(now=at_hour(HOURS - 1), dry_run=False), home=seeded, env={})
    assert second.decision["action"] == "FLATTEN_ALL"
    assert second.directives == []


def test_slippage_and_funding_come_from_the_ledger(seeded: Home) -> None:
    result = run(LiveGuardRequest(now=at_hour(100), dry_run=True), home=seeded, env={})
    indicators = result.decision["indicators"]
    # bought at 2001 against a 2000 signal: 5 bps adverse
    assert indicators["realized_slippage_bps"] == pytest.approx(5.0)
    total, _, _ = _path()
    # three 0.1 USDT payments in the last 24 h over the equity at hour 100
    assert indicators["funding_drag_bps_per_day"] == pytest.approx(0.3 / total[100] * 1e4)
    # one of the five signal checks of the last 24 h disagreed: 20 % > 5 %
    assert indicators["signal_mismatch_pct"] == pytest.approx(20.0)
    assert [h["rule"] for h in result.decision["hits"]] == ["signal_mismatch_high"]


def test_stale_snapshots_are_a_warning_not_all_clear(seeded: Home) -> None:
    result = run(
        LiveGuardRequest(now=at_hour(CRASH_FROM - 2) + timedelta(days=60), dry_run=True),
        home=seeded,
        env={},
    )
    hits = {h["rule"]: h for h in result.decision["hits"]}
    assert "equity_snapshots_stale" in hits
    assert result.decision["action"] in ("WARNING", "FLATTEN_ALL")
    assert result.exit_code == 1


def test_a_run_trading_in_real_time_is_judged_on_the_wall_clock(seeded: Home) -> None:
    """paper-1 is running and records no replay window: its clock is the wall clock, so
    snapshots that stopped three hours ago are stale."""
    wall = T0 + timedelta(hours=HOURS + 2)
    result = run(LiveGuardRequest(dry_run=True), home=seeded, env={}, wall_clock=lambda: wall)
    assert (result.as_of.at, result.as_of.basis) == (wall, "wall clock")
    assert result.as_of.reason == "run trading in real time"
    assert "equity_snapshots_stale" in {h["rule"] for h in result.decision["hits"]}


def test_a_finished_run_is_judged_at_its_last_bar(seeded: Home) -> None:
    last_bar = T0 + timedelta(hours=HOURS - 1, seconds=3)
    with open_state(seeded.state_path) as db:
        finish_run(db, "paper-1", status="completed", ended_at=last_bar + timedelta(minutes=1))
    wall = T0 + timedelta(days=400)
    result = run(LiveGuardRequest(dry_run=True), home=seeded, env={}, wall_clock=lambda: wall)
    assert (result.as_of.at, result.as_of.basis) == (last_bar, "last bar")
    assert result.as_of.reason == "finished run (completed)"
    assert "equity_snapshots_stale" not in {h["rule"] for h in result.decision["hits"]}
    with open_state(seeded.state_path) as db:
        assert [d.ts for d in directives.guard_decisions(db)] == [last_bar]


def test_gaps_are_carried_forward_and_counted(tmp_path: Path) -> None:
    home = Home(root=tmp_path)
    _seed(home.state_path, hours=200, skip=(50, 51, 52))
    result = run(LiveGuardRequest(now=at_hour(199), dry_run=True), home=home, env={})
    assert result.data["missing_hours"] == 3
    assert result.data["hours"] == 200


def test_no_state_database_is_an_input_error_naming_snapshots(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="equity snapshots"):
        run(LiveGuardRequest(now=T0, dry_run=True), home=Home(root=tmp_path), env={})


def test_state_without_snapshots_is_an_input_error(tmp_path: Path) -> None:
    home = Home(root=tmp_path)
    open_state(home.state_path).close()
    with pytest.raises(InputError, match="no paper run with equity snapshots"):
        run(LiveGuardRequest(now=T0, dry_run=True), home=home, env={})


def test_unreadable_state_is_an_external_error(tmp_path: Path) -> None:
    home = Home(root=tmp_path)
    home.state_path.parent.mkdir(parents=True)
    home.state_path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ExternalError):
        run(LiveGuardRequest(now=T0, dry_run=True), home=home, env={})


def test_severity_needing_notification_without_credentials_is_reported_skipped(
    seeded: Home,
) -> None:
    result = run(LiveGuardRequest(now=at_hour(HOURS - 1), dry_run=True), home=seeded, env={})
    assert [n["status"] for n in result.notifications] == ["skipped"]
    assert not math.isnan(result.decision["indicators"]["running_mdd_pct"])
