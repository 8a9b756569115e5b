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

Computation. :class:`IndicatorTape` holds the twelve indicators of one bar grid as
arrays and computes them over any range of bars ``[start, end)`` of an epoch, carrying
in what the range needs from the bars before it: the running peaks, the running sums
of the flows, of each sleeve's PnL and of the returns (``domain/window_sums.py``), and
the equity of a day and of 30 days before. A range computed after the one before it
gives the doubles of one pass over the epoch, which lets ``--replay`` recompute only
the bars after a guard action. The windows' sums are differences of running sums
(rounding against pandas' rolling kernels: about 1e-12 of the values, tests bind them
to 1e-9); :func:`compute_indicators`, the hourly guard's path, takes the 20-day Sharpe
from pandas' rolling kernels (``performance.rolling_sharpe``), so that run-live's
stream (``domain/risk_stream.py``), which replays those kernels, agrees with it to the
last bit.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stagectl.domain.performance import rolling_sharpe
from stagectl.domain.risk_rules import IndicatorFrames
from stagectl.domain.window_sums import (
    SHARPE_TERMS,
    sharpe_of_sums,
    sharpe_terms,
    trailing,
    window_difference,
)

DAY = pd.Timedelta(days=1)
MONTH = pd.Timedelta(days=30)
SHARPE_DAYS = 20
PORTFOLIO_INDICATORS = (
    "daily_pnl_pct",
    "rolling_sharpe_20d",
    "running_mdd_pct",
    "return_30d_pct",
    "daily_turnover_pct",
    "realized_slippage_bps",
    "funding_drag_bps_per_day",
    "signal_mismatch_pct",
)
SLEEVE_INDICATORS = (
    "sleeve_mdd_pct",
    "sleeve_contribution_30d_pct",
    "position_state",
    "trades_24h",
)
FloatArray = np.ndarray
IntArray = np.ndarray
BLOCK = 1 << 15
"""Bars the indicators compute at a time (:meth:`IndicatorTape.compute`)."""


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


@dataclass(frozen=True)
class GuardArrays:
    """The inputs as float arrays on the tape's bar grid: ``(bars,)`` for the portfolio,
    ``(bars, sleeves)`` per sleeve (fields as in :class:`GuardInputs`)."""

    equity: FloatArray
    sleeve_pnl: FloatArray
    sleeve_equity: FloatArray
    position_state: FloatArray
    turnover: FloatArray
    trades: FloatArray
    funding_paid: FloatArray
    slippage_bps_sum: FloatArray
    slippage_fills: FloatArray
    signal_mismatch_pct: FloatArray

    @classmethod
    def blank(cls, bars: int, sleeves: int) -> GuardArrays:
        """Arrays to be filled range by range (NaN until written)."""

        def nan(*shape: int) -> FloatArray:
            return np.full(shape, np.nan)

        per_sleeve = (bars, sleeves)
        return cls(
            equity=nan(bars),
            sleeve_pnl=nan(*per_sleeve),
            sleeve_equity=nan(*per_sleeve),
            position_state=nan(*per_sleeve),
            turnover=nan(bars),
            trades=nan(*per_sleeve),
            funding_paid=nan(bars),
            slippage_bps_sum=nan(bars),
            slippage_fills=nan(bars),
            signal_mismatch_pct=nan(bars),
        )

    @classmethod
    def of(cls, inputs: GuardInputs) -> GuardArrays:
        """The arrays of ``inputs``, each aligned on the equity's index."""
        index = inputs.equity.index
        sleeves = list(inputs.sleeve_equity.columns)

        def column(series: pd.Series | None) -> FloatArray:
            if series is None:
                return np.full(len(index), np.nan)
            return series.reindex(index).to_numpy(dtype=float)

        def table(frame: pd.DataFrame) -> FloatArray:
            return frame.reindex(index=index, columns=sleeves).to_numpy(dtype=float)

        return cls(
            equity=column(inputs.equity),
            sleeve_pnl=table(inputs.sleeve_pnl),
            sleeve_equity=table(inputs.sleeve_equity),
            position_state=table(inputs.position_state),
            turnover=column(inputs.turnover),
            trades=table(inputs.trades),
            funding_paid=column(inputs.funding_paid),
            slippage_bps_sum=column(inputs.slippage_bps_sum),
            slippage_fills=column(inputs.slippage_fills),
            signal_mismatch_pct=column(inputs.signal_mismatch_pct),
        )


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


