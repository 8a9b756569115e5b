"""Shadow comparison, significance tests and the promotion verdict (seed 001 §9)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stagectl.domain.promotion import (
    CRITICAL_DEGRADED,
    METRIC_DEGRADED,
    NOT_SIGNIFICANT,
    SHADOW_TOO_SHORT,
    ShadowRun,
    compare_metric,
    default_block_length,
    information_ratio,
    paired_bootstrap_p_value,
    promotion_verdict,
    regularized_incomplete_beta,
    run_metrics,
    student_t_cdf,
    welch_t_test,
)
from stagectl.errors import InputError

HOURS_PER_YEAR = 8760.0
FOUR_WEEKS = 28 * 24


@pytest.mark.parametrize(
    ("t", "df", "cdf"),
    [
        (12.706, 1, 0.975),  # two-sided 5 % critical values from the t table
        (4.303, 2, 0.975),
        (2.228, 10, 0.975),
        (1.812, 10, 0.95),
        (2.086, 20, 0.975),
        (2.750, 30, 0.995),
        (1.960, 1e6, 0.975),  # the normal limit
        (0.0, 7, 0.5),
    ],
)
def test_student_t_cdf_matches_table_values(t: float, df: float, cdf: float) -> None:
    assert student_t_cdf(t, df) == pytest.approx(cdf, abs=5e-4)
    assert student_t_cdf(-t, df) == pytest.approx(1 - cdf, abs=5e-4)


@pytest.mark.parametrize("t", [-30.0, -2.5, -0.3, 0.7, 3.1, 50.0])
def test_student_t_cdf_matches_closed_forms_for_one_and_two_df(t: float) -> None:
    assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
    assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_incomplete_beta_closed_forms() -> None:
    # I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 - (1 - x)^b
    assert regularized_incomplete_beta(1.0, 1.0, 0.3) == pytest.approx(0.3)
    assert regularized_incomplete_beta(3.0, 1.0, 0.4) == pytest.approx(0.064)
    assert regularized_incomplete_beta(1.0, 4.0, 0.2) == pytest.approx(1 - 0.8**4)
    with pytest.raises(ValueError):
        regularized_incomplete_beta(0.0, 1.0, 0.5)


def test_welch_t_test_hand_computed() -> None:
    # c: mean 2, var 1; b: mean 1, var 1 (n = 3 each): t = 1 / sqrt(2/3), df = 4
    result = welch_t_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert result.t == pytest.approx(math.sqrt(1.5))
    assert result.df == pytest.approx(4.0)
    assert result.p_value == pytest.approx(1 - student_t_cdf(math.sqrt(1.5), 4.0))
    assert welch_t_test([1.0, 1.0], [2.0, 2.0]).p_value is None


def test_run_metrics_hand_computed() -> None:
    run = ShadowRun(
        returns=np.array([0.1, -0.5, 0.0, 0.2]),
        turnover=np.array([1.0, 0.0, 0.0, 1.0]),
        costs=np.array([0.001, 0.0, 0.0, 0.001]),
        trades=2,
    )
    m = run_metrics(run, HOURS_PER_YEAR)
    assert m["pnl"] == pytest.approx(1.1 * 0.5 * 1.2 - 1)
    assert m["hit_rate"] == pytest.approx(2 / 3)  # the flat period is no bet
    assert m["max_drawdown"] == pytest.approx(0.5)
    assert m["turnover"] == pytest.approx(0.5)
    assert m["cost_per_trade_bps"] == pytest.approx(10.0)


def test_information_ratio_is_the_sharpe_of_the_difference() -> None:
    # d = [0.01, 0.03]: mean 0.02, std sqrt(2) * 0.01
    ir = information_ratio([0.02, 0.04], [0.01, 0.01], 1.0)
    assert ir == pytest.approx(0.02 / (math.sqrt(2) * 0.01))
    with pytest.raises(InputError):
        information_ratio([0.1, 0.2], [0.1], 1.0)


def test_default_block_length_is_the_cube_root_rounded_up() -> None:
    assert [default_block_length(n) for n in (1, 8, 27, 28, 672)] == [1, 2, 3, 4, 9]


def shadow_pair(seed: int, edge: float) -> tuple[np.ndarray, np.ndarray]:
    """Two runs on the same market: shared market noise plus independent noise each."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 0.004, FOUR_WEEKS)
    baseline = market + rng.normal(0.0, 0.001, FOUR_WEEKS)
    candidate = market + rng.normal(edge, 0.001, FOUR_WEEKS)
    return candidate, baseline


