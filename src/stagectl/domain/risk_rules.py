"""The risk guard's rules: indicator values in, breaches, actions and severities out.

Shared by the hourly guard (one evaluation time) and ``--replay`` (many): both call
:func:`evaluate_rules` on indicator frames indexed by time.

Conventions (docs/risk-guard.md):

- A rule breaches at time t when ``value * scale <op> threshold`` holds; ``abs>``
  compares ``|value * scale|``; ``not_in`` breaches when the value is not one of
  the listed states. A missing value (NaN: not enough history, no fills) never
  breaches.
- ``consecutive_days = N > 1``: the rule breaches at t when the indicator breached
  at each of the last N daily checks (``daily_utc``, 08:00 UTC in the runbook) at or
  before t. Daily checks with no value (NaN) neither extend nor break a streak, so
  "slippage above 4.5 bps five days in a row" counts days that had fills.
- The decision at t is the most severe action of the breached rules, ranked
  FLATTEN_ALL > REDUCE_RISK_50 > DISABLE_SLEEVE > WARNING > MANUAL_REVIEW >
  NO_ACTION, and the highest severity among them. With no breach, a value within
  ``near_threshold_pct`` of a threshold (on the safe side) makes the severity LOW:
  logged, mentioned in the weekly report, no action. So is a value past the
  threshold of a consecutive-day rule whose streak is still too short.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import cached_property

import numpy as np
import pandas as pd

from stagectl.config.risk_guard import Rule

ACTION_RANK: dict[str, int] = {
    "NO_ACTION": 0,
    "MANUAL_REVIEW": 1,
    "WARNING": 2,
    "DISABLE_SLEEVE": 3,
    "REDUCE_RISK_50": 4,
    "FLATTEN_ALL": 5,
}
SEVERITY_RANK: dict[str, int] = {"NONE": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
PORTFOLIO = "portfolio"
RuleKey = tuple[Rule, str | None]
"""A rule and the sleeve it judges (None: the portfolio)."""


@dataclass(frozen=True)
class IndicatorFrames:
    """Indicator values over time: one frame for the portfolio, one per sleeve.

    Columns are indicator names (``rolling_sharpe_20d``, ``sleeve_mdd_pct``...);
    the index is a sorted UTC DatetimeIndex shared by all frames.
    """

    portfolio: pd.DataFrame
    sleeves: Mapping[str, pd.DataFrame]

    def series(self, indicator: str, sleeve: str | None) -> pd.Series:
        frame = self.portfolio if sleeve is None else self.sleeves[sleeve]
        if indicator not in frame.columns:
            return pd.Series(np.nan, index=frame.index, dtype=float)
        return frame[indicator].astype(float)


@dataclass(frozen=True)
class RuleHit:
    """One rule breached at one time (for one sleeve, when sleeve-scoped)."""

    at: datetime
    rule_id: str
    indicator: str
    sleeve: str | None
    value: float
    op: str
    threshold: float | tuple[float, ...]
    consecutive_days: int
    action: str
    severity: str
    message: str


@dataclass(frozen=True)
class NearMiss:
    """An indicator within ``near_threshold_pct`` of a rule's threshold, not past it."""

    rule_id: str
    indicator: str
    sleeve: str | None
    value: float
    threshold: float


@dataclass(frozen=True)
class GuardDecision:
    """The guard's verdict at one evaluation time."""

    at: datetime
    action: str
    severity: str
    hits: tuple[RuleHit, ...] = ()
    near: tuple[NearMiss, ...] = field(default_factory=tuple)

    @property
    def disabled_sleeves(self) -> tuple[str, ...]:
        return tuple(
            sorted({h.sleeve for h in self.hits if h.action == "DISABLE_SLEEVE" and h.sleeve})
        )


def _scaled(values: np.ndarray, rule: Rule) -> np.ndarray:
    """``value * scale`` (the values themselves, not a copy, when the scale is 1)."""
    array = np.asarray(values, dtype=float)
    return array if rule.scale == 1.0 else array * rule.scale


