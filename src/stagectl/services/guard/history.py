"""The live risk guard's reads and writes: state rows to GuardInputs, a decision to rows.

What is read (docs/risk-guard.md, "Live mode"):

- ``equity_snapshots`` of one run, up to ``now``. Each snapshot's
  ``sleeves_json`` may hold, per sleeve symbol, ``equity`` (the sleeve's
  standalone equity), ``position`` (fraction of sleeve equity, signed) and
  ``state`` (-1, 0, +1; defaults to the sign of ``position``); a missing key
  makes the indicators built on it NaN (their rules cannot fire, and the report
  lists them as unavailable).
- the run's start: the ``initial_equity`` of its ``RUN_STARTED`` event (run-live
  records it). The initial equity, and each sleeve's ``weight x initial equity``,
  are the first point of the curves, stamped at the first bar's open: one bar
  (the median snapshot spacing, 1 h for a single snapshot) before the first
  snapshot, which is stamped at that bar's close. So the 30-day return and
  contribution are defined from day 30 of the run, and the first bar's PnL counts.
- Snapshots go on an hourly grid: each hour keeps its last snapshot (ts floored
  to the hour). An hour without a snapshot is a gap: equity and sleeve values
  are carried forward (a flat hour) and the number of missing hours is
  reported; the last snapshot's age decides staleness.
- the run's ``funding_payments`` (amount paid, +) summed per hour: funding drag.
- the run's ``fills``, each in the hour it executed:

  - turnover: ``sum |qty x price|`` of the hour's fills over the equity of that
    hour on the grid (for run-live, the snapshot stamped at the hour's start,
    the previous bar's close: the equity the orders were sized on);
  - trades: per sleeve, the orders that filled (by ``client_order_id``, else the
    venue's order id, else the trade id), each counted once, in the hour of its
    first fill: one position change executed in several fills is one trade;
  - slippage: against the fill's signal price, which is the price of its order
    (``orders.price`` by ``client_order_id``, the convention the paper gate and
    the weekly review share): ``side * (fill - signal) / signal * 1e4`` bps,
    adverse positive, summed and counted per hour; fills without a known price
    are left out.
- ``events`` of type ``signal_check`` (payload ``{"paper": 1, "replay": 1}``):
  signal mismatch = mismatched / compared x 100 over the last 24 hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from stagectl.config.risk_guard import RiskGuardConfig
from stagectl.domain.alerts import Finding, finding, rising
from stagectl.domain.directives import confirmation_window
from stagectl.domain.risk_indicators import GuardInputs
from stagectl.domain.risk_rules import ACTION_RANK, SEVERITY_RANK, DecisionTable
from stagectl.domain.run_clock import first_bar_open
from stagectl.domain.types import Mode
from stagectl.services.guard.rows import order_key, signal_mismatch, slippage_bps, unavailable
from stagectl.state.db import StateDB
from stagectl.state.directives import GuardDecision, RiskDirective
from stagectl.state.equity import EquitySnapshot

RECENT_FILLS = timedelta(hours=24)


@dataclass(frozen=True)
class History:
    run_id: str
    mode: Mode
    snapshots: list[EquitySnapshot]
    fills: list[Any]
    reference_prices: list[float | None]
    funding: list[Any]
    signal_checks: list[Any]
    initial_equity: float | None = None


@dataclass(frozen=True)
class Written:
    decision_id: int
    incident_ids: list[int]
    directives: list[dict[str, Any]]
    already_evaluated: bool = False
    """The hour had a decision for this run already (cron or run-live): nothing written,
    ``decision_id`` is that decision."""
    rising: frozenset[Finding] = frozenset()
    """The decision's findings that the run's previous decision did not have at the same
    or a higher severity (``domain.alerts.rising``)."""


DECISION_SLOT = timedelta(hours=1)
"""One recorded (not dry-run) decision per run and hour: cron's hourly check and
run-live's in-loop guard never count an hour twice."""


def _until(now: datetime) -> datetime:
    return now + timedelta(microseconds=1)


