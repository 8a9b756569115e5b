"""shadow: record a backtest as a run, and compare two recorded runs (seed 001 §9).

Two entries, one per sub-command, both of the one service shape:

- ``run_compare(ShadowCompareRequest, *, home) -> ShadowComparison`` (``shadow compare``);
- ``run_record_backtest(RecordBacktestRequest, *, home, clock) -> RecordBacktestResult``
  (``shadow record-backtest``): the backtest of ``backtest.run`` recorded as a run
  (``services.research.recording``); ``clock`` stamps the run.

Comparing (``shadow compare``): both runs' snapshots are paired on their common
timestamps; per-period returns are ``equity[k] / equity[k-1] - 1``; fills in
``(t[k-1], t[k]]`` give each period's turnover (sum qty x price / equity[k-1]) and cost
(sum fee / equity[k-1]); trades = fills. ``domain.promotion.promotion_verdict`` gives
the metrics, IR, bootstrap and Welch p-values and the verdict; periods per year come
from the median snapshot spacing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from stagectl.config.home import Home
from stagectl.domain.promotion import ShadowRun, promotion_verdict
from stagectl.errors import InputError
from stagectl.services.research import backtest as backtest_service
from stagectl.services.research.recording import RecordSummary
from stagectl.state.db import StateDB, open_state
from stagectl.state.equity import snapshots
from stagectl.state.ledger import fills
from stagectl.state.runs import Run, get_run

MIN_PAIRED_PERIODS = 30
SECONDS_PER_YEAR = 365.0 * 86400.0


@dataclass(frozen=True)
class ShadowCompareRequest:
    """``--baseline`` and ``--candidate`` run ids, the bootstrap's ``--seed`` and
    ``--resamples``."""

    baseline: str
    candidate: str
    seed: int = 0
    resamples: int = 2000


@dataclass(frozen=True)
class ShadowComparison:
    """The comparison document (``--json`` prints it as is) and its verdict."""

    body: dict[str, Any]

    @property
    def promote(self) -> bool:
        return bool(self.body["verdict"]["promote"])


@dataclass(frozen=True)
class RecordBacktestRequest:
    """``--run-id`` and the backtest to record (``--start``, ``--end``, ``-c``, ...)."""

    run_id: str
    backtest: backtest_service.BacktestRequest


@dataclass(frozen=True)
class RecordBacktestResult:
    """The backtest and what was recorded of it."""

    backtest: backtest_service.BacktestRun
    recorded: RecordSummary


def run_record_backtest(
    request: RecordBacktestRequest,
    *,
    home: Home,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RecordBacktestResult:
    """Backtest, then record the backtest as run ``request.run_id`` in one transaction."""
    done = backtest_service.run(
        replace(request.backtest, record_as=request.run_id), home=home, clock=clock
    )
    assert done.recorded is not None  # record_as was given
    return RecordBacktestResult(done, done.recorded)


@dataclass(frozen=True)
class _Series:
    run: Run
    equity: pd.Series
    fills: pd.DataFrame


def _load(db: StateDB, run_id: str, option: str) -> _Series:
    run = get_run(db, run_id)
    if run is None:
        raise InputError(f"no run {run_id!r} in the state database", where=option)
    snaps = snapshots(db, run_id)
    equity = pd.Series(
        [s.equity for s in snaps], index=pd.DatetimeIndex([s.ts for s in snaps]), dtype=float
    )
    rows = [(f.ts, float(f.qty * f.price), float(f.fee)) for f in fills(db, run_id=run_id)]
    frame = pd.DataFrame(rows, columns=["ts", "notional", "fee"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return _Series(run, equity, frame)


def _shadow_run(series: _Series, index: pd.DatetimeIndex) -> ShadowRun:
    equity = series.equity.reindex(index).to_numpy()
    returns = equity[1:] / equity[:-1] - 1.0
    period = np.searchsorted(
        index.as_unit("ns").asi8,
        pd.DatetimeIndex(series.fills["ts"]).as_unit("ns").asi8,
        side="left",
    )
    inside = (period >= 1) & (period < len(index))
    n = len(index)
    notional = np.bincount(period[inside], series.fills["notional"].to_numpy()[inside], n)
    fee = np.bincount(period[inside], series.fills["fee"].to_numpy()[inside], n)
    return ShadowRun(
        returns=returns,
        turnover=notional[1:] / equity[:-1],
        costs=fee[1:] / equity[:-1],
        trades=int(inside.sum()),
    )


def run_compare(request: ShadowCompareRequest, *, home: Home) -> ShadowComparison:
    """The side-by-side comparison and promotion verdict (module docstring)."""
    baseline_id, candidate_id = request.baseline, request.candidate
    seed, resamples = request.seed, request.resamples
    with open_state(home.state_path, migrate=False) as db:
        baseline = _load(db, baseline_id, "--baseline")
        candidate = _load(db, candidate_id, "--candidate")
    common = pd.DatetimeIndex(
        baseline.equity.index.intersection(candidate.equity.index).sort_values()
    )
    if len(common) < MIN_PAIRED_PERIODS + 1:
        raise InputError(
            f"runs {baseline_id!r} ({len(baseline.equity)} snapshots) and {candidate_id!r} "
            f"({len(candidate.equity)}) share {len(common)} timestamps; at least "
            f"{MIN_PAIRED_PERIODS + 1} are needed for {MIN_PAIRED_PERIODS} paired returns",
            where="--baseline/--candidate",
        )
    spacing_s = float(np.median(np.diff(common.as_unit("ns").asi8))) / 1e9
    ppy = SECONDS_PER_YEAR / spacing_s
    verdict = promotion_verdict(
        _shadow_run(candidate, common),
        _shadow_run(baseline, common),
        periods_per_year=ppy,
        seed=seed,
        n_resamples=resamples,
    )
    body = {
        "baseline": _describe(baseline),
        "candidate": _describe(candidate),
        "periods": {
            "paired_returns": len(common) - 1,
            "start": _stamp(common[0]),
            "end": _stamp(common[-1]),
            "spacing_seconds": spacing_s,
            "periods_per_year": ppy,
            "days": verdict.days,
            "unpaired_snapshots": {
                "baseline": len(baseline.equity) - len(common),
                "candidate": len(candidate.equity) - len(common),
            },
        },
        "metrics": [
            {
                "metric": c.metric,
                "baseline": c.baseline,
                "candidate": c.candidate,
                "status": c.status,
                "critical": c.critical,
            }
            for c in verdict.comparisons
        ],
        "tests": {
            "information_ratio": verdict.information_ratio,
            "bootstrap_p_value": verdict.bootstrap_p_value,
            "bootstrap": {
                "resamples": resamples,
                "block_length": verdict.block_length,
                "seed": seed,
                "one_sided": "candidate mean > baseline mean",
            },
            "welch_t": verdict.welch.t,
            "welch_df": verdict.welch.df,
            "welch_p_value": verdict.welch.p_value,
        },
        "verdict": {"promote": verdict.promote, "reasons": verdict.reasons},
    }
    return ShadowComparison(body)


def _describe(series: _Series) -> dict[str, Any]:
    run = series.run
    return {
        "run_id": run.run_id,
        "kind": run.kind,
        "mode": run.mode,
        "status": run.status,
        "config_path": run.config_path,
        "snapshots": len(series.equity),
        "fills": len(series.fills),
    }


def _stamp(moment: pd.Timestamp) -> str:
    return pd.Timestamp(moment).isoformat().replace("+00:00", "Z")
