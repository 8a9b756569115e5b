"""The candidates file of ``stagectl optimize`` (YAML or JSON, docs/research.md).

One entry per sleeve or strategy: its expected edge (a fraction of the capital it gets,
per period, net of costs), the confidence in that edge (0 to 1) and its current weight
(0 to 1; 0 for a new one). ``params`` is optional and defaults to seed 001's constants.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from stagectl.config._base import ConfigModel, Fraction, Items, NonNegative, Number

MAX_CANDIDATES = 100
"""SLSQP solves a dense problem of 3 variables per candidate: 100 candidates take about a
second on one core, 200 ten times that."""

CandidateName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")]


class CandidateSpec(ConfigModel):
    """One candidate: ``name``, ``edge``, ``confidence`` and its current ``weight``."""

    name: CandidateName
    edge: Number
    confidence: Fraction
    weight: Fraction = 0.0


class OptimizerParamsSpec(ConfigModel):
    """The seed's constants: risk budget 0.70 and cash buffer 0.10 of equity, HHI at most
    0.25, penalties 0.1 x turnover and 100 x the HHI over its limit."""

    risk_budget: Annotated[float, Field(gt=0, le=1)] = 0.70
    cash_buffer: Annotated[float, Field(ge=0, lt=1)] = 0.10
    max_hhi: Annotated[float, Field(gt=0, le=1)] = 0.25
    turnover_penalty: NonNegative = 0.1
    concentration_penalty: NonNegative = 100.0


class CandidatesFile(ConfigModel):
    """``candidates`` (1 to 100, unique names) and optional ``params``."""

    candidates: Items[CandidateSpec] = Field(min_length=1, max_length=MAX_CANDIDATES)
    params: OptimizerParamsSpec = OptimizerParamsSpec()

    @field_validator("candidates")
    @classmethod
    def _unique_names(cls, value: tuple[CandidateSpec, ...]) -> tuple[CandidateSpec, ...]:
        names = [c.name for c in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"candidate names must be unique; repeated: {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _current_weights_fit(self) -> CandidatesFile:
        total = sum(c.weight for c in self.candidates)
        if total > 1.0 + 1e-9:
            raise ValueError(f"the current weights sum to {total:.6g}; they must sum to at most 1")
        return self
