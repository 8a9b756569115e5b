"""What the risk guard, the weekly review and the paper gate read from the state database.

Which run, and when: ``judged_run`` takes ``--run``, else the run of the mode (paper
by default) with the latest snapshot, and judges it as of ``--now`` or its own clock
(``domain.run_clock``: the wall clock for a run trading in real time, its last bar for
a replayed or finished one). Windows end at the as-of time inclusive: a snapshot
stamped at that bar's close, or a guard decision recorded at it, is in.

Sources (docs/paper-gate.md, "Data sources"):

- equity: the ``equity_snapshots`` of that run, and its initial equity (the
  ``RUN_STARTED`` record's ``initial_equity``). Sleeve equity comes from each
  snapshot's ``sleeves_json``: ``{"ETHUSDT": {"equity": 5400.0, ...}, ...}``.
- fills of that run; a fill's reference (signal) price is its order's ``price``
  (``orders.price`` by ``client_order_id``); fees are in the quote currency.
- funding payments of that run: the paid rate of a settlement is the market
  rate signed by the position (``position_qty``, else the sign of ``amount``).
- guard decisions: the run's recorded risk-guard decisions (dry runs included).
- signal checks: the run's ``events`` of type ``signal_check`` whose payload holds the
  paper target and the backtest replay's target (``{"paper": 1, "replay": 1}``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stagectl.config.home import Home
from stagectl.config.state_url import state_exists
from stagectl.domain.run_clock import RUN_STARTED, AsOf, as_of
from stagectl.domain.types import Fill, FundingPayment, Mode
from stagectl.errors import InputError
from stagectl.state.db import StateDB, open_state
from stagectl.state.directives import GuardDecision, guard_decisions
from stagectl.state.equity import EquitySnapshot, snapshots
from stagectl.state.journal import events
from stagectl.state.ledger import fills, funding_payments
from stagectl.state.orders import get_order
from stagectl.state.runs import clock_facts, latest_traded_run

SIGNAL_CHECK_EVENT = "signal_check"
MAX_DECISIONS = 1_000_000
EPSILON = timedelta(microseconds=1)
NO_RUN_HINT = "the trading loop records them (one per bar), or pass --run"


def open_existing_state(home: Home) -> StateDB:
    """The home's state database, read as it is; InputError when absent or not current."""
    path = home.state_path
    if not state_exists(path):
        raise InputError(
            f"no state database at {path}: nothing to review; run `stagectl init` and a "
            "paper run (equity snapshots, fills, funding and guard decisions are read from it)"
        )
    db = open_state(path, migrate=False)
    pending = db.pending_migrations()
    if pending:
        db.close()
        raise InputError(
            f"the state schema is not current ({len(pending)} pending migration(s)); "
            "run `stagectl init`",
            where=str(path),
        )
    return db


@dataclass(frozen=True)
class JudgedRun:
    """The run a command judges, why that run, and the time it is judged at."""

    run_id: str
    why: str
    as_of: AsOf


def judged_run(
    db: StateDB,
    *,
    run_id: str | None,
    mode: Mode,
    now: datetime | None,
    wall: datetime,
    hint: str = NO_RUN_HINT,
) -> JudgedRun:
    """Run ``run_id``, else the run of ``mode`` with the latest snapshot (at or before
    ``now`` when given), judged as of ``now`` or its own clock (``domain.run_clock``);
    InputError naming what is missing and ``hint``."""
    why = "given by --run"
    if run_id is None:
        run_id = latest_traded_run(db, mode=mode, before=None if now is None else now + EPSILON)
        if run_id is None:
            at = "" if now is None else f" at or before {now.isoformat()}"
            raise InputError(
                f"no {mode} run with equity snapshots{at} in the state database; {hint}"
            )
        why = f"the {mode} run with the latest equity snapshot"
    facts = clock_facts(db, run_id)
    if facts is None:
        raise InputError(f"no run {run_id!r} in the state database", where="--run")
    return JudgedRun(run_id, why, as_of(facts, now=now, wall=wall))


def snapshots_until(db: StateDB, run_id: str, at: datetime) -> list[EquitySnapshot]:
    """The run's snapshots at or before ``at``; InputError when there is none."""
    found = snapshots(db, run_id, end=at + EPSILON)
    if not found:
        raise InputError(f"run {run_id} has no equity snapshots at or before {at.isoformat()}")
    return found


def initial_equity(db: StateDB, run_id: str) -> float | None:
    """The ``initial_equity`` of the run's ``RUN_STARTED`` record; None when not recorded."""
    started = events(db, run_id=run_id, event_type=RUN_STARTED, limit=1)
    value = (started[0].payload or {}).get("initial_equity") if started else None
    try:
        equity = float(value) if isinstance(value, str | int | float) else math.nan
    except ValueError:
        return None
    return equity if math.isfinite(equity) and equity > 0 else None


def run_fills(db: StateDB, run_id: str, start: datetime, end: datetime) -> list[Fill]:
    return fills(db, run_id=run_id, start=start, end=end)


def reference_price(db: StateDB, fill: Fill) -> float | None:
    """The fill's signal price: its order's limit/signal price, None when unknown."""
    if fill.client_order_id is None:
        return None
    order = get_order(db, fill.client_order_id)
    if order is None or order.price is None or order.price <= 0:
        return None
    return float(order.price)


def run_funding(db: StateDB, run_id: str, start: datetime, end: datetime) -> list[FundingPayment]:
    return funding_payments(db, run_id=run_id, start=start, end=end)


def paid_rate(payment: FundingPayment) -> float | None:
    """The settlement's rate as paid by the position (+) or received (-); None when flat."""
    rate = float(payment.rate or 0)
    if payment.position_qty is not None and payment.position_qty != 0:
        return rate if payment.position_qty > 0 else -rate
    if payment.paid != 0:
        return abs(rate) if payment.paid > 0 else -abs(rate)
    return None


def mean_paid_rate(payments: Sequence[FundingPayment]) -> float | None:
    rates = [r for r in (paid_rate(p) for p in payments) if r is not None]
    return sum(rates) / len(rates) if rates else None


def decisions_between(
    db: StateDB, run_id: str, start: datetime, end: datetime
) -> list[GuardDecision]:
    """The run's recorded guard decisions with ``start <= ts < end``, oldest first: the
    cron guard's and those run-live records in its loop alike (``guard_decisions.run_id``)."""
    recent = guard_decisions(db, run_id=run_id, limit=MAX_DECISIONS)
    return sorted((d for d in recent if start <= d.ts < end), key=lambda d: (d.ts, d.id or 0))


def signal_checks(db: StateDB, run_id: str, start: datetime, end: datetime) -> tuple[int, int]:
    """(compared, matched) over the run's ``signal_check`` events with both targets."""
    compared = matched = 0
    for event in events(db, run_id=run_id, event_type=SIGNAL_CHECK_EVENT, start=start, end=end):
        payload: dict[str, Any] = dict(event.payload or {})
        paper, replay = payload.get("paper"), payload.get("replay")
        if not isinstance(paper, int | float) or not isinstance(replay, int | float):
            continue
        compared += 1
        matched += int(abs(float(paper) - float(replay)) < 1e-9)
    return compared, matched
