"""audit-strategy: seed 003's acceptance table re-measured on the data (docs/research.md).

Rows (bars from the strategy config's ``audit.acceptance``):

1. nested walk-forward mean OOS Sharpe: ``research_walk_forward`` with grid selection and
   the default windows (train 120d, purge 5d, test 30d, rolling) on the bars *before*
   the holdout, so the holdout stays unseen;
2. holdout Sharpe and 3. holdout max drawdown: ``services.backtest.run`` over the last
   ``holdout_months`` months of the common bars, exactly as ``stagectl backtest --start``
   (earlier bars warm the signal up);
4. Sharpe at ``cost_multiplier_stress`` x costs on the same holdout;
5. sleeves with a positive standalone return in the holdout.

An undefined value (e.g. no variance) fails its row. The seed's own audit figures
(2026-02-19) are carried next to ours for comparison.

The walk-forward's folds and the two holdout backtests are independent pieces
(``research.parallel``): serial, or Dask tasks with ``request.parallelism`` on one
cluster; the holdouts share the candle and funding frames loaded once.

Entry: ``run(AuditRequest, *, home, report) -> AuditResult``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stagectl.config.home import Home
from stagectl.errors import InputError
from stagectl.services.research import backtest as backtest_service
from stagectl.services.research.engine import Market, finite, load_market_and_data, stamp
from stagectl.services.research.parallel import Parallelism, Piece, Report, open_executor, quiet
from stagectl.services.research.walk_forward import WalkForwardRequest, evaluate

KIND = "audit-strategy"


@dataclass(frozen=True)
class AuditRequest:
    """``-c`` (the strategy config), ``--data`` and ``--workers``/``--scheduler``."""

    config: Path | None = None
    data_dir: Path | None = None
    parallelism: Parallelism = field(default_factory=Parallelism)


@dataclass(frozen=True)
class AuditResult:
    market: Market
    body: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.body["verdict"]["passed"])

    @property
    def inputs(self) -> list[Path]:
        return self.market.inputs


def _row(
    name: str, value: float | None, op: str, bar: float, seed: float, unit: str = ""
) -> dict[str, Any]:
    ok = value is not None and (value >= bar if op == ">=" else value <= bar)
    return {
        "check": name,
        "value": finite(value),
        "bar": bar,
        "comparison": op,
        "unit": unit,
        "status": "PASS" if ok else "FAIL",
        "seed_003_audit": seed,
    }


def _holdout(shared: backtest_service.FlatInput, piece: tuple[datetime, float]) -> dict[str, Any]:
    """``stagectl backtest --start <holdout start> --cost-multiplier X``'s metrics."""
    start, multiplier = piece
    request = backtest_service.BacktestRequest(
        start=start, cost_multiplier=multiplier, data_dir=shared.data_dir
    )
    return backtest_service.flat_metrics(shared.strategy, shared.data, request)[1]


def run(request: AuditRequest, *, home: Home, report: Report = quiet) -> AuditResult:
    """Load, walk forward before the holdout, backtest the holdout at 1x and stressed
    costs, judge each row; progress and notices go to ``report``."""
    market, data = load_market_and_data(home, request.config, request.data_dir)
    audit = market.config.audit
    if audit is None:
        raise InputError(
            "audit: the strategy has no audit section (acceptance bars and measured figures)",
            where=str(market.source.path),
        )
    acceptance, seed = audit.acceptance, audit.measured_2026_02_19
    index = market.index
    holdout_from = index[-1] - pd.DateOffset(months=acceptance.holdout_months)
    holdout_lo = int(index.searchsorted(holdout_from, side="left"))
    if holdout_lo <= 0:
        raise InputError(
            f"the data ({stamp(index[0])} .. {stamp(index[-1])}) does not reach back "
            f"{acceptance.holdout_months} months before its end plus a development period",
            where="data",
        )
    holdout_start = index[holdout_lo].to_pydatetime()
    stress = acceptance.cost_multiplier_stress
    with open_executor(request.parallelism, report) as executor:
        wf = evaluate(market, WalkForwardRequest(), executor=executor, last_bar=holdout_lo)
        holdout, stressed = executor.map(
            _holdout,
            backtest_service.FlatInput(market.config, data, request.data_dir),
            [
                Piece("holdout backtest", (holdout_start, 1.0)),
                Piece(f"holdout backtest at {stress:g}x costs", (holdout_start, stress)),
            ],
            what=f"{KIND} holdout backtests",
        )
    by_sleeve = holdout["stability"]["by_sleeve"]
    positive = sum(1 for row in by_sleeve.values() if (row["total_return"] or 0.0) > 0)
    mdd = holdout["max_drawdown"]
    table = [
        _row(
            "nested walk-forward mean OOS Sharpe",
            wf.body["summary"]["mean_oos_sharpe"],
            ">=",
            acceptance.wf_mean_oos_sharpe_min,
            seed.wf_mean_oos_sharpe,
        ),
        _row(
            f"holdout Sharpe ({acceptance.holdout_months} months)",
            holdout["sharpe_net"],
            ">=",
            acceptance.holdout_sharpe_min,
            seed.holdout_sharpe,
        ),
        _row(
            "holdout max drawdown",
            None if mdd is None else mdd * 100.0,
            "<=",
            acceptance.holdout_mdd_max_pct,
            seed.holdout_mdd_pct,
            "%",
        ),
        _row(
            f"holdout Sharpe at {acceptance.cost_multiplier_stress:g}x costs",
            stressed["sharpe_net"],
            ">=",
            acceptance.cost_stress_sharpe_min,
            seed.cost_stress_sharpe,
        ),
        _row(
            "positive sleeves in the holdout",
            float(positive),
            ">=",
            float(acceptance.positive_sleeves_min),
            float(seed.positive_sleeves),
            f"of {len(by_sleeve)}",
        ),
    ]
    failed = [row["check"] for row in table if row["status"] == "FAIL"]
    body = {
        "strategy": {
            "name": market.config.name,
            "config": {"path": str(market.source.path), "sha256": market.config_sha256},
            "data_source": market.info.data_source,
            "data_start": stamp(index[0]),
            "data_end": stamp(index[-1]),
        },
        "windows": {
            "walk_forward": {
                "first_bar": wf.body["settings"]["first_bar"],
                "last_bar": stamp(index[holdout_lo - 1]),
                "folds": wf.body["settings"]["folds"],
                "train_days": 120,
                "purge_days": 5,
                "test_days": 30,
                "mode": "rolling",
                "selection": wf.body["strategy"]["selection"],
            },
            "holdout": {
                "start": stamp(index[holdout_lo]),
                "end": stamp(index[-1]),
                "bars": len(index) - holdout_lo,
            },
        },
        "holdout_sleeves": {s: row["total_return"] for s, row in by_sleeve.items()},
        "table": table,
        "verdict": {"passed": not failed, "failed": failed},
        "seed_003_audit": "2026-02-19 figures from the config's audit.measured_2026_02_19",
    }
    return AuditResult(market, body)
