"""Stage6 Portfolio Governor: strategy scores -> smoothed, clamped weights summing to 1.

The pipeline (docs/governor.md has the formulas and a worked example):

1. per strategy, score = multiplier * max(0, w_alpha*alpha - w_cost*cost - w_slo*slo
   - w_risk*risk), every term in [0, 1];
2. a score below ``min_score`` is ignored: that strategy's target is its baseline;
3. the other strategies share the remaining weight in proportion to their scores;
4. smoothed = smoothing * previous + (1 - smoothing) * target (0.55 on the previous);
5. clamp each weight to [max(min_i, global_min), min(max_i, global_max)];
6. renormalise to sum 1 inside the same bounds by water-filling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from stagectl.domain.market_intel import MarketIntelReport

FloatArray = npt.NDArray[np.float64]
STRATEGIES = ("trend", "mean_reversion", "vol_target", "cross_exchange")


class InfeasibleBoundsError(ValueError):
    """The weight bounds cannot hold a portfolio summing to 1 (sum of mins > 1 or maxes < 1)."""


@dataclass(frozen=True)
class StrategyLimits:
    """Seed 000 limits of one strategy; weights are fractions of the portfolio."""

    baseline: float
    min_weight: float
    max_weight: float
    max_signals: int
    multiplier: float
    spread_crossings: float = 1.0


def _seed_strategies() -> dict[str, StrategyLimits]:
    # Seed 000 values; spread_crossings (half-spreads paid per signal) is our default.
    return {
        "trend": StrategyLimits(0.38, 0.22, 0.60, 3, 1.25, spread_crossings=1.0),
        "mean_reversion": StrategyLimits(0.27, 0.10, 0.45, 5, 1.45, spread_crossings=2.0),
        "vol_target": StrategyLimits(0.23, 0.12, 0.40, 3, 1.15, spread_crossings=1.0),
        "cross_exchange": StrategyLimits(0.12, 0.05, 0.28, 4, 1.30, spread_crossings=2.0),
    }


@dataclass(frozen=True)
class GovernorParams:
    """Governor settings: seed 000 values by default; the scales are Stress Lab limits."""

    strategies: Mapping[str, StrategyLimits] = field(default_factory=_seed_strategies)
    rebalance_interval_min: float = 20.0
    smoothing: float = 0.55
    default_baseline: float = 0.28
    min_weight: float = 0.08
    max_weight: float = 0.50
    min_score: float = 0.08
    base_cost_bps: float = 5.0
    alpha_weight: float = 0.9
    cost_weight: float = 1.3
    slo_weight: float = 1.2
    risk_weight: float = 0.8
    cost_budget_multiple: float = 10.0
    latency_limit_ms: float = 150.0
    blackout_limit_min: float = 40.0
    liquidity_drop_limit_pct: float = 55.0
    volatility_change_limit_pct: float = 80.0
    dispersion_limit_bps: float = 50.0

    def bounds(self, names: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """Effective per-strategy bounds: [max(min_i, global min), min(max_i, global max)]."""
        lower = np.array([max(self.strategies[n].min_weight, self.min_weight) for n in names])
        upper = np.array([min(self.strategies[n].max_weight, self.max_weight) for n in names])
        if np.any(lower > upper):
            raise InfeasibleBoundsError("a strategy's minimum weight exceeds its maximum")
        return lower, upper


@dataclass(frozen=True)
class SymbolSignals:
    """The Market Intel values of one symbol that the governor scores from."""

    symbol: str
    efficiency_ratio: float
    vol_ratio: float
    volatility_change_pct: float
    liquidity_drop_pct: float
    spread_bps: float
    dispersion_bps: float | None


@dataclass(frozen=True)
class GovernorInputs:
    """Per-symbol signals plus the aggregate's SLO values and weight."""

    symbols: tuple[SymbolSignals, ...]
    latency_ms: float
    blackout_min: float
    aggregate_weight: float

    @classmethod
    def from_market_intel(cls, report: MarketIntelReport) -> GovernorInputs:
        symbols = tuple(
            SymbolSignals(
                symbol=s.symbol,
                efficiency_ratio=s.efficiency_ratio,
                vol_ratio=s.realized_vol_ann / s.realized_vol_baseline_ann,
                volatility_change_pct=s.volatility_change_pct,
                liquidity_drop_pct=s.liquidity_drop_pct,
                spread_bps=s.spread_bps,
                dispersion_bps=s.dispersion_bps,
            )
            for s in report.snapshots
        )
        agg = report.aggregate
        return cls(symbols, agg.latency_ms, agg.blackout_min, agg.weight)


