"""The portfolio optimizer against an independent brute-force search, and its
constraints on random inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain.optimizer import (
    FEASIBILITY_TOL,
    Candidate,
    OptimizerError,
    OptimizerParams,
    hhi,
    objective_terms,
    optimize,
)

PARAMS = OptimizerParams()


def _simplex_grid(n: int, steps: int) -> np.ndarray:
    """Every weight vector of ``n`` non-negative multiples of 1/steps summing to 1."""
    points = [
        (*parts, steps - sum(parts))
        for parts in itertools.product(range(steps + 1), repeat=n - 1)
        if sum(parts) <= steps
    ]
    return np.array(points, dtype=np.float64) / steps


def _brute_force(candidates: list[Candidate], params: OptimizerParams, steps: int) -> float:
    """The best objective over a fine grid of the simplex, the HHI limit applied as the
    optimizer applies it (hard when attainable on the grid's candidates)."""
    grid = _simplex_grid(len(candidates), steps)
    gain = np.array([c.edge * c.confidence for c in candidates])
    current = np.array([c.current_weight for c in candidates])
    concentration = np.einsum("ij,ij->i", grid, grid)
    values = (
        grid @ gain
        - params.turnover_penalty * np.abs(grid - current).sum(axis=1)
        - params.concentration_penalty * np.maximum(0.0, concentration - params.max_hhi)
    )
    if len(candidates) * params.max_hhi >= 1:
        values = np.where(concentration <= params.max_hhi + 1e-12, values, -np.inf)
    return float(values.max())


def _candidates(
    draw_edges: list[float], confs: list[float], current: list[float]
) -> list[Candidate]:
    return [
        Candidate(f"c{i}", e, c, w)
        for i, (e, c, w) in enumerate(zip(draw_edges, confs, current, strict=True))
    ]


CASES = [
    # 4 candidates: HHI <= 0.25 forces exactly equal weights
    ([0.02, 0.01, 0.005, -0.01], [0.9, 0.8, 0.5, 0.9], [0.4, 0.3, 0.2, 0.1]),
    # 5 and 6 candidates where edges outweigh the turnover penalty
    ([0.5, 0.3, 0.1, 0.05, 0.0], [1.0, 0.9, 0.8, 0.7, 0.6], [0.0, 0.0, 0.0, 0.0, 0.0]),
    ([0.2, -0.1, 0.15, 0.3, 0.05], [0.5, 0.5, 1.0, 0.2, 0.9], [0.2, 0.2, 0.2, 0.2, 0.2]),
    # fewer than 4: the HHI limit cannot hold and the penalty applies
    ([0.02, 0.01, 0.03], [0.9, 0.8, 0.5], [0.5, 0.5, 0.0]),
    ([3.0, 1.0], [1.0, 1.0], [0.0, 1.0]),
]


@pytest.mark.parametrize(("edges", "confs", "current"), CASES)
def test_agrees_with_brute_force(
    edges: list[float], confs: list[float], current: list[float]
) -> None:
    candidates = _candidates(edges, confs, current)
    result = optimize(candidates, PARAMS)
    steps = {2: 2000, 3: 400, 4: 100, 5: 40}[len(candidates)] if len(candidates) <= 5 else 20
    best_on_grid = _brute_force(candidates, PARAMS, steps)
    # The solver's optimum is at least as good as every feasible grid point, and the grid
    # comes within its resolution of it.
    assert result.terms.total >= best_on_grid - 1e-9
    assert result.terms.total - best_on_grid <= 0.02
    weights = np.array([a.weight for a in result.allocations])
    assert result.terms == objective_terms(weights, candidates, PARAMS)


def test_six_candidates_agree_with_brute_force() -> None:
    candidates = _candidates(
        [0.4, 0.2, 0.1, 0.3, -0.2, 0.05],
        [1.0, 0.5, 0.9, 0.7, 0.8, 1.0],
        [0.1, 0.2, 0.3, 0.0, 0.4, 0.0],
    )
    result = optimize(candidates, PARAMS)
    best_on_grid = _brute_force(candidates, PARAMS, 20)
    assert result.terms.total >= best_on_grid - 1e-9
    assert result.terms.total - best_on_grid <= 0.02


def test_four_candidates_are_forced_equal() -> None:
    result = optimize(_candidates(*CASES[0]), PARAMS)
    assert [a.weight for a in result.allocations] == pytest.approx([0.25] * 4, abs=1e-6)
    assert result.terms.concentration == 0.0


def test_under_four_candidates_penalises_concentration() -> None:
    result = optimize(_candidates([0.02, 0.01], [1.0, 1.0], [0.5, 0.5]), PARAMS)
    assert not result.hhi_enforced
    # The penalty (100 x (HHI - 0.25)) dwarfs the edge: equal weights minimise HHI.
    assert [a.weight for a in result.allocations] == pytest.approx([0.5, 0.5], abs=1e-6)
    assert result.terms.concentration == pytest.approx(100 * (0.5 - 0.25))


def test_exposure_and_cash_follow_the_budget() -> None:
    result = optimize(_candidates(*CASES[1]), PARAMS)
    slack = {c.name: c for c in result.constraints}
    assert slack["exposure <= risk_budget"].value == pytest.approx(0.70)
    assert slack["cash >= cash_buffer"].value == pytest.approx(0.30)
    assert sum(a.exposure for a in result.allocations) == pytest.approx(0.70)
    tight = OptimizerParams(risk_budget=0.95, cash_buffer=0.10)
    assert tight.deployed == pytest.approx(0.90)


def test_duplicate_names_and_empty_are_refused() -> None:
    with pytest.raises(OptimizerError, match="unique"):
        optimize([Candidate("a", 0.1, 1, 0), Candidate("a", 0.2, 1, 0)])
    with pytest.raises(OptimizerError, match="no candidates"):
        optimize([])


finite = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=12).flatmap(
        lambda n: st.tuples(
            st.lists(finite, min_size=n, max_size=n),
            st.lists(unit, min_size=n, max_size=n),
            st.lists(unit, min_size=n, max_size=n),
        )
    )
)
def test_every_constraint_holds_on_random_inputs(
    draw: tuple[list[float], list[float], list[float]],
) -> None:
    edges, confs, raw_current = draw
    total = sum(raw_current)
    current = [w / total for w in raw_current] if total > 1 else raw_current
    candidates = _candidates(edges, confs, current)
    result = optimize(candidates, PARAMS)
    weights = np.array([a.weight for a in result.allocations])
    assert abs(weights.sum() - 1.0) <= FEASIBILITY_TOL
    assert np.all(weights >= 0.0) and np.all(weights <= 1.0)
    if len(candidates) >= 4:
        assert hhi(weights) <= PARAMS.max_hhi + FEASIBILITY_TOL
        assert result.terms.concentration == 0.0
    # No worse than staying equal-weighted (a feasible point) or, when feasible, current.
    equal = np.full(len(candidates), 1.0 / len(candidates))
    assert result.terms.total >= objective_terms(equal, candidates, PARAMS).total - 1e-7
    current_arr = np.array(current)
    if abs(current_arr.sum() - 1) < 1e-12 and (
        len(candidates) < 4 or hhi(current_arr) <= PARAMS.max_hhi
    ):
        assert result.terms.total >= objective_terms(current_arr, candidates, PARAMS).total - 1e-7
