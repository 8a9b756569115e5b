"""The 30-day paper gate (seed 003 §5.2): six criteria, every one must pass.

Formulas (docs/paper-gate.md states each, with its data source):

1. ``sharpe_30d``: ``sqrt(252) * mean / std(ddof=1)`` of daily returns (the
   runbook's 252, from ``paper_gate.sharpe_annualization_periods``), > min.
2. ``max_mdd_pct``: the largest ``(peak - equity) / peak * 100`` over the window,
   peak running from the window's first snapshot, < max.
3. ``slippage_ratio``: notional-weighted mean realized slippage (bps, adverse
   positive) / the assumed slippage (3 bps), <= max.
4. ``funding_ratio``: mean funding rate paid per settlement (signed by the
   position: received funding is negative) / the assumed 0.01 %, <= max.
5. ``signal_consistency_pct``: matching paper-versus-replay signals / all
   compared signals * 100, >= min.
6. ``kill_switch_fires``: WARNING-level fires <= max_warnings and CRITICAL fires
   <= max_critical (counted by UTC day, see :func:`count_fires`).

A criterion without data fails with reason "no data": a gate never passes on
missing evidence. Fewer than ``days`` days of equity history (``run_clock.covered_days``)
fail the separate ``history_days`` check, so the gate cannot pass early.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd

from stagectl.config.risk_guard import PaperGate

Comparison = Literal["<", "<=", ">", ">="]
CRITICAL_SEVERITY = "CRITICAL"
QUIET_ACTIONS = frozenset({"NO_ACTION"})
QUIET_SEVERITIES = frozenset({"NONE", "INFO", "LOW"})


@dataclass(frozen=True)
class GateCriterion:
    """One PASS/FAIL line: the measured value, the limit and why it failed."""

    id: str
    label: str
    value: float | None
    limit: float
    comparison: Comparison
    unit: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class GuardFire:
    """A recorded guard decision, reduced to what the gate counts."""

    ts: datetime
    action: str
    severity: str


@dataclass(frozen=True)
class FireCounts:
    warning_days: int
    critical_days: int
    decisions: int


@dataclass(frozen=True)
class PaperGateInputs:
    """The window's evidence; ``None`` means the state holds no data for it."""

    days: int
    history_days: float
    daily_returns: Sequence[float]
    window_equity: Sequence[float]
    slippage_bps: float | None
    mean_paid_funding_rate: float | None
    signals_compared: int
    signals_matched: int
    fires: FireCounts | None


@dataclass(frozen=True)
class PaperGateVerdict:
    criteria: tuple[GateCriterion, ...]
    history: GateCriterion

    @property
    def passed(self) -> bool:
        return self.history.passed and all(c.passed for c in self.criteria)


def _holds(value: float, comparison: Comparison, limit: float) -> bool:
    if comparison == "<":
        return value < limit
    if comparison == "<=":
        return value <= limit
    if comparison == ">":
        return value > limit
    return value >= limit


def criterion(
    id_: str,
    label: str,
    value: float | None,
    comparison: Comparison,
    limit: float,
    unit: str,
    *,
    missing: str = "no data",
) -> GateCriterion:
    """PASS when ``value <comparison> limit``; FAIL with ``missing`` when value is None."""
    if value is None or not math.isfinite(value):
        return GateCriterion(id_, label, None, limit, comparison, unit, False, missing)
    passed = _holds(value, comparison, limit)
    reason = "" if passed else f"{value:.4g} is not {comparison} {limit:g}"
    return GateCriterion(id_, label, value, limit, comparison, unit, passed, reason)


def window_daily_returns(equity: pd.Series) -> np.ndarray:
    """Daily returns of a window: ``close_d / close_(d-1) - 1``.

    The window's first point is its opening equity (the snapshot at the window's start,
    or the run's initial equity); every later point is stamped at its bar's close, so
    one at 00:00 UTC closes the day before. ``close_d`` is the last equity of UTC day d,
    and the first day's base is the opening equity: 30 days of hourly snapshots after
    the opening point give 30 returns.
    """
    if len(equity) < 2:
        return np.zeros(0)
    index = pd.DatetimeIndex(equity.index)
    days = (index[1:] - pd.Timedelta(microseconds=1)).floor("D")
    closes = equity.iloc[1:].groupby(days).last().to_numpy(float)
    base = np.concatenate(([float(equity.iloc[0])], closes[:-1]))
    return np.asarray(closes / base - 1.0, dtype=float)


def sharpe_daily(returns: Sequence[float], periods_per_year: float) -> float | None:
    """``sqrt(periods_per_year) * mean / std(ddof=1)``; None below 2 returns or std 0."""
    values = np.asarray(returns, dtype=float)
    if values.size < 2:
        return None
    std = float(values.std(ddof=1))
    if std == 0:
        return None
    return float(values.mean()) / std * math.sqrt(periods_per_year)