def _last_at_or_before(times: IntArray, span: pd.Timedelta) -> IntArray | int:
    """For each bar, the last bar at or before ``t - span`` (-1: none); on a regular grid
    whose step divides ``span``, that is a number of bars back, returned as such."""
    steps = np.diff(times)
    if len(steps) and span.value % int(steps[0]) == 0 and (steps == steps[0]).all():
        return span.value // int(steps[0])
    return np.searchsorted(times, times - span.value, side="right") - 1


def _change_pct(now: FloatArray, then: FloatArray, out: FloatArray) -> None:
    """``(now / then - 1) * 100`` into ``out``."""
    np.divide(now, then, out=out)
    out -= 1.0
    out *= 100.0


def _drawdown_pct(peak: FloatArray, value: FloatArray, out: FloatArray) -> None:
    """``(peak - value) / peak * 100`` into ``out``."""
    np.subtract(peak, value, out=out)
    out /= peak
    out *= 100.0


def _past(
    values: FloatArray, ago: IntArray | int, start: int, end: int, epoch: int, fill: float
) -> FloatArray:
    """``values`` at the bar ``ago`` gives for each bar of ``[start, end)`` (bars back, or
    an index per bar), ``fill`` where that bar is before ``epoch``."""
    if isinstance(ago, int):
        cut = min(max(start, epoch + ago), end)
        out = np.empty(end - start)
        out[: cut - start] = fill
        out[cut - start :] = values[cut - ago : end - ago]
        return out
    index = ago[start:end]
    return np.where(index >= epoch, values[np.maximum(index, 0)], fill)


