"""Circuit breakers (seed 001 §6): daily drawdown stop, loss streak, volatility defense.

Conventions (docs/research.md, "Circuit breakers"):

- Inputs are per-bar returns at full size (fraction of equity, UTC DatetimeIndex, sorted)
  and, for the streak breaker, closed-trade PnL indexed by close time.
- The output multiplier ``m[t]`` scales the size in force for bar t, and so the return of
  bar t. A state known at the end of bar t (or at a trade close at time c) acts from the
  next bar (bars stamped after c): no breaker uses information from its own bar.
- The combined multiplier is daily x streak x volatility; the daily stop is evaluated on
  the returns already scaled by the other two (a halved size loses half as fast).
- A firing is recorded when a breaker enters its fired state, not on every bar it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stagectl.config.risk_presets import CircuitBreakers
from stagectl.errors import InputError

DAILY_DRAWDOWN = "daily_drawdown"
LOSS_STREAK = "loss_streak"
VOLATILITY = "volatility"


@dataclass(frozen=True)
class BreakerSettings:
    """Seed 001 §6 defaults; the window sizes and defense multiplier are our choices."""

    daily_drawdown_stop_pct: float = 3.0
    daily_reset_utc: str = "00:00"
    streak_losses: int = 3
    streak_size_multiplier: float = 0.5
    volatility_percentile: float = 95.0
    volatility_window_bars: int = 24
    volatility_lookback_bars: int = 720
    defense_multiplier: float = 0.5

    @classmethod
    def from_config(cls, config: CircuitBreakers, **overrides: Any) -> BreakerSettings:
        values: dict[str, Any] = {
            "daily_drawdown_stop_pct": config.daily_drawdown_stop_pct,
            "daily_reset_utc": config.daily_reset_utc,
            "streak_losses": config.streak_losses,
            "streak_size_multiplier": config.streak_size_multiplier,
            "volatility_percentile": config.volatility_percentile,
        }
        return cls(**{**values, **overrides})


@dataclass(frozen=True)
class Firing:
    """One breaker firing, ready to be recorded as an event."""

    time: pd.Timestamp
    breaker: str
    value: float
    threshold: float

    def as_event(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "breaker": self.breaker,
            "value": self.value,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class BreakerResult:
    """Per-bar multipliers (``components``: one column per breaker) and the firings."""

    multiplier: pd.Series
    components: pd.DataFrame
    firings: list[Firing]


def loss_streak_multipliers(
    trade_pnl: Any, streak_losses: int = 3, size_multiplier: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive-loss count after each trade and the size multiplier it sets.

    A loss is pnl < 0 and a win pnl > 0; a break-even trade leaves the count as it is.
    The count resets to 0 on a win. The multiplier is ``size_multiplier`` while the count
    is at least ``streak_losses`` (it does not compound: 5 losses still halve once).
    """
    pnl = np.asarray(trade_pnl, dtype=np.float64)
    losses = np.cumsum(pnl < 0)
    at_last_win = np.maximum.accumulate(np.where(pnl > 0, losses, 0)) if pnl.size else losses
    streak = losses - at_last_win
    multiplier = np.where(streak >= streak_losses, size_multiplier, 1.0)
    return streak.astype(np.int64), multiplier


def _streak_component(
    index: pd.DatetimeIndex, trade_pnl: pd.Series, settings: BreakerSettings
) -> tuple[np.ndarray, list[Firing]]:
    closes = pd.DatetimeIndex(trade_pnl.index)
    if not closes.is_monotonic_increasing:
        raise InputError("trades must be sorted by close time", where="trade_pnl")
    streak, after = loss_streak_multipliers(
        trade_pnl.to_numpy(), settings.streak_losses, settings.streak_size_multiplier
    )
    last_closed = np.searchsorted(closes.as_unit("ns").asi8, index.as_unit("ns").asi8) - 1
    bars = np.where(last_closed >= 0, after[np.maximum(last_closed, 0)], 1.0)
    entered = (streak == settings.streak_losses) & np.concatenate(
        ([True], streak[:-1] < streak[1:])
    )
    firings = [
        Firing(closes[k], LOSS_STREAK, float(streak[k]), float(settings.streak_losses))
        for k in np.flatnonzero(entered).tolist()
    ]
    return bars, firings


def volatility_defense(returns: pd.Series, settings: BreakerSettings) -> pd.DataFrame:
    """Realized vol vs its rolling percentile; ``defense`` at bar t acts from bar t+1.

    ``realized_vol[t]`` = std (ddof=1) of the last ``volatility_window_bars`` returns
    through t; ``threshold[t]`` = the ``volatility_percentile``-th percentile (linear
    interpolation) of the ``volatility_lookback_bars`` realized vols before t. Defense
    holds while realized_vol > threshold and ends when it drops back to or below it.
    NaN (warm-up) is never defense.
    """
    vol = returns.rolling(settings.volatility_window_bars).std(ddof=1)
    lookback = settings.volatility_lookback_bars
    threshold = (
        vol.shift(1)
        .rolling(lookback, min_periods=lookback)
        .quantile(settings.volatility_percentile / 100.0, interpolation="linear")
    )
    defense = (vol > threshold).fillna(False).astype(bool)
    return pd.DataFrame({"realized_vol": vol, "threshold": threshold, "defense": defense})


