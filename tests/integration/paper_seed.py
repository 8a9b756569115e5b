"""Seed a state database with a paper run built from a real-data backtest.

The Alt Ensemble (seed 003) is backtested on the bundled ETH/SOL perp data; the
run's hourly equity becomes equity snapshots, stamped at each bar's close as
run-live stamps them (the bar opening at 10:00 closes, and is snapshotted, at
11:00; an ``equity`` override is written at its own stamps), and the run is
recorded as a finished (completed) run-live paper run. Each position change becomes an
order (limit price = the bar's open, the signal price) and a fill (that price
moved ``slip_bps`` against us, 5 bps fee), each 8-hour funding settlement on a
held position becomes a funding payment, and every day gets a signal check per
sleeve and a risk-guard decision at 08:00 UTC. Everything goes through the state
repositories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stagectl.data import load_candles, load_funding
from stagectl.domain.backtest import BacktestResult, SleeveSpec, run_backtest
from stagectl.domain.strategies import debounce, tsmom_ema, tsmom_multi_ema
from stagectl.domain.types import (
    Event,
    Fill,
    FundingPayment,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from stagectl.state.db import open_state
from stagectl.state.directives import GuardDecision, record_guard_decision
from stagectl.state.equity import EquitySnapshot, record_snapshots
from stagectl.state.journal import record_events
from stagectl.state.ledger import insert_fills, insert_funding
from stagectl.state.orders import upsert_order
from stagectl.state.runs import Run, start_run

WEIGHTS = {"ETHUSDT": 0.54, "SOLUSDT": 0.46}
FEE_BPS = 5.0


@cache
def alt_ensemble() -> BacktestResult:
    """The seed-003 portfolio on the bundled data (1h, fee 5 + slippage 3 bps, funding)."""
    eth, sol = load_candles("ETHUSDT"), load_candles("SOLUSDT")
    index = eth.index.intersection(sol.index)
    eth, sol = eth.loc[index], sol.loc[index]
    return run_backtest(
        [
            SleeveSpec(
                "ETHUSDT",
                eth["open"],
                debounce(tsmom_multi_ema(eth["close"], [72, 168, 336, 720], 0.0), 2),
                WEIGHTS["ETHUSDT"],
                load_funding("ETHUSDT"),
            ),
            SleeveSpec(
                "SOLUSDT",
                sol["open"],
                debounce(tsmom_ema(sol["close"], 168), 2),
                WEIGHTS["SOLUSDT"],
                load_funding("SOLUSDT"),
            ),
        ],
        fee_bps=5.0,
        slippage_bps=3.0,
        initial_equity=10_000.0,
    )


@cache
def opens() -> pd.DataFrame:
    return pd.DataFrame({s: load_candles(s)["open"] for s in WEIGHTS})


@dataclass
class Seed:
    """What to write; the defaults give a run that passes every gate criterion."""

    start: datetime
    end: datetime
    run_id: str = "paper-1"
    mode: str = "paper"
    slip_bps: float = 2.0
    funding_rate: float | None = 0.0001  # per settlement; None: the real rates
    signal_mismatches: int = 0
    decisions: Sequence[tuple[datetime, str, str]] = ()  # extra (ts, action, severity)
    daily_decisions: bool = True
    fills: bool = True
    funding: bool = True
    equity: pd.Series | None = None  # overrides the backtest's equity
    last_sleeves: Mapping[str, float] | None = None  # sleeve equity in the last snapshot
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"


def window(result: BacktestResult, seed: Seed) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(result.equity.index)
    return index[(index >= seed.start) & (index < seed.end)]


def write(db_path: Path, seed: Seed) -> dict[str, Any]:
    """Write the seed into the state database at ``db_path``; return what was written."""
    result = alt_ensemble()
    index = window(result, seed)
    equity = seed.equity if seed.equity is not None else _at_close(result.equity.loc[index])
    db = open_state(db_path)
    try:
        start_run(
            db,
            Run(
                seed.run_id,
                "run-live",
                seed.mode,
                started_at=seed.start,
                status=seed.status,
                ended_at=None if seed.status == "running" else seed.end,
            ),
        )
        record_snapshots(db, _snapshots(seed, equity))
        written: dict[str, Any] = {"equity": equity}
        if seed.fills:
            written["fills"] = _write_fills(db, seed, result, index)
        if seed.funding:
            written["funding"] = _write_funding(db, seed, result, index)
        written["signals"] = _write_signals(db, seed, result, index)
        _write_decisions(db, seed, index)
    finally:
        db.close()
    return written


def _at_close(equity: pd.Series) -> pd.Series:
    """The backtest's equity per bar (indexed by the bar's open) stamped at the bar's close."""
    return equity.set_axis(pd.DatetimeIndex(equity.index) + pd.Timedelta(hours=1))


