"""Research services on the bundled data: the window engine against run_backtest, split
leakage on the real index, the audit against `backtest`, shadow p-values, breakers."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stagectl.cli._common import parse_utc
from stagectl.config.home import Home
from stagectl.domain.backtest import run_backtest
from stagectl.domain.validation import Fold, index_ranges
from stagectl.services.research import audit as research_audit
from stagectl.services.research import backtest as backtest_service
from stagectl.services.research import cpcv as research_cpcv
from stagectl.services.research import shadow as research_shadow
from stagectl.services.research.engine import (
    ReturnsEngine,
    candidate_grid,
    load_market,
)
from stagectl.services.research.walk_forward import WalkForwardRequest, evaluate
from stagectl.services.strategy.sleeves import build_sleeves

NOW = datetime(2026, 5, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return load_market(Home.resolve(tmp_path_factory.mktemp("home")), None, None)


@pytest.mark.parametrize(
    ("candidate", "lo", "hi"), [(0, 800, 2600), (4, 9000, 9500), (7, 15000, 20795)]
)
def test_window_engine_matches_run_backtest_bar_for_bar(market, candidate, lo, hi) -> None:  # type: ignore[no-untyped-def]
    grid = candidate_grid(market.config, fixed=False)
    engine = ReturnsEngine(market, grid, cost_multiplier=1.5)
    config = grid[candidate].config
    start, end = market.index[lo].to_pydatetime(), market.index[hi - 1].to_pydatetime()
    sleeves, _ = build_sleeves(config, None, start, end)
    expected = run_backtest(
        sleeves,
        fee_bps=config.costs.fee_bps,
        slippage_bps=config.costs.slippage_bps,
        cost_multiplier=1.5,
        initial_equity=config.initial_equity_usd,
        signal_delay=config.execution.signal_delay_bars,
    )
    window = engine.window(candidate, lo, hi)
    np.testing.assert_allclose(window.net, expected.net_returns.to_numpy(), rtol=0, atol=1e-15)
    assert window.trades == len(expected.trades)


def _assert_no_leakage(
    index: pd.DatetimeIndex, fold: Fold, purge: pd.Timedelta, embargo: pd.Timedelta
) -> None:
    train_times = index[fold.train]
    for lo, hi in index_ranges(fold.test):
        first, last = index[lo], index[hi - 1]
        inside = (train_times > first - purge) & (train_times < last + purge + embargo)
        assert not inside.any(), f"fold {fold.fold}: training bar within purge/embargo"
    assert not np.intersect1d(fold.train, fold.test).size


def test_walk_forward_folds_never_train_within_the_purge_of_a_test_bar(market) -> None:  # type: ignore[no-untyped-def]
    result = evaluate(
        market, WalkForwardRequest(purge=timedelta(days=5), embargo=timedelta(days=2))
    )
    index = market.index[result.first_bar :]
    assert len(result.folds) >= 20
    for fold in result.folds:
        _assert_no_leakage(index, fold, pd.Timedelta(days=5), pd.Timedelta(days=2))
        assert index[fold.train[-1]] <= index[fold.test[0]] - pd.Timedelta(days=5)
    tests = [(f.test[0], f.test[-1]) for f in result.folds]
    assert all(a[1] < b[0] for a, b in itertools.pairwise(tests))


def test_cpcv_splits_never_train_within_purge_or_embargo_on_the_real_index(
    tmp_path: Path,
) -> None:
    request = research_cpcv.CpcvRequest(
        folds=8, test_folds=3, purge=timedelta(days=5), embargo=timedelta(days=1)
    )
    result = research_cpcv.run(request, home=Home.resolve(tmp_path))
    index = result.market.index[result.first_bar :]
    assert len(result.splits) == 56
    for split in result.splits:
        _assert_no_leakage(index, split, pd.Timedelta(days=5), pd.Timedelta(days=1))
    assert result.body["settings"]["paths"] == 21


def test_audit_holdout_rows_are_the_backtest_of_the_last_12_months(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path)
    body = research_audit.run(research_audit.AuditRequest(), home=home).body
    start = body["windows"]["holdout"]["start"]
    assert start == "2025-05-16T10:00:00Z"
    same = backtest_service.run(
        backtest_service.BacktestRequest(start=parse_utc(start, option="--start")), home=home
    )
    rows = {row["check"]: row for row in body["table"]}
    assert rows["holdout Sharpe (12 months)"]["value"] == same.metrics["sharpe_net"]
    assert rows["holdout max drawdown"]["value"] == pytest.approx(
        same.metrics["max_drawdown"] * 100
    )
    assert body["verdict"]["passed"] is False
    assert rows["nested walk-forward mean OOS Sharpe"]["bar"] == 0.8


def _record(home: Home, run_id: str, multiplier: float) -> None:
    request = backtest_service.BacktestRequest(
        start=parse_utc("2025-08-01", option="--start"),
        end=parse_utc("2025-09-30", option="--end", end_of_day=True),
        cost_multiplier=multiplier,
    )
    research_shadow.run_record_backtest(
        research_shadow.RecordBacktestRequest(run_id, request), home=home, clock=lambda: NOW
    )


def test_shadow_p_values_separate_a_better_candidate_from_the_same_strategy(
    tmp_path: Path,
) -> None:
    home = Home.resolve(tmp_path)
    _record(home, "baseline", 2.0)
    _record(home, "better", 0.0)
    _record(home, "same", 2.0)
    better = research_shadow.run_compare(
        research_shadow.ShadowCompareRequest("baseline", "better"), home=home
    ).body
    same = research_shadow.run_compare(
        research_shadow.ShadowCompareRequest("baseline", "same"), home=home
    ).body
    assert better["tests"]["bootstrap_p_value"] < 0.05
    assert same["tests"]["bootstrap_p_value"] > 0.05
    assert same["tests"]["welch_p_value"] > 0.05
    assert better["periods"]["days"] == pytest.approx(60 + 23 / 24, abs=1e-9)
    assert better["periods"]["periods_per_year"] == pytest.approx(8760.0)


def test_breakers_scale_the_held_positions_by_the_multiplier(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path)
    start = parse_utc("2025-06-01", option="--start")
    end = parse_utc("2025-08-31", option="--end", end_of_day=True)
    plain = backtest_service.run(backtest_service.BacktestRequest(start=start, end=end), home=home)
    guarded = backtest_service.run(
        backtest_service.BacktestRequest(start=start, end=end, breakers=True), home=home
    )
    from stagectl.services.research.breakers import breaker_plan, scaled_sleeves

    sleeves, _ = build_sleeves(
        plain.strategy,
        None,
        start,
        end,
    )
    _, fired = scaled_sleeves(sleeves, plain.result, breaker_plan(home, None), 1)
    expected = plain.result.positions.mul(fired.multiplier.to_numpy(), axis=0)
    pd.testing.assert_frame_equal(guarded.result.positions, expected, check_names=False)
    assert guarded.metrics["breakers"]["firings"]