def _volatility_component(
    returns: pd.Series, settings: BreakerSettings
) -> tuple[np.ndarray, list[Firing]]:
    table = volatility_defense(returns, settings)
    defense = table["defense"].to_numpy(dtype=bool)
    previous = np.concatenate(([False], defense[:-1]))
    multiplier = np.where(previous, settings.defense_multiplier, 1.0)
    firings = [
        Firing(
            returns.index[k],
            VOLATILITY,
            float(table["realized_vol"].iloc[k]),
            float(table["threshold"].iloc[k]),
        )
        for k in np.flatnonzero(defense & ~previous).tolist()
    ]
    return multiplier, firings


def reset_offset(reset_utc: str = "00:00") -> pd.Timedelta:
    """The daily reset ``HH:MM`` (UTC) as the time since midnight."""
    hours, minutes = (int(part) for part in reset_utc.split(":"))
    return pd.Timedelta(hours=hours, minutes=minutes)


def trading_day(index: pd.DatetimeIndex, reset_utc: str = "00:00") -> pd.DatetimeIndex:
    """The trading day of each stamp: the UTC date of ``t - reset`` (reset ``HH:MM``)."""
    times = index.tz_convert("UTC") if index.tz is not None else index
    return (times - reset_offset(reset_utc)).floor("D")


def daily_drawdown_stop(
    returns: pd.Series, stop_pct: float = 3.0, reset_utc: str = "00:00"
) -> tuple[np.ndarray, list[Firing]]:
    """Stop for the rest of the trading day once the day's loss reaches ``stop_pct``.

    The day's return through bar t is ``prod(1 + r) - 1`` over that day's bars (equity
    relative to the equity at the reset). When it is <= -stop_pct/100 at bar t, bars
    t+1.. of the same day get 0; the next trading day starts at 1 again. Because the
    stopped bars then earn 0, evaluating on the unstopped returns is exact.
    """
    if returns.empty:
        return np.ones(0), []
    day = trading_day(pd.DatetimeIndex(returns.index), reset_utc)
    growth = (1.0 + returns).groupby(day).cumprod() - 1.0
    hit = growth <= -stop_pct / 100.0
    stopped_through = hit.astype(int).groupby(day).cummax().astype(bool)
    stopped_before = stopped_through.groupby(day).shift(1, fill_value=False).astype(bool)
    first_hits = np.flatnonzero(stopped_through.to_numpy() & ~stopped_before.to_numpy())
    firings = [
        Firing(returns.index[k], DAILY_DRAWDOWN, float(growth.iloc[k]), -stop_pct / 100.0)
        for k in first_hits.tolist()
    ]
    return np.where(stopped_before.to_numpy(), 0.0, 1.0), firings


def apply_breakers(
    returns: pd.Series,
    *,
    trade_pnl: pd.Series | None = None,
    volatility_returns: pd.Series | None = None,
    settings: BreakerSettings | None = None,
) -> BreakerResult:
    """All three breakers over a return series (see the module docstring for timing).

    ``volatility_returns`` (e.g. the market's returns on the same index) feed the
    volatility breaker; by default it watches ``returns`` itself. ``trade_pnl`` (closed
    trades by close time) feeds the streak breaker; without it the streak multiplier is 1.
    """
    settings = settings or BreakerSettings()
    index = pd.DatetimeIndex(returns.index)
    if not (index.is_monotonic_increasing and index.is_unique):
        raise InputError("returns must have a sorted, unique time index", where="returns")
    streak = np.ones(len(returns))
    firings: list[Firing] = []
    if trade_pnl is not None and len(trade_pnl):
        streak, streak_firings = _streak_component(index, trade_pnl, settings)
        firings += streak_firings
    vol_source = returns if volatility_returns is None else volatility_returns.reindex(index)
    vol, vol_firings = _volatility_component(vol_source, settings)
    daily, daily_firings = daily_drawdown_stop(
        returns * streak * vol, settings.daily_drawdown_stop_pct, settings.daily_reset_utc
    )
    firings = sorted(firings + vol_firings + daily_firings, key=lambda f: (f.time, f.breaker))
    components = pd.DataFrame(
        {DAILY_DRAWDOWN: daily, LOSS_STREAK: streak, VOLATILITY: vol}, index=index
    )
    multiplier = components.prod(axis=1).rename("size_multiplier")
    return BreakerResult(multiplier=multiplier, components=components, firings=firings)
