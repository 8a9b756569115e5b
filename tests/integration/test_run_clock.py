"""Commands judge a run on its own clock, and the paper gate chooses the run it judges.

Real runs: a 30-day paper replay of January 2026 through run-live (a month whose
figures pass the gate; its in-loop guard off, so the one decision is the dry-run
guard run at its end as cron would run it, with no ``--now``), then a later 2-day
paper test with run-live's in-loop guard on, and cron's guard after it. Nothing passes
``--now``: the guard, the weekly review, the paper gate and ``artifacts analyze`` take
the replayed runs' last bars, and the gate judges the 30-day run, not the later test.

(The month with its in-loop guard on also passes at its own end, with 720 hourly
decisions and no warning day, but the replay then takes minutes instead of seconds.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from stagectl.config.home import Home
from stagectl.services.guard import live as guard
from stagectl.services.guard import paper_gate, weekly
from stagectl.services.guard.paper_gate import SkippedRun
from stagectl.services.live import analyze
from stagectl.services.live import run as run_live
from stagectl.state.db import open_state
from stagectl.state.directives import guard_decisions
from stagectl.state.equity import snapshots

MONTH_START = datetime(2026, 1, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 1, 31, tzinfo=UTC)  # the close of the 720th bar
TEST_START = datetime(2026, 3, 1, tzinfo=UTC)
TEST_END = datetime(2026, 3, 3, tzinfo=UTC)
LONG_AFTER = datetime(2026, 12, 3, 10, 30, tzinfo=UTC)  # "today" for these runs


@dataclass(frozen=True)
class Desk:
    home: Home
    month: str
    month_guard: guard.LiveGuardResult
    test: str
    test_guard: guard.LiveGuardResult


def _replay(home: Home, start: datetime, end: datetime, *, in_loop_guard: bool) -> str:
    request = run_live.RunLiveRequest(
        start=start, end=end - timedelta(hours=1), new_run=True, guard=in_loop_guard
    )
    result = run_live.run(request, home=home)
    assert result.status == "completed"
    return result.run_id


def _cron_guard(home: Home, *, dry_run: bool) -> guard.LiveGuardResult:
    request = guard.LiveGuardRequest(dry_run=dry_run)
    return guard.run(request, home=home, env={}, wall_clock=lambda: LONG_AFTER)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Desk:
    root = tmp_path_factory.mktemp("run-clock") / "home"
    root.mkdir()
    home = Home(root=root)
    month = _replay(home, MONTH_START, MONTH_END, in_loop_guard=False)
    month_guard = _cron_guard(home, dry_run=True)
    test = _replay(home, TEST_START, TEST_END, in_loop_guard=True)
    return Desk(home, month, month_guard, test, _cron_guard(home, dry_run=False))


def test_the_guard_judges_a_replayed_run_at_its_last_bar_not_today(desk: Desk) -> None:
    result = desk.month_guard
    assert result.run_id == desk.month
    assert (result.as_of.at, result.as_of.basis) == (MONTH_END, "last bar")
    assert result.as_of.reason == "replayed run"
    assert result.data["last_snapshot"] == MONTH_END
    assert result.data["last_snapshot_age_min"] == 0.0
    assert "equity_snapshots_stale" not in {h["rule"] for h in result.decision["hits"]}
    with open_state(desk.home.state_path) as db:
        recorded = guard_decisions(db, run_id=desk.month)
    assert [(d.ts, d.action) for d in recorded] == [(MONTH_END, result.decision["action"])]


def test_the_guard_judges_the_run_with_the_latest_snapshot_at_that_runs_last_bar(
    desk: Desk,
) -> None:
    result = desk.test_guard
    assert (result.run_id, result.as_of.at) == (desk.test, TEST_END)
    assert result.body()["as_of"] == {
        "at": "2026-03-03T00:00:00Z",
        "basis": "last bar",
        "reason": "replayed run",
    }


def test_cron_after_a_replay_finds_the_last_hour_judged_by_the_loop_and_records_nothing(
    desk: Desk,
) -> None:
    """Judged at the run's last bar, cron's guard lands in the hour run-live's in-loop
    guard already recorded, so the run keeps one decision per bar, none dated today."""
    result = desk.test_guard
    assert result.already_evaluated
    with open_state(desk.home.state_path) as db:
        recorded = guard_decisions(db, run_id=desk.test)
    assert [d.ts for d in recorded] == [TEST_END - k * timedelta(hours=1) for k in range(48)]
    assert result.decision_id == recorded[0].id


def test_the_paper_gate_judges_the_30_day_run_and_passes_at_its_own_end(desk: Desk) -> None:
    result = paper_gate.run(
        paper_gate.PaperGateRequest(), home=desk.home, wall_clock=lambda: LONG_AFTER
    )
    assert result.run_id == desk.month
    assert result.now == MONTH_END
    assert result.choice.skipped == (SkippedRun(desk.test, "covers 2.00 days"),)
    rows = {c.id: c for c in result.rows()}
    assert rows["history_days"].value == pytest.approx(30.0)
    assert result.evidence["daily_returns"] == 30
    # the decision the guard recorded at the run's last bar is the gate's evidence
    assert result.evidence["guard_decisions"] == 1
    assert result.passed, [(c.id, c.value, c.reason) for c in result.rows() if not c.passed]
    assert result.body()["window"]["start"] == "2026-01-01T00:00:00Z"


def test_the_gate_opens_the_window_at_the_runs_initial_equity(desk: Desk) -> None:
    """Day 1's return is its last close over the 10,000 USD the run started with."""
    result = paper_gate.run(paper_gate.PaperGateRequest(run_id=desk.month), home=desk.home)
    with open_state(desk.home.state_path) as db:
        rows = snapshots(db, desk.month)
    assert len(rows) == 720 and rows[0].ts == MONTH_START + timedelta(hours=1)
    closes = [rows[24 * day - 1].equity for day in range(1, 31)]  # 01-02 00:00, ...
    daily = np.array(closes) / np.array([10_000.0, *closes[:-1]]) - 1
    equity = np.array([10_000.0, *(s.equity for s in rows)])
    drawdown = np.max(1 - equity / np.maximum.accumulate(equity)) * 100
    values = {c.id: c.value for c in result.rows()}
    assert result.evidence["initial_equity"] == 10_000.0
    assert values["sharpe_30d"] == pytest.approx(daily.mean() / daily.std(ddof=1) * math.sqrt(252))
    assert values["max_mdd_pct"] == pytest.approx(drawdown)


