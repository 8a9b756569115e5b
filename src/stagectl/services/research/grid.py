"""backtest --grid: a backtest per parameter combination x symbol x period (docs/research.md).

The grid file (``config.grid``) names the parameters to vary, the symbols and the
periods; each cell is ``stagectl backtest --symbol S --start A --end B`` of the strategy
config with the cell's parameters applied (flat costs, no breakers), and its summary
metrics are one row. A symbol that is a sleeve of the config trades that sleeve alone
at weight 1.0 (as ``--symbol``); any other symbol trades the config's first sleeve's
signal. The candles and funding of every symbol are read once and are the input the
cells share (``research.parallel``: serial, or Dask tasks with ``--workers`` /
``--scheduler``, scattered to the workers once). Rows come back in cell order whatever
the executor, so the table is the same either way.

Entry: ``run(GridRequest, *, home, report) -> GridResult``.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from stagectl.config.grid import GridConfig, GridPeriod
from stagectl.config.home import ConfigSource, Home
from stagectl.config.loader import file_sha256, load_config, load_data_governance, load_strategy
from stagectl.config.strategy import StrategyConfig
from stagectl.domain.data_quality import UniverseMember, UniversePolicy, universe_member
from stagectl.errors import InputError
from stagectl.reports import write_atomic
from stagectl.services.research import backtest as backtest_service
from stagectl.services.research.engine import (
    scaled_lookbacks,
    stamp,
    with_debounce,
    with_lookbacks,
)
from stagectl.services.research.parallel import Parallelism, Piece, Report, open_executor, quiet
from stagectl.services.strategy.sleeves import SleeveData, load_sleeve_data

KIND = "backtest-grid"
ROW_METRICS = (
    "total_return",
    "cagr",
    "sharpe_net",
    "sortino",
    "max_drawdown",
    "trades",
    "hit_rate",
    "profit_factor",
    "turnover_per_day",
    "final_equity",
)
"""The summary metrics of a cell's backtest (``domain.performance.summarize``) in a row."""

Value = float | int | tuple[int, ...]


@dataclass(frozen=True)
class GridRequest:
    """``--grid FILE``, ``-c``, ``--data``, ``--cost-multiplier`` (cells without their
    own), ``--export DIR`` (grid.csv) and ``--workers``/``--scheduler``."""

    grid: Path
    config: Path | None = None
    data_dir: Path | None = None
    cost_multiplier: float = 1.0
    export_dir: Path | None = None
    parallelism: Parallelism = field(default_factory=Parallelism)


@dataclass(frozen=True)
class Cell:
    """One parameter combination on one symbol over one period."""

    number: int
    parameters: dict[str, Value]
    symbol: str
    period: GridPeriod

    @property
    def label(self) -> str:
        shown = _joined(self.parameters)
        return " ".join(p for p in ("grid cell", shown, self.symbol, self.period.label) if p)


@dataclass(frozen=True)
class GridRow:
    """A cell and its backtest's summary: window actually used and ROW_METRICS."""

    cell: int
    parameters: dict[str, Value]
    symbol: str
    period: str
    start: str
    end: str
    bars: int
    metrics: dict[str, float | None]

    def describe_parameters(self) -> str:
        """``lookback_scale=2 debounce_bars=4``, or ``as configured``."""
        return _joined(self.parameters) or "as configured"

    def as_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "parameters": {
                name: list(value) if isinstance(value, tuple) else value
                for name, value in self.parameters.items()
            },
            "symbol": self.symbol,
            "period": self.period,
            "start": self.start,
            "end": self.end,
            "bars": self.bars,
            **self.metrics,
        }


@dataclass(frozen=True)
class GridResult:
    source: ConfigSource
    grid_path: Path
    rows: list[GridRow]
    body: dict[str, Any]
    files: list[Path]
    exported: tuple[Path, ...] = ()

    @property
    def inputs(self) -> list[Path]:
        return [self.source.path, self.grid_path, *self.files]


def run(request: GridRequest, *, home: Home, report: Report = quiet) -> GridResult:
    """Load the grid, the strategy and every symbol's data once, backtest each cell, and
    write grid.csv when asked; progress and notices go to ``report``."""
    grid = load_config(request.grid, GridConfig)
    strategy, source = load_strategy(home, request.config)
    cells = _cells(grid)
    data = load_sleeve_data(strategy, list(grid.symbols), request.data_dir)
    members = _universe(home, data)
    for member in members:
        if not member.included:
            report(
                f"{member.symbol} is outside the universe of config/data.yaml "
                f"({'; '.join(member.reasons_out)}); backtested as the grid names it"
            )
    shared = backtest_service.FlatInput(strategy, data, request.data_dir, request.cost_multiplier)
    with open_executor(request.parallelism, report) as executor:
        rows = executor.map(
            backtest_cell,
            shared,
            [Piece(cell.label, cell) for cell in cells],
            what=f"{KIND} cells",
        )
    body = {
        "strategy": {
            "name": strategy.name,
            "config": {"path": str(source.path), "sha256": file_sha256(source.path)},
            "timeframe": strategy.timeframe,
            "cost_model": "flat",
            "cost_multiplier": request.cost_multiplier,
        },
        "grid": {
            "path": str(request.grid),
            "sha256": file_sha256(request.grid),
            "parameters": {k: [_shown(v) for v in vs] for k, vs in grid.parameters.given().items()},
            "symbols": list(grid.symbols),
            "periods": [p.label for p in grid.periods],
            "configurations": len(cells) // (len(grid.symbols) * len(grid.periods)),
            "cells": len(cells),
        },
        "universe": [member.to_dict() for member in members],
        "rows": [row.as_dict() for row in rows],
    }
    files = data.files_of(list(grid.symbols))
    result = GridResult(source, request.grid, rows, body, files)
    if request.export_dir is None:
        return result
    return replace(result, exported=(_export(rows, request.export_dir),))


