"""Backtest report metrics (seed 001) and the risk-guard helpers (seed 003).

Conventions (docs/strategies.md, "Metrics", states each formula):

- Returns are simple per-bar returns; ``periods_per_year`` comes from the bar
  size (1m: 525600, 1h: 8760, 1d: 365; 365-day years, crypto trades 24/7).
- Sharpe = mean / std (ddof=1) x sqrt(periods_per_year); risk-free rate 0.
- Sortino = mean / DD x sqrt(periods_per_year), with the downside deviation
  ``DD = sqrt(mean(min(r, 0)^2))`` over all periods (target 0).
- Drawdown is ``equity / running peak - 1`` (<= 0); "max drawdown" is its
  magnitude as a positive fraction.
- A metric that is undefined (no variance, no drawdown, no trades) is None,
  never NaN or inf, so reports stay valid canonical JSON.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from stagectl.domain.backtest import BacktestResult
from stagectl.errors import InputError

MINUTES_PER_DAY = 1440.0
ReturnsLike = pd.Series | np.ndarray | Sequence[float]
FloatArray = np.ndarray
IntArray = np.ndarray
_BAR_UNITS_MIN = {"m": 1.0, "h": 60.0, "d": 1440.0}


def bar_minutes(bar: str) -> float:
    """Minutes in a bar written like ``1m``, ``5m``, ``1h``, ``4h``, ``1d``."""
    match = re.fullmatch(r"(\d+)([mhd])", bar.strip())
    if not match or int(match.group(1)) == 0:
        raise InputError(f"bar size must look like 1m, 1h or 1d, got {bar!r}", where="bar")
    return int(match.group(1)) * _BAR_UNITS_MIN[match.group(2)]


def periods_per_year(bar: str) -> float:
    """Bars in a 365-day year: 525600 / bar_minutes (1h -> 8760, 1d -> 365)."""
    return 365.0 * MINUTES_PER_DAY / bar_minutes(bar)


def _finite(value: float | np.floating[Any] | None) -> float | None:
    if value is None:
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def sharpe(returns: ReturnsLike, periods_per_year: float) -> float | None:
    """``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``; None below 2 points or std 0."""
    values = np.asarray(returns, dtype=float)
    if values.size < 2:
        return None
    std = values.std(ddof=1)
    if std == 0:
        return None
    return _finite(values.mean() / std * math.sqrt(periods_per_year))


def sortino(returns: ReturnsLike, periods_per_year: float) -> float | None:
    """``mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(periods_per_year)``; None with no loss."""
    values = np.asarray(returns, dtype=float)
    if values.size == 0:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(values, 0.0) ** 2)))
    if downside == 0:
        return None
    return _finite(values.mean() / downside * math.sqrt(periods_per_year))


def running_drawdown(equity: pd.Series, initial_equity: float | None = None) -> pd.Series:
    """``equity / running_peak - 1`` (<= 0); the peak includes ``initial_equity`` when given."""
    peak = equity.cummax()
    if initial_equity is not None:
        peak = peak.clip(lower=initial_equity)
    return (equity / peak - 1.0).rename("drawdown")


def drawdown_episodes(drawdown: pd.Series) -> pd.DataFrame:
    """One row per run of bars below the running peak.

    ``start_bar`` is the first bar under water, so the peak is bar
    ``start_bar - 1`` (-1: the initial equity). ``depth`` is the episode's
    worst drawdown (negative). ``bars_to_recover`` counts bars from the peak to
    the first bar back at or above it (None while still under water);
    ``bars_under`` counts from the peak to the last bar for an open episode.
    """
    under = drawdown.to_numpy(dtype=float) < 0
    n = under.size
    prev = np.concatenate(([False], under[:-1]))
    nxt = np.concatenate((under[1:], [False]))
    starts = np.flatnonzero(under & ~prev)
    ends = np.flatnonzero(under & ~nxt)
    if starts.size == 0:
        return pd.DataFrame(columns=["start_bar", "end_bar", "depth", "recovered", "bars"])
    depth = np.minimum.reduceat(drawdown.to_numpy(dtype=float), starts)
    recovered = ends < n - 1
    bars = np.where(recovered, ends + 2 - starts, n - starts)
    return pd.DataFrame(
        {"start_bar": starts, "end_bar": ends, "depth": depth, "recovered": recovered, "bars": bars}
    )


def cagr(total_growth: float, periods: int, periods_per_year: float) -> float | None:
    """``growth ** (periods_per_year / periods) - 1`` with growth = final / initial equity."""
    if periods <= 0 or total_growth <= 0:
        return None
    return _finite(total_growth ** (periods_per_year / periods) - 1.0)


def rolling_sharpe(
    returns: pd.Series, days: int, *, periods_per_day: int = 24, periods_per_year: float = 8760.0
) -> pd.Series:
    """Rolling ``sqrt(periods_per_year) * mean / std(ddof=1)`` over the last ``days`` days.

    The window is ``days * periods_per_day`` bars (20 days of hourly returns:
    480 bars); NaN until the window is full or where std is 0.
    """
    window = days * periods_per_day
    rolling = returns.rolling(window, min_periods=window)
    std = rolling.std(ddof=1)
    ratio = rolling.mean() / std.where(std > 0)
    return (ratio * math.sqrt(periods_per_year)).rename("rolling_sharpe")


def n_day_return(equity: pd.Series, days: int) -> pd.Series:
    """``equity[t] / equity[t - days] - 1`` using the last equity at or before ``t - days``.

    NaN where the series does not reach back ``days`` days.
    """
    index = pd.DatetimeIndex(equity.index)
    past = np.searchsorted(index.asi8, (index - pd.Timedelta(days=days)).asi8, side="right") - 1
    values = equity.to_numpy(dtype=float)
    base = np.where(past >= 0, values[np.maximum(past, 0)], np.nan)
    return pd.Series(values / base - 1.0, index=equity.index, name=f"return_{days}d")


def daily_returns(returns: pd.Series) -> pd.Series:
    """Compound per-bar returns into UTC calendar days: ``prod(1 + r) - 1``."""
    growth = np.log1p(returns).groupby(pd.DatetimeIndex(returns.index).floor("D")).sum()
    return pd.Series(np.expm1(growth.to_numpy()), index=growth.index, name="daily_return")


def daily_sum(series: pd.Series) -> pd.Series:
    """Sum a per-bar flow (costs, turnover) into UTC calendar days."""
    return series.groupby(pd.DatetimeIndex(series.index).floor("D")).sum()


def trade_stats(trades: pd.DataFrame) -> dict[str, float | int | None]:
    """Per-trade statistics over closed trades (``is_open`` False), pnl net of costs.

    hit rate = wins / closed trades (a zero-pnl trade counts in the
    denominator only); average win and loss are means of the positive and of
    the negative pnls (the loss is negative); profit factor = sum(wins) /
    |sum(losses)|, None without a losing trade.
    """
    closed = trades.loc[~trades["is_open"].astype(bool)] if len(trades) else trades
    pnl = closed["pnl"].to_numpy(dtype=float) if len(closed) else np.array([])
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    return {
        "closed_trades": int(pnl.size),
        "hit_rate": _finite(wins.size / pnl.size) if pnl.size else None,
        "avg_win": _finite(wins.mean()) if wins.size else None,
        "avg_loss": _finite(losses.mean()) if losses.size else None,
        "profit_factor": _finite(wins.sum() / -losses.sum()) if losses.size else None,
        "avg_holding_bars": _finite(closed["holding_bars"].mean()) if pnl.size else None,
    }


def cost_shares(gross_pnl: float, fee: float, slippage: float, funding: float) -> dict[str, Any]:
    """Each cost as a share of gross PnL (before every cost): ``cost / gross_pnl``.

    Defined only when gross PnL > 0: with no gross alpha there is nothing to
    share, so the shares are None and the absolute costs still say what was
    paid. Funding received (negative cost) gives a negative share.
    """
    shares_defined = gross_pnl > 0
    return {
        name: (_finite(cost / gross_pnl) if shares_defined else None)
        for name, cost in (("fee", fee), ("slippage", slippage), ("funding", funding))
    }


def capacity_estimate(
    net_returns: pd.Series,
    traded_fraction: pd.DataFrame,
    dollar_volume: pd.DataFrame,
    *,
    impact_bps_at_full_participation: float = 5.0,
) -> dict[str, Any]:
    """Equity at which square-root impact would eat half of the net edge.

    Seed 001's impact: ``impact_bps = 5 * sqrt(participation)``, participation
    = traded notional / the bar's dollar volume. At constant equity E a fill
    of fraction ``a`` (of equity, summed over sleeves per bar) on a bar of
    dollar volume V costs ``a * E * 5e-4 * sqrt(a * E / V)``. The backtest's
    net edge at E is ``P * E`` with ``P = sum(net returns)``. Solving
    total impact = P * E / 2 gives ``E = (P / (2 * 5e-4 * S))^2`` with
    ``S = sum(a^1.5 / sqrt(V))``. Fills on zero-volume bars are left out and
    counted. P <= 0 gives capacity 0 (no edge to spend); no fills gives None.
    """
    a = traded_fraction.to_numpy(dtype=float)
    volume = dollar_volume.reindex_like(traded_fraction).to_numpy(dtype=float)
    fills = a > 0
    usable = fills & np.isfinite(volume) & (volume > 0)
    s = float(np.sum(a[usable] ** 1.5 / np.sqrt(volume[usable])))
    edge = float(net_returns.sum())
    coefficient = impact_bps_at_full_participation / 1e4
    if s == 0:
        equity = None
    elif edge <= 0:
        equity = 0.0
    else:
        equity = (edge / (2.0 * coefficient * s)) ** 2
    traded = float(a[fills].sum())
    return {
        "capacity_equity": _finite(equity),
        "net_edge_bps_per_traded_notional": _finite(edge / traded * 1e4) if traded else None,
        "fills": int(fills.sum()),
        "fills_without_volume": int((fills & ~usable).sum()),
    }


def _period_metrics(returns: FloatArray, ppy: float) -> dict[str, float | None]:
    """Total return, Sharpe and max drawdown (from 1.0) of one period's per-bar returns."""
    one_plus = 1.0 + returns
    growth = float(np.prod(one_plus))
    if returns.size:
        equity = np.cumprod(one_plus, out=one_plus)
        drawdown = np.maximum.accumulate(equity)  # the running peak, at least 1.0
        np.maximum(drawdown, 1.0, out=drawdown)
        np.divide(equity, drawdown, out=drawdown)
        drawdown -= 1.0
        max_dd = -float(drawdown.min())
    else:
        max_dd = 0.0
    return {
        "total_return": _finite(growth - 1.0),
        "sharpe": sharpe(returns, ppy),
        "max_drawdown": _finite(max_dd),
    }


