"""The risk guard advanced bar by bar: the in-loop guard's engine (docs/risk-guard.md,
"In the loop").

:func:`stagectl.domain.risk_indicators.compute_indicators` is the definition of the
twelve indicators: it computes them over a whole history at every bar, which cron and
``--replay`` need. The loop needs them at one bar, every hour, for as long as the run
lasts, so this module carries what the next bar needs instead of the history:

- the running peaks (portfolio and per sleeve) and each sleeve's cumulative PnL;
- the last 721 hourly equities and cumulative sleeve PnLs (``t - 24h`` and ``t - 30d``
  are 24 and 720 rows back on the complete hourly grid);
- the 20-day Sharpe's rolling mean and std of the hourly returns, advanced as pandas
  advances them (``domain.rolling``: the same float operations, so the same doubles,
  down to the noise a flat window keeps after volatile returns have left it);
- the last 24 hourly flows (turnover, trades, funding, slippage, signal checks);
- per consecutive-day rule, its streak as of the latest daily check.

A bar costs the same on day 1 and on day 365. Each value is computed with the batch's
own formula and order of operations (the tests bind the two to 1e-9 on real runs and on
generated series): the 24-hour windows are ``sum(flow) over the last 24 rows``, the
Sharpe is ``sqrt(periods_per_year) * mean / std(ddof=1)`` of the last 480 returns (NaN
until 480 returns exist, or where the std is 0), a NaN equity never raises a peak.
Rows are the live guard's hourly grid (``services.guard.history.build_inputs``): one per
hour, gaps already carried forward; a run has one epoch (no drawdown resets).

The rules are judged at one time by :func:`stagectl.domain.risk_rules.evaluate_at`, the
same comparisons, streak rule and precedence as ``evaluate_rules``; the streak of a
consecutive-day rule moves at each daily check (``daily_utc``) as
:func:`stagectl.domain.risk_rules.streak_lengths` counts it: an observed breach extends
it, an observed non-breach resets it, a NaN leaves it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from stagectl.config.risk_guard import Rule
from stagectl.domain.risk_rules import (
    DecisionTable,
    RuleKey,
    evaluate_at,
    rule_keys,
    value_breaches,
)
from stagectl.domain.rolling import RollingMean, RollingStd

NAN = math.nan
DAY_ROWS = 24
SHARPE_ROWS = 20 * DAY_ROWS
MONTH_ROWS = 30 * DAY_ROWS
PERIODS_PER_YEAR = 8760.0
IndicatorKey = tuple[str, str | None]
"""An indicator and its sleeve (None: the portfolio)."""


@dataclass(frozen=True)
class HourRow:
    """One hour of the guard's inputs (one row of ``GuardInputs``), with the signal
    checks as counts: ``signal_checks`` compared that hour, ``signal_mismatches`` of them
    mismatched. Per-sleeve tuples follow the stream's sleeve order."""

    hour: datetime
    equity: float
    sleeve_equity: tuple[float, ...]
    position_state: tuple[float, ...]
    turnover: float
    trades: tuple[float, ...]
    funding_paid: float
    slippage_bps_sum: float
    slippage_fills: float
    signal_checks: float = 0.0
    signal_mismatches: float = 0.0