def _universe(home: Home, data: SleeveData) -> list[UniverseMember]:
    """Seed 001's universe rules (config/data.yaml) on each grid symbol: reported, and
    a symbol out of it is named on stderr; the grid's explicit choice still runs."""
    policy = UniversePolicy.of(load_data_governance(home)[0].universe)
    return [universe_member(s, frame, policy) for s, frame in data.candles.items()]


def _cells(grid: GridConfig) -> list[Cell]:
    """Parameter combinations (GRID_PARAMETERS order) x symbols x periods, in that nesting."""
    given = grid.parameters.given()
    combinations = [
        dict(zip(given, values, strict=True)) for values in itertools.product(*given.values())
    ]
    cells: list[Cell] = []
    for parameters, symbol, period in itertools.product(combinations, grid.symbols, grid.periods):
        typed = {k: _value(v) for k, v in parameters.items()}
        cells.append(Cell(len(cells), typed, symbol, period))
    return cells


def _value(value: object) -> Value:
    if isinstance(value, tuple):
        return tuple(int(v) for v in value)
    if isinstance(value, int | float):
        return value
    raise TypeError(f"unexpected grid value {value!r}")


def _joined(parameters: dict[str, Value]) -> str:
    """``lookback_scale=2 debounce_bars=4`` (empty for no parameters)."""
    return " ".join(f"{name}={_shown(value)}" for name, value in parameters.items())


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return "/".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def cell_strategy(strategy: StrategyConfig, cell: Cell) -> StrategyConfig:
    """The strategy config with the cell's symbol as its only sleeve (weight 100 %) and
    the cell's parameters applied."""
    template = next((s for s in strategy.sleeves if s.symbol == cell.symbol), strategy.sleeves[0])
    sleeve = template.model_copy(update={"symbol": cell.symbol, "weight_pct": 100.0})
    params = cell.parameters
    lookbacks: tuple[int, ...] | None = None
    if "lookbacks_bars" in params:
        lookbacks = tuple(params["lookbacks_bars"])  # type: ignore[arg-type]
    elif "lookback_scale" in params:
        lookbacks = scaled_lookbacks(sleeve, float(params["lookback_scale"]))  # type: ignore[arg-type]
    if lookbacks is not None:
        sleeve = with_lookbacks(sleeve, lookbacks)
    if "disagree_weight" in params:
        sleeve = sleeve.model_copy(update={"disagree_weight": params["disagree_weight"]})
    execution = strategy.execution
    if "debounce_bars" in params:
        execution = with_debounce(execution, int(params["debounce_bars"]))  # type: ignore[arg-type]
    return strategy.model_copy(update={"sleeves": (sleeve,), "execution": execution})


def backtest_cell(shared: backtest_service.FlatInput, cell: Cell) -> GridRow:
    """The cell's backtest (``backtest.flat_metrics``) as one row."""
    strategy = cell_strategy(shared.strategy, cell)
    multiplier = cell.parameters.get("cost_multiplier", shared.cost_multiplier)
    request = backtest_service.BacktestRequest(
        start=_day_start(cell.period.start),
        end=_day_end(cell.period.end),
        cost_multiplier=float(multiplier),  # type: ignore[arg-type]
        data_dir=shared.data_dir,
    )
    info, metrics = backtest_service.flat_metrics(strategy, shared.data, request)
    return GridRow(
        cell=cell.number,
        parameters=cell.parameters,
        symbol=cell.symbol,
        period=cell.period.label,
        start=stamp(info.start),
        end=stamp(info.end),
        bars=info.bars,
        metrics={name: metrics[name] for name in ROW_METRICS},
    )


def _day_start(day: Any) -> datetime | None:
    return None if day is None else datetime.combine(day, time(0), tzinfo=UTC)


def _day_end(day: Any) -> datetime | None:
    """The last instant of ``day`` (the period includes that whole day)."""
    if day is None:
        return None
    return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(days=1, microseconds=-1)


def table(rows: list[GridRow]) -> pd.DataFrame:
    """One row per cell, one column per parameter and metric (grid.csv)."""
    records = []
    for row in rows:
        flat = row.as_dict()
        del flat["parameters"]
        shown = {name: _shown(value) for name, value in row.parameters.items()}
        records.append({"cell": flat.pop("cell"), **shown, **flat})
    return pd.DataFrame(records)


def _export(rows: list[GridRow], directory: Path) -> Path:
    if directory.exists() and not directory.is_dir():
        raise InputError("not a directory (--export takes a directory)", where=str(directory))
    buffer = io.StringIO()
    table(rows).to_csv(buffer, index=False, lineterminator="\n")
    path = directory / "grid.csv"
    write_atomic(path, buffer.getvalue().encode("utf-8"))
    return path