def read_history(db: StateDB, *, run_id: str, now: datetime) -> History | None:
    """The rows of run ``run_id`` up to ``now`` (inclusive); None when it has no equity
    snapshot by then."""
    from stagectl.services.guard import evidence
    from stagectl.state import equity, journal, runs

    run = runs.get_run(db, run_id)
    if run is None:
        return None
    best = equity.snapshots(db, run.run_id, end=_until(now))
    if not best:
        return None
    start = min(best[0].ts - timedelta(hours=1), first_bar_open([s.ts for s in best]))
    end = _until(now)
    fills = evidence.run_fills(db, run.run_id, start, end)
    return History(
        run_id=run.run_id,
        mode="live" if run.mode == "live" else "paper",
        snapshots=best,
        fills=fills,
        reference_prices=[evidence.reference_price(db, fill) for fill in fills],
        funding=evidence.run_funding(db, run.run_id, start, end),
        signal_checks=journal.events(
            db, run_id=run.run_id, event_type=evidence.SIGNAL_CHECK_EVENT, start=start, end=end
        ),
        initial_equity=evidence.initial_equity(db, run.run_id),
    )


def _sleeve_value(snapshot: EquitySnapshot, sleeve: str, key: str) -> float:
    entry = snapshot.sleeves.get(sleeve)
    value = entry.get(key) if isinstance(entry, dict) else None
    return float(value) if isinstance(value, int | float) else math.nan