def divide(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` as numpy divides floats: x/0 is +-inf, 0/0 NaN."""
    try:
        return numerator / denominator
    except ZeroDivisionError:
        if numerator == 0 or math.isnan(numerator):
            return NAN
        return math.copysign(math.inf, numerator) * math.copysign(1.0, denominator)


def _max(peak: float, value: float) -> float:
    """The running maximum skipping NaN (``cummax``)."""
    if math.isnan(value):
        return peak
    return value if math.isnan(peak) or value > peak else peak


def _back(window: deque[float], rows: int) -> float:
    """The value ``rows`` rows before the newest one; NaN before the start."""
    return window[-1 - rows] if len(window) > rows else NAN


def _sharpe(mean: float, std: float) -> float:
    """``rolling_sharpe``: mean / std where std > 0, annualised."""
    return mean / std * math.sqrt(PERIODS_PER_YEAR) if std > 0 else NAN


class IndicatorStream:
    """The twelve indicators at the newest pushed row; see the module docstring."""

    def __init__(self, sleeves: Sequence[str]) -> None:
        self.sleeves = tuple(sleeves)
        width = len(self.sleeves)
        self.rows = 0
        self.last: HourRow | None = None
        self.equity: deque[float] = deque(maxlen=MONTH_ROWS + 1)
        self.return_mean = RollingMean(SHARPE_ROWS)
        self.return_std = RollingStd(SHARPE_ROWS)
        self.sharpe = NAN
        self.peak = NAN
        self.flows: dict[str, deque[float]] = {
            name: deque(maxlen=DAY_ROWS)
            for name in ("turnover", "funding", "slippage", "fills", "checks", "mismatches")
        }
        self.trades = [deque[float](maxlen=DAY_ROWS) for _ in range(width)]
        self.sleeve_last = [NAN] * width
        self.sleeve_peak = [NAN] * width
        self.sleeve_pnl = [0.0] * width
        self.sleeve_cumulative = [deque[float](maxlen=MONTH_ROWS + 1) for _ in range(width)]

    def copy(self) -> IndicatorStream:
        twin = IndicatorStream.__new__(IndicatorStream)
        twin.sleeves = self.sleeves
        twin.rows, twin.last, twin.peak = self.rows, self.last, self.peak
        twin.equity = self.equity.copy()
        twin.return_mean, twin.return_std = self.return_mean.copy(), self.return_std.copy()
        twin.sharpe = self.sharpe
        twin.flows = {name: window.copy() for name, window in self.flows.items()}
        twin.trades = [window.copy() for window in self.trades]
        twin.sleeve_last = list(self.sleeve_last)
        twin.sleeve_peak = list(self.sleeve_peak)
        twin.sleeve_pnl = list(self.sleeve_pnl)
        twin.sleeve_cumulative = [window.copy() for window in self.sleeve_cumulative]
        return twin

    def push(self, row: HourRow) -> None:
        """Advance by one hour of the grid."""
        previous = self.equity[-1] if self.equity else NAN
        change = divide(row.equity, previous) - 1.0 if self.rows else NAN  # pct_change
        self.sharpe = _sharpe(self.return_mean.push(change), self.return_std.push(change))
        self.equity.append(row.equity)
        self.peak = _max(self.peak, row.equity)
        flows = self.flows
        flows["turnover"].append(row.turnover)
        flows["funding"].append(row.funding_paid)
        flows["slippage"].append(row.slippage_bps_sum)
        flows["fills"].append(row.slippage_fills)
        flows["checks"].append(row.signal_checks)
        flows["mismatches"].append(row.signal_mismatches)
        for s, equity in enumerate(row.sleeve_equity):
            change = equity - self.sleeve_last[s]  # NaN on the first row or a missing value
            self.sleeve_pnl[s] += 0.0 if math.isnan(change) else change
            self.sleeve_cumulative[s].append(self.sleeve_pnl[s])
            self.sleeve_last[s] = equity
            self.sleeve_peak[s] = _max(self.sleeve_peak[s], equity)
            self.trades[s].append(row.trades[s])
        self.rows += 1
        self.last = row

    def values(self) -> dict[IndicatorKey, float]:
        """Every indicator at the newest row, keyed (indicator, sleeve or None)."""
        row = self.last
        if row is None:
            raise ValueError("no row pushed yet")
        equity, flows = row.equity, self.flows
        month_ago = _back(self.equity, MONTH_ROWS)
        fills, checks = sum(flows["fills"]), sum(flows["checks"])
        out: dict[IndicatorKey, float] = {
            ("daily_pnl_pct", None): (divide(equity, _back(self.equity, DAY_ROWS)) - 1.0) * 100.0,
            ("rolling_sharpe_20d", None): self.sharpe,
            ("running_mdd_pct", None): divide(self.peak - equity, self.peak) * 100.0,
            ("return_30d_pct", None): (divide(equity, month_ago) - 1.0) * 100.0,
            ("daily_turnover_pct", None): sum(flows["turnover"]) * 100.0,
            ("realized_slippage_bps", None): (
                divide(sum(flows["slippage"]), fills) if fills > 0 else NAN
            ),
            ("funding_drag_bps_per_day", None): divide(sum(flows["funding"]), equity) * 1e4,
            ("signal_mismatch_pct", None): (
                divide(sum(flows["mismatches"]), checks) * 100.0 if checks > 0 else NAN
            ),
        }
        for s, sleeve in enumerate(self.sleeves):
            sleeve_equity, peak = row.sleeve_equity[s], self.sleeve_peak[s]
            cumulative = self.sleeve_cumulative[s]
            pnl_30d = cumulative[-1] - (
                cumulative[0] if len(cumulative) > MONTH_ROWS else 0.0
            )  # before day 30 the batch's nan_to_num makes it 0
            out[("sleeve_mdd_pct", sleeve)] = divide(peak - sleeve_equity, peak) * 100.0
            out[("sleeve_contribution_30d_pct", sleeve)] = divide(pnl_30d, month_ago) * 100.0
            out[("position_state", sleeve)] = row.position_state[s]
            out[("trades_24h", sleeve)] = float(sum(self.trades[s]))
        return out


def is_daily_check(hour: datetime, daily_utc: str) -> bool:
    """Is this bar a daily check (``HH:MM`` UTC; ``risk_rules.daily_check_times``)?"""
    check_hour, check_minute = (int(part) for part in daily_utc.split(":"))
    return hour.hour == check_hour and hour.minute == check_minute


class GuardStream:
    """The indicators and the consecutive-day streaks of one run, advanced bar by bar,
    and the decision at the newest bar."""

    def __init__(
        self,
        sleeves: Sequence[str],
        rules: Sequence[Rule],
        *,
        daily_utc: str,
        near_threshold_pct: float,
    ) -> None:
        self.indicators = IndicatorStream(sleeves)
        self.keys: tuple[RuleKey, ...] = rule_keys(rules, sleeves)
        self.daily_utc = daily_utc
        self.near_threshold_pct = near_threshold_pct
        self.streaks = [0] * len(self.keys)
        """Per key, the consecutive daily checks breached up to the latest one."""

    def copy(self) -> GuardStream:
        twin = GuardStream.__new__(GuardStream)
        twin.indicators = self.indicators.copy()
        twin.keys, twin.daily_utc = self.keys, self.daily_utc
        twin.near_threshold_pct = self.near_threshold_pct
        twin.streaks = list(self.streaks)
        return twin

    @property
    def hour(self) -> datetime | None:
        last = self.indicators.last
        return None if last is None else last.hour

    def push(self, row: HourRow) -> None:
        self.indicators.push(row)
        if not is_daily_check(row.hour, self.daily_utc):
            return
        values = self.key_values(self.indicators.values())
        for k, (rule, _) in enumerate(self.keys):
            if rule.consecutive_days <= 1 or math.isnan(values[k]):
                continue  # a NaN check neither extends nor breaks the streak
            self.streaks[k] = self.streaks[k] + 1 if value_breaches(values[k], rule) else 0

    def key_values(self, values: Mapping[IndicatorKey, float]) -> list[float]:
        """Each rule key's indicator value (NaN for an indicator the stream lacks)."""
        return [values.get((rule.indicator, sleeve), NAN) for rule, sleeve in self.keys]

    def decide(self) -> tuple[DecisionTable, dict[IndicatorKey, float]]:
        """The decision at the newest bar, and every indicator there."""
        values = self.indicators.values()
        assert self.hour is not None  # values() raised otherwise
        holds = [self.streaks[k] >= rule.consecutive_days for k, (rule, _) in enumerate(self.keys)]
        at = pd.Timestamp(self.hour)
        table = evaluate_at(
            at,
            self.keys,
            self.key_values(values),
            holds,
            near_threshold_pct=self.near_threshold_pct,
        )
        return table, values
