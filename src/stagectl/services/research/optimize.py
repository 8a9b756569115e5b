"""optimize: candidates -> the seed 001 portfolio optimizer -> weights, slacks, terms.

The candidates come from a file (``config.optimizer.CandidatesFile``) or from the latest
governor decision recorded in the state database. The governor's score of a strategy
is already net of its cost, SLO and risk penalties, so it is the edge; the governor
has no separate confidence, so each strategy's confidence is 1; the current weights
are the weights that decision started from. Strategies the governor ignored (score
under its minimum) are left out.

Entry: ``run(OptimizeRequest, *, home) -> OptimizeOutcome``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.domain.optimizer import (
    Candidate,
    OptimizerError,
    OptimizerParams,
    OptimizerResult,
    optimize,
)
from stagectl.errors import InputError, InternalError

GOVERNOR_SOURCE = "governor"


@dataclass(frozen=True)
class OptimizeRequest:
    """Either a candidates file or ``from_governor``."""

    candidates: Path | None = None
    from_governor: bool = False


@dataclass(frozen=True)
class OptimizeOutcome:
    """The optimizer's result and where its candidates came from (a file or a decision)."""

    result: OptimizerResult
    source: str
    inputs: list[Path]

    @property
    def body(self) -> dict[str, Any]:
        r = self.result
        return {
            "source": self.source,
            "params": {**asdict(r.params), "deployed": r.params.deployed},
            "weights": [{**asdict(a), "change": a.change} for a in r.allocations],
            "objective": {**asdict(r.terms), "total": r.terms.total},
            "constraints": [{**asdict(c), "binding": c.binding} for c in r.constraints],
            "hhi": r.hhi,
            "turnover": r.turnover,
            "hhi_enforced": r.hhi_enforced,
            "iterations": r.iterations,
        }


def run(request: OptimizeRequest, *, home: Home) -> OptimizeOutcome:
    if (request.candidates is None) == (not request.from_governor):
        raise InputError(
            "give a candidates file or --from-governor (one of them)", where="optimize"
        )
    if request.candidates is not None:
        candidates, params = _from_file(request.candidates)
        source, inputs = str(request.candidates), [request.candidates]
    else:
        candidates, params, source = _from_governor(home)
        inputs = []
    try:
        result = optimize(candidates, params)
    except OptimizerError as error:
        raise InternalError(str(error)) from None
    return OptimizeOutcome(result=result, source=source, inputs=inputs)


def _from_file(path: Path) -> tuple[list[Candidate], OptimizerParams]:
    from stagectl.config.loader import load_config
    from stagectl.config.optimizer import CandidatesFile

    spec = load_config(path, CandidatesFile)
    candidates = [Candidate(c.name, c.edge, c.confidence, c.weight) for c in spec.candidates]
    return candidates, OptimizerParams(**spec.params.model_dump())


def _from_governor(home: Home) -> tuple[list[Candidate], OptimizerParams, str]:
    from stagectl.config.state_url import state_exists
    from stagectl.state import governor as repo
    from stagectl.state.db import open_state

    if not state_exists(home.state_path):
        raise InputError(
            "no state database, so no governor decision; run `stagectl init`, then "
            "`stagectl governor`",
            where=str(home.state_path),
        )
    with open_state(home.state_path) as db:
        latest = repo.decisions(db, limit=1)
    if not latest:
        raise InputError(
            "no governor decision is recorded; run `stagectl governor` first",
            where=str(home.state_path),
        )
    record = latest[0]
    scores: dict[str, dict[str, Any]] = record.payload.get("scores", {})
    previous: dict[str, float] = record.payload.get("previous", {})
    candidates = [
        Candidate(name, float(score["score"]), 1.0, float(previous.get(name, 0.0)))
        for name, score in scores.items()
        if not score.get("ignored", False)
    ]
    if not candidates:
        raise InputError(
            "the latest governor decision scored every strategy under its minimum",
            where=f"governor decision {record.id}",
        )
    return candidates, OptimizerParams(), f"{GOVERNOR_SOURCE} decision {record.id}"
