"""cpcv: combinatorial purged cross-validation of the strategy config (docs/research.md).

The bars after the signal warm-up are cut into N contiguous groups
(``domain.validation.cpcv_splits``). Each of the C(N, K) splits selects, on its purged
and embargoed training bars, the grid candidate with the best Sharpe (``--fixed``: the
config, nothing trained); each test group is backtested from flat with the selected
candidate. The ``cpcv_paths`` assemble phi = C(N-1, K-1) full out-of-sample paths; their
Sharpe ratios form the distribution. PBO (CSCV, Bailey et al.) is computed on the
candidates' continuous backtests over the same bars when there are at least 2.

The splits' selections and the PBO are independent pieces (``research.parallel``):
serial, or Dask tasks with ``request.parallelism``, sharing the engine.

Entry: ``run(CpcvRequest, *, home, report) -> CpcvResult``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from stagectl.config.home import Home
from stagectl.domain.validation import (
    Fold,
    cpcv_paths,
    cpcv_splits,
    group_bounds,
    probability_of_backtest_overfitting,
)
from stagectl.errors import InputError
from stagectl.services.research.engine import (
    Candidate,
    Market,
    ReturnsEngine,
    candidate_grid,
    finite,
    load_market,
    return_metrics,
    stamp,
    strategy_section,
    warmup_bars,
)
from stagectl.services.research.parallel import Parallelism, Piece, Report, open_executor, quiet

KIND = "cpcv"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MAX_SPLITS = 10_000
"""C(N, K) splits each select and backtest: more would run for hours (C(10, 2) is 45)."""


@dataclass(frozen=True)
class CpcvRequest:
    """``-c``, ``--data``, ``--folds``, ``--test-folds``, ``--purge``/``--embargo``
    (parsed), ``--fixed``, ``--cost-multiplier``, ``--pbo-partitions`` and
    ``--workers``/``--scheduler``."""

    config: Path | None = None
    data_dir: Path | None = None
    folds: int = 10
    test_folds: int = 2
    purge: timedelta = timedelta(days=5)
    embargo: timedelta = timedelta(days=1)
    fixed: bool = False
    cost_multiplier: float = 1.0
    pbo_partitions: int = 16
    parallelism: Parallelism = field(default_factory=Parallelism)


@dataclass(frozen=True)
class CpcvResult:
    market: Market
    candidates: list[Candidate]
    first_bar: int
    splits: list[Fold]
    body: dict[str, Any]
    pbo_logits: tuple[float, ...] = ()  # one per CSCV split (the --html histogram)
    path_returns: pd.DataFrame | None = None  # net return per bar (rows) and path (columns)

    @property
    def inputs(self) -> list[Path]:
        return self.market.inputs


@dataclass(frozen=True)
class SelectOn:
    """A split's piece: select the best candidate on these training ranges."""

    train: list[tuple[int, int]]


@dataclass(frozen=True)
class Overfitting:
    """The PBO's piece: CSCV on the candidates' backtests from ``first`` on."""

    first: int
    partitions: int


Selection = tuple[int, list[float | None]]
PboSection = tuple[dict[str, Any], tuple[float, ...]]


def _piece(engine: ReturnsEngine, work: SelectOn | Overfitting) -> Selection | PboSection:
    if isinstance(work, Overfitting):
        return _pbo(engine, work.first, work.partitions)
    return engine.select(work.train)