def breaches(values: np.ndarray, rule: Rule) -> np.ndarray:
    """Elementwise: does ``value * scale <op> threshold`` hold? NaN never breaches."""
    scaled = _scaled(values, rule)
    with np.errstate(invalid="ignore"):
        if rule.op == "not_in":
            allowed = np.asarray(rule.value, dtype=float)
            return np.asarray(~np.isin(scaled, allowed) & ~np.isnan(scaled), dtype=bool)
        threshold = float(rule.value)  # type: ignore[arg-type]
        # a comparison with NaN is False: NaN never breaches
        if rule.op == "abs>":
            return np.asarray(np.abs(scaled) > threshold, dtype=bool)
        compare = {
            "<": np.less,
            "<=": np.less_equal,
            ">": np.greater,
            ">=": np.greater_equal,
        }
        return np.asarray(compare[rule.op](scaled, threshold), dtype=bool)


def near_threshold(
    values: np.ndarray, rule: Rule, near_pct: float, breached: np.ndarray | None = None
) -> np.ndarray:
    """Elementwise: within ``near_pct`` % of the threshold's magnitude, not breached
    (``breached``: :func:`breaches` of the values, when already known)."""
    if rule.op == "not_in" or near_pct <= 0:
        return np.zeros(np.shape(values), dtype=bool)
    threshold = float(rule.value)  # type: ignore[arg-type]
    scaled = _scaled(values, rule)
    if rule.op == "abs>":  # a buffer of our own, written in place
        distance = np.abs(scaled)
        np.subtract(distance, threshold, out=distance)
    else:
        distance = np.subtract(scaled, threshold)
    np.abs(distance, out=distance)
    band = abs(threshold) * near_pct / 100.0
    with np.errstate(invalid="ignore"):
        close = distance <= band  # False for NaN
    past = breaches(values, rule) if breached is None else breached
    return np.asarray(close & ~past, dtype=bool)


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def value_breaches(value: float, rule: Rule) -> bool:
    """:func:`breaches` of one value, without numpy's per-call cost (the in-loop guard
    judges ~20 values an hour; a property test binds the two)."""
    scaled = float(value) * rule.scale
    if math.isnan(scaled):
        return False
    if rule.op == "not_in":
        return scaled not in [float(v) for v in rule.value]  # type: ignore[union-attr]
    threshold = float(rule.value)  # type: ignore[arg-type]
    if rule.op == "abs>":
        return abs(scaled) > threshold
    return _COMPARE[rule.op](scaled, threshold)


def value_near(value: float, rule: Rule, near_pct: float) -> bool:
    """:func:`near_threshold` of one value."""
    if rule.op == "not_in" or near_pct <= 0:
        return False
    threshold = float(rule.value)  # type: ignore[arg-type]
    scaled = float(value) * rule.scale
    if rule.op == "abs>":
        scaled = abs(scaled)
    band = abs(threshold) * near_pct / 100.0
    return abs(scaled - threshold) <= band and not value_breaches(value, rule)


def streak_lengths(breached: np.ndarray, observed: np.ndarray, carry: int = 0) -> np.ndarray:
    """Consecutive-breach count at each daily check; unobserved days carry the count.

    Example: breached [T, T, -, F, T] with day 3 unobserved -> [1, 2, 2, 0, 1].
    ``carry`` is the count at the check before the first (the streaks of a later stretch
    of checks continue the earlier one's).
    """
    b = np.asarray(breached, dtype=bool)
    o = np.asarray(observed, dtype=bool)
    n = len(b)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # Count of observed breaches so far, reset at each observed non-breach.
    step = (b & o).astype(np.int64)
    cumulative = carry + np.cumsum(step)
    reset_at = np.where(o & ~b, cumulative, 0)
    last_reset = np.maximum.accumulate(reset_at)
    return np.asarray(cumulative - last_reset, dtype=np.int64)


def daily_check_mask(times_ns: np.ndarray, daily_utc: str) -> np.ndarray:
    """Which of the UTC times (nanoseconds) fall in the daily check's minute (``HH:MM``
    UTC), as :func:`daily_check_times` compares hour and minute."""
    hour, minute = (int(p) for p in daily_utc.split(":"))
    times = np.asarray(times_ns, dtype=np.int64)
    mask = np.empty(len(times), dtype=bool)
    for lo in range(0, len(times), _CHUNK):  # cache-sized temporaries over minute bars
        minute_of_day = times[lo : lo + _CHUNK] // 60_000_000_000
        minute_of_day %= 1440
        np.equal(minute_of_day, hour * 60 + minute, out=mask[lo : lo + _CHUNK])
    return mask


