"""walk-forward: purged walk-forward of the strategy config (seed 001 §3; docs/research.md).

Folds come from ``domain.validation.walk_forward_splits`` on the strategy's common bar
index, starting once every candidate's signal is warm (the bars before only warm the
signal up). Per fold: the candidate with the best Sharpe on the training window is
selected (``--fixed``: the config as is, nothing trained), then the test window is
backtested from flat (``research_engine``). Fold metrics are aggregated with
``aggregate_fold_metrics``; stability is reported by test year and by sleeve. With
``export_dir``, ``folds.csv`` and ``oos_equity.csv`` are written there.

The folds are independent pieces (``research.parallel``): serial, or Dask tasks with
``request.parallelism``; the engine (market and candidates' positions) is the input they
share.

Entry: ``run(WalkForwardRequest, *, home, report) -> WalkForwardResult``. ``evaluate`` is
the same walk-forward on an already loaded market, for ``audit-strategy``'s nested run.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stagectl.config.home import Home
from stagectl.domain.validation import Fold, aggregate_fold_metrics, walk_forward_splits
from stagectl.errors import InputError
from stagectl.reports import write_atomic
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
from stagectl.services.research.parallel import (
    Executor,
    Parallelism,
    Piece,
    Report,
    SerialExecutor,
    open_executor,
    quiet,
)

KIND = "walk-forward"
FOLD_METRICS = ("oos_sharpe", "oos_return", "oos_max_drawdown", "trades", "is_sharpe")


@dataclass(frozen=True)
class WalkForwardRequest:
    """``-c``, ``--data``, the windows (parsed durations), ``--expanding``, ``--fixed``,
    ``--cost-multiplier``, the ``--export`` directory and ``--workers``/``--scheduler``."""

    config: Path | None = None
    data_dir: Path | None = None
    train: timedelta = timedelta(days=120)
    purge: timedelta = timedelta(days=5)
    embargo: timedelta = timedelta(0)
    test: timedelta = timedelta(days=30)
    expanding: bool = False
    fixed: bool = False
    cost_multiplier: float = 1.0
    export_dir: Path | None = None
    parallelism: Parallelism = field(default_factory=Parallelism)


@dataclass(frozen=True)
class Settings:
    train: pd.Timedelta
    purge: pd.Timedelta
    embargo: pd.Timedelta
    test: pd.Timedelta
    expanding: bool

    @classmethod
    def parse(cls, request: WalkForwardRequest) -> Settings:
        return cls(
            train=pd.Timedelta(request.train),
            purge=pd.Timedelta(request.purge),
            embargo=pd.Timedelta(request.embargo),
            test=pd.Timedelta(request.test),
            expanding=request.expanding,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "train_days": self.train / pd.Timedelta(days=1),
            "purge_days": self.purge / pd.Timedelta(days=1),
            "embargo_days": self.embargo / pd.Timedelta(days=1),
            "test_days": self.test / pd.Timedelta(days=1),
            "mode": "expanding" if self.expanding else "rolling",
            "label_horizon_days": self.purge / pd.Timedelta(days=1),
        }


@dataclass(frozen=True)
class WalkForwardResult:
    market: Market
    candidates: list[Candidate]
    settings: Settings
    first_bar: int
    folds: list[Fold]
    rows: list[dict[str, Any]]
    oos_returns: pd.Series
    body: dict[str, Any]
    exported: tuple[Path, ...] = ()

    @property
    def inputs(self) -> list[Path]:
        return self.market.inputs


def run(request: WalkForwardRequest, *, home: Home, report: Report = quiet) -> WalkForwardResult:
    """Load the strategy and its market, walk forward, export when asked; progress and
    notices go to ``report``."""
    market = load_market(home, request.config, request.data_dir)
    with open_executor(request.parallelism, report) as executor:
        result = evaluate(market, request, executor=executor)
    if request.export_dir is None:
        return result
    return replace(result, exported=tuple(_export(result, request.export_dir)))


def evaluate(
    market: Market,
    request: WalkForwardRequest,
    *,
    executor: Executor = SerialExecutor(),
    last_bar: int | None = None,
) -> WalkForwardResult:
    """The walk-forward on bars ``[warm-up, last_bar)`` of ``market`` (audit: pre-holdout),
    one piece per fold on ``executor``."""
    settings = Settings.parse(request)
    candidates = candidate_grid(market.config, fixed=request.fixed)
    engine = ReturnsEngine(market, candidates, request.cost_multiplier)
    first = max(warmup_bars(c.config) for c in candidates)
    stop = engine.n_bars if last_bar is None else last_bar
    index = market.index[first:stop]
    folds = walk_forward_splits(
        index,
        train=settings.train,
        purge=settings.purge,
        embargo=settings.embargo,
        test=settings.test,
        mode="expanding" if settings.expanding else "rolling",
    )
    if not folds:
        span = f"{stamp(index[0])} .. {stamp(index[-1])}" if len(index) else "no bars"
        raise InputError(
            f"no complete fold fits the data after the signal warm-up ({span}); shorten "
            "--train/--test",
            where="--train/--test",
        )
    done = executor.map(
        _fold,
        FoldInput(engine, first),
        [Piece(f"fold {fold.fold}", fold) for fold in folds],
        what=f"{KIND} folds",
    )
    rows = [row for row, _ in done]
    oos_returns = pd.concat([returns for _, returns in done])
    body = {
        "strategy": strategy_section(market, candidates, request.cost_multiplier),
        "settings": {
            **settings.as_dict(),
            "first_bar": stamp(market.index[first]),
            "warmup_bars": first,
            "folds": len(folds),
        },
        "folds": rows,
        "summary": _summary(rows, oos_returns, market),
    }
    return WalkForwardResult(market, candidates, settings, first, folds, rows, oos_returns, body)


@dataclass(frozen=True)
class FoldInput:
    """What every fold reads: the engine and the first bar after the warm-up."""

    engine: ReturnsEngine
    offset: int


def _fold(shared: FoldInput, fold: Fold) -> tuple[dict[str, Any], pd.Series]:
    """One fold: select on its training bars, backtest its test window from flat."""
    engine, offset, market = shared.engine, shared.offset, shared.engine.market
    train = [(lo + offset, hi + offset) for lo, hi in fold.train_ranges()]
    test_lo, test_hi = fold.test[0] + offset, fold.test[-1] + 1 + offset
    chosen, scores = engine.select(train)
    window = engine.window(chosen, int(test_lo), int(test_hi))
    ppy = market.periods_per_year
    metrics = return_metrics(window.net, ppy)
    sleeves = {
        symbol: return_metrics(window.sleeve_net[:, i], ppy)
        for i, symbol in enumerate(market.symbols)
    }
    index = market.index
    row = {
        "fold": fold.fold,
        "train_start": stamp(index[train[0][0]]),
        "train_end": stamp(index[train[-1][1] - 1]),
        "test_start": stamp(index[test_lo]),
        "test_end": stamp(index[test_hi - 1]),
        "selected": engine.candidates[chosen].name,
        "is_sharpe": finite(scores[chosen]),
        "oos_sharpe": metrics["sharpe"],
        "oos_return": metrics["total_return"],
        "oos_max_drawdown": metrics["max_drawdown"],
        "trades": window.trades,
        "sleeves": sleeves,
    }
    return row, pd.Series(window.net, index=index[test_lo:test_hi])


def _summary(rows: list[dict[str, Any]], oos: pd.Series, market: Market) -> dict[str, Any]:
    metrics = aggregate_fold_metrics([{k: row[k] for k in FOLD_METRICS} for row in rows])
    years: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        years.setdefault(row["test_start"][:4], []).append(
            {k: row[k] for k in ("oos_sharpe", "oos_return")}
        )
    by_symbol = {
        symbol: aggregate_fold_metrics(
            [
                {
                    "oos_sharpe": r["sleeves"][symbol]["sharpe"],
                    "oos_return": r["sleeves"][symbol]["total_return"],
                }
                for r in rows
            ]
        )
        for symbol in market.symbols
    }
    stitched = return_metrics(oos.to_numpy(), market.periods_per_year)
    return {
        "metrics": metrics,
        "mean_oos_sharpe": metrics["oos_sharpe"]["mean"],
        "stitched_oos": {**stitched, "bars": len(oos)},
        "by_year": {year: aggregate_fold_metrics(group) for year, group in sorted(years.items())},
        "by_symbol": by_symbol,
        "selections": dict(Counter(row["selected"] for row in rows).most_common()),
        "positive_folds": sum(1 for r in rows if (r["oos_return"] or 0.0) > 0),
    }


def _csv(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def _export(result: WalkForwardResult, directory: Path) -> list[Path]:
    """``folds.csv`` (one row per fold) and ``oos_equity.csv`` (the stitched OOS curve)."""
    if directory.exists() and not directory.is_dir():
        raise InputError("not a directory (--export takes a directory)", where=str(directory))
    folds = pd.DataFrame([{k: v for k, v in row.items() if k != "sleeves"} for row in result.rows])
    for symbol in result.market.symbols:
        folds[f"{symbol}_oos_sharpe"] = [r["sleeves"][symbol]["sharpe"] for r in result.rows]
    curve = pd.DataFrame(
        {
            "timestamp": [stamp(t) for t in result.oos_returns.index],
            "oos_return": result.oos_returns.to_numpy(),
            "oos_equity": np.cumprod(1.0 + result.oos_returns.to_numpy()),
        }
    )
    written = []
    for name, frame in (("folds.csv", folds), ("oos_equity.csv", curve)):
        path = directory / name
        write_atomic(path, _csv(frame))
        written.append(path)
    return written
