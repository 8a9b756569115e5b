"""Circuit breakers (seed 001 §6): daily stop, loss streak, volatility defense."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stagectl.config.risk_presets import CircuitBreakers
from stagectl.domain.breakers import (
    DAILY_DRAWDOWN,
    LOSS_STREAK,
    VOLATILITY,
    BreakerSettings,
    apply_breakers,
    daily_drawdown_stop,
    loss_streak_multipliers,
    trading_day,
    volatility_defense,
)


def hourly(values: list[float], start: str = "2024-03-01 20:00") -> pd.Series:
    index = pd.date_range(start, periods=len(values), freq="h", tz="UTC")
    return pd.Series(values, index=index, dtype=float)


def test_daily_stop_zeroes_the_rest_of_the_day_and_resets_at_midnight() -> None:
    # 20:00 -2 %, 21:00 -1.5 % -> day return 0.98*0.985-1 = -3.47 %: fires at 21:00;
    # 22:00 and 23:00 are stopped; 00:00 (next day) trades again.
    returns = hourly([-0.02, -0.015, 0.05, -0.01, -0.01])
    multiplier, firings = daily_drawdown_stop(returns, 3.0)
    assert multiplier.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert len(firings) == 1
    assert firings[0].time == returns.index[1]
    assert firings[0].value == pytest.approx(0.98 * 0.985 - 1)
    assert firings[0].threshold == -0.03


def test_daily_stop_is_measured_from_the_day_start_not_the_intraday_peak() -> None:
    # +5 % then -4 %: from the day start 1.05*0.96-1 = +0.8 %, no stop
    multiplier, firings = daily_drawdown_stop(hourly([0.05, -0.04, -0.001]), 3.0)
    assert multiplier.tolist() == [1.0, 1.0, 1.0]
    assert firings == []


def test_trading_day_honours_the_reset_time() -> None:
    index = pd.DatetimeIndex(["2024-03-01 23:00", "2024-03-02 00:00"], tz="UTC")
    assert trading_day(index).strftime("%d").tolist() == ["01", "02"]
    shifted = trading_day(index, "00:30").strftime("%d").tolist()
    assert shifted == ["01", "01"]


def test_loss_streak_halves_after_three_losses_and_resets_on_a_win() -> None:
    pnl = [-1.0, -1.0, 0.0, -1.0, -2.0, 3.0, -1.0]
    streak, multiplier = loss_streak_multipliers(pnl)
    assert streak.tolist() == [1, 2, 2, 3, 4, 0, 1]  # break-even keeps the count
    assert multiplier.tolist() == [1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0]


def test_streak_acts_on_bars_after_the_closing_trade() -> None:
    returns = hourly([0.0] * 6, start="2024-03-01 00:00")
    closes = pd.DatetimeIndex(
        ["2024-03-01 00:30", "2024-03-01 01:00", "2024-03-01 01:30", "2024-03-01 03:30"],
        tz="UTC",
    )
    trades = pd.Series([-1.0, -1.0, -1.0, 2.0], index=closes)
    result = apply_breakers(returns, trade_pnl=trades)
    # third loss closes 01:30 -> bars 02:00 and 03:00 halved; the win at 03:30 resets
    assert result.components[LOSS_STREAK].tolist() == [1.0, 1.0, 0.5, 0.5, 1.0, 1.0]
    streak_firings = [f for f in result.firings if f.breaker == LOSS_STREAK]
    assert [(f.time, f.value, f.threshold) for f in streak_firings] == [(closes[2], 3.0, 3.0)]


def test_volatility_defense_enters_above_the_rolling_percentile_and_leaves_below() -> None:
    calm = [0.001, -0.001] * 20
    returns = hourly([*calm, 0.05, -0.05, 0.001, -0.001, 0.001, -0.001])
    settings = BreakerSettings(volatility_window_bars=2, volatility_lookback_bars=10)
    table = volatility_defense(returns, settings)
    # calm windows all have the same vol (std of [0.001, -0.001] = sqrt(2)*0.001)
    assert table["realized_vol"].iloc[5] == pytest.approx(np.sqrt(2) * 0.001)
    assert table["defense"].iloc[:40].sum() == 0
    assert table["defense"].iloc[40]
    result = apply_breakers(returns, settings=settings)
    vol_mult = result.components[VOLATILITY]
    assert vol_mult.iloc[41] == 0.5  # defense from the bar after it was seen
    assert vol_mult.iloc[40] == 1.0
    firing = next(f for f in result.firings if f.breaker == VOLATILITY)
    assert firing.time == returns.index[40]
    assert firing.value > firing.threshold
    assert vol_mult.iloc[-1] == 1.0  # back below the threshold -> reset


def test_daily_stop_sees_returns_already_scaled_by_the_other_breakers() -> None:
    # 3 losses close before the day; halved size turns -4 % into -2 %: no daily stop
    returns = hourly([-0.04, -0.001], start="2024-03-02 00:00")
    closes = pd.DatetimeIndex(["2024-03-01 10:00", "2024-03-01 11:00", "2024-03-01 12:00"])
    trades = pd.Series([-1.0, -1.0, -1.0], index=closes.tz_localize("UTC"))
    settings = BreakerSettings(volatility_lookback_bars=1000)
    result = apply_breakers(returns, trade_pnl=trades, settings=settings)
    assert result.multiplier.tolist() == [0.5, 0.5]
    assert all(f.breaker != DAILY_DRAWDOWN for f in result.firings)
    unscaled = apply_breakers(returns, settings=settings)
    assert unscaled.multiplier.tolist() == [1.0, 0.0]


def test_settings_from_the_config_model() -> None:
    config = CircuitBreakers(
        daily_drawdown_stop_pct=2.0, daily_reset_utc="00:00", streak_losses=4,
        streak_size_multiplier=0.25, volatility_percentile=90,
    )  # fmt: skip
    settings = BreakerSettings.from_config(config, defense_multiplier=0.0)
    assert (settings.streak_losses, settings.defense_multiplier) == (4, 0.0)
    assert settings.daily_drawdown_stop_pct == 2.0
    assert settings.volatility_window_bars == BreakerSettings().volatility_window_bars
