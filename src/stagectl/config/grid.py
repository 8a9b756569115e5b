"""A backtest grid file (``stagectl backtest --grid FILE``; docs/research.md, "Grids").

YAML or JSON (JSON is YAML): ``parameters`` (each a list of values to try; the grid is
their product, in the order below), ``symbols`` and ``periods``. A cell is one
parameter combination on one symbol over one period. Every problem is one
``file:line: key.path: message`` error (``config.loader``).

- ``lookback_scale``: every sleeve's EMA lookbacks times this (rounded, at least 1);
- ``lookbacks_bars``: every sleeve's lookbacks replaced by this list (one value:
  ``tsmom_ema``; several: ``tsmom_multi_ema``); not together with ``lookback_scale``;
- ``debounce_bars``: the debounce (1: off);
- ``disagree_weight``: the position held when the multi-EMA votes disagree;
- ``cost_multiplier``: fee and slippage times this (else ``--cost-multiplier``).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, TypeVar

from pydantic import Field, model_validator

from stagectl.config._base import ConfigModel, Fraction, Items, Lookback, Symbol
from stagectl.config.limits import MAX_LOOKBACK_BARS

MAX_GRID_CELLS = 100_000
"""Cells of one grid: 500 symbols x 10 periods x 20 configurations fit."""

MAX_GRID_COST_MULTIPLIER = 100.0
"""As ``--cost-multiplier``'s bound."""

GRID_PARAMETERS = (
    "lookback_scale",
    "lookbacks_bars",
    "debounce_bars",
    "disagree_weight",
    "cost_multiplier",
)

T = TypeVar("T")

Choices = Annotated[tuple[T, ...], Field(strict=False, min_length=1)]
"""A non-empty YAML list of values to try."""

Scale = Annotated[float, Field(gt=0, le=100)]
Debounce = Annotated[int, Field(ge=1, le=MAX_LOOKBACK_BARS)]
Multiplier = Annotated[float, Field(ge=0, le=MAX_GRID_COST_MULTIPLIER)]


class GridParameters(ConfigModel):
    """The values to try; a parameter left out keeps the strategy config's value."""

    lookback_scale: Choices[Scale] | None = None
    lookbacks_bars: Choices[Items[Lookback]] | None = None
    debounce_bars: Choices[Debounce] | None = None
    disagree_weight: Choices[Fraction] | None = None
    cost_multiplier: Choices[Multiplier] | None = None

    @model_validator(mode="after")
    def _one_way_to_set_lookbacks(self) -> GridParameters:
        if self.lookback_scale is not None and self.lookbacks_bars is not None:
            raise ValueError("give lookback_scale or lookbacks_bars, not both")
        for name in GRID_PARAMETERS:
            values = getattr(self, name)
            if values is not None and len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice")
        return self

    def given(self) -> dict[str, tuple[object, ...]]:
        """The parameters the file sets, in GRID_PARAMETERS order."""
        return {
            name: tuple(getattr(self, name))
            for name in GRID_PARAMETERS
            if getattr(self, name) is not None
        }


class GridPeriod(ConfigModel):
    """A window of whole UTC days, both ends included; an end left out is the data's end,
    a start left out its beginning."""

    name: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    start: Annotated[date, Field(strict=False)] | None = None
    end: Annotated[date, Field(strict=False)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> GridPeriod:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        return f"{self.start or 'start'}..{self.end or 'end'}"


class GridConfig(ConfigModel):
    parameters: GridParameters = GridParameters()
    symbols: Annotated[tuple[Symbol, ...], Field(strict=False, min_length=1)]
    periods: Annotated[tuple[GridPeriod, ...], Field(strict=False, min_length=1)] = (
        GridPeriod(name="all"),
    )

    @model_validator(mode="after")
    def _bounded(self) -> GridConfig:
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols lists a symbol twice")
        labels = [period.label for period in self.periods]
        if len(set(labels)) != len(labels):
            raise ValueError("two periods have the same name")
        combinations = math.prod(len(v) for v in self.parameters.given().values())
        cells = combinations * len(self.symbols) * len(self.periods)
        if cells > MAX_GRID_CELLS:
            raise ValueError(f"{cells:,} cells; at most {MAX_GRID_CELLS:,}")
        return self
