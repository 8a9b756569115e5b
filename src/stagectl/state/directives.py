"""Risk-guard decisions and the risk directives they issue.

A guard decision is one evaluation of the runbook's rules (every rule's
result, the chosen action and severity, and whether it was a dry run). A
directive is what the rest of the desk must obey until it expires or is
revoked: a sizing multiplier for one sleeve or (``sleeve=None``) for the whole
portfolio, e.g. REDUCE_RISK_50 = 0.5 for 24 h, DISABLE_SLEEVE = 0 for 7 days.
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
    ts: datetime
    action: str
    multiplier: float
    sleeve: str | None = None
    expires_at: datetime | None = None
    guard_decision_id: int | None = None
    reason: str | None = None
    revoked_at: datetime | None = None
    id: int | None = None
    mode: Mode | None = None


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
    return [
        GuardDecision(
            id=row[0],
            ts=parse_ts(row[1]),
            run_id=row[2],
            action=row[3],
            severity=row[4],
            dry_run=bool(row[5]),
            rule_results=parse_json(row[6]),
        )
        for row in rows
    ]


def record_directive(db: StateDB, directive: RiskDirective) -> int:
    """Record a directive; returns its id."""
    with db.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO risk_directives (ts, action, sleeve, multiplier, expires_at,"
            " guard_decision_id, reason, revoked_at, mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ts_text(directive.ts),
                directive.action,
                directive.sleeve,
                float(directive.multiplier),
                opt_ts_text(directive.expires_at),
                directive.guard_decision_id,
                directive.reason,
                opt_ts_text(directive.revoked_at),
                directive.mode,
            ),
        )
    return _rowid(cursor.lastrowid)


def active_directives(db: StateDB, *, mode: Mode, now: datetime) -> list[RiskDirective]:
    """A mode's directives issued at or before ``now``, not revoked, not expired at ``now``."""
    now_text = ts_text(now)
    rows = db.conn.execute(
        "SELECT id, ts, action, sleeve, multiplier, expires_at, guard_decision_id, reason,"
        " revoked_at, mode FROM risk_directives WHERE ts <= ? AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > ?) AND (mode IS NULL OR mode = ?)"
        " ORDER BY ts, id",
        (now_text, now_text, mode),
    )
    return [
        RiskDirective(
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
        )
        for row in rows
    ]


def revoke_directive(db: StateDB, directive_id: int, *, now: datetime, reason: str) -> bool:
    """Revoke an active directive; False when it was unknown or already revoked."""
    with db.transaction() as conn:
        cursor = conn.execute(
            "UPDATE risk_directives SET revoked_at = ?,"
            " reason = coalesce(reason || '; ', '') || 'revoked: ' || ?"
            " WHERE id = ? AND revoked_at IS NULL",
            (ts_text(now), reason, directive_id),
        )
    return cursor.rowcount == 1


def _rowid(value: int | None) -> int:
    if value is None:
        raise RuntimeError("SQLite returned no row id for an insert")
    return value