def test_a_clearly_better_candidate_is_significant() -> None:
    candidate, baseline = shadow_pair(1, edge=0.0004)
    assert paired_bootstrap_p_value(candidate, baseline, seed=3) < 0.01
    welch = welch_t_test(candidate + 0.002, baseline)
    assert welch.p_value is not None and welch.p_value < 0.05


def test_identical_runs_are_not_significant() -> None:
    candidate, _ = shadow_pair(2, edge=0.0)
    assert paired_bootstrap_p_value(candidate, candidate, seed=3) == 1.0
    assert welch_t_test(candidate, candidate).p_value == pytest.approx(0.5)


def test_same_strategy_with_independent_noise_rejects_about_five_percent() -> None:
    # 40 pairs under the null: P(7 or more rejections | 5 % level) is about 0.3 %
    p_values = [
        paired_bootstrap_p_value(*shadow_pair(seed, edge=0.0), seed=seed, n_resamples=400)
        for seed in range(40)
    ]
    assert sum(p < 0.05 for p in p_values) <= 6
    assert paired_bootstrap_p_value(*shadow_pair(99, 0.0), seed=1) > 0.05


def test_bootstrap_is_reproducible_with_its_seed() -> None:
    candidate, baseline = shadow_pair(5, edge=0.00005)
    first = paired_bootstrap_p_value(candidate, baseline, seed=42)
    assert paired_bootstrap_p_value(candidate, baseline, seed=42) == first


def test_compare_metric_directions_and_tolerance() -> None:
    assert compare_metric("sharpe", 1.2, 1.0, 0.0).status == "improved"
    assert compare_metric("max_drawdown", 0.12, 0.10, 0.0).status == "degraded"
    assert compare_metric("turnover", 1.01, 1.0, 0.02).status == "equal"
    assert compare_metric("turnover", None, 1.0, 0.02).status == "not_comparable"


def test_promotion_of_a_clearly_better_candidate() -> None:
    candidate, baseline = shadow_pair(1, edge=0.0004)
    verdict = promotion_verdict(
        ShadowRun(candidate), ShadowRun(baseline), periods_per_year=HOURS_PER_YEAR, seed=7
    )
    assert verdict.reasons == []
    assert verdict.promote
    assert verdict.days == pytest.approx(28.0)
    assert verdict.block_length == 9


def test_no_promotion_for_the_same_strategy() -> None:
    candidate, baseline = shadow_pair(99, edge=0.0)
    verdict = promotion_verdict(
        ShadowRun(candidate), ShadowRun(baseline), periods_per_year=HOURS_PER_YEAR, seed=7
    )
    assert not verdict.promote
    assert NOT_SIGNIFICANT in verdict.reasons


def test_a_better_candidate_with_more_turnover_or_shorter_shadow_is_held_back() -> None:
    candidate, baseline = shadow_pair(1, edge=0.0004)
    busy = ShadowRun(candidate, turnover=np.full(FOUR_WEEKS, 0.5))
    calm = ShadowRun(baseline, turnover=np.full(FOUR_WEEKS, 0.2))
    verdict = promotion_verdict(busy, calm, periods_per_year=HOURS_PER_YEAR, seed=7)
    assert verdict.reasons == [f"{METRIC_DEGRADED}:turnover"]
    short = promotion_verdict(
        ShadowRun(candidate[:240]), ShadowRun(baseline[:240]),
        periods_per_year=HOURS_PER_YEAR, seed=7,
    )  # fmt: skip
    assert SHADOW_TOO_SHORT in short.reasons


def test_a_deeper_drawdown_blocks_promotion_even_when_pnl_is_higher() -> None:
    baseline = np.full(FOUR_WEEKS, 0.0001)
    candidate = baseline + 0.001
    candidate[100] = -0.08
    verdict = promotion_verdict(
        ShadowRun(candidate), ShadowRun(baseline), periods_per_year=HOURS_PER_YEAR, seed=7
    )
    assert f"{CRITICAL_DEGRADED}:max_drawdown" in verdict.reasons
    assert not verdict.promote