def daily_check_times(index: pd.DatetimeIndex, daily_utc: str) -> pd.DatetimeIndex:
    """The daily check times (``HH:MM`` UTC) that fall on bars of ``index``."""
    hour, minute = (int(p) for p in daily_utc.split(":"))
    at = time(hour, minute)
    mask = (index.hour == at.hour) & (index.minute == at.minute)
    return index[mask]


def rule_breach_series(
    values: pd.Series, rule: Rule, eval_times: pd.DatetimeIndex, daily_utc: str
) -> np.ndarray:
    """Whether ``rule`` breaches at each evaluation time, consecutive days included: a
    consecutive-day rule holds at t when its streak as of the latest daily check at or
    before t is long enough (:func:`evaluate_values`)."""
    table = evaluate_values(
        [values.to_numpy(dtype=float)],
        ((rule, None),),
        pd.DatetimeIndex(values.index).as_unit("ns").asi8,
        eval_times,
        daily_utc=daily_utc,
        near_threshold_pct=0.0,
    )
    return np.asarray(table.breach_matrix[0], dtype=bool)


def rule_keys(rules: Sequence[Rule], sleeves: Iterable[str]) -> tuple[RuleKey, ...]:
    """Every (rule, sleeve) a decision is made of, in rule order: portfolio rules once
    (sleeve None), sleeve rules once per sleeve in name order."""
    names = sorted(sleeves)
    return tuple(
        (rule, sleeve)
        for rule in rules
        for sleeve in ([None] if rule.scope == PORTFOLIO else names)
    )


@dataclass(frozen=True)
class DecisionTable:
    """Decisions at many evaluation times, kept as arrays until a row is needed.

    ``key_values`` holds each key's indicator value per evaluation time, one row per key
    (a (keys, eval times) array, or the rows the table was given: :func:`evaluate_values`
    keeps its inputs when every evaluation time is a bar, where a copy would cost
    hundreds of MB over minute bars); ``values`` stacks them when first read.
    """

    eval_times: pd.DatetimeIndex
    action_rank: np.ndarray
    severity_rank: np.ndarray
    breach_matrix: np.ndarray  # (rules x targets, eval times)
    near_matrix: np.ndarray
    keys: tuple[RuleKey, ...]
    key_values: np.ndarray | Sequence[np.ndarray]

    @cached_property
    def values(self) -> np.ndarray:
        """The indicator value per key and evaluation time, (keys, eval times)."""
        if isinstance(self.key_values, np.ndarray):
            return self.key_values
        if not len(self.key_values):
            return np.empty((0, len(self.eval_times)))
        return np.stack(self.key_values)

    def value(self, k: int, i: int) -> float:
        """Key ``k``'s indicator value at evaluation ``i``."""
        return float(self.key_values[k][i])

    def action(self, i: int) -> str:
        return _name(ACTION_RANK, int(self.action_rank[i]))

    def severity(self, i: int) -> str:
        return _name(SEVERITY_RANK, int(self.severity_rank[i]))

    def hit(self, k: int, i: int, at: datetime | None = None) -> RuleHit:
        """Key ``k`` as a hit at evaluation ``i`` (``at``: that time, when already known)."""
        rule, sleeve = self.keys[k]
        return RuleHit(
            at=self.eval_times[i].to_pydatetime() if at is None else at,
            rule_id=rule.id,
            indicator=rule.indicator,
            sleeve=sleeve,
            value=self.value(k, i),
            op=rule.op,
            threshold=rule.value,
            consecutive_days=rule.consecutive_days,
            action=rule.action,
            severity=rule.severity,
            message=rule.message,
        )

    def decision(self, i: int) -> GuardDecision:
        at = self.eval_times[i].to_pydatetime()
        hits = tuple(self.hit(k, i, at) for k in np.flatnonzero(self.breach_matrix[:, i]).tolist())
        near = tuple(
            NearMiss(rule.id, rule.indicator, sleeve, self.value(k, i), float(rule.value))  # type: ignore[arg-type]
            for k, (rule, sleeve) in enumerate(self.keys)
            if self.near_matrix[k, i]
        )
        return GuardDecision(at, self.action(i), self.severity(i), hits, near)