def _snapshots(seed: Seed, equity: pd.Series) -> list[EquitySnapshot]:
    rows = [
        EquitySnapshot(
            seed.run_id,
            ts.to_pydatetime(),
            float(value),
            sleeves={s: {"equity": float(value) * w} for s, w in WEIGHTS.items()},
        )
        for ts, value in equity.items()
    ]
    if seed.last_sleeves is not None:
        last = rows[-1]
        rows[-1] = EquitySnapshot(
            last.run_id,
            last.ts,
            last.equity,
            sleeves={s: {"equity": v} for s, v in seed.last_sleeves.items()},
        )
    return rows


def _dec(value: float) -> Decimal:
    return Decimal(f"{value:.10g}")


def _write_fills(
    db: Any, seed: Seed, result: BacktestResult, index: pd.DatetimeIndex
) -> list[Fill]:
    positions = result.positions
    equity_before = result.equity.shift(1).fillna(result.initial_equity)
    fills: list[Fill] = []
    for symbol, weight in WEIGHTS.items():
        held = positions[symbol]
        delta = held.diff().fillna(held).loc[index]
        for ts, change in delta[delta != 0].items():
            reference = float(opens().loc[ts, symbol])
            side = "buy" if change > 0 else "sell"
            sign = 1.0 if side == "buy" else -1.0
            price = reference * (1.0 + sign * seed.slip_bps / 1e4)
            notional = abs(change) * weight * float(equity_before.loc[ts])
            qty = notional / price
            at = ts.to_pydatetime()
            order_id = f"{seed.run_id}-{symbol}-{ts:%Y%m%d%H}"
            upsert_order(
                db,
                Order(
                    client_order_id=order_id,
                    symbol=symbol,
                    side=Side(side),
                    type=OrderType.LIMIT,
                    qty=_dec(qty),
                    created_at=at,
                    status=OrderStatus.FILLED,
                    time_in_force=TimeInForce.GTC,
                    account="paper",
                    run_id=seed.run_id,
                    price=_dec(reference),
                    filled_qty=_dec(qty),
                ),
            )
            fills.append(
                Fill(
                    f"t-{order_id}",
                    at,
                    symbol,
                    Side(side),
                    _dec(qty),
                    _dec(price),
                    _dec(qty * price * FEE_BPS / 1e4),
                    account="paper",
                    source="paper",
                    run_id=seed.run_id,
                    client_order_id=order_id,
                )
            )
    insert_fills(db, fills)
    return fills


def _write_funding(
    db: Any, seed: Seed, result: BacktestResult, index: pd.DatetimeIndex
) -> list[FundingPayment]:
    payments = []
    for symbol, weight in WEIGHTS.items():
        rates = load_funding(symbol)
        rates = rates[(rates.index >= index[0]) & (rates.index < seed.end)]
        held = result.positions[symbol].reindex(rates.index, method="ffill")
        for ts, rate in rates.items():
            position = float(held.loc[ts])
            if position == 0 or np.isnan(position):
                continue
            paid = float(rate) if seed.funding_rate is None else seed.funding_rate
            notional = weight * float(result.equity.asof(ts))
            payments.append(
                FundingPayment(
                    symbol,
                    ts.to_pydatetime(),
                    -_dec(paid * position * notional),  # > 0 received
                    rate=_dec(paid),
                    position_qty=_dec(position),
                    account="paper",
                    run_id=seed.run_id,
                )
            )
    insert_funding(db, payments)
    return payments


def _write_signals(db: Any, seed: Seed, result: BacktestResult, index: pd.DatetimeIndex) -> int:
    checks = index[index.hour == 8]
    events = []  # the last ``signal_mismatches`` SOL checks disagree with the replay
    for symbol in WEIGHTS:
        for ts in checks:
            paper = float(result.positions.loc[ts, symbol])
            late = seed.signal_mismatches and ts >= checks[-seed.signal_mismatches]
            replay = paper + 1.0 if late and symbol == "SOLUSDT" else paper
            events.append(
                Event(
                    ts.to_pydatetime(),
                    "signal_check",
                    run_id=seed.run_id,
                    symbol=symbol,
                    payload={"paper": paper, "replay": replay},
                )
            )
    record_events(db, events)
    return len(events)


def _write_decisions(db: Any, seed: Seed, index: pd.DatetimeIndex) -> None:
    if seed.daily_decisions:
        for ts in index[index.hour == 8]:
            record_guard_decision(
                db,
                GuardDecision(
                    ts.to_pydatetime(), "NO_ACTION", "INFO", True, [], run_id=seed.run_id
                ),
            )
    for ts, action, severity in seed.decisions:
        record_guard_decision(db, GuardDecision(ts, action, severity, True, [], run_id=seed.run_id))
