"""The runbook's twelve risk indicators (seed 003 §2), as time series.

Every indicator is computed at every bar from point-in-time data, so the hourly
guard (last row) and ``--replay`` (all rows) share one definition
(docs/risk-guard.md states each formula):

Windows are time-based and end at the bar: ``(t - 24h, t]``.

Portfolio
 1. ``daily_pnl_pct``: ``equity_t / equity_(t-24h) - 1``, in %.
 2. ``rolling_sharpe_20d``: ``sqrt(8760) * mean / std(ddof=1)`` of hourly returns
    over the last 20 days (NaN until 480 returns exist).
 3. ``running_mdd_pct``: ``(peak - equity) / peak``, in %, with the running peak.
 4. ``return_30d_pct``: ``equity_t / equity_(t-30d) - 1``, in %.
 5. ``daily_turnover_pct``: the sum over the last 24 h of each bar's traded
    notional as a fraction of the equity it traded from (``GuardInputs.turnover``),
    in %: what traded, not what the targets asked for.
 6. ``realized_slippage_bps``: the mean over the fills of the last 24 h of each
    fill's ``side * (fill - signal) / signal * 1e4`` (adverse positive), every fill
    weighing the same: ``sum of the bps / number of fills``; NaN without fills.
 7. ``funding_drag_bps_per_day``: funding paid over the last 24 h / equity x 1e4.
 8. ``signal_mismatch_pct``: paper versus backtest replay, when known (NaN else).

Sleeve
 9. ``sleeve_mdd_pct``: the sleeve's own drawdown from its peak, in %.
10. ``sleeve_contribution_30d_pct``: the sleeve's PnL over 30 days / portfolio
    equity 30 days ago, in %.
11. ``position_state``: the strategy's position state of the sleeve.
12. ``trades_24h``: the sleeve's trades over the last 24 h (``GuardInputs.trades``:
    executions of position changes, not target changes).

The 30-day indicators need an equity at or before ``t - 30d``: the live guard
starts a run's inputs with its initial equity at its first bar's open
(``services.guard.history``), so they are defined from day 30 of the run on.

A restart after FLATTEN_ALL (``drawdown_resets``) starts a new epoch: every
indicator is computed from the bars since the restart only, so the losses that
caused the flatten and the flat days after it are not held against the restarted
strategy (the runbook restarts only once the cause is understood and the
drawdown narrowed). Until a window fills, its indicator is NaN and its rules
do not fire; the drawdown limit, measured from the restart, guards from the
first bar.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from stagectl.domain.performance import rolling_sharpe
from stagectl.domain.risk_rules import IndicatorFrames

DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class GuardInputs:
    """Point-in-time series the indicators are computed from (one row per bar).

    ``equity`` is the portfolio equity (live, a run's first row is its initial
    equity at its first bar's open); ``sleeve_pnl`` each sleeve's PnL per bar in the
    equity's currency, net of its costs; ``sleeve_equity`` each sleeve's
    standalone equity; ``position_state`` the strategy's state per sleeve (-1, 0,
    +1 when healthy); ``turnover`` the notional traded in the bar, ``sum |qty x
    price|``, as a fraction of the equity it traded from (0 when nothing traded);
    ``trades`` the number of trades per bar and sleeve (executions that change
    its position); ``funding_paid`` the funding paid per bar (positive: a cost);
    ``slippage_bps_sum`` the sum of the realized slippage in bps of the bar's
    fills with a known signal price and ``slippage_fills`` their number (0 when
    none).
    """

    equity: pd.Series
    sleeve_pnl: pd.DataFrame
    sleeve_equity: pd.DataFrame
    position_state: pd.DataFrame
    turnover: pd.Series
    trades: pd.DataFrame
    funding_paid: pd.Series
    slippage_bps_sum: pd.Series
    slippage_fills: pd.Series
    signal_mismatch_pct: pd.Series | None = None
    periods_per_year: float = 8760.0
    bars_per_day: int = 24
    drawdown_resets: Sequence[pd.Timestamp] = field(default_factory=tuple)
    sleeve_resets: Mapping[str, Sequence[pd.Timestamp]] = field(default_factory=dict)


def value_days_ago(series: pd.Series, days: float) -> np.ndarray:
    """The last value at or before ``t - days`` for each t (NaN before the start)."""
    index = pd.DatetimeIndex(series.index)
    past = np.searchsorted(index.asi8, (index - pd.Timedelta(days=days)).asi8, side="right") - 1
    values = series.to_numpy(dtype=float)
    return np.where(past >= 0, values[np.maximum(past, 0)], np.nan)


def drawdown_pct(equity: pd.Series, resets: Sequence[pd.Timestamp] = ()) -> pd.Series:
    """``(peak - equity) / peak * 100`` with the running peak.

    Each time in ``resets`` restarts the peak at that bar's equity (a sleeve
    re-enabled after DISABLE_SLEEVE is measured from its re-enable).
    """
    if resets:
        index = pd.DatetimeIndex(equity.index)
        epoch = np.searchsorted(
            pd.DatetimeIndex(sorted(resets)).as_unit(index.unit).asi8, index.asi8, side="right"
        )
        peak = equity.groupby(epoch).cummax()
    else:
        peak = equity.cummax()
    return ((peak - equity) / peak * 100.0).rename("drawdown_pct")


def trailing_sum(series: pd.Series, window: pd.Timedelta) -> pd.Series:
    """Sum over ``(t - window, t]`` (time-based, so irregular bars are fine)."""
    return series.fillna(0.0).rolling(window).sum()


def trailing_mean(
    total: pd.Series, count: pd.Series, window: pd.Timedelta, index: pd.Index
) -> pd.Series:
    """``sum(total) / sum(count)`` over ``(t - window, t]``: each counted item weighs
    the same, whatever bar it fell in; NaN where the window counts none."""
    totals = trailing_sum(total.reindex(index), window)
    counts = trailing_sum(count.reindex(index), window)
    return (totals / counts.where(counts > 0)).astype(float)


def portfolio_indicators(inputs: GuardInputs) -> pd.DataFrame:
    """Indicators 1-8 at every bar."""
    equity = inputs.equity.astype(float)
    # The first bar has no return: NaN, so the 20-day window needs 480 real returns.
    returns = equity.pct_change()
    turnover = inputs.turnover.reindex(equity.index)
    mismatch = (
        inputs.signal_mismatch_pct.reindex(equity.index)
        if inputs.signal_mismatch_pct is not None
        else pd.Series(np.nan, index=equity.index)
    )
    return pd.DataFrame(
        {
            "daily_pnl_pct": (equity.to_numpy() / value_days_ago(equity, 1) - 1.0) * 100.0,
            "rolling_sharpe_20d": rolling_sharpe(
                returns,
                20,
                periods_per_day=inputs.bars_per_day,
                periods_per_year=inputs.periods_per_year,
            ),
            "running_mdd_pct": drawdown_pct(equity),
            "return_30d_pct": (equity.to_numpy() / value_days_ago(equity, 30) - 1.0) * 100.0,
            "daily_turnover_pct": trailing_sum(turnover, DAY) * 100.0,
            "realized_slippage_bps": trailing_mean(
                inputs.slippage_bps_sum, inputs.slippage_fills, DAY, equity.index
            ),
            "funding_drag_bps_per_day": trailing_sum(inputs.funding_paid, DAY) / equity * 1e4,
            "signal_mismatch_pct": mismatch,
        },
        index=equity.index,
    )


def sleeve_indicators(inputs: GuardInputs, sleeve: str) -> pd.DataFrame:
    """Indicators 9-12 of one sleeve at every bar."""
    equity = inputs.equity.astype(float)
    cumulative_pnl = inputs.sleeve_pnl[sleeve].fillna(0.0).cumsum()
    pnl_30d = cumulative_pnl.to_numpy() - np.nan_to_num(value_days_ago(cumulative_pnl, 30))
    base = value_days_ago(equity, 30)
    return pd.DataFrame(
        {
            "sleeve_mdd_pct": drawdown_pct(
                inputs.sleeve_equity[sleeve], tuple(inputs.sleeve_resets.get(sleeve, ()))
            ),
            "sleeve_contribution_30d_pct": pnl_30d / base * 100.0,
            "position_state": inputs.position_state[sleeve].astype(float),
            "trades_24h": trailing_sum(inputs.trades[sleeve].reindex(equity.index), DAY),
        },
        index=equity.index,
    )


def restrict(
    inputs: GuardInputs, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> GuardInputs:
    """The inputs restricted to ``[start, end)``, as one epoch (no drawdown resets)."""

    def keep(data: pd.Series | pd.DataFrame) -> np.ndarray:
        index = pd.DatetimeIndex(data.index)
        mask = np.ones(len(index), dtype=bool)
        if start is not None:
            mask &= np.asarray(index >= start)
        if end is not None:
            mask &= np.asarray(index < end)
        return mask

    def cut(data: pd.Series) -> pd.Series:
        return data.loc[keep(data)]

    def cut_frame(data: pd.DataFrame) -> pd.DataFrame:
        return data.loc[keep(data)]

    mismatch = inputs.signal_mismatch_pct
    return replace(
        inputs,
        equity=cut(inputs.equity),
        sleeve_pnl=cut_frame(inputs.sleeve_pnl),
        sleeve_equity=cut_frame(inputs.sleeve_equity),
        position_state=cut_frame(inputs.position_state),
        turnover=cut(inputs.turnover),
        trades=cut_frame(inputs.trades),
        funding_paid=cut(inputs.funding_paid),
        slippage_bps_sum=cut(inputs.slippage_bps_sum),
        slippage_fills=cut(inputs.slippage_fills),
        signal_mismatch_pct=None if mismatch is None else cut(mismatch),
        drawdown_resets=(),
    )


def compute_indicators(inputs: GuardInputs) -> IndicatorFrames:
    """All twelve indicators, portfolio and per sleeve, at every bar, epoch by epoch."""
    bounds: list[pd.Timestamp | None] = [None, *sorted(inputs.drawdown_resets), None]
    epochs = [restrict(inputs, start, end) for start, end in itertools.pairwise(bounds)]
    epochs = [e for e in epochs if len(e.equity)] or [inputs]
    sleeves = list(inputs.sleeve_equity.columns)
    return IndicatorFrames(
        portfolio=pd.concat([portfolio_indicators(e) for e in epochs]),
        sleeves={s: pd.concat([sleeve_indicators(e, s) for e in epochs]) for s in sleeves},
    )
