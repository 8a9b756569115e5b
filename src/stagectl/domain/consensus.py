"""Engine consensus (seed 001 §1) with regime hard gates (§2); docs/research.md, "Consensus".

Per engine i: side ``s_i`` in {-1, 0, +1}, probability ``p_i`` in [0, 1] that its call is
right, Brier score and age of that score. Steps:

1. reliability ``r_i = (1 - Brier_i) * exp(-ln 2 * days_ago_i / half_life_days)``;
2. regime gate: only engines approved for the current regime vote (the others get no
   weight and leave the correlation matrix);
3. base weights ``w_base = r / sum(r)``;
4. correlation weights ``w_corr = argmin w'Cw`` over the simplex (sum 1, w >= 0), solved
   exactly by enumerating supports (:func:`min_variance_simplex`);
5. final ``w_i = w_base_i * w_corr_i / sum_j(w_base_j * w_corr_j)`` (as the seed writes);
6. score ``S = sum_i w_i * (2 p_i - 1) * s_i``;
7. trade when ``|S| > k * rolling_std(S, 100)``, k = 0.75.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from stagectl.domain.regimes import ILLIQUID, PANIC, RANGE, TREND
from stagectl.errors import InputError

FloatArray = npt.NDArray[np.float64]
REGIMES = (TREND, RANGE, PANIC, ILLIQUID)
MAX_EXACT_ENGINES = 12
BUY, SELL, WAIT = "buy", "sell", "wait"


def reliability(brier: npt.ArrayLike, days_ago: npt.ArrayLike, half_life_days: float) -> FloatArray:
    """``(1 - Brier) * exp(-ln 2 * days_ago / half_life_days)``; Brier in [0, 1], age >= 0."""
    b = np.asarray(brier, dtype=np.float64)
    age = np.asarray(days_ago, dtype=np.float64)
    if np.any((b < 0) | (b > 1)) or np.any(age < 0) or half_life_days <= 0:
        raise InputError("need 0 <= Brier <= 1, days_ago >= 0, half-life > 0", where="reliability")
    return np.asarray((1.0 - b) * np.exp(-math.log(2.0) * age / half_life_days))


def base_weights(reliabilities: npt.ArrayLike) -> FloatArray:
    """``r_i / sum(r_j)``; all-zero reliability gives all-zero weights (nobody is trusted)."""
    r = np.asarray(reliabilities, dtype=np.float64)
    total = r.sum()
    return np.asarray(r / total) if total > 0 else np.zeros_like(r)


def min_variance_simplex(cov: npt.ArrayLike) -> FloatArray:
    """Exact ``argmin w'Cw`` subject to ``sum w = 1, w >= 0`` for n <= 12 engines.

    The optimum lies in the relative interior of one face of the simplex (a support set
    S), where it is the equality-constrained optimum ``w_S = C_S^-1 1 / (1' C_S^-1 1)``.
    Every support with a non-singular C_S is solved; among the solutions with w_S >= 0
    the one with the smallest objective is the global minimum (the problem is convex).
    Ties go to the smallest support first, then the lowest indices. 2^n - 1 solves.
    """
    c = np.asarray(cov, dtype=np.float64)
    n = c.shape[0]
    if c.shape != (n, n) or not np.allclose(c, c.T) or not np.all(np.isfinite(c)):
        raise InputError("the correlation matrix must be square, symmetric, finite", where="C")
    if n > MAX_EXACT_ENGINES:
        raise InputError(f"exact solve supports up to {MAX_EXACT_ENGINES} engines", where="C")
    best, best_value = np.full(n, 1.0 / n), math.inf
    tolerance = 1e-12 * max(1.0, float(np.abs(c).max()))
    for size in range(1, n + 1):
        for support in itertools.combinations(range(n), size):
            sub = c[np.ix_(support, support)]
            if np.linalg.matrix_rank(sub) < size:
                continue
            x = np.linalg.solve(sub, np.ones(size))
            if x.sum() <= 0:
                continue
            w_s = x / x.sum()
            if np.any(w_s < -1e-12):
                continue
            value = float(w_s @ sub @ w_s)
            if value < best_value - tolerance:
                best = np.zeros(n)
                best[list(support)] = np.clip(w_s, 0.0, None)
                best_value = value
    return np.asarray(best / best.sum())


def combine_weights(w_base: npt.ArrayLike, w_corr: npt.ArrayLike) -> FloatArray:
    """``w_base * w_corr / sum(w_base * w_corr)``; an all-zero product gives all zeros."""
    product = np.asarray(w_base, dtype=np.float64) * np.asarray(w_corr, dtype=np.float64)
    total = product.sum()
    return np.asarray(product / total) if total > 0 else np.zeros_like(product)


def consensus_score(
    weights: npt.ArrayLike, probabilities: npt.ArrayLike, sides: npt.ArrayLike
) -> FloatArray | float:
    """``S = sum_i w_i * (2 p_i - 1) * s_i``; 2-D inputs (bars x engines) give one S per bar."""
    p = np.asarray(probabilities, dtype=np.float64)
    s = np.asarray(sides, dtype=np.float64)
    if np.any((p < 0) | (p > 1)) or np.any(~np.isin(s, (-1.0, 0.0, 1.0))):
        raise InputError("probabilities must be in [0, 1] and sides in {-1, 0, +1}", where="votes")
    score = np.sum(np.asarray(weights, dtype=np.float64) * (2.0 * p - 1.0) * s, axis=-1)
    return float(score) if np.ndim(score) == 0 else np.asarray(score)


@dataclass(frozen=True)
class EngineVote:
    """One engine's vote and track record."""

    engine: str
    side: int
    probability: float
    brier: float
    days_ago: float
    approved_regimes: frozenset[str] = field(default_factory=lambda: frozenset(REGIMES))


@dataclass(frozen=True)
class ConsensusResult:
    """The score, the final weight of each voter, and the engines gated out."""

    score: float
    weights: dict[str, float]
    gated_out: list[str]


def gate_by_regime(votes: Sequence[EngineVote], regime: str) -> list[bool]:
    """True where the engine is approved for ``regime`` (hard gate: others do not vote)."""
    return [regime in vote.approved_regimes for vote in votes]


def consensus(
    votes: Sequence[EngineVote],
    correlation: npt.ArrayLike,
    *,
    regime: str,
    half_life_days: float,
) -> ConsensusResult:
    """Steps 1-6 of the module docstring for one decision. ``correlation`` is over all votes
    (in their order); the gated-out rows and columns are dropped before the solve."""
    c = np.asarray(correlation, dtype=np.float64)
    if c.shape != (len(votes), len(votes)):
        raise InputError("correlation must be n x n for n votes", where="correlation")
    approved = np.array(gate_by_regime(votes, regime), dtype=bool)
    voters = [vote for vote, ok in zip(votes, approved, strict=True) if ok]
    gated_out = [vote.engine for vote, ok in zip(votes, approved, strict=True) if not ok]
    if not voters:
        return ConsensusResult(score=0.0, weights={}, gated_out=gated_out)
    r = reliability([v.brier for v in voters], [v.days_ago for v in voters], half_life_days)
    w_corr = min_variance_simplex(c[np.ix_(approved, approved)])
    weights = combine_weights(base_weights(r), w_corr)
    score = consensus_score(weights, [v.probability for v in voters], [v.side for v in voters])
    return ConsensusResult(
        score=float(score),
        weights={v.engine: float(w) for v, w in zip(voters, weights, strict=True)},
        gated_out=gated_out,
    )


def adaptive_decisions(scores: pd.Series, *, k: float = 0.75, window: int = 100) -> pd.DataFrame:
    """``buy`` when S > k * sigma, ``sell`` when S < -k * sigma, else ``wait``.

    ``sigma`` = std (ddof=1) of the last ``window`` scores including the current one, as
    the seed writes ``rolling_std(S, 100)``; before ``window`` scores exist (or sigma is 0)
    the threshold is undefined and the decision is ``wait``.
    """
    sigma = scores.rolling(window, min_periods=window).std(ddof=1)
    threshold = k * sigma
    usable = threshold.notna() & (threshold > 0)
    action = np.select(
        [usable & (scores > threshold), usable & (scores < -threshold)], [BUY, SELL], WAIT
    )
    return pd.DataFrame(
        {"score": scores, "sigma": sigma, "threshold": threshold, "action": action},
        index=scores.index,
    )