def max_drawdown_pct(equity: Sequence[float]) -> float | None:
    """``max((peak - equity) / peak) * 100`` with the running peak; None when empty."""
    values = np.asarray(equity, dtype=float)
    if values.size == 0:
        return None
    peak = np.maximum.accumulate(values)
    return float(np.max((peak - values) / peak)) * 100.0


def count_fires(decisions: Sequence[GuardFire]) -> FireCounts:
    """Kill-switch fires by UTC day: a day with a CRITICAL decision is one CRITICAL fire.

    A day with any other decision that acted (action not NO_ACTION and severity
    above LOW: WARNING, MANUAL_REVIEW, REDUCE_RISK_50, DISABLE_SLEEVE) and no
    CRITICAL one is one WARNING-level fire. Counting days, not decisions, keeps
    an hourly guard that repeats one warning all day at one fire.
    """
    critical_days: set[object] = set()
    warning_days: set[object] = set()
    for decision in decisions:
        day = decision.ts.date()
        if decision.severity == CRITICAL_SEVERITY or decision.action == "FLATTEN_ALL":
            critical_days.add(day)
        elif decision.action not in QUIET_ACTIONS and decision.severity not in QUIET_SEVERITIES:
            warning_days.add(day)
    return FireCounts(
        warning_days=len(warning_days - critical_days),
        critical_days=len(critical_days),
        decisions=len(decisions),
    )


def evaluate_paper_gate(inputs: PaperGateInputs, gate: PaperGate) -> PaperGateVerdict:
    """The six criteria and the history check."""
    history = criterion(
        "history_days", "Paper history", inputs.history_days, ">=", float(inputs.days), "days"
    )
    if not history.passed:
        history = _with_reason(
            history,
            f"only {inputs.history_days:.2f} days of equity history in the window; "
            f"the gate needs {inputs.days}",
        )
    slippage_ratio = (
        None if inputs.slippage_bps is None else inputs.slippage_bps / gate.assumed_slippage_bps
    )
    funding_ratio = (
        None
        if inputs.mean_paid_funding_rate is None
        else inputs.mean_paid_funding_rate * 100.0 / gate.assumed_funding_rate_pct
    )
    consistency = (
        inputs.signals_matched / inputs.signals_compared * 100.0
        if inputs.signals_compared
        else None
    )
    return PaperGateVerdict(
        criteria=(
            criterion(
                "sharpe_30d",
                f"{inputs.days}D Sharpe",
                sharpe_daily(inputs.daily_returns, gate.sharpe_annualization_periods),
                ">",
                gate.sharpe_30d_min,
                "",
                missing="no data: fewer than 2 daily returns (or no variance)",
            ),
            criterion(
                "max_mdd_pct",
                "Max MDD",
                max_drawdown_pct(inputs.window_equity),
                "<",
                gate.max_mdd_pct,
                "%",
                missing="no data: no equity snapshots in the window",
            ),
            criterion(
                "slippage_ratio",
                "Slippage ratio",
                slippage_ratio,
                "<=",
                gate.slippage_ratio_max,
                "x",
                missing="no data: no fills with a reference (order) price in the window",
            ),
            criterion(
                "funding_ratio",
                "Funding ratio",
                funding_ratio,
                "<=",
                gate.funding_ratio_max,
                "x",
                missing="no data: no funding settlements in the window",
            ),
            criterion(
                "signal_consistency_pct",
                "Signal consistency",
                consistency,
                ">=",
                gate.signal_consistency_min_pct,
                "%",
                missing="no data: no paper-versus-replay signal checks in the window",
            ),
            _kill_switch(inputs.fires, gate),
        ),
        history=history,
    )


def _with_reason(item: GateCriterion, reason: str) -> GateCriterion:
    return GateCriterion(
        item.id, item.label, item.value, item.limit, item.comparison, item.unit, item.passed, reason
    )


def _kill_switch(fires: FireCounts | None, gate: PaperGate) -> GateCriterion:
    """PASS with at most ``max_warnings`` WARNING days and ``max_critical`` CRITICAL days."""
    label = "Kill switch fires"
    if fires is None or fires.decisions == 0:
        return GateCriterion(
            "kill_switch_fires",
            label,
            None,
            float(gate.max_warnings),
            "<=",
            "warnings",
            False,
            "no data: no risk-guard decisions recorded in the window (run the guard daily)",
        )
    reasons = []
    if fires.critical_days > gate.max_critical:
        reasons.append(f"{fires.critical_days} CRITICAL (max {gate.max_critical})")
    if fires.warning_days > gate.max_warnings:
        reasons.append(f"{fires.warning_days} WARNING (max {gate.max_warnings})")
    return GateCriterion(
        "kill_switch_fires",
        label,
        float(fires.warning_days),
        float(gate.max_warnings),
        "<=",
        "warnings",
        not reasons,
        "; ".join(reasons),
    )