def _name(ranks: Mapping[str, int], rank: int) -> str:
    return next(name for name, r in ranks.items() if r == rank)


def evaluate_rules(
    frames: IndicatorFrames,
    rules: Sequence[Rule],
    eval_times: pd.DatetimeIndex,
    *,
    daily_utc: str,
    near_threshold_pct: float,
) -> DecisionTable:
    """Evaluate every rule (per sleeve when sleeve-scoped) at every evaluation time."""
    keys = rule_keys(rules, frames.sleeves)
    bars = pd.DatetimeIndex(frames.portfolio.index)

    def on_bars(series: pd.Series) -> np.ndarray:
        same = series.index.equals(bars)
        return (series if same else series.reindex(bars)).to_numpy(dtype=float)

    return evaluate_values(
        [on_bars(frames.series(rule.indicator, sleeve)) for rule, sleeve in keys],
        keys,
        bars.as_unit("ns").asi8,
        eval_times,
        daily_utc=daily_utc,
        near_threshold_pct=near_threshold_pct,
    )


def evaluate_values(
    key_values: Sequence[np.ndarray],
    keys: tuple[RuleKey, ...],
    bar_times_ns: np.ndarray,
    eval_times: pd.DatetimeIndex,
    *,
    daily_utc: str,
    near_threshold_pct: float,
) -> DecisionTable:
    """:func:`evaluate_rules` from each key's indicator values at every bar (UTC times in
    nanoseconds, sorted): the value at an evaluation time is the bar's at that time (NaN
    when no bar has it); a consecutive-day rule counts its streak over the daily checks
    among the bars.

    When every evaluation time is a bar, the table keeps the arrays given (no copy): the
    caller no longer writes them (the replay's final table, the minute guard pass)."""
    bars = np.asarray(bar_times_ns, dtype=np.int64)
    at = pd.DatetimeIndex(eval_times).as_unit("ns").asi8
    daily = daily_check_mask(bars, daily_utc)
    checks = np.flatnonzero(daily)
    position: np.ndarray | None = None
    if np.array_equal(at, bars):  # every bar (hourly, the minute benchmark): no search
        latest = np.cumsum(daily, dtype=np.int64)
        latest -= 1
        found = None
    else:
        position = np.minimum(np.searchsorted(bars, at), max(len(bars) - 1, 0))
        found = (bars[position] == at) if len(bars) else np.zeros(len(at), dtype=bool)
        latest = np.searchsorted(bars[checks], at, side="right") - 1
        if found.all():
            found = None
    # the daily checks' latest index never decreases: the times it is known are a suffix
    seen = int(np.searchsorted(latest, 0)) if _ascending(latest) else None
    n = len(at)
    breach = np.zeros((len(keys), n), dtype=bool)
    near = np.zeros((len(keys), n), dtype=bool)
    rows: list[np.ndarray] = []
    for k, (rule, _) in enumerate(keys):
        series = np.asarray(key_values[k], dtype=float)
        if position is None:
            at_eval = series
        elif found is None:
            at_eval = series[position]
        else:
            at_eval = np.full(n, np.nan)
            np.copyto(at_eval, series[position], where=found)
        rows.append(at_eval)
        streaky = rule.consecutive_days > 1
        if streaky:
            at_checks = series[checks]
            streak = streak_lengths(breaches(at_checks, rule), ~np.isnan(at_checks))
            holds = streak >= rule.consecutive_days
            if position is None and len(checks):
                # every bar: from one check to the next the latest check is the same
                breach[k, checks[0] :] = np.repeat(holds, np.diff(checks, append=n))
            elif seen is None:
                known = latest >= 0
                breach[k, known] = holds[latest[known]]
            else:
                np.take(holds, latest[seen:], out=breach[k, seen:])
        # elementwise, in chunks that stay in the cache (minute bars: ~40 of them)
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            part = at_eval[lo:hi]
            past = breaches(part, rule)
            if not streaky:
                breach[k, lo:hi] = past
            # A consecutive-day rule whose value is past the threshold on a streak still
            # too short has not fired yet: that is "near" too (LOW).
            close = near_threshold(part, rule, near_threshold_pct, breached=past)
            close |= past
            np.logical_and(close, ~breach[k, lo:hi], out=near[k, lo:hi])
    return decision_table(eval_times, keys, rows, breach, near)


