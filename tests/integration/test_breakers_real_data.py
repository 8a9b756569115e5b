"""The breakers bar by bar on a backtest of the bundled ETH/SOL data equal apply_breakers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from stagectl.config.home import Home
from stagectl.data import load_candles
from stagectl.domain.breaker_state import replay_breakers
from stagectl.domain.breakers import DAILY_DRAWDOWN, LOSS_STREAK, VOLATILITY, apply_breakers
from stagectl.services.research import backtest
from stagectl.services.research.breakers import breaker_plan, closed_trade_pnl


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home.resolve(Path(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="module")
def full_sample(home: Home) -> backtest.BacktestRun:
    """The Alt Ensemble over all the bundled bars (2024-01 .. 2026-05, ~20 800 hours)."""
    return backtest.run(backtest.BacktestRequest(), home=home)


@pytest.mark.parametrize("preset", [None, "conservative", "aggressive"])
def test_bar_by_bar_breakers_equal_apply_breakers_on_a_real_backtest(
    home: Home, full_sample: backtest.BacktestRun, preset: str | None
) -> None:
    plan = breaker_plan(home, preset)
    returns, trades = full_sample.result.net_returns, closed_trade_pnl(full_sample.result)
    expected = apply_breakers(returns, trade_pnl=trades, settings=plan.settings)
    got = replay_breakers(returns, trade_pnl=trades, settings=plan.settings)
    pd.testing.assert_series_equal(got.multiplier, expected.multiplier, check_exact=True)
    pd.testing.assert_frame_equal(got.components, expected.components, check_exact=True)
    assert got.firings == expected.firings
    assert {f.breaker for f in expected.firings} == {DAILY_DRAWDOWN, LOSS_STREAK, VOLATILITY}


def test_bar_by_bar_breakers_equal_apply_breakers_when_watching_the_market(
    home: Home, full_sample: backtest.BacktestRun
) -> None:
    plan = breaker_plan(home, "balanced")
    returns, trades = full_sample.result.net_returns, closed_trade_pnl(full_sample.result)
    market = load_candles("ETHUSDT")["close"].pct_change()
    expected = apply_breakers(
        returns, trade_pnl=trades, volatility_returns=market, settings=plan.settings
    )
    got = replay_breakers(
        returns, trade_pnl=trades, volatility_returns=market, settings=plan.settings
    )
    pd.testing.assert_series_equal(got.multiplier, expected.multiplier, check_exact=True)
    assert got.firings == expected.firings
    assert any(f.breaker == VOLATILITY for f in expected.firings)