def run(request: CpcvRequest, *, home: Home, report: Report = quiet) -> CpcvResult:
    """Load, split, select per split, assemble the paths and the PBO; progress and
    notices go to ``report``."""
    if request.folds < 2 or not 1 <= request.test_folds < request.folds:
        raise InputError(
            f"need --folds >= 2 and 1 <= --test-folds < --folds, got {request.folds} and "
            f"{request.test_folds}",
            where="--folds/--test-folds",
        )
    splits_wanted = math.comb(request.folds, request.test_folds)
    if splits_wanted > MAX_SPLITS:
        raise InputError(
            f"C({request.folds}, {request.test_folds}) = {splits_wanted:,} splits; at most "
            f"{MAX_SPLITS:,} (e.g. --folds 10 --test-folds 2 makes 45)",
            where="--folds/--test-folds",
        )
    purge, embargo = pd.Timedelta(request.purge), pd.Timedelta(request.embargo)
    market = load_market(home, request.config, request.data_dir)
    candidates = candidate_grid(market.config, fixed=request.fixed)
    engine = ReturnsEngine(market, candidates, request.cost_multiplier)
    first = max(warmup_bars(c.config) for c in candidates)
    index = market.index[first:]
    if len(index) < 2 * request.folds:
        raise InputError(f"{len(index)} bars after warm-up are too few for {request.folds} folds")
    splits = cpcv_splits(
        index,
        n_groups=request.folds,
        n_test_groups=request.test_folds,
        label_horizon=purge,
        embargo=embargo,
    )
    bounds = [(lo + first, hi + first) for lo, hi in group_bounds(len(index), request.folds)]
    pieces: list[Piece[SelectOn | Overfitting]] = [
        Piece("PBO", Overfitting(first, request.pbo_partitions))
    ]
    pieces += [
        Piece(
            f"split {split.fold}",
            SelectOn([(lo + first, hi + first) for lo, hi in split.train_ranges()]),
        )
        for split in splits
    ]
    with open_executor(request.parallelism, report) as executor:
        done = executor.map(_piece, engine, pieces, what=f"{KIND} splits and PBO")
    pbo, logits = cast(PboSection, done[0])
    split_rows, chosen = [], []
    for split, selection in zip(splits, done[1:], strict=True):
        best, scores = cast(Selection, selection)
        chosen.append(best)
        split_rows.append(
            {
                "split": split.fold,
                "test_groups": list(split.test_groups),
                "train_bars": int(split.train.size),
                "selected": candidates[best].name,
                "is_sharpe": finite(scores[best]),
            }
        )
    paths, path_returns = _paths(engine, bounds, chosen, request)
    sharpes = [p["sharpe"] for p in paths]
    body = {
        "strategy": strategy_section(market, candidates, request.cost_multiplier),
        "settings": {
            "folds": request.folds,
            "test_folds": request.test_folds,
            "splits": len(splits),
            "paths": len(paths),
            "purge_days": purge / pd.Timedelta(days=1),
            "embargo_days": embargo / pd.Timedelta(days=1),
            "first_bar": stamp(market.index[first]),
            "groups": [
                {
                    "group": g,
                    "start": stamp(market.index[lo]),
                    "end": stamp(market.index[hi - 1]),
                    "bars": hi - lo,
                }
                for g, (lo, hi) in enumerate(bounds)
            ],
        },
        "splits": split_rows,
        "paths": paths,
        "distribution": _distribution(sharpes),
        "pbo": pbo,
    }
    return CpcvResult(market, candidates, first, splits, body, logits, path_returns)


def _paths(
    engine: ReturnsEngine,
    bounds: list[tuple[int, int]],
    chosen: list[int],
    request: CpcvRequest,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Each path's metrics, and its per-bar net returns over the groups' bars."""
    ppy = engine.market.periods_per_year
    rows, returns = [], {}
    for number, path in enumerate(cpcv_paths(request.folds, request.test_folds)):
        segments = [engine.window(chosen[split], *bounds[g]).net for g, split in enumerate(path)]
        returns[number] = np.concatenate(segments)
        metrics = return_metrics(returns[number], ppy)
        rows.append({"path": number, "splits": path, **metrics})
    index = engine.market.index[bounds[0][0] : bounds[-1][1]]
    return rows, pd.DataFrame(returns, index=index)


def _distribution(sharpes: list[float | None]) -> dict[str, Any]:
    values = np.array([s for s in sharpes if s is not None], dtype=float)
    if values.size == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None, "quantiles": {}}
    return {
        "count": int(values.size),
        "mean": finite(values.mean()),
        "std": finite(values.std(ddof=1)) if values.size > 1 else None,
        "min": finite(values.min()),
        "max": finite(values.max()),
        "quantiles": {f"{q:g}": finite(np.quantile(values, q)) for q in QUANTILES},
    }


def _pbo(
    engine: ReturnsEngine, first: int, partitions: int
) -> tuple[dict[str, Any], tuple[float, ...]]:
    """PBO on the candidates' continuous backtests of bars [first, n) (T x C matrix), and
    the logit of each CSCV split."""
    columns = [engine.window(c, first, engine.n_bars).net for c in range(len(engine.candidates))]
    result = probability_of_backtest_overfitting(np.column_stack(columns), partitions)
    section = {
        "pbo": result.pbo,
        "configurations": result.n_configurations,
        "partitions": result.n_partitions,
        "splits": result.n_splits,
        "median_ties": result.median_ties,
        "median_logit": finite(float(np.median(result.logits))) if result.logits else None,
        "reason": result.reason,
        "method": "CSCV on per-bar net returns of each candidate's backtest over the same bars",
    }
    return section, result.logits