def _ascending(values: np.ndarray) -> bool:
    """Whether ``values`` never decrease (checked without a full-length temporary)."""
    last = len(values) - 1
    return all(
        not (values[lo + 1 : hi + 1] < values[lo:hi]).any()
        for lo in range(0, max(last, 0), _CHUNK)
        for hi in [min(lo + _CHUNK, last)]
    )


_CHUNK = 1 << 16
"""Evaluations judged at a time by :func:`evaluate_values`: their temporaries (a few
arrays of 512 kB) stay in the cache where whole minute-bar rows (21 MB) would not."""


def evaluate_at(
    at: pd.Timestamp,
    keys: tuple[RuleKey, ...],
    values: Sequence[float],
    streaks_hold: Sequence[bool],
    *,
    near_threshold_pct: float,
) -> DecisionTable:
    """:func:`evaluate_rules` at the single time ``at``, from each key's value there and,
    for the consecutive-day rules, whether its streak as of the latest daily check at or
    before ``at`` is long enough (``streaks_hold``; ignored for the other rules)."""
    breach = np.zeros(len(keys), dtype=bool)
    close = np.zeros(len(keys), dtype=bool)
    for k, (rule, _) in enumerate(keys):
        past = value_breaches(values[k], rule)
        fired = bool(streaks_hold[k]) if rule.consecutive_days > 1 else past
        breach[k] = fired
        # as in evaluate_rules: past the threshold on a streak still too short is near too
        close[k] = (past or value_near(values[k], rule, near_threshold_pct)) and not fired
    column = np.asarray(values, dtype=float)[:, None]
    return decision_table(pd.DatetimeIndex([at]), keys, column, breach[:, None], close[:, None])


def decision_table(
    eval_times: pd.DatetimeIndex,
    keys: tuple[RuleKey, ...],
    values: np.ndarray | Sequence[np.ndarray],
    breach: np.ndarray,
    near: np.ndarray,
) -> DecisionTable:
    """The decisions from each key's value, breach and near miss (keys x eval times):
    the precedence of the module docstring. Shared by :func:`evaluate_rules` and the
    in-loop guard's one-time evaluation (``domain.risk_stream``)."""
    n = len(eval_times)
    action_rank = np.zeros(n, dtype=np.int64)
    severity_rank = np.zeros(n, dtype=np.int64)
    if keys:
        # the most severe action and the highest severity among the breached keys (0:
        # none), in bytes and chunks: a (keys x times) integer table costs gigabytes over
        # minute bars
        actions = np.array([[ACTION_RANK[rule.action]] for rule, _ in keys], dtype=np.uint8)
        severities = np.array([[SEVERITY_RANK[r.severity]] for r, _ in keys], dtype=np.uint8)
        ranked = np.empty((len(keys), min(n, _CHUNK)), dtype=np.uint8)
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            hits, scratch = breach[:, lo:hi].view(np.uint8), ranked[:, : hi - lo]
            action_rank[lo:hi] = np.multiply(hits, actions, out=scratch).max(axis=0)
            severity = np.multiply(hits, severities, out=scratch).max(axis=0)
            severity[(severity == 0) & near[:, lo:hi].any(axis=0)] = SEVERITY_RANK["LOW"]
            severity_rank[lo:hi] = severity
    return DecisionTable(eval_times, action_rank, severity_rank, breach, near, keys, values)


def exit_code_for(action: str) -> int:
    """The CLI contract: 0 for NO_ACTION (LOW included), 1 for any recommended action."""
    return 0 if action == "NO_ACTION" else 1