@dataclass(frozen=True)
class StrategyScore:
    """The terms of one strategy's score (all in [0, 1] except score)."""

    strategy: str
    alpha: float
    cost: float
    slo: float
    risk: float
    expected_cost_bps: float
    score: float
    ignored: bool


def _symbol_alphas(strategy: str, inputs: GovernorInputs, p: GovernorParams) -> FloatArray:
    sym = inputs.symbols
    er = np.array([s.efficiency_ratio for s in sym])
    if strategy == "trend":
        return np.asarray(er, dtype=np.float64)
    if strategy == "mean_reversion":
        vol_ratio = np.array([s.vol_ratio for s in sym], dtype=np.float64)
        return np.asarray((1.0 - er) * np.minimum(1.0, vol_ratio), dtype=np.float64)
    if strategy == "vol_target":
        change = np.abs(np.array([s.volatility_change_pct for s in sym], dtype=np.float64))
        return np.asarray(
            np.clip(1.0 - change / p.volatility_change_limit_pct, 0.0, 1.0), dtype=np.float64
        )
    if strategy == "cross_exchange":
        disp = np.array(
            [0.0 if s.dispersion_bps is None else s.dispersion_bps for s in sym], dtype=np.float64
        )
        return np.asarray(np.clip(disp / p.dispersion_limit_bps, 0.0, 1.0), dtype=np.float64)
    raise ValueError(f"no alpha model for strategy {strategy!r} (known: {', '.join(STRATEGIES)})")


def _ratio_sq(value: FloatArray | float, limit: float) -> FloatArray:
    return np.asarray(np.clip(np.asarray(value) / limit, 0.0, 1.0) ** 2, dtype=np.float64)


def slo_penalty(latency_ms: float, blackout_min: float, p: GovernorParams) -> float:
    """max(latency/limit, blackout/limit), clipped to [0, 1], squared."""
    return float(
        max(
            _ratio_sq(latency_ms, p.latency_limit_ms), _ratio_sq(blackout_min, p.blackout_limit_min)
        )
    )


def risk_penalty(inputs: GovernorInputs, p: GovernorParams) -> float:
    """Mean over symbols of mean((drop/limit)^2, (vol rise/limit)^2), ratios clipped to [0, 1]."""
    drop = _ratio_sq(
        np.array([s.liquidity_drop_pct for s in inputs.symbols]), p.liquidity_drop_limit_pct
    )
    rise = _ratio_sq(
        np.array([s.volatility_change_pct for s in inputs.symbols]), p.volatility_change_limit_pct
    )
    return float(np.mean((drop + rise) / 2.0))


def score_strategy(strategy: str, inputs: GovernorInputs, p: GovernorParams) -> StrategyScore:
    """One strategy's score; formulas in the module docstring and docs/governor.md."""
    limits = p.strategies[strategy]
    alphas = np.sort(_symbol_alphas(strategy, inputs, p))[::-1][: limits.max_signals]
    alpha = float(np.clip(alphas.mean() * inputs.aggregate_weight, 0.0, 1.0))
    mean_spread = float(np.mean([s.spread_bps for s in inputs.symbols]))
    expected_cost_bps = p.base_cost_bps + limits.spread_crossings * mean_spread / 2.0
    cost = float(
        np.clip(
            (expected_cost_bps - p.base_cost_bps) / (p.cost_budget_multiple * p.base_cost_bps),
            0.0,
            1.0,
        )
    )
    slo = slo_penalty(inputs.latency_ms, inputs.blackout_min, p)
    risk = risk_penalty(inputs, p)
    raw = p.alpha_weight * alpha - p.cost_weight * cost - p.slo_weight * slo - p.risk_weight * risk
    score = limits.multiplier * max(0.0, raw)
    return StrategyScore(
        strategy, alpha, cost, slo, risk, expected_cost_bps, score, ignored=score < p.min_score
    )


def target_weights(scores: Mapping[str, StrategyScore], p: GovernorParams) -> dict[str, float]:
    """Ignored strategies get their baseline; the rest share what is left by score."""
    ignored = {n for n, s in scores.items() if s.ignored}
    remaining = 1.0 - sum(p.strategies[n].baseline for n in ignored)
    active_total = sum(s.score for n, s in scores.items() if n not in ignored)
    if active_total <= 0.0:
        return {n: p.strategies[n].baseline for n in scores}
    return {
        n: p.strategies[n].baseline if n in ignored else remaining * s.score / active_total
        for n, s in scores.items()
    }