class IndicatorTape:
    """The twelve indicators of one bar grid, computed range by range (module docstring).

    ``times`` are the bars' UTC times in nanoseconds. ``values`` is (indicators, bars), a
    bar's column undefined until a range holding it is computed: the portfolio's eight
    rows in ``PORTFOLIO_INDICATORS`` order, then each sleeve's four in
    ``SLEEVE_INDICATORS`` order.
    ``compute`` fills ``[start, end)`` of an epoch starting at bar ``epoch``, reading the
    inputs up to ``end`` and what it carries from the bars ``[epoch, start)`` computed
    before (a range starting the epoch carries nothing). ``pandas_sharpe`` takes the
    20-day Sharpe from ``performance.rolling_sharpe`` over the epoch instead of from
    running sums (whole epochs only).
    """

    def __init__(
        self,
        times: IntArray,
        sleeves: Sequence[str],
        *,
        bars_per_day: int = 24,
        periods_per_year: float = 8760.0,
        pandas_sharpe: bool = False,
    ) -> None:
        self.times = np.asarray(times, dtype=np.int64)
        self.sleeves = tuple(sleeves)
        self.bars_per_day = bars_per_day
        self.periods_per_year = periods_per_year
        self.pandas_sharpe = pandas_sharpe
        bars, width = len(self.times), len(self.sleeves)
        self.day_ago = _last_at_or_before(self.times, DAY)
        self.month_ago = _last_at_or_before(self.times, MONTH)
        self.rows: dict[tuple[str, str | None], int] = {
            (name, None): k for k, name in enumerate(PORTFOLIO_INDICATORS)
        }
        for j, sleeve in enumerate(self.sleeves):
            for k, name in enumerate(SLEEVE_INDICATORS):
                self.rows[(name, sleeve)] = len(PORTFOLIO_INDICATORS) + j * 4 + k
        # written by compute, range by range: a bar's values are undefined until then (no
        # NaN fill first: over minute bars these are hundreds of MB)
        self.values = np.empty((len(self.rows), bars))
        self.returns = np.empty(bars)
        self.peak = np.empty(bars)
        self.sleeve_peak = np.empty((width, bars))
        # running sums, one row each: 4 flows, trades and PnL per sleeve, the Sharpe's terms
        self._trades = 4
        self._pnl = 4 + width
        self._sharpe = 4 + 2 * width
        self.sums = np.zeros((self._sharpe + SHARPE_TERMS, bars))

    def series(self, indicator: str, sleeve: str | None) -> FloatArray:
        """An indicator's row (NaN for an indicator of the other scope)."""
        row = self.rows.get((indicator, sleeve))
        return np.full(len(self.times), np.nan) if row is None else self.values[row]

    def compute(
        self,
        inputs: GuardArrays,
        start: int,
        end: int,
        *,
        epoch: int,
        sleeve_resets: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        """Fill bars ``[start, end)`` (``epoch <= start``); ``sleeve_resets`` are the bars
        where a sleeve's drawdown restarts (its re-enables)."""
        if end <= start:
            return
        # one error state for the whole range (a context costs a few microseconds, some
        # 200 ranges a replay): NaN and inf are the indicators' own values, no warnings
        with np.errstate(divide="ignore", invalid="ignore"):
            # block by block: a range computed after the one before it gives the doubles
            # of one pass, and a block's temporaries stay in the cache and are reused
            # where a whole range's (minute bars: 21 MB each) would be fresh memory
            for lo in range(start, end, BLOCK):
                self._fill(inputs, lo, min(lo + BLOCK, end), epoch, sleeve_resets or {})
            self._sharpe_values(start, end, epoch, out=self.values[1, start:end])

    def _fill(
        self,
        inputs: GuardArrays,
        start: int,
        end: int,
        epoch: int,
        resets: Mapping[str, Sequence[int]],
    ) -> None:
        equity = inputs.equity[start:end]
        returns = self.returns[start:end]  # pct_change: equity / previous - 1
        np.divide(equity[1:], equity[:-1], out=returns[1:])
        # the epoch's first bar has no return
        returns[0] = equity[0] / inputs.equity[start - 1] if start > epoch else np.nan
        returns -= 1.0
        sums = self._running_sums(inputs, start, end, epoch, returns)
        flows, day = sums[: self._pnl], self.day_ago
        if isinstance(day, int):
            window = trailing(flows, start, end, day, epoch)
        else:
            low = np.maximum(day[start:end], epoch - 1)
            window = window_difference(flows, np.arange(start, end), low, epoch)
        month_equity = _past(inputs.equity, self.month_ago, start, end, epoch, np.nan)
        carried = self.peak[start - 1] if start > epoch else np.nan
        peak = self.peak[start:end]
        peak[:] = np.fmax.accumulate(np.concatenate(([carried], equity)))[1:]
        row = self.values[:, start:end]  # one view per indicator, written in place
        fills = window[3]
        _change_pct(equity, _past(inputs.equity, day, start, end, epoch, np.nan), row[0])
        _drawdown_pct(peak, equity, row[2])
        _change_pct(equity, month_equity, row[3])
        np.multiply(window[0], 100.0, out=row[4])
        np.divide(window[2], fills, out=row[5], where=fills > 0)
        row[5][~(fills > 0)] = np.nan
        np.divide(window[1], equity, out=row[6])
        row[6] *= 1e4
        row[7] = inputs.signal_mismatch_pct[start:end]
        for j, sleeve in enumerate(self.sleeves):
            base = len(PORTFOLIO_INDICATORS) + 4 * j
            sleeve_equity = inputs.sleeve_equity[start:end, j]
            peak = self._sleeve_peak(j, sleeve_equity, start, end, epoch, resets.get(sleeve, ()))
            month_pnl = _past(sums[self._pnl + j], self.month_ago, start, end, epoch, 0.0)
            contribution = row[base + 1]
            _drawdown_pct(peak, sleeve_equity, row[base])
            np.subtract(sums[self._pnl + j, start:end], month_pnl, out=contribution)
            contribution /= month_equity
            contribution *= 100.0
            row[base + 2] = inputs.position_state[start:end, j]
            row[base + 3] = window[self._trades + j]

    def _running_sums(
        self, inputs: GuardArrays, start: int, end: int, epoch: int, returns: FloatArray
    ) -> FloatArray:
        """Continue the running sums over ``[start, end)``; the whole (terms, bars) array.

        The terms are written where their sums go and summed there: the carried sums
        added to the first bar's terms, then one running sum, the order of one pass."""
        width = len(self.sleeves)
        terms = self.sums[:, start:end]
        terms[0] = inputs.turnover[start:end]
        terms[1] = inputs.funding_paid[start:end]
        terms[2] = inputs.slippage_bps_sum[start:end]
        terms[3] = inputs.slippage_fills[start:end]
        terms[self._trades : self._pnl] = inputs.trades[start:end].T
        # fillna(0) of the flows; +-inf is skipped by pandas' windows: 0 too
        flows = terms[: self._pnl]
        np.copyto(flows, 0.0, where=~np.isfinite(flows))
        pnl = terms[self._pnl : self._pnl + width]
        pnl[:] = inputs.sleeve_pnl[start:end].T
        np.copyto(pnl, 0.0, where=np.isnan(pnl))  # fillna(0) before the cumulative sum
        previous = self.returns[start - 1] if start > epoch else np.nan
        sharpe_terms(returns, previous, out=terms[self._sharpe :])
        if start > epoch:
            terms[:, 0] += self.sums[:, start - 1]
        np.cumsum(terms, axis=-1, out=terms)
        return self.sums

    def _sharpe_values(self, start: int, end: int, epoch: int, out: FloatArray) -> None:
        """The 20-day Sharpe of ``[start, end)`` into ``out``, once the range's returns and
        running sums are written (one pandas call for the range, where pandas gives it)."""
        window = SHARPE_DAYS * self.bars_per_day
        if self.pandas_sharpe:
            returns = pd.Series(self.returns[epoch:end])
            sharpe = rolling_sharpe(
                returns,
                SHARPE_DAYS,
                periods_per_day=self.bars_per_day,
                periods_per_year=self.periods_per_year,
            )
            out[:] = sharpe.to_numpy()[start - epoch :]
            return
        sharpe_of_sums(
            self.returns,
            self.sums[self._sharpe :],
            window=window,
            periods_per_year=self.periods_per_year,
            start=start,
            end=end,
            origin=epoch,
            out=out,
        )

    def _sleeve_peak(
        self,
        j: int,
        equity: FloatArray,
        start: int,
        end: int,
        epoch: int,
        resets: Sequence[int],
    ) -> FloatArray:
        """The sleeve's running peak over ``[start, end)``, restarted at each reset bar."""
        cuts = [start, *(r for r in sorted(resets) if start < r < end), end]
        restarts = set(resets) | {epoch}
        peak: FloatArray = self.sleeve_peak[j]
        for lo, hi in itertools.pairwise(cuts):
            carried = peak[lo - 1] if lo not in restarts else np.nan
            values = equity[lo - start : hi - start]
            peak[lo:hi] = np.fmax.accumulate(np.concatenate(([carried], values)))[1:]
        return peak[start:end]


def compute_indicators(inputs: GuardInputs) -> IndicatorFrames:
    """All twelve indicators, portfolio and per sleeve, at every bar, epoch by epoch."""
    index = pd.DatetimeIndex(inputs.equity.index)
    sleeves = list(inputs.sleeve_equity.columns)
    times = index.as_unit("ns").asi8
    tape = IndicatorTape(
        times,
        sleeves,
        bars_per_day=inputs.bars_per_day,
        periods_per_year=inputs.periods_per_year,
        pandas_sharpe=True,
    )
    arrays = GuardArrays.of(inputs)

    def bars(stamps: Sequence[pd.Timestamp]) -> list[int]:
        """The first bar at or after each time."""
        return [int(np.searchsorted(times, pd.Timestamp(t).value)) for t in stamps]

    resets = {s: bars(inputs.sleeve_resets.get(s, ())) for s in sleeves}
    bounds = sorted({0, *bars(inputs.drawdown_resets), len(index)})
    for start, end in itertools.pairwise(bounds):
        tape.compute(arrays, start, end, epoch=start, sleeve_resets=resets)

    def frame(names: Sequence[str], sleeve: str | None) -> pd.DataFrame:
        return pd.DataFrame(
            {name: tape.series(name, sleeve) for name in names}, index=inputs.equity.index
        )

    return IndicatorFrames(
        portfolio=frame(PORTFOLIO_INDICATORS, None),
        sleeves={s: frame(SLEEVE_INDICATORS, s) for s in sleeves},
    )
