"""Shadow/canary comparison and the promotion verdict (seed 001 §9; docs/research.md).

- Both runs are per-period net returns over the same periods (paired), as fractions of
  equity; ``periods_per_year`` annualises Sharpe and IR (hourly: 8760).
- Significance: one-sided, H1 "the candidate's mean return beats the baseline's".
  The verdict uses the paired circular block bootstrap (it keeps the pairing, which
  cancels the common market noise, and the autocorrelation within a block); the Welch
  t-test is reported next to it but assumes independent observations.
- Student t CDF without scipy: ``I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) / (1 + d1 / (1 +
  d2 / (1 + ...)))`` with ``d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))``,
  ``d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))`` (modified Lentz; the symmetry
  ``I_x(a, b) = 1 - I_{1-x}(b, a)`` when ``x > (a + 1) / (a + b + 2)``), and
  ``P(T <= t) = 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2`` for t >= 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from stagectl.domain.performance import running_drawdown, sharpe
from stagectl.errors import InputError

FloatArray = npt.NDArray[np.float64]
Direction = Literal["higher", "lower"]

METRIC_DIRECTIONS: dict[str, Direction] = {
    "pnl": "higher",
    "hit_rate": "higher",
    "sharpe": "higher",
    "max_drawdown": "lower",
    "turnover": "lower",
    "cost_per_trade_bps": "lower",
}
CRITICAL_METRICS = ("pnl", "sharpe", "max_drawdown")
SIGNIFICANCE_LEVEL = 0.05

NOT_SIGNIFICANT = "NOT_SIGNIFICANT"
METRIC_DEGRADED = "METRIC_DEGRADED"
CRITICAL_DEGRADED = "CRITICAL_DEGRADED"
CRITICAL_UNDEFINED = "CRITICAL_UNDEFINED"
IR_NEGATIVE = "IR_NEGATIVE"
SHADOW_TOO_SHORT = "SHADOW_TOO_SHORT"

_TINY = 1e-300
_EPS = 1e-15
_MAX_TERMS = 10_000


def _continued_fraction(a: float, b: float, x: float) -> float:
    f = _TINY
    c, d = f, 0.0
    for j in range(1, 2 * _MAX_TERMS):
        if j == 1:
            numerator = 1.0
        else:
            step = j - 1  # d_step
            m = step // 2
            if step % 2:
                numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            else:
                numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + numerator / c
        c = c if abs(c) > _TINY else _TINY
        delta = c * d
        f *= delta
        if abs(delta - 1.0) < _EPS:
            return f
    raise ArithmeticError("incomplete beta continued fraction did not converge")


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)`` for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0 or not 0.0 <= x <= 1.0:
        raise ValueError("need a > 0, b > 0 and 0 <= x <= 1")
    if x in (0.0, 1.0):
        return x
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - regularized_incomplete_beta(b, a, 1.0 - x)
    log_front = (
        a * math.log(x)
        + b * math.log1p(-x)
        - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    )
    return math.exp(log_front) / a * _continued_fraction(a, b, x)


def student_t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df > 0`` (non-integer df allowed, for Welch)."""
    if df <= 0:
        raise ValueError("degrees of freedom must be > 0")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


@dataclass(frozen=True)
class ShadowRun:
    """One strategy's shadow record: per-period returns, and optionally per-period
    turnover (fraction of equity traded), per-period costs (fraction of equity) and the
    number of trades."""

    returns: FloatArray
    turnover: FloatArray | None = None
    costs: FloatArray | None = None
    trades: int | None = None