def renormalise_within_bounds(
    weights: npt.ArrayLike, lower: npt.ArrayLike, upper: npt.ArrayLike, tol: float = 1e-12
) -> FloatArray:
    """Water-fill: weights inside [lower, upper] that sum to 1, proportional where free.

    The result is ``clip(lam * w, lower, upper)`` with the one ``lam`` that makes it
    sum to 1: the sum is continuous and non-decreasing in ``lam``, from
    ``sum(lower)`` at 0 to ``sum(upper)`` as ``lam`` grows, so bisection finds it
    whenever ``sum(lower) <= 1 <= sum(upper)``. Zero weights get a tiny positive
    base so they can still rise towards their bounds when the others are capped.
    A last residual of floating-point size goes to the weights not at a bound.
    """
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    if (lo > hi).any() or lo.sum() > 1.0 + tol or hi.sum() < 1.0 - tol:
        raise InfeasibleBoundsError(
            f"bounds cannot sum to 1: sum of minimums {lo.sum():.4f}, maximums {hi.sum():.4f}"
        )
    w = np.clip(np.nan_to_num(np.asarray(weights, dtype=np.float64)), 0.0, None)
    base = w + 1e-12 * max(1.0, float(w.max(initial=0.0)))

    def total(lam: float) -> float:
        return float(np.clip(lam * base, lo, hi).sum())

    low, high = 0.0, 1.0
    for _ in range(200):
        if total(high) >= 1.0:
            break
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if total(mid) < 1.0:
            low = mid
        else:
            high = mid
    x = np.clip(high * base, lo, hi)
    residual = 1.0 - x.sum()
    free = (x > lo) & (x < hi) if residual > 0 else (x > lo)
    if free.any() and abs(residual) > 0:
        x[free] += (
            residual * x[free] / x[free].sum() if x[free].sum() > 0 else residual / free.sum()
        )
        x = np.clip(x, lo, hi)
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True)
class GovernorDecision:
    """Every stage of one governor run, for the report and the audit trail."""

    inputs: GovernorInputs
    scores: Mapping[str, StrategyScore]
    ignored: tuple[str, ...]
    previous: Mapping[str, float]
    target: Mapping[str, float]
    smoothed: Mapping[str, float]
    clamped: Mapping[str, float]
    final: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": asdict(self.inputs),
            "scores": {n: asdict(s) for n, s in self.scores.items()},
            "ignored": list(self.ignored),
            "previous": dict(self.previous),
            "target": dict(self.target),
            "smoothed": dict(self.smoothed),
            "clamped": dict(self.clamped),
            "final": dict(self.final),
        }


def decide(
    inputs: GovernorInputs,
    params: GovernorParams = GovernorParams(),
    previous: Mapping[str, float] | None = None,
) -> GovernorDecision:
    """Run the whole pipeline. Without ``previous`` the baselines are the previous weights;
    a strategy missing from ``previous`` enters at ``default_baseline``."""
    names = tuple(params.strategies)
    if previous is None:
        prev = {n: params.strategies[n].baseline for n in names}
    else:
        prev = {n: float(previous.get(n, params.default_baseline)) for n in names}
    scores = {n: score_strategy(n, inputs, params) for n in names}
    target = target_weights(scores, params)
    s = params.smoothing
    smoothed = {n: s * prev[n] + (1.0 - s) * target[n] for n in names}
    lower, upper = params.bounds(names)
    clamped_arr = np.clip(np.array([smoothed[n] for n in names]), lower, upper)
    final_arr = renormalise_within_bounds(clamped_arr, lower, upper)
    return GovernorDecision(
        inputs=inputs,
        scores=scores,
        ignored=tuple(n for n in names if scores[n].ignored),
        previous=prev,
        target=target,
        smoothed=smoothed,
        clamped=dict(zip(names, clamped_arr.tolist(), strict=True)),
        final=dict(zip(names, final_arr.tolist(), strict=True)),
    )


def rebalance_allowed(
    last_rebalance_at: datetime | None, now: datetime, interval_min: float
) -> tuple[bool, datetime]:
    """(allowed, next_due_at): allowed once ``interval_min`` minutes passed since the last
    rebalance (at exactly the interval it is allowed); never rebalanced: allowed now."""
    if last_rebalance_at is None:
        return True, now
    next_due_at = last_rebalance_at + timedelta(minutes=interval_min)
    return now >= next_due_at, next_due_at
