from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain.performance import (
    bar_minutes,
    cagr,
    capacity_estimate,
    cost_shares,
    daily_returns,
    dispersion,
    drawdown_episodes,
    drawdown_summary,
    n_day_return,
    periods_per_year,
    rolling_sharpe,
    running_drawdown,
    sharpe,
    sortino,
    stability,
    trade_stats,
)
from stagectl.errors import InputError

RETURNS = [0.01, -0.01, 0.02, 0.0]  # mean 0.005; squared deviations sum to 500e-6


def test_periods_per_year_from_bar_size() -> None:
    assert periods_per_year("1h") == 8760
    assert periods_per_year("1m") == 525600
    assert periods_per_year("1d") == 365
    assert bar_minutes("4h") == 240


def test_bar_size_must_be_readable() -> None:
    with pytest.raises(InputError):
        periods_per_year("hourly")


def test_sharpe_uses_ddof_one_and_square_root_annualisation() -> None:
    expected = 0.005 / math.sqrt(500e-6 / 3) * math.sqrt(365)  # 7.399
    assert sharpe(RETURNS, 365) == pytest.approx(expected)


def test_sharpe_is_undefined_without_variance() -> None:
    assert sharpe([0.01, 0.01], 365) is None
    assert sharpe([0.01], 365) is None


def test_sortino_downside_deviation_is_rms_of_losses_over_all_periods() -> None:
    # min(r, 0) = 0, -0.01, 0, 0 -> sqrt(1e-4 / 4) = 0.005
    assert sortino(RETURNS, 365) == pytest.approx(0.005 / 0.005 * math.sqrt(365))
    assert sortino([0.01, 0.02], 365) is None


EQUITY = pd.Series([100.0, 110.0, 99.0, 104.5, 110.0, 121.0, 108.9])


def test_running_drawdown_and_episodes() -> None:
    drawdown = running_drawdown(EQUITY)
    assert drawdown.tolist() == pytest.approx([0, 0, -0.1, -0.05, 0, 0, -0.1])
    episodes = drawdown_episodes(drawdown)
    assert episodes["start_bar"].tolist() == [2, 6]
    assert episodes["depth"].tolist() == pytest.approx([-0.1, -0.1])
    assert episodes["recovered"].tolist() == [True, False]
    # peak at bar 1, back at the peak on bar 4; open episode: peak bar 5, last bar 6
    assert episodes["bars"].tolist() == [3, 1]


def test_drawdown_summary_in_bars_and_days() -> None:
    summary = drawdown_summary(running_drawdown(EQUITY), bar_min=60.0)
    assert summary["max_drawdown"] == pytest.approx(0.1)
    assert summary["avg_drawdown"] == pytest.approx(0.1)
    assert summary["longest_recovery_bars"] == 3
    assert summary["longest_recovery_days"] == pytest.approx(3 / 24)
    assert summary["current_underwater_bars"] == 1


def test_initial_equity_counts_as_the_first_peak() -> None:
    drawdown = running_drawdown(pd.Series([90.0, 100.0, 120.0]), initial_equity=100.0)
    assert drawdown.tolist() == pytest.approx([-0.1, 0.0, 0.0])


def test_cagr_over_two_years_of_daily_bars() -> None:
    assert cagr(1.21, 730, 365) == pytest.approx(0.1)
    assert cagr(0.0, 730, 365) is None


def test_rolling_sharpe_over_one_day_of_three_bars() -> None:
    index = pd.date_range("2024-01-01", periods=4, freq="8h", tz="UTC")
    returns = pd.Series([0.01, -0.01, 0.02, 0.0], index=index)
    result = rolling_sharpe(returns, 1, periods_per_day=3, periods_per_year=1095)
    assert result.iloc[:2].isna().all()
    # window [0.01, -0.01, 0.02]: mean 0.00667, std 0.015275
    assert result.iloc[2] == pytest.approx(
        np.mean([0.01, -0.01, 0.02]) / np.std([0.01, -0.01, 0.02], ddof=1) * math.sqrt(1095)
    )


def test_n_day_return_looks_back_by_calendar_time() -> None:
    index = pd.date_range("2024-01-01", periods=5, freq="12h", tz="UTC")
    equity = pd.Series([100.0, 105.0, 110.0, 99.0, 121.0], index=index)
    result = n_day_return(equity, 1)
    assert result.iloc[:2].isna().all()
    assert result.iloc[2:].tolist() == pytest.approx([0.10, 99 / 105 - 1, 0.10])