def run_metrics(run: ShadowRun, periods_per_year: float) -> dict[str, float | None]:
    """PnL = prod(1 + r) - 1; hit rate = positive periods / non-zero periods (a flat period
    is no bet); Sharpe as ``performance.sharpe``; max drawdown from equity prod(1 + r)
    with initial 1 (positive fraction); turnover = mean per period; cost per trade =
    sum(costs) / trades in bps of equity. Undefined values are None."""
    r = np.asarray(run.returns, dtype=np.float64)
    equity = pd.Series(np.cumprod(1.0 + r))
    active = r[r != 0]
    costs = None if run.costs is None else float(np.sum(run.costs))
    return {
        "pnl": float(np.prod(1.0 + r) - 1.0),
        "hit_rate": float(np.mean(active > 0)) if active.size else None,
        "sharpe": sharpe(r, periods_per_year),
        "max_drawdown": float(-running_drawdown(equity, 1.0).min()) if r.size else 0.0,
        "turnover": None if run.turnover is None else float(np.mean(run.turnover)),
        "cost_per_trade_bps": (
            costs / run.trades * 1e4 if costs is not None and run.trades else None
        ),
    }


def information_ratio(
    candidate: npt.ArrayLike, baseline: npt.ArrayLike, periods_per_year: float
) -> float | None:
    """IR = mean(d) / std(d, ddof=1) * sqrt(periods_per_year) with d = candidate - baseline."""
    return sharpe(_difference(candidate, baseline), periods_per_year)


def _difference(candidate: npt.ArrayLike, baseline: npt.ArrayLike) -> FloatArray:
    c = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if c.shape != b.shape or c.ndim != 1:
        raise InputError("candidate and baseline need the same periods", where="returns")
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(b))):
        raise InputError("returns must be finite", where="returns")
    return np.asarray(c - b)


def default_block_length(n: int) -> int:
    """ceil(n^(1/3)): the usual rate for block bootstrap variance (Hall et al. 1995)."""
    return max(1, math.ceil(math.pow(n, 1.0 / 3.0) - 1e-9))


