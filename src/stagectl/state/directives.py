"""Risk-guard decisions and the risk directives they issue.

A guard decision is one evaluation of the runbook's rules (every rule's
result, the chosen action and severity, and whether it was a dry run). A
directive is what the rest of the desk must obey until it expires or is
revoked: a sizing multiplier for one sleeve or (``sleeve=None``) for the whole
portfolio, e.g. REDUCE_RISK_50 = 0.5 (reviewed every 24 h: the multiplier recovers step
by step), DISABLE_SLEEVE = 0 (reviewed every 7 days), FLATTEN_ALL = 0.
A directive belongs to a mode (``paper`` or ``live``: the mode of the run the guard
judged), so a paper guard never sizes live orders; one recorded before the modes were
separated has no mode and applies to both. A service writes a decision and its
directives in one ``db.transaction()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stagectl.domain.directives import DirectiveState, OnTimeout, binds, effective_state
from stagectl.domain.types import Mode
from stagectl.state._codec import (
    json_text,
    opt_parse_ts,
    opt_ts_text,
    parse_json,
    parse_ts,
    ts_text,
)
from stagectl.state.db import StateDB


@dataclass(frozen=True)
class GuardDecision:
    ts: datetime
    action: str
    severity: str
    dry_run: bool
    rule_results: Sequence[Mapping[str, Any]]
    run_id: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class RiskDirective:
    """One directive and where it is in its life (``domain.directives``)."""

    ts: datetime
    action: str
    multiplier: float
    sleeve: str | None = None
    expires_at: datetime | None = None
    guard_decision_id: int | None = None
    reason: str | None = None
    revoked_at: datetime | None = None
    """When it was closed (cancelled or revoked)."""
    id: int | None = None
    mode: Mode | None = None
    state: DirectiveState = DirectiveState.ACTIVE
    rule: str | None = None
    indicator_value: float | None = None
    confirm_by: datetime | None = None
    on_timeout: OnTimeout | None = None
    confirmed_at: datetime | None = None
    confirmed_by: str | None = None
    executed_at: datetime | None = None
    escalated_at: datetime | None = None
    closed_by: str | None = None
    run_id: str | None = None
    """The run whose guard decision issued it (a paper directive binds that run only)."""
    reviewed_at: datetime | None = None
    """When it was last re-evaluated (REDUCE_RISK_50, DISABLE_SLEEVE)."""

    def effective_state(self, now: datetime) -> DirectiveState:
        return effective_state(
            self.state, confirm_by=self.confirm_by, on_timeout=self.on_timeout, now=now
        )

    def binds(self, now: datetime) -> bool:
        return binds(
            self.state,
            confirm_by=self.confirm_by,
            on_timeout=self.on_timeout,
            expires_at=self.expires_at,
            now=now,
        )


def record_guard_decision(db: StateDB, decision: GuardDecision) -> int:
    """Record one guard evaluation; returns its id."""
    with db.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO guard_decisions (ts, run_id, action, severity, dry_run,"
            " rule_results_json) VALUES (?, ?, ?, ?, ?, ?)",
            (
                ts_text(decision.ts),
                decision.run_id,
                decision.action,
                decision.severity,
                int(decision.dry_run),
                json_text([dict(result) for result in decision.rule_results]),
            ),
        )
    return _rowid(cursor.lastrowid)


def guard_decisions(
    db: StateDB, *, run_id: str | None = None, limit: int = 100
) -> list[GuardDecision]:
    """The most recent decisions first (of one run when ``run_id`` is given)."""
    where = "" if run_id is None else " WHERE run_id = ?"
    params: tuple[object, ...] = (limit,) if run_id is None else (run_id, limit)
    rows = db.conn.execute(
        "SELECT id, ts, run_id, action, severity, dry_run, rule_results_json"
        f" FROM guard_decisions{where} ORDER BY ts DESC, id DESC LIMIT ?",
        params,
    )
    return [_decision(row) for row in rows]


def previous_decision(
    db: StateDB, run_id: str, *, at_or_before: datetime, dry_run: bool
) -> GuardDecision | None:
    """The run's latest decision at or before ``at_or_before``, of the same kind (recorded
    or dry run: cron's dry runs beside run-live's guard are a stream of their own)."""
    row = db.conn.execute(
        "SELECT id, ts, run_id, action, severity, dry_run, rule_results_json"
        " FROM guard_decisions WHERE run_id = ? AND dry_run = ? AND ts <= ?"
        " ORDER BY ts DESC, id DESC LIMIT 1",
        (run_id, int(dry_run), ts_text(at_or_before)),
    ).fetchone()
    return None if row is None else _decision(row)


def _decision(row: Sequence[Any]) -> GuardDecision:
    return GuardDecision(
        id=row[0],
        ts=parse_ts(row[1]),
        run_id=row[2],
        action=row[3],
        severity=row[4],
        dry_run=bool(row[5]),
        rule_results=parse_json(row[6]),
    )


def decision_in_slot(db: StateDB, run_id: str, start: datetime, end: datetime) -> int | None:
    """The id of a recorded (not dry-run) decision of the run in ``[start, end)``."""
    row = db.conn.execute(
        "SELECT id FROM guard_decisions WHERE run_id = ? AND dry_run = 0 AND ts >= ? AND ts < ?"
        " ORDER BY ts, id LIMIT 1",
        (run_id, ts_text(start), ts_text(end)),
    ).fetchone()
    return None if row is None else int(row[0])


_DIRECTIVE_COLUMNS = (
    "id, ts, action, sleeve, multiplier, expires_at, guard_decision_id, reason, revoked_at,"
    " mode, state, rule, indicator_value, confirm_by, on_timeout, confirmed_at, confirmed_by,"
    " executed_at, escalated_at, closed_by, run_id, reviewed_at"
)


def record_directive(db: StateDB, directive: RiskDirective) -> int:
    """Record a directive; returns its id."""
    d = directive
    values = (
        ts_text(d.ts),
        d.action,
        d.sleeve,
        float(d.multiplier),
        opt_ts_text(d.expires_at),
        d.guard_decision_id,
        d.reason,
        opt_ts_text(d.revoked_at),
        d.mode,
        DirectiveState(d.state).value,
        d.rule,
        d.indicator_value,
        opt_ts_text(d.confirm_by),
        None if d.on_timeout is None else OnTimeout(d.on_timeout).value,
        opt_ts_text(d.confirmed_at),
        d.confirmed_by,
        opt_ts_text(d.executed_at),
        opt_ts_text(d.escalated_at),
        d.closed_by,
        d.run_id,
        opt_ts_text(d.reviewed_at),
    )
    columns = _DIRECTIVE_COLUMNS.split(", ", 1)[1]
    with db.transaction() as conn:
        cursor = conn.execute(
            f"INSERT INTO risk_directives ({columns}) VALUES ({', '.join('?' * len(values))})",
            values,
        )
    return _rowid(cursor.lastrowid)


def open_directives(
    db: StateDB, *, mode: Mode | None, now: datetime, run_id: str | None = None
) -> list[RiskDirective]:
    """Directives issued at or before ``now`` that are not closed (cancelled or revoked)
    and not expired at ``now``: pending, active and executed ones; of one mode (None:
    every mode); with ``run_id``, a paper directive only when that run's guard issued it
    (paper books are per run), a live one whatever the run (the live account is one)."""
    now_text = ts_text(now)
    where = ["ts <= ?", "state NOT IN ('cancelled', 'revoked')"]
    where.append("(expires_at IS NULL OR expires_at > ?)")
    params: list[object] = [now_text, now_text]
    if mode is not None:
        where.append("(mode IS NULL OR mode = ?)")
        params.append(mode)
    if run_id is not None:
        where.append("(mode IS NULL OR mode <> 'paper' OR run_id IS NULL OR run_id = ?)")
        params.append(run_id)
    rows = db.conn.execute(
        f"SELECT {_DIRECTIVE_COLUMNS} FROM risk_directives WHERE {' AND '.join(where)}"
        " ORDER BY ts, id",
        params,
    )
    return [_directive(row) for row in rows]


def active_directives(
    db: StateDB, *, mode: Mode, now: datetime, run_id: str | None = None
) -> list[RiskDirective]:
    """The directives that bind a mode's book at ``now`` (``domain.directives.binds``)."""
    return [d for d in open_directives(db, mode=mode, now=now, run_id=run_id) if d.binds(now)]


