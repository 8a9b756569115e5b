"""The weekly review and the paper gate on a state database seeded from a real backtest.

The paper run is the seed-003 Alt Ensemble backtested on the bundled ETH/SOL data
(tests/integration/paper_seed.py): Oct-Nov 2024 is a window that passes the gate,
May-June 2024 one whose Sharpe and drawdown fail it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stagectl.config.home import Home
from stagectl.errors import CheckFailed, InputError
from stagectl.services.guard import paper_gate, weekly
from tests.integration.paper_seed import Seed, write

GOOD_START = datetime(2024, 10, 1, tzinfo=UTC)
GOOD_NOW = datetime(2024, 11, 11, tzinfo=UTC)  # a Monday
BAD_START = datetime(2024, 5, 1, tzinfo=UTC)
BAD_NOW = datetime(2024, 6, 10, tzinfo=UTC)  # a Monday
QUIET_FUNDING = 0.00001  # per settlement: 1.1 % a year


def seeded(tmp_path: Path, **changes: object) -> tuple[Home, dict[str, object]]:
    root = tmp_path / "home"
    root.mkdir(parents=True, exist_ok=True)
    seed = Seed(start=changes.pop("start", GOOD_START), end=changes.pop("end", GOOD_NOW))  # type: ignore[arg-type]
    for name, value in changes.items():
        setattr(seed, name, value)
    written = write(root / "state" / "stagectl.db", seed)
    return Home(root), written


def gate(home: Home, now: datetime = GOOD_NOW) -> dict[str, object]:
    result = paper_gate.run(paper_gate.PaperGateRequest(now=now), home=home)
    return {c.id: c for c in result.rows()} | {"_result": result}


# --- paper gate ---------------------------------------------------------------------------


def test_a_good_paper_month_passes_every_criterion(tmp_path: Path) -> None:
    home, written = seeded(tmp_path)
    items = gate(home)
    result = items.pop("_result")
    assert {k: v.passed for k, v in items.items()} == dict.fromkeys(items, True)
    assert result.exit_code == 0
    equity = written["equity"]  # stamped at the bar closes, the last at GOOD_NOW
    window = equity[equity.index >= GOOD_NOW - timedelta(days=30)]
    assert window.index[0] == GOOD_NOW - timedelta(days=30)  # the opening equity
    assert window.index[-1] == GOOD_NOW  # the last close is in the window
    later = window.iloc[1:]
    closes = later.groupby((later.index - timedelta(microseconds=1)).floor("D")).last()
    daily = closes.to_numpy() / np.concatenate(([window.iloc[0]], closes.to_numpy()[:-1])) - 1
    assert len(daily) == 30 and closes.index[-1] == GOOD_NOW - timedelta(days=1)
    expected_sharpe = daily.mean() / daily.std(ddof=1) * math.sqrt(252)
    assert items["sharpe_30d"].value == pytest.approx(expected_sharpe)
    values = window.to_numpy()
    peak = np.maximum.accumulate(values)
    assert items["max_mdd_pct"].value == pytest.approx(np.max(1 - values / peak) * 100)
    assert items["slippage_ratio"].value == pytest.approx(2.0 / 3.0, rel=1e-6)
    assert items["history_days"].value == pytest.approx(30.0)


def test_a_losing_month_fails_on_sharpe_and_drawdown(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, start=BAD_START, end=BAD_NOW)
    items = gate(home, BAD_NOW)
    failed = sorted(k for k, v in items.items() if k != "_result" and not v.passed)
    assert failed == ["max_mdd_pct", "sharpe_30d"]
    assert items["sharpe_30d"].value < -0.3
    assert items["max_mdd_pct"].value > 12
    assert items["_result"].exit_code == 1


def test_slippage_above_one_point_three_times_the_assumption_fails(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, slip_bps=4.0)
    item = gate(home)["slippage_ratio"]
    assert item.value == pytest.approx(4.0 / 3.0, rel=1e-6)
    assert not item.passed


def test_funding_ratio_uses_the_rate_paid_by_the_position(tmp_path: Path) -> None:
    home, written = seeded(tmp_path, funding_rate=None)  # the real settlement rates
    item = gate(home)["funding_ratio"]
    start = GOOD_NOW - timedelta(days=30)
    paid = [
        float(p.rate) * (1 if p.position_qty > 0 else -1)
        for p in written["funding"]
        if p.ts >= start
    ]
    assert item.value == pytest.approx(np.mean(paid) * 100 / 0.01)
    assert item.passed == (item.value <= 1.5)


def test_funding_above_one_point_five_times_the_assumption_fails(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, funding_rate=0.0004)
    item = gate(home)["funding_ratio"]
    assert item.value > 1.5  # longs pay 4x, shorts receive it: the mean is still above
    assert not item.passed


def test_signal_consistency_fails_below_ninety_eight_percent(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, signal_mismatches=2)
    item = gate(home)["signal_consistency_pct"]
    assert item.value == pytest.approx(58 / 60 * 100)
    assert not item.passed
    home_one = seeded(tmp_path / "one", signal_mismatches=1)[0]
    assert gate(home_one)["signal_consistency_pct"].passed  # 59 / 60 = 98.3 %


def test_kill_switch_allows_one_warning_day_and_no_critical(tmp_path: Path) -> None:
    day = GOOD_NOW - timedelta(days=5)
    one = [(day, "WARNING", "MEDIUM"), (day + timedelta(hours=1), "WARNING", "MEDIUM")]
    assert gate(seeded(tmp_path / "a", decisions=one)[0])["kill_switch_fires"].passed
    two = [*one, (day + timedelta(days=1), "WARNING", "MEDIUM")]
    assert not gate(seeded(tmp_path / "b", decisions=two)[0])["kill_switch_fires"].passed
    critical = [(day, "FLATTEN_ALL", "CRITICAL")]
    item = gate(seeded(tmp_path / "c", decisions=critical)[0])["kill_switch_fires"]
    assert not item.passed
    assert "CRITICAL" in item.reason


def test_missing_evidence_fails_as_no_data_never_passes(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, fills=False, funding=False, daily_decisions=False)
    items = gate(home)
    for name in ("slippage_ratio", "funding_ratio", "kill_switch_fires"):
        assert not items[name].passed
        assert items[name].reason.startswith("no data")
    assert items["_result"].exit_code == 1


def test_under_thirty_days_of_history_cannot_pass(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, start=GOOD_NOW - timedelta(days=12))
    request = paper_gate.PaperGateRequest(now=GOOD_NOW, run_id="paper-1")
    item = {c.id: c for c in paper_gate.run(request, home=home).rows()}["history_days"]
    assert item.value == pytest.approx(12.0)
    assert not item.passed
    assert "12.00 days" in item.reason


def test_without_a_finished_run_covering_the_window_the_gate_fails_naming_each_run(
    tmp_path: Path,
) -> None:
    home, _ = seeded(tmp_path, start=GOOD_NOW - timedelta(days=12))
    write(home.state_path, Seed(start=GOOD_START, end=GOOD_NOW, run_id="paper-2", status="running"))
    with pytest.raises(CheckFailed) as failed:
        paper_gate.run(paper_gate.PaperGateRequest(), home=home)
    assert "no finished paper run covers the gate's 30 days" in failed.value.message
    assert "run paper-2: not finished (still running)" in failed.value.message
    assert "run paper-1: covers 12.00 days" in failed.value.message


def test_an_empty_state_database_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no state database"):
        paper_gate.run(paper_gate.PaperGateRequest(now=GOOD_NOW), home=Home(tmp_path))
    with pytest.raises(InputError, match="no state database"):
        weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=Home(tmp_path))
    from stagectl.state.db import open_state

    open_state(tmp_path / "state" / "stagectl.db").close()
    with pytest.raises(InputError, match="no paper run with equity snapshots"):
        paper_gate.run(paper_gate.PaperGateRequest(now=GOOD_NOW), home=Home(tmp_path))
    with pytest.raises(InputError, match="no paper run with equity snapshots"):
        weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=Home(tmp_path))


def test_a_live_run_is_not_judged_by_the_paper_gate(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, mode="live")
    with pytest.raises(InputError, match="no paper run"):
        paper_gate.run(paper_gate.PaperGateRequest(now=GOOD_NOW), home=home)


# --- weekly review ------------------------------------------------------------------------


def test_weights_on_target_skip_and_a_healthy_week_exits_zero(tmp_path: Path) -> None:
    home, written = seeded(tmp_path, funding_rate=QUIET_FUNDING)
    review = weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=home)
    assert review.figures.drift.decision == "SKIP"
    assert [h.status for h in review.health] == ["OK", "OK", "OK", "OK"]
    assert review.exit_code == 0
    equity = written["equity"]
    base = equity[equity.index <= GOOD_NOW - timedelta(days=7)].iloc[-1]
    assert review.figures.pnl_pct == pytest.approx((equity.iloc[-1] / base - 1) * 100)
    week = equity.pct_change().dropna()
    week = week[week.index > GOOD_NOW - timedelta(days=7)]
    assert review.health[0].value == pytest.approx(week.mean() / week.std(ddof=1) * math.sqrt(8760))
    # fee 5 bps + slippage 2 bps against the assumed 8: 12.5 % drift
    assert review.health[2].value == pytest.approx(12.5, rel=1e-6)
    lines = review.report_lines()
    assert lines[0] == "=== Alt Ensemble Weekly Report ==="
    assert lines[1] == "Week: 2024-11-04 → 2024-11-10"
    assert lines[8] == "Weight Drift: ETH +0.0% / SOL +0.0% (rebalanced: N)"
    assert lines[9] == "Kill Switch: NO_ACTION"
    week_fills = [f for f in written["fills"] if f.ts >= GOOD_NOW - timedelta(days=7)]
    assert lines[5].startswith(f"Trades: {len(week_fills)} (ETH: ")


def test_drifted_weights_rebalance_with_target_deltas(tmp_path: Path) -> None:
    home, _ = seeded(
        tmp_path, funding_rate=QUIET_FUNDING, last_sleeves={"ETHUSDT": 6100.0, "SOLUSDT": 3900.0}
    )
    review = weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=home)
    drift = review.figures.drift
    assert drift.decision == "REBALANCE"
    assert [round(s.drift_pct_points, 6) for s in drift.sleeves] == [7.0, -7.0]
    assert [(o.symbol, o.side, round(o.notional, 6)) for o in drift.orders] == [
        ("ETHUSDT", "sell", 700.0),
        ("SOLUSDT", "buy", 700.0),
    ]
    assert drift.estimated_cost == pytest.approx(1400 * 8 / 1e4)
    assert review.exit_code == 1
    assert "(rebalanced: Y)" in review.report_lines()[8]
    assert review.to_dict()["weight_drift"]["decision"] == "REBALANCE"


def test_a_losing_week_warns_on_the_7_day_sharpe(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, start=BAD_START, end=BAD_NOW, funding_rate=QUIET_FUNDING)
    review = weekly.run(weekly.WeeklyReviewRequest(now=BAD_NOW), home=home)
    sharpe = review.health[0]
    assert sharpe.value < -1.0
    assert sharpe.status == "WARNING"
    assert review.figures.kill_switch == "WARNING"
    assert review.exit_code == 1


def test_a_drawdown_deepening_for_eight_days_warns(tmp_path: Path) -> None:
    index = pd.date_range(
        GOOD_NOW - timedelta(days=20), GOOD_NOW, freq="h", tz="UTC", inclusive="left"
    )
    hours = np.arange(len(index), dtype=float)
    turn = int(np.searchsorted(index, GOOD_NOW - timedelta(days=9)))  # 2024-11-02 00:00
    rising = 10_000 * (1 + 0.0001 * hours)
    peak = rising[turn - 1]
    equity = pd.Series(
        np.where(hours < turn, rising, peak * (1 - 0.0001 * (hours - turn + 1))), index=index
    )
    home, _ = seeded(tmp_path, equity=equity, funding_rate=QUIET_FUNDING)
    review = weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=home)
    check = review.health[1]
    assert check.value == 9
    assert check.status == "WARNING"


def test_costs_far_above_the_backtest_warn(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, slip_bps=6.0, funding_rate=QUIET_FUNDING)
    check = weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=home).health[2]
    assert check.value == pytest.approx((11 - 8) / 8 * 100, rel=1e-6)
    assert check.status == "WARNING"


def test_funding_above_three_percent_a_year_warns(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, funding_rate=0.0001)
    review = weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=home)
    check = review.health[3]
    assert check.status == "WARNING"
    assert check.value > 3.0
    # the bundled market funding gives the context line for both sleeves
    assert set(review.market_funding_annualized_pct) == {"ETHUSDT", "SOLUSDT"}


def test_a_snapshot_without_sleeve_equity_says_what_is_missing(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, last_sleeves={"ETHUSDT": 5400.0})
    with pytest.raises(InputError, match="no sleeve equity for SOLUSDT"):
        weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=home)


def _plans_and_events(home: Home) -> tuple[list[object], list[str]]:
    from stagectl.state import rebalance
    from stagectl.state.db import open_state
    from stagectl.state.journal import events

    with open_state(home.state_path) as db:
        kinds = [e.event_type for e in events(db) if e.event_type.startswith("REBALANCE")]
        return list(rebalance.plans(db)), kinds


def test_a_rebalance_is_recorded_for_the_trading_loop_once(tmp_path: Path) -> None:
    home, _ = seeded(
        tmp_path, funding_rate=QUIET_FUNDING, last_sleeves={"ETHUSDT": 6100.0, "SOLUSDT": 3900.0}
    )
    review = weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=home)
    assert review.plan is not None and review.plan["recorded"]
    assert (
        review.report_lines()[-1] == f"Recorded for run-live: REBALANCE as plan {review.plan['id']}"
    )
    again = weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=home)
    assert again.plan == {**review.plan, "recorded": False, "state": "recorded before"}
    (plan,), kinds = _plans_and_events(home)
    assert (plan.decision, plan.state, plan.as_of, plan.limit_timeout_s) == (  # type: ignore[attr-defined]
        "REBALANCE",
        "pending",
        GOOD_NOW,
        10.0,
    )
    assert plan.plan["target_weights_pct"] == {"ETHUSDT": 54.0, "SOLUSDT": 46.0}  # type: ignore[attr-defined]
    assert kinds == ["REBALANCE_PLANNED"]


def test_a_skip_is_recorded_as_an_event_and_a_dry_run_records_nothing(tmp_path: Path) -> None:
    home, _ = seeded(tmp_path, funding_rate=QUIET_FUNDING)
    dry = weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW, dry_run=True), home=home)
    assert dry.plan is None and _plans_and_events(home) == ([], [])
    weekly.run(weekly.WeeklyReviewRequest(now=GOOD_NOW), home=home)
    (plan,), kinds = _plans_and_events(home)
    assert (plan.decision, plan.state) == ("SKIP", "skipped")  # type: ignore[attr-defined]
    assert kinds == ["REBALANCE_SKIP"]