def paired_bootstrap_p_value(
    candidate: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    seed: int,
    n_resamples: int = 2000,
    block_length: int | None = None,
) -> float:
    """One-sided p for mean(candidate - baseline) > 0, circular block bootstrap.

    d = candidate - baseline is centred (d - mean(d)) to impose the null; each resample
    concatenates ceil(n / L) blocks of L consecutive periods (wrapping around) at uniform
    random starts, cut to n. p = (1 + #{mean* >= mean(d)}) / (1 + B). Identical runs give
    p = 1. ``seed`` makes it reproducible.
    """
    d = _difference(candidate, baseline)
    n = d.size
    if n < 2:
        raise InputError("the bootstrap needs at least 2 periods", where="returns")
    length = block_length or default_block_length(n)
    observed = float(d.mean())
    centred = d - observed
    rng = np.random.default_rng(seed)
    n_blocks = -(-n // length)
    starts = rng.integers(0, n, size=(n_resamples, n_blocks))
    positions = (starts[:, :, None] + np.arange(length)).reshape(n_resamples, -1)[:, :n] % n
    means = centred[positions].mean(axis=1)
    exceed = int(np.sum(means >= observed - 1e-15 * max(1.0, abs(observed))))
    return (1 + exceed) / (1 + n_resamples)


@dataclass(frozen=True)
class WelchResult:
    t: float | None
    df: float | None
    p_value: float | None


def welch_t_test(candidate: npt.ArrayLike, baseline: npt.ArrayLike) -> WelchResult:
    """One-sided Welch t-test of mean(candidate) > mean(baseline).

    t = (m_c - m_b) / sqrt(v_c/n_c + v_b/n_b) (ddof=1), Welch-Satterthwaite
    df = (v_c/n_c + v_b/n_b)^2 / ((v_c/n_c)^2/(n_c-1) + (v_b/n_b)^2/(n_b-1)),
    p = 1 - F_t(t; df). Both variances 0: undefined (None).
    """
    c = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if c.size < 2 or b.size < 2:
        raise InputError("the t-test needs at least 2 periods per run", where="returns")
    sc, sb = c.var(ddof=1) / c.size, b.var(ddof=1) / b.size
    if sc + sb == 0:
        return WelchResult(None, None, None)
    t = float((c.mean() - b.mean()) / math.sqrt(sc + sb))
    df = float((sc + sb) ** 2 / (sc**2 / (c.size - 1) + sb**2 / (b.size - 1)))
    return WelchResult(t, df, 1.0 - student_t_cdf(t, df))


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    candidate: float | None
    baseline: float | None
    status: Literal["improved", "equal", "degraded", "not_comparable"]
    critical: bool


@dataclass(frozen=True)
class PromotionVerdict:
    promote: bool
    reasons: list[str]
    comparisons: list[MetricComparison]
    information_ratio: float | None
    bootstrap_p_value: float
    welch: WelchResult
    block_length: int
    days: float
    details: dict[str, Any] = field(default_factory=dict)


def compare_metric(
    metric: str, candidate: float | None, baseline: float | None, tolerance: float
) -> MetricComparison:
    """improved / equal / degraded in the metric's direction; equal when
    |c - b| <= tolerance * max(|c|, |b|); None on either side is not comparable."""
    critical = metric in CRITICAL_METRICS
    if candidate is None or baseline is None:
        return MetricComparison(metric, candidate, baseline, "not_comparable", critical)
    gain = candidate - baseline if METRIC_DIRECTIONS[metric] == "higher" else baseline - candidate
    if abs(gain) <= tolerance * max(abs(candidate), abs(baseline)):
        status: Literal["improved", "equal", "degraded"] = "equal"
    else:
        status = "improved" if gain > 0 else "degraded"
    return MetricComparison(metric, candidate, baseline, status, critical)


def promotion_verdict(
    candidate: ShadowRun,
    baseline: ShadowRun,
    *,
    periods_per_year: float,
    seed: int,
    n_resamples: int = 2000,
    block_length: int | None = None,
    equal_tolerance: float = 0.02,
    min_days: float = 14.0,
) -> PromotionVerdict:
    """Promote only when every rule of seed 001 §9 holds (each failure adds a coded reason):

    - significance: paired block bootstrap p < 0.05 (NOT_SIGNIFICANT);
    - all metrics improved or equal: a non-critical metric may be "equal" within
      ``equal_tolerance`` (relative), else METRIC_DEGRADED:<name>; the IR of the
      difference must be >= 0 (IR_NEGATIVE);
    - no degradation in a critical metric (PnL, Sharpe, max drawdown): compared with
      tolerance 0 (CRITICAL_DEGRADED:<name>), and undefined counts as failing
      (CRITICAL_UNDEFINED:<name>);
    - the shadow ran at least ``min_days`` (the seed's 2-4 weeks; SHADOW_TOO_SHORT).
    """
    n = len(candidate.returns)
    length = block_length or default_block_length(n)
    p_boot = paired_bootstrap_p_value(
        candidate.returns, baseline.returns, seed=seed, n_resamples=n_resamples,
        block_length=length,
    )  # fmt: skip
    welch = welch_t_test(candidate.returns, baseline.returns)
    ir = information_ratio(candidate.returns, baseline.returns, periods_per_year)
    days = n / periods_per_year * 365.0
    cand_m = run_metrics(candidate, periods_per_year)
    base_m = run_metrics(baseline, periods_per_year)
    comparisons = [
        compare_metric(m, cand_m[m], base_m[m], 0.0 if m in CRITICAL_METRICS else equal_tolerance)
        for m in METRIC_DIRECTIONS
    ]
    reasons = [] if p_boot < SIGNIFICANCE_LEVEL else [NOT_SIGNIFICANT]
    for comparison in comparisons:
        if comparison.critical and comparison.status == "degraded":
            reasons.append(f"{CRITICAL_DEGRADED}:{comparison.metric}")
        elif comparison.critical and comparison.status == "not_comparable":
            reasons.append(f"{CRITICAL_UNDEFINED}:{comparison.metric}")
        elif comparison.status == "degraded":
            reasons.append(f"{METRIC_DEGRADED}:{comparison.metric}")
    if ir is not None and ir < 0:
        reasons.append(IR_NEGATIVE)
    if days < min_days:
        reasons.append(SHADOW_TOO_SHORT)
    return PromotionVerdict(
        promote=not reasons,
        reasons=reasons,
        comparisons=comparisons,
        information_ratio=ir,
        bootstrap_p_value=p_boot,
        welch=welch,
        block_length=length,
        days=days,
    )