def dispersion(rows: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """Mean, std (ddof=1), min and max of each metric across the rows (years, sleeves)."""
    table = pd.DataFrame.from_dict(rows, orient="index", dtype=float)
    out: dict[str, dict[str, float | None]] = {}
    for metric in table.columns:
        column = table[metric].dropna()
        out[metric] = {
            "mean": _finite(column.mean()) if len(column) else None,
            "std": _finite(column.std(ddof=1)) if len(column) > 1 else None,
            "min": _finite(column.min()) if len(column) else None,
            "max": _finite(column.max()) if len(column) else None,
        }
    return out


def _year_groups(index: pd.DatetimeIndex) -> list[tuple[int, slice | IntArray]]:
    """Each calendar year's bars, in bar order: a slice when the index is sorted (its
    year starts found by a search), else the positions."""
    if not len(index):
        return []
    if index.is_monotonic_increasing:
        first, last = index[0].year, index[-1].year
        starts = [
            pd.Timestamp(year=y, month=1, day=1, tz=index.tz) for y in range(first + 1, last + 1)
        ]
        bounds = [0, *index.searchsorted(starts).tolist(), len(index)]
        span = range(first, last + 1)
        return [
            (y, slice(a, b)) for y, a, b in zip(span, bounds[:-1], bounds[1:], strict=True) if b > a
        ]
    years = index.year.to_numpy()
    order = np.argsort(years, kind="stable")
    cuts = np.flatnonzero(np.diff(years[order])) + 1
    return [(int(years[group[0]]), group) for group in np.split(order, cuts)]


def stability(
    index: pd.DatetimeIndex, portfolio: FloatArray, sleeves: dict[str, FloatArray], ppy: float
) -> dict[str, Any]:
    """Metrics of the ``portfolio`` returns per calendar year and of each sleeve's, with
    dispersion; ``index`` labels the bars of every array."""
    by_year = {
        str(year): _period_metrics(portfolio[bars], ppy) for year, bars in _year_groups(index)
    }
    by_sleeve = {name: _period_metrics(values, ppy) for name, values in sleeves.items()}
    return {
        "by_year": by_year,
        "by_year_dispersion": dispersion(by_year),
        "by_sleeve": by_sleeve,
        "by_sleeve_dispersion": dispersion(by_sleeve),
    }


def drawdown_summary(drawdown: pd.Series, bar_min: float) -> dict[str, Any]:
    """Max and average episode depth, longest and current time to recover (bars, days)."""
    episodes = drawdown_episodes(drawdown)
    recovered = episodes.loc[episodes["recovered"].astype(bool), "bars"]
    still_under = episodes.loc[~episodes["recovered"].astype(bool), "bars"]
    longest = int(recovered.max()) if len(recovered) else None
    current = int(still_under.iloc[-1]) if len(still_under) else 0
    bars_per_day = MINUTES_PER_DAY / bar_min
    return {
        "max_drawdown": _finite(-drawdown.min()) if len(drawdown) else None,
        "avg_drawdown": _finite(-episodes["depth"].mean()) if len(episodes) else None,
        "drawdown_episodes": len(episodes),
        "longest_recovery_bars": longest,
        "longest_recovery_days": _finite(longest / bars_per_day) if longest is not None else None,
        "current_underwater_bars": current,
        "current_underwater_days": _finite(current / bars_per_day),
    }


def summarize(
    result: BacktestResult, bar: str, dollar_volume: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The seed-001 report metrics of a backtest, JSON-ready (floats or None)."""
    ppy = periods_per_year(bar)
    bar_min = bar_minutes(bar)
    n = len(result.net_returns)
    days = n * bar_min / MINUTES_PER_DAY
    drawdown = running_drawdown(result.equity, result.initial_equity)
    dd = drawdown_summary(drawdown, bar_min)
    growth = float(result.equity.iloc[-1] / result.initial_equity) if n else 1.0
    annual_growth = cagr(growth, n, ppy)
    max_dd = dd["max_drawdown"]
    gross_pnl = float(result.sleeve_gross_pnl.to_numpy().sum())
    fee, slip, funding = (float(result.costs[c].sum()) for c in ("fee", "slippage", "funding"))
    trades = trade_stats(result.trades)
    avg_bars = trades["avg_holding_bars"]
    sleeve_returns = {
        name: result.sleeve_net_returns[name].to_numpy(dtype=float)
        for name in result.sleeve_net_returns.columns
        if name != "portfolio"
    }
    weights = pd.Series(result.weights)
    summary: dict[str, Any] = {
        "bar": bar,
        "bars": n,
        "days": _finite(days),
        "periods_per_year": ppy,
        "annualisation_factor": math.sqrt(ppy),
        "final_equity": _finite(result.equity.iloc[-1]) if n else result.initial_equity,
        "total_return": _finite(growth - 1.0),
        "cagr": annual_growth,
        "sharpe_net": sharpe(result.net_returns, ppy),
        "sharpe_gross": sharpe(result.gross_returns, ppy),
        "sortino": sortino(result.net_returns, ppy),
        "calmar": (
            _finite(annual_growth / max_dd) if annual_growth is not None and max_dd else None
        ),
        **dd,
        **trades,
        "trades": len(result.trades),
        "trades_per_day": _finite(len(result.trades) / days) if days else None,
        "avg_holding_hours": _finite(avg_bars * bar_min / 60.0) if avg_bars is not None else None,
        "turnover_per_day": _finite(result.turnover.sum() / days) if days else None,
        "gross_pnl": gross_pnl,
        "fee": fee,
        "slippage": slip,
        "funding": funding,
        "cost_share_of_gross": cost_shares(gross_pnl, fee, slip, funding),
        "stability": stability(
            pd.DatetimeIndex(result.net_returns.index),
            result.net_returns.to_numpy(dtype=float),
            sleeve_returns,
            ppy,
        ),
    }
    if dollar_volume is not None:
        traded = result.sleeve_turnover * weights
        summary["capacity"] = capacity_estimate(result.net_returns, traded, dollar_volume)
    return summary
