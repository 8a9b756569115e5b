"""The portfolio optimizer of seed 001 (#7): weights that trade edge against turnover.

Maximise ``sum(w_i * edge_i * confidence_i) - 0.1 * turnover - max(0, HHI - max_hhi) * 100``
subject to ``sum(w) = 1``, ``0 <= w_i <= 1``, ``HHI <= max_hhi`` and the risk budget, where
``turnover = sum(|w_i - current_i|)`` and ``HHI = sum(w_i^2)``.

How the constraints combine (docs/research.md, "Portfolio optimizer"):

- The weights are shares of the *deployed* capital, so they sum to 1. The deployed
  fraction of equity is ``min(risk_budget, 1 - cash_buffer)`` = min(70 %, 90 %) = 70 %
  with the seed's numbers: total exposure equals the risk budget and the cash left
  (30 %) covers the 10 % buffer. Each candidate's exposure is ``w_i * deployed``. Both
  budget constraints hold by construction; their slacks are reported, not solved for.
- With ``HHI <= max_hhi`` a hard constraint, the concentration penalty is zero at every
  feasible point. It matters only when the hard constraint cannot hold: with fewer than
  ``1 / max_hhi`` candidates (4 at 0.25) the smallest HHI on the simplex is ``1/n``.
  Then the constraint is dropped and the penalty applies (there ``HHI > max_hhi``
  everywhere, so ``max(0, .)`` is the smooth ``HHI - max_hhi``).

The turnover's absolute values are split (``w - current = up - down``, both >= 0) so
the problem is smooth: a linear objective under a convex quadratic constraint, solved
by scipy's SLSQP with exact gradients. Being convex, its optimum is global.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

FEASIBILITY_TOL = 1e-9
"""How far a returned weight vector may miss a constraint (rounding of the solver)."""


SOLVER_TOLERANCES = (1e-10, 1e-9, 1e-8)
"""SLSQP's ``ftol``, tightest first. At 1e-10 its line search sometimes cannot improve
the last digits (about 1 problem in 400 of random ones) and it reports failure at the
optimum; the next tolerance then converges to the same point."""


class OptimizerError(ValueError):
    """The candidates cannot be optimised (none, duplicate names) or the solver failed."""


@dataclass(frozen=True)
class OptimizerParams:
    """Seed 001's constants; each can be set in the candidates file's ``params``."""

    risk_budget: float = 0.70
    cash_buffer: float = 0.10
    max_hhi: float = 0.25
    turnover_penalty: float = 0.1
    concentration_penalty: float = 100.0

    @property
    def deployed(self) -> float:
        """The fraction of equity the weights spread: the risk budget, less when the
        cash buffer leaves less room."""
        return min(self.risk_budget, 1.0 - self.cash_buffer)


@dataclass(frozen=True)
class Candidate:
    """One sleeve or strategy: its expected edge, the confidence in it, its weight now."""

    name: str
    edge: float
    confidence: float
    current_weight: float


@dataclass(frozen=True)
class ObjectiveTerms:
    """The objective split into its terms; ``total = edge - turnover - concentration``."""

    edge: float
    turnover: float
    concentration: float

    @property
    def total(self) -> float:
        return self.edge - self.turnover - self.concentration


@dataclass(frozen=True)
class Allocation:
    """One candidate's optimal weight, its exposure (fraction of equity) and its edge."""

    name: str
    weight: float
    current_weight: float
    exposure: float
    contribution: float

    @property
    def change(self) -> float:
        return self.weight - self.current_weight


@dataclass(frozen=True)
class ConstraintSlack:
    """How far one constraint is from binding: ``slack = limit - value`` for ``<=``
    (``value - limit`` for ``>=``, ``|value - limit|`` missed for ``=``)."""

    name: str
    value: float
    limit: float
    slack: float

    @property
    def binding(self) -> bool:
        return abs(self.slack) <= 1e-7


@dataclass(frozen=True)
class OptimizerResult:
    """The optimal weights with the objective's terms and every constraint's slack."""

    allocations: tuple[Allocation, ...]
    terms: ObjectiveTerms
    constraints: tuple[ConstraintSlack, ...]
    hhi: float
    turnover: float
    hhi_enforced: bool
    params: OptimizerParams
    iterations: int


