"""Portfolio Governor: scores, minimum score, smoothing, clamping, water-filling, interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stagectl.domain.governor import (
    GovernorInputs,
    GovernorParams,
    InfeasibleBoundsError,
    SymbolSignals,
    decide,
    rebalance_allowed,
    renormalise_within_bounds,
    score_strategy,
)

PARAMS = GovernorParams()


def inputs(
    *, er: float = 0.5, spread_bps: float = 10.0, latency_ms: float = 0.0, weight: float = 1.0
) -> GovernorInputs:
    signals = SymbolSignals(
        symbol="BTCUSDT",
        efficiency_ratio=er,
        vol_ratio=1.0,
        volatility_change_pct=0.0,
        liquidity_drop_pct=0.0,
        spread_bps=spread_bps,
        dispersion_bps=0.0,
    )
    return GovernorInputs(
        (signals,), latency_ms=latency_ms, blackout_min=0.0, aggregate_weight=weight
    )


def all_ignored() -> GovernorInputs:
    # zero efficiency, no volatility change, no dispersion, but an SLO at its limit:
    # slo = 1 -> penalty 1.2 > any 0.9 * alpha, so every score is 0.
    return inputs(er=0.0, latency_ms=150.0)


def test_scores_by_hand() -> None:
    # one symbol: ER 0.5, vol ratio 1, no vol change, spread 10 bps, no SLO, no risk.
    # trend: alpha 0.5; cost (5 + 1*10/2 - 5) / 50 = 0.1 -> 1.25 * (0.45 - 0.13) = 0.4
    # mean_reversion: alpha (1-0.5)*1 = 0.5; cost 10/50 = 0.2 -> 1.45 * (0.45 - 0.26) = 0.2755
    # vol_target: alpha 1; cost 0.1 -> 1.15 * (0.9 - 0.13) = 0.8855
    # cross_exchange: alpha 0 -> 0 (ignored)
    given_inputs = inputs()
    expected = {"trend": 0.4, "mean_reversion": 0.2755, "vol_target": 0.8855, "cross_exchange": 0}
    for name, score in expected.items():
        assert score_strategy(name, given_inputs, PARAMS).score == pytest.approx(score)
    decision = decide(given_inputs)
    assert decision.ignored == ("cross_exchange",)
    # target: cross_exchange keeps its baseline 0.12; 0.88 shared by score (total 1.561)
    assert decision.target["cross_exchange"] == pytest.approx(0.12)
    assert decision.target["trend"] == pytest.approx(0.88 * 0.4 / 1.561)
    assert decision.target["vol_target"] == pytest.approx(0.88 * 0.8855 / 1.561)


def test_score_below_minimum_falls_back_to_baseline() -> None:
    # ER 0.2: trend = 1.25 * (0.18 - 0.13) = 0.0625 < 0.08
    trend = score_strategy("trend", inputs(er=0.2), PARAMS)
    assert trend.score == pytest.approx(0.0625)
    assert trend.ignored
    assert decide(inputs(er=0.2)).target["trend"] == pytest.approx(0.38)


def test_slo_penalty_is_the_squared_ratio_to_its_limit() -> None:
    # latency 75 ms of 150 -> (0.5)^2 = 0.25; trend = 1.25 * (0.45 - 0.13 - 0.3) = 0.025
    trend = score_strategy("trend", inputs(latency_ms=75.0), PARAMS)
    assert trend.slo == pytest.approx(0.25)
    assert trend.score == pytest.approx(0.025)


def test_aggregate_weight_scales_alpha() -> None:
    assert score_strategy("trend", inputs(weight=1.15), PARAMS).alpha == pytest.approx(0.575)
    assert score_strategy("trend", inputs(weight=0.0), PARAMS).score == 0.0


def test_smoothing_puts_055_on_the_previous_weight() -> None:
    previous = {"trend": 0.50, "mean_reversion": 0.20, "vol_target": 0.20, "cross_exchange": 0.10}
    decision = decide(all_ignored(), previous=previous)
    assert decision.target == pytest.approx(
        {"trend": 0.38, "mean_reversion": 0.27, "vol_target": 0.23, "cross_exchange": 0.12}
    )
    # 0.55 * previous + 0.45 * baseline
    expected = {
        "trend": 0.446,
        "mean_reversion": 0.2315,
        "vol_target": 0.2135,
        "cross_exchange": 0.109,
    }
    assert decision.smoothed == pytest.approx(expected)
    assert decision.final == pytest.approx(expected)


def test_clamping_then_water_filling_by_hand() -> None:
    previous = {"trend": 0.90, "mean_reversion": 0.02, "vol_target": 0.04, "cross_exchange": 0.04}
    decision = decide(all_ignored(), previous=previous)
    # smoothed: 0.666, 0.1325, 0.1255, 0.076; trend capped at the global 0.50 (its own max
    # is 0.60), cross_exchange lifted to the global 0.08 (its own min is 0.05).
    assert decision.smoothed["trend"] == pytest.approx(0.666)
    assert decision.clamped == pytest.approx(
        {"trend": 0.50, "mean_reversion": 0.1325, "vol_target": 0.1255, "cross_exchange": 0.08}
    )
    # sum 0.838: scaling up pushes trend over 0.50 again, so it is fixed there and the
    # other three share 0.50 in proportion to 0.1325 : 0.1255 : 0.08 (total 0.338).
    assert decision.final == pytest.approx(
        {
            "trend": 0.50,
            "mean_reversion": 0.5 * 0.1325 / 0.338,
            "vol_target": 0.5 * 0.1255 / 0.338,
            "cross_exchange": 0.5 * 0.08 / 0.338,
        }
    )


def test_missing_previous_weight_enters_at_default_baseline() -> None:
    decision = decide(all_ignored(), previous={"trend": 0.38})
    assert decision.previous["vol_target"] == 0.28


def test_rebalance_interval() -> None:
    last = datetime(2024, 6, 7, 10, 0, tzinfo=UTC)
    due = last + timedelta(minutes=20)
    assert rebalance_allowed(last, last + timedelta(minutes=19), 20) == (False, due)
    assert rebalance_allowed(last, due, 20) == (True, due)
    now = datetime(2024, 6, 7, 9, 0, tzinfo=UTC)
    assert rebalance_allowed(None, now, 20) == (True, now)


def test_infeasible_bounds_are_refused() -> None:
    with pytest.raises(InfeasibleBoundsError):
        renormalise_within_bounds([0.5, 0.5], [0.6, 0.6], [0.9, 0.9])
    with pytest.raises(InfeasibleBoundsError):
        renormalise_within_bounds([0.5, 0.5], [0.0, 0.0], [0.3, 0.3])


@st.composite
def feasible_problem(draw: st.DrawFn) -> tuple[list[float], list[float], list[float]]:
    n = draw(st.integers(min_value=1, max_value=8))
    unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
    lower = [draw(unit) * 0.4 for _ in range(n)]
    upper = [lo + draw(unit) * 0.8 for lo in lower]
    weights = [draw(st.floats(min_value=0.0, max_value=5.0, allow_nan=False)) for _ in range(n)]
    assume(sum(lower) <= 1.0 <= sum(upper))
    return weights, lower, upper


@settings(max_examples=300, deadline=None)
@given(feasible_problem())
def test_water_filling_respects_bounds_and_sums_to_one(
    problem: tuple[list[float], list[float], list[float]],
) -> None:
    weights, lower, upper = problem
    result = renormalise_within_bounds(weights, lower, upper)
    assert result.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(result >= np.array(lower) - 1e-12)
    assert np.all(result <= np.array(upper) + 1e-12)


@settings(max_examples=100, deadline=None)
@given(
    er=st.floats(0, 1),
    spread=st.floats(0, 200),
    latency=st.floats(0, 400),
    previous=st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_decision_weights_always_within_bounds(
    er: float, spread: float, latency: float, previous: list[float]
) -> None:
    names = ("trend", "mean_reversion", "vol_target", "cross_exchange")
    decision = decide(
        inputs(er=er, spread_bps=spread, latency_ms=latency),
        previous=dict(zip(names, previous, strict=True)),
    )
    lower, upper = PARAMS.bounds(names)
    final = np.array([decision.final[n] for n in names])
    assert final.sum() == pytest.approx(1.0)
    assert np.all(final >= lower - 1e-12)
    assert np.all(final <= upper + 1e-12)