def _hourly(values: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Last row per hour on a complete hourly grid, gaps carried forward; and the gap count."""
    per_hour = values.groupby(pd.DatetimeIndex(values.index).floor("h")).last()
    grid = pd.date_range(per_hour.index[0], per_hour.index[-1], freq="h")
    missing = len(grid) - len(per_hour)
    return per_hour.reindex(grid).ffill(), missing


def _per_hour(rows: list[tuple[pd.Timestamp, float]], grid: pd.DatetimeIndex) -> pd.Series:
    """The values summed per hour on the grid (0 where none)."""
    if not rows:
        return pd.Series(0.0, index=grid)
    frame = pd.DataFrame(rows, columns=["hour", "value"])
    return frame.groupby("hour")["value"].sum().reindex(grid, fill_value=0.0).astype(float)


def _hour(ts: datetime) -> pd.Timestamp:
    return pd.Timestamp(ts).floor("h")


def _slippage(history: History, grid: pd.DatetimeIndex) -> tuple[pd.Series, pd.Series]:
    """Per hour: the sum of the priced fills' slippage in bps, and their number."""
    rows: list[tuple[pd.Timestamp, float]] = []
    for fill, signal in zip(history.fills, history.reference_prices, strict=True):
        if signal is None:
            continue
        rows.append((_hour(fill.ts), slippage_bps(fill, signal)))
    counts = [(hour, 1.0) for hour, _ in rows]
    return _per_hour(rows, grid), _per_hour(counts, grid)


def _turnover(history: History, equity: pd.Series) -> pd.Series:
    """Per hour: ``sum |qty x price|`` of its fills over that hour's equity on the grid."""
    grid = pd.DatetimeIndex(equity.index)
    rows = [(_hour(f.ts), abs(float(f.qty) * float(f.price))) for f in history.fills]
    return (_per_hour(rows, grid) / equity).fillna(0.0)


def _trades(history: History, sleeves: list[str], grid: pd.DatetimeIndex) -> pd.DataFrame:
    """Per hour and sleeve: the orders that filled, each in the hour of its first fill."""
    first: dict[str, tuple[pd.Timestamp, str]] = {}
    for fill in history.fills:  # in time order
        first.setdefault(order_key(fill), (_hour(fill.ts), fill.symbol))
    return pd.DataFrame(
        {
            sleeve: _per_hour([(h, 1.0) for h, s in first.values() if s == sleeve], grid)
            for sleeve in sleeves
        },
        index=grid,
    )


def _signal_mismatch_pct(history: History, grid: pd.DatetimeIndex) -> pd.Series:
    """Mismatched / compared signal checks over the trailing 24 hours, in %; NaN if none."""
    rows: list[tuple[pd.Timestamp, float]] = []
    for event in history.signal_checks:
        mismatch = signal_mismatch(event.payload)
        if mismatch is not None:
            rows.append((pd.Timestamp(event.ts).floor("h"), mismatch))
    frame = pd.DataFrame(rows, columns=["hour", "mismatch"])
    per_hour = frame.groupby("hour")["mismatch"].agg(["count", "sum"]).reindex(grid, fill_value=0)
    window = pd.Timedelta(hours=24)
    seen = per_hour["count"].astype(float).rolling(window).sum()
    mismatched = per_hour["sum"].astype(float).rolling(window).sum()
    return (mismatched / seen.where(seen > 0) * 100.0).astype(float)


def _initial_snapshot(history: History, weights: dict[str, float]) -> EquitySnapshot | None:
    """The run's initial equity at its first bar's open, flat; None when not recorded."""
    initial = history.initial_equity
    if initial is None:
        return None
    return EquitySnapshot(
        history.run_id,
        first_bar_open([s.ts for s in history.snapshots]),
        initial,
        sleeves={
            s: {"equity": w * initial, "position": 0.0, "state": 0} for s, w in weights.items()
        },
    )


def build_inputs(
    history: History, config: RiskGuardConfig, *, now: datetime
) -> tuple[GuardInputs, dict[str, Any]]:
    """GuardInputs on the hourly grid, and a description of the data used."""
    sleeves = list(config.weekly.target_weights_pct)
    weights = {s: config.weekly.target_weights_pct[s] / 100.0 for s in sleeves}
    initial = _initial_snapshot(history, weights)
    snaps = [initial, *history.snapshots] if initial is not None else history.snapshots
    index = pd.DatetimeIndex([pd.Timestamp(s.ts) for s in snaps])
    columns: dict[str, list[float]] = {"equity": [s.equity for s in snaps]}
    for sleeve in sleeves:
        for key in ("equity", "position", "state"):
            columns[f"{sleeve}:{key}"] = [_sleeve_value(s, sleeve, key) for s in snaps]
    values, missing = _hourly(pd.DataFrame(columns, index=index))
    grid = pd.DatetimeIndex(values.index)

    def by_sleeve(key: str) -> pd.DataFrame:
        return pd.DataFrame({s: values[f"{s}:{key}"] for s in sleeves}, index=grid)

    equity = values["equity"].astype(float)
    sleeve_equity = by_sleeve("equity")
    positions = by_sleeve("position")
    state = by_sleeve("state")
    state = state.fillna(pd.DataFrame(np.sign(positions.to_numpy()), index=grid, columns=sleeves))
    funding = pd.Series(
        [float(p.paid) for p in history.funding],
        index=pd.DatetimeIndex([pd.Timestamp(p.ts).floor("h") for p in history.funding]),
        dtype=float,
    )
    funding_paid = funding.groupby(level=0).sum().reindex(grid, fill_value=0.0)
    slippage_sum, slippage_fills = _slippage(history, grid)
    inputs = GuardInputs(
        equity=equity,
        sleeve_pnl=sleeve_equity.diff(),
        sleeve_equity=sleeve_equity,
        position_state=state,
        turnover=_turnover(history, equity),
        trades=_trades(history, sleeves, grid),
        funding_paid=funding_paid,
        slippage_bps_sum=slippage_sum,
        slippage_fills=slippage_fills,
        signal_mismatch_pct=_signal_mismatch_pct(history, grid),
    )
    first, last = history.snapshots[0].ts, history.snapshots[-1].ts
    data = {
        "run_id": history.run_id,
        "run_start": None if initial is None else initial.ts,
        "initial_equity": history.initial_equity,
        "first_snapshot": first,
        "last_snapshot": last,
        "snapshots": len(history.snapshots),
        "hours": len(grid),
        "missing_hours": missing,
        "last_snapshot_age_min": round((now - last).total_seconds() / 60.0, 1),
        "fills": len(history.fills),
        "funding_payments": len(history.funding),
        "signal_checks": len(history.signal_checks),
        "unavailable": _unavailable(sleeve_equity, state, inputs),
    }
    return inputs, data


def _unavailable(
    sleeve_equity: pd.DataFrame, state: pd.DataFrame, inputs: GuardInputs
) -> list[str]:
    mismatch = inputs.signal_mismatch_pct
    return unavailable(
        sleeve_equity_missing=bool(sleeve_equity.iloc[-1].isna().any()),
        state_missing=bool(state.iloc[-1].isna().any()),
        no_priced_fills=not inputs.slippage_fills.any(),
        no_signal_checks=mismatch is None or bool(mismatch.isna().all()),
    )


def _clean(value: float) -> float | None:
    return value if math.isfinite(value) else None


def decision_dict(
    table: DecisionTable,
    config: RiskGuardConfig,
    data: dict[str, Any],
    *,
    now: datetime,
    stale_after: timedelta,
) -> dict[str, Any]:
    """The decision at the table's single time, with a staleness finding of its own."""
    decision = table.decision(0)
    hits = [
        {
            "rule": h.rule_id,
            "indicator": h.indicator,
            "sleeve": h.sleeve,
            "value": _clean(h.value),
            "op": h.op,
            "threshold": list(h.threshold) if isinstance(h.threshold, tuple) else h.threshold,
            "consecutive_days": h.consecutive_days,
            "action": h.action,
            "severity": h.severity,
            "message": h.message,
        }
        for h in decision.hits
    ]
    action, severity = decision.action, decision.severity
    age = now - data["last_snapshot"]
    if age > stale_after:
        hits.append(
            {
                "rule": "equity_snapshots_stale",
                "indicator": "last_snapshot_age_min",
                "sleeve": None,
                "value": round(age.total_seconds() / 60.0, 1),
                "op": ">",
                "threshold": stale_after.total_seconds() / 60.0,
                "consecutive_days": 1,
                "action": "WARNING",
                "severity": "MEDIUM",
                "message": "no equity snapshot for over 2 hours: is run-live down? "
                "The indicators below are as of the last snapshot",
            }
        )
        if ACTION_RANK[action] < ACTION_RANK["WARNING"]:
            action = "WARNING"
        if SEVERITY_RANK[severity] < SEVERITY_RANK["MEDIUM"]:
            severity = "MEDIUM"
    indicators = {
        f"{rule.indicator}{'' if sleeve is None else ':' + sleeve}": _clean(
            float(table.values[k, 0])
        )
        for k, (rule, sleeve) in enumerate(table.keys)
    }
    return {
        "at": now,
        "bar": table.eval_times[0].to_pydatetime(),
        "action": action,
        "severity": severity,
        "hits": hits,
        "near": [
            {
                "rule": n.rule_id,
                "indicator": n.indicator,
                "sleeve": n.sleeve,
                "value": _clean(n.value),
                "threshold": n.threshold,
            }
            for n in decision.near
        ],
        "indicators": indicators,
        "disabled_sleeves": sorted({h["sleeve"] for h in hits if h["action"] == "DISABLE_SLEEVE"}),
    }


def _directives(
    decision: dict[str, Any], config: RiskGuardConfig, now: datetime, mode: Mode
) -> list[RiskDirective]:
    """The directives a decision issues, each starting as ``domain.directives`` says: at
    once in paper mode; in live mode pending for the runbook's confirmation window."""
    actions = config.actions
    hits = decision["hits"]
    reason = "; ".join(h["rule"] for h in hits)

    def issued(action: str, multiplier: float, **fields: Any) -> RiskDirective:
        fired = [h for h in hits if h["action"] == action] or hits
        window = (
            timedelta(hours=actions.disable_sleeve.confirm_within_h)
            if action == "DISABLE_SLEEVE"
            else timedelta(hours=actions.reduce_risk_50.confirm_within_h)
        )
        state, wait, on_timeout = confirmation_window(
            action,
            live=mode == "live",
            flatten_confirm=timedelta(minutes=actions.flatten_all.confirm_within_min),
            others_confirm=window,
        )
        return RiskDirective(
            now,
            action,
            multiplier,
            reason=reason,
            mode=mode,
            state=state,
            rule=", ".join(sorted({h["rule"] for h in fired})),
            indicator_value=fired[0]["value"] if fired else None,
            confirm_by=None if wait is None else now + wait,
            on_timeout=on_timeout,
            **fields,
        )

    if decision["action"] == "FLATTEN_ALL":
        return [issued("FLATTEN_ALL", 0.0)]
    out = []
    # No expiry: the re-evaluation (services.guard.reevaluate) lifts them, step by step.
    if any(h["action"] == "REDUCE_RISK_50" for h in hits):
        out.append(issued("REDUCE_RISK_50", actions.reduce_risk_50.position_multiplier))
    out.extend(issued("DISABLE_SLEEVE", 0.0, sleeve=s) for s in decision["disabled_sleeves"])
    return out


def _market_state(history: History) -> dict[str, Any]:
    last = history.snapshots[-1]
    return {"snapshot_ts": last.ts, "equity": last.equity, "sleeves": dict(last.sleeves)}


def _recent_fills(history: History, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "ts": f.ts,
            "symbol": f.symbol,
            "side": f.side,
            "qty": str(f.qty),
            "price": str(f.price),
            "trade_id": f.trade_id,
        }
        for f in history.fills
        if f.ts >= now - RECENT_FILLS
    ]