def hhi(weights: FloatArray) -> float:
    """The Herfindahl-Hirschman index of the weights: ``sum(w^2)``."""
    return float(np.dot(weights, weights))


def objective_terms(
    weights: FloatArray, candidates: Sequence[Candidate], params: OptimizerParams
) -> ObjectiveTerms:
    """The objective's terms at ``weights`` (the seed's formula, penalties positive)."""
    gain, current = _gains(candidates), _currents(candidates)
    return ObjectiveTerms(
        edge=float(np.dot(weights, gain)),
        turnover=params.turnover_penalty * float(np.abs(weights - current).sum()),
        concentration=params.concentration_penalty * _excess(hhi(weights) - params.max_hhi),
    )


def _excess(over: float) -> float:
    """``max(0, over)``, with the solver's rounding (a few ulps over) counted as zero."""
    return over if over > 1e-12 else 0.0


def hhi_is_attainable(count: int, params: OptimizerParams) -> bool:
    """True when some weights of ``count`` candidates meet ``HHI <= max_hhi`` (the
    smallest HHI on the simplex is ``1/count``)."""
    return count * params.max_hhi >= 1.0 - FEASIBILITY_TOL


def optimize(
    candidates: Sequence[Candidate], params: OptimizerParams = OptimizerParams()
) -> OptimizerResult:
    """The weights maximising the seed's objective under its constraints."""
    _check(candidates)
    from scipy.optimize import minimize

    n = len(candidates)
    gain, current = _gains(candidates), _currents(candidates)
    enforced = hhi_is_attainable(n, params)
    problem = _Problem(gain, current, params, enforced)
    for ftol in SOLVER_TOLERANCES:
        solution = minimize(
            problem.value,
            problem.start(),
            jac=problem.gradient,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * (3 * n),
            constraints=problem.constraints(),
            options={"ftol": ftol, "maxiter": 1000},
        )
        if solution.success:
            break
    weights = _cleaned(np.asarray(solution.x[:n], dtype=np.float64))
    if enforced:
        weights = _within_hhi(weights, params.max_hhi)
    if not solution.success or not _feasible(weights, params, enforced):
        raise OptimizerError(f"the solver did not converge ({solution.message})")
    return _result(weights, candidates, params, enforced, int(solution.nit))


@dataclass(frozen=True)
class _Problem:
    """The smooth problem over ``x = [w, up, down]`` in SLSQP's minimisation form."""

    gain: FloatArray
    current: FloatArray
    params: OptimizerParams
    hhi_enforced: bool

    @property
    def n(self) -> int:
        return len(self.gain)

    def start(self) -> FloatArray:
        w = np.full(self.n, 1.0 / self.n)
        return np.concatenate([w, np.maximum(w - self.current, 0), np.maximum(self.current - w, 0)])

    def value(self, x: FloatArray) -> float:
        n, p = self.n, self.params
        w = x[:n]
        cost = -float(np.dot(w, self.gain)) + p.turnover_penalty * float(x[n:].sum())
        if not self.hhi_enforced:
            cost += p.concentration_penalty * (hhi(w) - p.max_hhi)
        return cost

    def gradient(self, x: FloatArray) -> FloatArray:
        n, p = self.n, self.params
        grad = np.concatenate([-self.gain, np.full(2 * n, p.turnover_penalty)])
        if not self.hhi_enforced:
            grad[:n] += 2.0 * p.concentration_penalty * x[:n]
        return grad

    def constraints(self) -> list[dict[str, object]]:
        n = self.n
        eye = np.eye(n)
        split = np.hstack([eye, -eye, eye])
        budget = np.concatenate([np.ones(n), np.zeros(2 * n)])
        found: list[dict[str, object]] = [
            {"type": "eq", "fun": lambda x: x[:n].sum() - 1.0, "jac": lambda x: budget},
            {"type": "eq", "fun": lambda x: split @ x - self.current, "jac": lambda x: split},
        ]
        if self.hhi_enforced:
            found.append(
                {
                    "type": "ineq",
                    "fun": lambda x: self.params.max_hhi - hhi(x[:n]),
                    "jac": lambda x: np.concatenate([-2.0 * x[:n], np.zeros(2 * n)]),
                }
            )
        return found


