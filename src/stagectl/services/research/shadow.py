"""shadow: record a backtest as a run, and compare two recorded runs (seed 001 §9).

Recording (``shadow record-backtest``, ``backtest --record``): one ``runs`` row (kind
``backtest``, mode ``paper``), one equity snapshot per bar (equity after the bar's
trade, cumulative fee + slippage in ``fees``, cumulative funding, each sleeve's
standalone equity), one fill per sleeve and bar where the position changes (exchange
``backtest``, source ``backtest``, at the bar's open; qty = |change| x sleeve capital /
open; the backtest charges slippage as a cost, not in the price, so ``fee`` holds the
all-in cost fee + slippage in USD), and the breaker firings as ``BREAKER_FIRED`` events.
All in one transaction.

Comparing (``shadow compare``): both runs' snapshots are paired on their common
timestamps; per-period returns are ``equity[k] / equity[k-1] - 1``; fills in
``(t[k-1], t[k]]`` give each period's turnover (sum qty x price / equity[k-1]) and cost
(sum fee / equity[k-1]); trades = fills. ``domain.promotion.promotion_verdict`` gives
the metrics, IR, bootstrap and Welch p-values and the verdict; periods per year come
from the median snapshot spacing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from stagectl.config.home import Home
from stagectl.data.loaders import read_candles
from stagectl.domain.promotion import ShadowRun, promotion_verdict
from stagectl.domain.types import Event, Fill, Liquidity, Side
from stagectl.errors import InputError
from stagectl.services.research.backtest import BacktestRun
from stagectl.state.db import StateDB, open_state
from stagectl.state.equity import EquitySnapshot, record_snapshots, snapshots
from stagectl.state.journal import record_events
from stagectl.state.ledger import fills, insert_fills
from stagectl.state.runs import Run, get_run, start_run

MIN_PAIRED_PERIODS = 30
SECONDS_PER_YEAR = 365.0 * 86400.0
EXCHANGE = "backtest"
BREAKER_EVENT = "BREAKER_FIRED"


@dataclass(frozen=True)
class RecordSummary:
    run_id: str
    snapshots: int
    fills: int
    events: int
    state_path: str


def _dec(value: float) -> Decimal:
    return Decimal(repr(round(float(value), 10)))


def backtest_fills(run_id: str, backtest: BacktestRun) -> list[Fill]:
    """One fill per sleeve and bar where the held position changes (module docstring)."""
    result = backtest.result
    index = pd.DatetimeIndex(result.equity.index)
    before = np.concatenate(([result.initial_equity], result.equity.to_numpy()[:-1]))
    data_dir = backtest.request.data_dir
    out: list[Fill] = []
    for symbol in result.positions.columns:
        candles = read_candles(symbol, backtest.strategy.timeframe, data_dir=data_dir).frame
        opens = candles["open"].reindex(index).to_numpy(dtype=float)
        held = result.positions[symbol].to_numpy(dtype=float)
        delta = np.diff(np.concatenate(([0.0], held)))
        gross = result.sleeve_gross_returns[symbol].to_numpy()
        funding = result.sleeve_funding[symbol].to_numpy()
        capital = before * result.weights[symbol] * (1.0 + gross) - funding
        cost = (result.sleeve_fee[symbol] + result.sleeve_slippage[symbol]).to_numpy()
        for k in np.flatnonzero(delta != 0).tolist():
            out.append(
                Fill(
                    account=EXCHANGE,
                    trade_id=f"{run_id}:{symbol}:{k}",
                    symbol=symbol,
                    side=Side.BUY if delta[k] > 0 else Side.SELL,
                    qty=_dec(abs(delta[k]) * capital[k] / opens[k]),
                    price=_dec(opens[k]),
                    fee=_dec(cost[k]),
                    ts=index[k].to_pydatetime(),
                    source=EXCHANGE,
                    fee_currency="USDT",
                    liquidity=Liquidity.TAKER,
                    run_id=run_id,
                )
            )
    return out


def backtest_snapshots(run_id: str, backtest: BacktestRun) -> list[EquitySnapshot]:
    result = backtest.result
    costs = result.costs
    fees = (costs["fee"] + costs["slippage"]).cumsum().to_numpy()
    funding = costs["funding"].cumsum().to_numpy()
    names = [str(name) for name in result.sleeve_equity.columns]
    sleeves = result.sleeve_equity.to_numpy(dtype=float)
    equity = result.equity.to_numpy(dtype=float)
    return [
        EquitySnapshot(
            run_id=run_id,
            ts=ts.to_pydatetime(),
            equity=float(equity[k]),
            fees=float(fees[k]),
            funding=float(funding[k]),
            sleeves=dict(zip(names, sleeves[k].tolist(), strict=True)),
        )
        for k, ts in enumerate(pd.DatetimeIndex(result.equity.index))
    ]


def breaker_events(run_id: str, backtest: BacktestRun) -> list[Event]:
    section = backtest.metrics.get("breakers")
    if not section:
        return []
    return [
        Event(
            ts=pd.Timestamp(firing["time"]).to_pydatetime(),
            event_type=BREAKER_EVENT,
            severity="MEDIUM",
            run_id=run_id,
            message=f"circuit breaker {firing['breaker']} fired: value {firing['value']:.6g}, "
            f"threshold {firing['threshold']:.6g}",
            payload=firing,
        )
        for firing in section["firings"]
    ]


def record_backtest(
    home: Home, run_id: str, backtest: BacktestRun, *, now: datetime
) -> RecordSummary:
    """Write the backtest as run ``run_id`` (snapshots, fills, events) in one transaction."""
    if not run_id.strip():
        raise InputError("the run id must not be empty", where="--run-id")
    snaps = backtest_snapshots(run_id, backtest)
    run_fills = backtest_fills(run_id, backtest)
    events = breaker_events(run_id, backtest)
    with open_state(home.state_path) as db:
        if get_run(db, run_id) is not None:
            raise InputError(
                f"run {run_id!r} is already recorded; choose another --run-id", where="--run-id"
            )
        with db.transaction():
            start_run(
                db,
                Run(
                    run_id=run_id,
                    kind="backtest",
                    mode="paper",
                    started_at=now,
                    ended_at=now,
                    status="completed",
                    config_path=str(backtest.source.path),
                    config_sha256=backtest.config_sha256,
                ),
            )
            record_snapshots(db, snaps)
            insert_fills(db, run_fills)
            if events:
                record_events(db, events)
    return RecordSummary(run_id, len(snaps), len(run_fills), len(events), str(home.state_path))


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


def compare(
    home: Home, baseline_id: str, candidate_id: str, *, seed: int = 0, resamples: int = 2000
) -> dict[str, Any]:
    """The side-by-side comparison and promotion verdict (module docstring)."""
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
    return {
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
