"""Consensus score, correlation-penalised weights and regime gates (seed 001 §1, §2)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain.consensus import (
    BUY,
    SELL,
    WAIT,
    EngineVote,
    adaptive_decisions,
    base_weights,
    combine_weights,
    consensus,
    consensus_score,
    min_variance_simplex,
    reliability,
)
from stagectl.domain.regimes import RANGE, TREND
from stagectl.errors import InputError


def test_reliability_halves_every_half_life() -> None:
    assert reliability(0.2, 0.0, 30.0) == pytest.approx(0.8)
    assert reliability(0.2, 30.0, 30.0) == pytest.approx(0.4)
    assert reliability([0.0, 0.5], [60.0, 0.0], 30.0) == pytest.approx([0.25, 0.5])
    with pytest.raises(InputError):
        reliability(1.5, 0.0, 30.0)


def test_base_weights_normalise_reliability() -> None:
    assert base_weights([0.8, 0.6, 0.4]) == pytest.approx([4 / 9, 3 / 9, 2 / 9])
    assert base_weights([0.0, 0.0]).tolist() == [0.0, 0.0]


def test_min_variance_hand_computed_cases() -> None:
    assert min_variance_simplex([[1.0, 0.3], [0.3, 1.0]]) == pytest.approx([0.5, 0.5])
    # independent, variances 1 and 4: w ~ (1, 1/4) -> (0.8, 0.2)
    assert min_variance_simplex([[1.0, 0.0], [0.0, 4.0]]) == pytest.approx([0.8, 0.2])
    # unconstrained optimum ~ (-0.05, 0.1) is infeasible: the simplex optimum is the vertex
    assert min_variance_simplex([[1.0, 0.9], [0.9, 0.85]]) == pytest.approx([0.0, 1.0])
    # perfectly correlated duplicates: singular, every split is optimal; first vertex chosen
    assert min_variance_simplex(np.ones((2, 2))) == pytest.approx([1.0, 0.0])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_min_variance_beats_random_simplex_points_and_meets_kkt(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, n + 1))
    cov = factors @ factors.T / (n + 1)
    w = min_variance_simplex(cov)
    assert w.sum() == pytest.approx(1.0)
    assert np.all(w >= 0)
    value = w @ cov @ w
    samples = rng.dirichlet(np.ones(n), size=500)
    assert value <= np.einsum("ij,jk,ik->i", samples, cov, samples).min() + 1e-12
    gradient = cov @ w  # KKT: equal on the support, not smaller off it
    assert np.all(gradient >= value - 1e-9)
    assert np.allclose(gradient[w > 1e-9], value, atol=1e-9)


def test_combine_weights_is_the_normalised_product() -> None:
    assert combine_weights([0.5, 0.3, 0.2], [0.2, 0.4, 0.4]) == pytest.approx(
        [0.1 / 0.3, 0.12 / 0.3, 0.08 / 0.3]
    )
    assert combine_weights([1.0, 0.0], [0.0, 1.0]).tolist() == [0.0, 0.0]


def test_consensus_score_hand_computed() -> None:
    w = [4 / 9, 3 / 9, 2 / 9]
    # 4/9 * 0.4 - 3/9 * 0.2 + 2/9 * 0.8 = 2.6 / 9
    assert consensus_score(w, [0.7, 0.6, 0.9], [1, -1, 1]) == pytest.approx(2.6 / 9)
    per_bar = consensus_score(w, [[0.7, 0.6, 0.9], [0.5, 0.5, 1.0]], [[1, -1, 1], [1, 1, -1]])
    assert per_bar == pytest.approx([2.6 / 9, -2 / 9])
    with pytest.raises(InputError):
        consensus_score(w, [0.7, 0.6, 0.9], [2, 0, 1])


VOTES = [
    EngineVote("trend", 1, 0.7, brier=0.2, days_ago=0.0),
    EngineVote("revert", -1, 0.6, brier=0.4, days_ago=0.0),
    EngineVote("breakout", 1, 0.9, brier=0.6, days_ago=0.0, approved_regimes=frozenset({TREND})),
]


def test_consensus_with_uncorrelated_engines_weights_by_reliability() -> None:
    result = consensus(VOTES, np.eye(3), regime=TREND, half_life_days=30.0)
    assert result.weights == pytest.approx({"trend": 4 / 9, "revert": 3 / 9, "breakout": 2 / 9})
    assert result.score == pytest.approx(2.6 / 9)
    assert result.gated_out == []


def test_engines_outside_their_regime_do_not_vote() -> None:
    result = consensus(VOTES, np.eye(3), regime=RANGE, half_life_days=30.0)
    assert result.gated_out == ["breakout"]
    assert result.weights == pytest.approx({"trend": 4 / 7, "revert": 3 / 7})
    assert result.score == pytest.approx(1 / 7)  # 4/7 * 0.4 - 3/7 * 0.2
    nobody = consensus(VOTES[2:], np.eye(1), regime=RANGE, half_life_days=30.0)
    assert (nobody.score, nobody.weights) == (0.0, {})


def test_adaptive_threshold_uses_the_rolling_std_of_scores() -> None:
    scores = pd.Series([0.0, 1.0, -1.0, 3.0, 0.1])
    table = adaptive_decisions(scores, k=0.75, window=3)
    # std(0, 1, -1) = 1 -> 0.75; std(1, -1, 3) = 2 -> 1.5; std(-1, 3, 0.1) ~ 2.07
    assert table["threshold"].iloc[2:4].tolist() == pytest.approx([0.75, 1.5])
    assert table["action"].tolist() == [WAIT, WAIT, SELL, BUY, WAIT]
    assert math.isnan(table["sigma"].iloc[1])