def _check(candidates: Sequence[Candidate]) -> None:
    if not candidates:
        raise OptimizerError("no candidates to weight")
    names = [c.name for c in candidates]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise OptimizerError(f"candidate names must be unique: {', '.join(duplicates)}")


def _gains(candidates: Sequence[Candidate]) -> FloatArray:
    return np.array([c.edge * c.confidence for c in candidates], dtype=np.float64)


def _currents(candidates: Sequence[Candidate]) -> FloatArray:
    return np.array([c.current_weight for c in candidates], dtype=np.float64)


def _cleaned(weights: FloatArray) -> FloatArray:
    """The solver's weights with its rounding removed: clipped to [0, 1], summing to 1."""
    clipped = np.clip(weights, 0.0, 1.0)
    total = clipped.sum()
    return clipped / total if total > 0 else clipped


def _within_hhi(weights: FloatArray, max_hhi: float) -> FloatArray:
    """The weights moved towards equal weights just enough to meet ``HHI <= max_hhi``
    when the solver's rounding left them a few ulps over (exact along that ray: with
    ``d = w - 1/n``, ``HHI(1/n + t d) = 1/n + t^2 |d|^2``)."""
    excess = hhi(weights) - max_hhi
    if excess <= 0:
        return weights
    equal = np.full(len(weights), 1.0 / len(weights))
    spread = weights - equal
    t = np.sqrt(max(0.0, max_hhi - 1.0 / len(weights)) / float(np.dot(spread, spread)))
    return np.asarray(equal + min(1.0, t) * spread, dtype=np.float64)


def _feasible(weights: FloatArray, params: OptimizerParams, enforced: bool) -> bool:
    total_ok = abs(weights.sum() - 1.0) <= FEASIBILITY_TOL
    hhi_ok = not enforced or hhi(weights) <= params.max_hhi + FEASIBILITY_TOL
    return bool(total_ok and hhi_ok and np.all(np.isfinite(weights)))


def _result(
    weights: FloatArray,
    candidates: Sequence[Candidate],
    params: OptimizerParams,
    enforced: bool,
    iterations: int,
) -> OptimizerResult:
    gain = _gains(candidates)
    allocations = tuple(
        Allocation(
            name=c.name,
            weight=float(w),
            current_weight=c.current_weight,
            exposure=float(w) * params.deployed,
            contribution=float(w * g),
        )
        for c, w, g in zip(candidates, weights, gain, strict=True)
    )
    return OptimizerResult(
        allocations=allocations,
        terms=objective_terms(weights, candidates, params),
        constraints=constraint_slacks(weights, params),
        hhi=hhi(weights),
        turnover=float(np.abs(weights - _currents(candidates)).sum()),
        hhi_enforced=enforced,
        params=params,
        iterations=iterations,
    )


def constraint_slacks(weights: FloatArray, params: OptimizerParams) -> tuple[ConstraintSlack, ...]:
    """Every constraint of the problem at ``weights``, with its slack."""
    total = float(weights.sum())
    exposure = total * params.deployed
    return (
        ConstraintSlack("sum(w) = 1", total, 1.0, 0.0 - abs(total - 1.0)),
        ConstraintSlack("min(w) >= 0", float(weights.min()), 0.0, float(weights.min())),
        ConstraintSlack("max(w) <= 1", float(weights.max()), 1.0, 1.0 - float(weights.max())),
        ConstraintSlack(
            "HHI <= max_hhi", hhi(weights), params.max_hhi, params.max_hhi - hhi(weights)
        ),
        ConstraintSlack(
            "exposure <= risk_budget", exposure, params.risk_budget, params.risk_budget - exposure
        ),
        ConstraintSlack(
            "cash >= cash_buffer",
            1.0 - exposure,
            params.cash_buffer,
            1.0 - exposure - params.cash_buffer,
        ),
    )