def test_one_bar_before_its_end_a_30_day_run_does_not_yet_cover_30_days(desk: Desk) -> None:
    request = paper_gate.PaperGateRequest(now=MONTH_END - timedelta(hours=1), run_id=desk.month)
    result = paper_gate.run(request, home=desk.home)
    assert result.rows()[0].value == pytest.approx(30 - 1 / 24)
    assert not result.passed


def test_the_weekly_review_reviews_the_week_before_the_runs_last_bar(desk: Desk) -> None:
    request = weekly.WeeklyReviewRequest(run_id=desk.month)
    review = weekly.run(request, home=desk.home, wall_clock=lambda: LONG_AFTER)
    assert (review.now, review.as_of.basis) == (MONTH_END, "last bar")
    report = review.report_lines()
    assert report[1] == "Week: 2026-01-24 → 2026-01-30"
    assert sum(review.figures.trades.values()) > 0
    assert review.guard_decisions == 1  # the guard's decision at the run's last bar


def test_artifacts_analyze_answers_as_of_the_runs_last_bar(desk: Desk) -> None:
    analysis = analyze.run(analyze.AnalyzeRequest(desk.month), home=desk.home)
    assert analysis.as_of is not None
    assert (analysis.as_of.at, analysis.as_of.basis) == (MONTH_END, "last bar")
    assert analysis.body()["as_of"]["reason"] == "replayed run"
    assert analysis.artifacts_through is not None
    assert analysis.artifacts_through.startswith("2026-01-31T00:00:00")


def test_artifacts_copied_out_of_the_home_have_no_as_of_time(desk: Desk, tmp_path: Path) -> None:
    copied = tmp_path / "copied"
    copied.mkdir()
    for path in (desk.home.artifacts_dir / "stage3" / desk.month).iterdir():
        (copied / path.name).write_bytes(path.read_bytes())
    analysis = analyze.run(analyze.AnalyzeRequest(str(copied)), home=Home(root=tmp_path))
    assert analysis.as_of is None
    assert "not in the state database" in analysis.describe_clock()