def record(
    db: StateDB,
    config: RiskGuardConfig,
    history: History,
    decision: dict[str, Any],
    *,
    now: datetime,
    dry_run: bool,
) -> Written:
    """Decision, incidents and (unless dry run) directives, in one transaction.

    A directive already open (pending, active or executed) for the same action and sleeve
    is not issued again, so an hourly guard does not stack copies of one REDUCE_RISK_50.
    An hour (``DECISION_SLOT``) that already has a recorded decision of the run is not
    recorded again (``Written.already_evaluated``). An incident is recorded on a HIGH or
    CRITICAL finding's rising edge only (``domain.alerts.rising``, against the run's
    previous decision of the same kind, recorded or dry run): a breach that stands hour
    after hour, as the drawdown of a book latched flat by its FLATTEN_ALL does, is one
    incident.
    """
    from stagectl.state import directives, journal

    severity = "INFO" if decision["severity"] == "NONE" else decision["severity"]
    with db.transaction():
        if not dry_run:
            slot = now.replace(minute=0, second=0, microsecond=0)
            earlier = directives.decision_in_slot(db, history.run_id, slot, slot + DECISION_SLOT)
            if earlier is not None:
                return Written(earlier, [], [], already_evaluated=True)
        previous = directives.previous_decision(
            db, history.run_id, at_or_before=now, dry_run=dry_run
        )
        new = rising(
            decision["hits"],
            None if previous is None else [r for r in previous.rule_results if "rule" in r],
        )
        decision_id = directives.record_guard_decision(
            db,
            GuardDecision(
                ts=now,
                action=decision["action"],
                severity=severity,
                dry_run=dry_run,
                rule_results=[*decision["hits"], *({"near": n} for n in decision["near"])],
                run_id=history.run_id,
            ),
        )
        incident_ids = [
            journal.record_incident(
                db,
                journal.Incident(
                    ts=now,
                    rule=h["rule"],
                    severity=h["severity"],
                    action=h["action"],
                    message=h["message"],
                    indicator_value=h["value"],
                    run_id=history.run_id,
                    guard_decision_id=decision_id,
                    market_state=_market_state(history),
                    fills=_recent_fills(history, now),
                ),
            )
            for h in decision["hits"]
            if h["severity"] in ("HIGH", "CRITICAL") and finding(h) in new
        ]
        written: list[dict[str, Any]] = []
        if not dry_run:
            standing = {
                (d.action, d.sleeve)
                for d in directives.open_directives(
                    db, mode=history.mode, now=now, run_id=history.run_id
                )
            }
            for directive in _directives(decision, config, now, history.mode):
                if (directive.action, directive.sleeve) in standing:
                    continue
                issued = replace(directive, guard_decision_id=decision_id, run_id=history.run_id)
                directive_id = directives.record_directive(db, issued)
                written.append(
                    {
                        "id": directive_id,
                        "action": issued.action,
                        "sleeve": issued.sleeve,
                        "multiplier": issued.multiplier,
                        "expires_at": issued.expires_at,
                        "state": issued.state.value,
                        "confirm_by": issued.confirm_by,
                    }
                )
    return Written(decision_id, incident_ids, written, rising=frozenset(new))
