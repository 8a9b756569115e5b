"""Record a backtest as a run of the state database, for ``shadow compare``.

Recording (``shadow record-backtest``, ``backtest --record``): one ``runs`` row (kind
``backtest``, mode ``paper``), one equity snapshot per bar (equity after the bar's
trade, cumulative fee + slippage in ``fees``, cumulative funding, each sleeve's
standalone equity), one fill per sleeve and bar where the position changes (exchange
``backtest``, source ``backtest``, at the bar's open; qty = |change| x sleeve capital /
open; the backtest charges slippage as a cost, not in the price, so ``fee`` holds the
all-in cost fee + slippage in USD), and the breaker firings as ``BREAKER_FIRED`` events.
All in one transaction.

Used by ``backtest --record`` and ``shadow record-backtest`` (both through
:func:`stagectl.services.research.backtest.run` with ``record_as``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stagectl.config.home import Home
from stagectl.data.loaders import read_candles
from stagectl.domain.types import Event, Fill, Liquidity, Side
from stagectl.errors import InputError
from stagectl.state.db import open_state
from stagectl.state.equity import EquitySnapshot, record_snapshots
from stagectl.state.journal import record_events
from stagectl.state.ledger import insert_fills
from stagectl.state.runs import Run, get_run, start_run

if TYPE_CHECKING:
    from stagectl.services.research.backtest import BacktestRun

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