def get_directive(db: StateDB, directive_id: int) -> RiskDirective | None:
    row = db.conn.execute(
        f"SELECT {_DIRECTIVE_COLUMNS} FROM risk_directives WHERE id = ?", (directive_id,)
    ).fetchone()
    return None if row is None else _directive(row)


def update_directive(db: StateDB, directive: RiskDirective) -> None:
    """Move a recorded directive along: its state, its multiplier (a REDUCE_RISK_50
    recovers step by step) and the who/when of each step."""
    if directive.id is None:
        raise ValueError("only a recorded directive can be updated")
    d = directive
    with db.transaction() as conn:
        conn.execute(
            "UPDATE risk_directives SET state = ?, multiplier = ?, reason = ?, revoked_at = ?,"
            " confirmed_at = ?, confirmed_by = ?, executed_at = ?, escalated_at = ?,"
            " closed_by = ?, reviewed_at = ? WHERE id = ?",
            (
                DirectiveState(d.state).value,
                float(d.multiplier),
                d.reason,
                opt_ts_text(d.revoked_at),
                opt_ts_text(d.confirmed_at),
                d.confirmed_by,
                opt_ts_text(d.executed_at),
                opt_ts_text(d.escalated_at),
                d.closed_by,
                opt_ts_text(d.reviewed_at),
                d.id,
            ),
        )


def revoke_directive(db: StateDB, directive_id: int, *, now: datetime, reason: str) -> bool:
    """Revoke a directive that is not closed; False when it was unknown or closed already."""
    with db.transaction() as conn:
        cursor = conn.execute(
            "UPDATE risk_directives SET revoked_at = ?, state = 'revoked',"
            " reason = coalesce(reason || '; ', '') || 'revoked: ' || ?"
            " WHERE id = ? AND state NOT IN ('cancelled', 'revoked')",
            (ts_text(now), reason, directive_id),
        )
    return cursor.rowcount == 1


def _directive(row: tuple[Any, ...]) -> RiskDirective:
    return RiskDirective(
        id=row[0],
        ts=parse_ts(row[1]),
        action=row[2],
        sleeve=row[3],
        multiplier=row[4],
        expires_at=opt_parse_ts(row[5]),
        guard_decision_id=row[6],
        reason=row[7],
        revoked_at=opt_parse_ts(row[8]),
        mode=row[9],
        state=DirectiveState(row[10]),
        rule=row[11],
        indicator_value=row[12],
        confirm_by=opt_parse_ts(row[13]),
        on_timeout=None if row[14] is None else OnTimeout(row[14]),
        confirmed_at=opt_parse_ts(row[15]),
        confirmed_by=row[16],
        executed_at=opt_parse_ts(row[17]),
        escalated_at=opt_parse_ts(row[18]),
        closed_by=row[19],
        run_id=row[20],
        reviewed_at=opt_parse_ts(row[21]),
    )


def _rowid(value: int | None) -> int:
    if value is None:
        raise RuntimeError("SQLite returned no row id for an insert")
    return value