def test_daily_returns_compound_bars_within_a_utc_day() -> None:
    index = pd.DatetimeIndex(["2024-01-01T10:00Z", "2024-01-01T23:00Z", "2024-01-02T00:00Z"])
    daily = daily_returns(pd.Series([0.1, 0.1, -0.5], index=index))
    assert daily.tolist() == pytest.approx([0.21, -0.5])


def test_trade_stats_over_closed_trades() -> None:
    trades = pd.DataFrame(
        {
            "pnl": [10.0, -5.0, 0.0, 20.0, -10.0, 99.0],
            "holding_bars": [1, 2, 3, 4, 5, 6],
            "is_open": [False] * 5 + [True],
        }
    )
    stats = trade_stats(trades)
    assert stats["closed_trades"] == 5
    assert stats["hit_rate"] == pytest.approx(0.4)
    assert stats["avg_win"] == pytest.approx(15.0)
    assert stats["avg_loss"] == pytest.approx(-7.5)
    assert stats["profit_factor"] == pytest.approx(2.0)
    assert stats["avg_holding_bars"] == pytest.approx(3.0)


def test_cost_shares_are_undefined_without_gross_alpha() -> None:
    assert cost_shares(100.0, 20.0, 10.0, -5.0) == pytest.approx(
        {"fee": 0.2, "slippage": 0.1, "funding": -0.05}
    )
    assert cost_shares(0.0, 20.0, 10.0, 5.0) == {"fee": None, "slippage": None, "funding": None}


def test_capacity_is_where_square_root_impact_eats_half_the_net_edge() -> None:
    traded = pd.DataFrame({"X": [0.5, 0.0, 0.5, 0.2]})
    volume = pd.DataFrame({"X": [1e9, 1e9, 4e9, 0.0]})
    net = pd.Series([0.004, 0.003, 0.003, 0.0])
    estimate = capacity_estimate(net, traded, volume)
    equity = estimate["capacity_equity"]
    impact = sum(a * equity * 5e-4 * math.sqrt(a * equity / v) for a, v in [(0.5, 1e9), (0.5, 4e9)])
    assert impact == pytest.approx(0.5 * 0.01 * equity)
    assert estimate["fills"] == 3
    assert estimate["fills_without_volume"] == 1
    assert estimate["net_edge_bps_per_traded_notional"] == pytest.approx(0.01 / 1.2 * 1e4)


def test_capacity_is_zero_without_net_edge() -> None:
    traded = pd.DataFrame({"X": [1.0]})
    estimate = capacity_estimate(pd.Series([-0.01]), traded, pd.DataFrame({"X": [1e6]}))
    assert estimate["capacity_equity"] == 0.0


def test_dispersion_across_years() -> None:
    result = dispersion({"2024": {"sharpe": 1.0}, "2025": {"sharpe": 3.0}})
    assert result["sharpe"] == pytest.approx(
        {"mean": 2.0, "std": math.sqrt(2.0), "min": 1.0, "max": 3.0}
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-0.2, 0.2), min_size=1, max_size=80))
def test_drawdown_is_never_positive_and_episode_depths_match_its_minimum(
    returns: list[float],
) -> None:
    equity = pd.Series(100.0 * np.cumprod(1.0 + np.array(returns)))
    drawdown = running_drawdown(equity, 100.0)
    assert (drawdown <= 1e-15).all()
    episodes = drawdown_episodes(drawdown)
    if len(episodes):
        assert episodes["depth"].min() == pytest.approx(drawdown.min())


def test_stability_groups_bars_by_calendar_year_in_any_order() -> None:
    index = pd.date_range("2023-12-31 20:00", periods=10, freq="1h", tz="UTC")
    returns = np.array([0.01, -0.02, 0.03, 0.01, -0.01, 0.02, 0.0, 0.01, -0.03, 0.02])
    by_year = stability(index, returns, {}, 8760.0)["by_year"]
    assert list(by_year) == ["2023", "2024"]
    assert by_year["2023"]["total_return"] == pytest.approx(1.01 * 0.98 * 1.03 * 1.01 - 1)
    assert by_year["2024"]["sharpe"] == pytest.approx(sharpe(returns[4:], 8760.0))
    shuffled = np.random.default_rng(0).permutation(10)
    again = stability(index[shuffled], returns[shuffled], {}, 8760.0)["by_year"]
    in_year_order = [i for i in shuffled if i < 4]
    assert again["2023"]["total_return"] == pytest.approx(by_year["2023"]["total_return"])
    assert again["2023"]["max_drawdown"] == pytest.approx(
        -float(running_drawdown(pd.Series(np.cumprod(1 + returns[in_year_order])), 1.0).min())
    )
