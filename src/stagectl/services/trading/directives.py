"""``stagectl trading confirm|cancel|revoke``: the human side of a risk directive.

The risk guard issues directives (``domain.directives``); in live mode they wait for a
person named by the runbook. This module is what that person does:

- ``run_confirm``: a pending directive becomes active (it binds the loop at its next bar);
- ``run_cancel``: a pending directive is vetoed (it never binds);
- ``run_revoke``: an active or executed directive is lifted. Lifting a FLATTEN_ALL is the
  restart of a flattened book, which the runbook allows only when its restart conditions
  hold: it goes through ``services.trading.restart`` exactly as ``trading enable`` does
  (``--by`` signs it off).

Every step is one transaction: the directive's new state with who and when, an event
(``DIRECTIVE_CONFIRMED``, ``DIRECTIVE_CANCELLED``, ``DIRECTIVE_REVOKED``) and an incident
note, so the audit trail says who answered, when and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation, state_exists
from stagectl.domain.directives import FLATTEN_ALL, DirectiveState, overdue
from stagectl.domain.jsonable import utc_minute
from stagectl.domain.types import Event, Mode
from stagectl.errors import CheckFailed, InputError
from stagectl.state import directives, journal
from stagectl.state.db import StateDB, open_state

if TYPE_CHECKING:
    from stagectl.services.trading.restart import RestartResult

Clock = Callable[[], datetime]
RULE = "DIRECTIVE"


@dataclass(frozen=True)
class DirectiveRequest:
    """Which directive (``ID``), who answers (``--by``) and why (``--reason``)."""

    directive_id: int
    by: str
    reason: str = ""
    cause: str | None = None
    """The cause note, for the revoke of a FLATTEN_ALL (a restart)."""
    override: bool = False
    """Restart a FLATTEN_ALL although a restart condition fails (recorded as such)."""


@dataclass(frozen=True)
class DirectiveChange:
    """The directive after the step, and the step."""

    path: StateLocation
    step: str
    before: DirectiveState
    directive: directives.RiskDirective
    restart: RestartResult | None = None
    """The revoke of a FLATTEN_ALL: the restart's checks and outcome."""

    @property
    def refused(self) -> bool:
        return self.restart is not None and not self.restart.restarted

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"state_db": str(self.path), "step": self.step}
        document.update(directive_dict(self.directive))
        if self.restart is not None:
            document["restart"] = self.restart.to_dict()
        return document


def directive_dict(d: directives.RiskDirective, now: datetime | None = None) -> dict[str, Any]:
    """A directive as ``trading status`` and the steps print it (its effective state at
    ``now`` when given: a pending FLATTEN_ALL past its deadline shows as active)."""
    state = d.state if now is None else d.effective_state(now)
    return {
        "id": d.id,
        "mode": d.mode,
        "action": d.action,
        "sleeve": d.sleeve,
        "multiplier": d.multiplier,
        "rule": d.rule,
        "value": d.indicator_value,
        "created_at": d.ts,
        "state": state.value,
        "confirm_by": d.confirm_by,
        "on_timeout": None if d.on_timeout is None else d.on_timeout.value,
        "expires_at": d.expires_at,
        "reviewed_at": d.reviewed_at,
        "confirmed_by": d.confirmed_by,
        "executed_at": d.executed_at,
        "escalated_at": d.escalated_at,
        "reason": d.reason,
    }


def run_confirm(
    request: DirectiveRequest, *, home: Home, clock: Clock = lambda: datetime.now(UTC)
) -> DirectiveChange:
    """A pending directive becomes active; the loop obeys it at its next bar."""

    def confirm(d: directives.RiskDirective, now: datetime) -> directives.RiskDirective:
        if d.state != DirectiveState.PENDING:
            raise CheckFailed(
                f"directive {d.id} is {d.state.value}: only a pending one is confirmed",
                where="ID",
            )
        return replace(d, state=DirectiveState.ACTIVE, confirmed_at=now, confirmed_by=request.by)

    return _step(request, home, clock(), "confirmed", confirm)


def run_cancel(
    request: DirectiveRequest, *, home: Home, clock: Clock = lambda: datetime.now(UTC)
) -> DirectiveChange:
    """A pending directive is vetoed: it never binds."""

    def cancel(d: directives.RiskDirective, now: datetime) -> directives.RiskDirective:
        if d.effective_state(now) != DirectiveState.PENDING:
            raise CheckFailed(
                f"directive {d.id} is {d.effective_state(now).value}: only a pending one is "
                "cancelled (an active one is revoked)",
                where="ID",
            )
        return _closed(d, DirectiveState.CANCELLED, now, request)

    return _step(request, home, clock(), "cancelled", cancel, needs_reason=True)


def run_revoke(
    request: DirectiveRequest, *, home: Home, clock: Clock = lambda: datetime.now(UTC)
) -> DirectiveChange:
    """An active or executed directive is lifted; a FLATTEN_ALL through the restart
    (``services.trading.restart``, refused while a condition fails: ``refused``)."""
    flatten = _flatten_to_restart(request, home, clock())
    if flatten is not None:
        return _restart(request, flatten, home, clock)

    def revoke(d: directives.RiskDirective, now: datetime) -> directives.RiskDirective:
        state = d.effective_state(now)
        if state not in (DirectiveState.ACTIVE, DirectiveState.EXECUTED):
            raise CheckFailed(
                f"directive {d.id} is {state.value}: only an active or executed one is "
                "revoked (a pending one is cancelled)",
                where="ID",
            )
        return _closed(d, DirectiveState.REVOKED, now, request)

    return _step(request, home, clock(), "revoked", revoke, needs_reason=True)


def _restart(
    request: DirectiveRequest, flatten: directives.RiskDirective, home: Home, clock: Clock
) -> DirectiveChange:
    from stagectl.services.trading import restart

    result = restart.run(
        restart.RestartRequest(
            mode=flatten.mode or "live",
            reason=request.reason,
            signed_off_by=request.by,
            cause=request.cause,
            override=request.override,
        ),
        home=home,
        clock=clock,
    )
    with open_state(home.state_path) as db:
        after = directives.get_directive(db, request.directive_id) or flatten
    step = "revoked" if result.restarted else "revoke refused"
    return DirectiveChange(home.state_path, step, flatten.state, after, result)


def _flatten_to_restart(
    request: DirectiveRequest, home: Home, now: datetime
) -> directives.RiskDirective | None:
    """The directive when it is a FLATTEN_ALL in force (its revoke is a restart)."""
    if not request.reason.strip():
        raise InputError("a revoked directive needs a reason", where="--reason")
    if not state_exists(home.state_path):
        return None
    with open_state(home.state_path) as db:
        d = directives.get_directive(db, request.directive_id)
    if d is None or d.action != FLATTEN_ALL or not d.binds(now):
        return None
    return d


def _closed(
    d: directives.RiskDirective,
    state: DirectiveState,
    now: datetime,
    request: DirectiveRequest,
) -> directives.RiskDirective:
    reason = f"{d.reason + '; ' if d.reason else ''}{state.value} by {request.by}: {request.reason}"
    return replace(d, state=state, revoked_at=now, closed_by=request.by, reason=reason)


Step = Callable[[directives.RiskDirective, datetime], directives.RiskDirective]


def _step(
    request: DirectiveRequest,
    home: Home,
    now: datetime,
    step: str,
    apply: Step,
    *,
    needs_reason: bool = False,
) -> DirectiveChange:
    if not request.by.strip():
        raise InputError("say who answers", where="--by")
    if needs_reason and not request.reason.strip():
        raise InputError(f"a {step} directive needs a reason", where="--reason")
    path = home.state_path
    if not state_exists(path):
        raise InputError(f"no state database at {path}: there is no directive to answer")
    with open_state(path) as db, db.transaction():
        before = directives.get_directive(db, request.directive_id)
        if before is None:
            raise InputError(f"no directive {request.directive_id}", where="ID")
        after = apply(before, now)
        directives.update_directive(db, after)
        record_step(db, after, step, now, by=request.by, note=request.reason)
    return DirectiveChange(path, step, before.state, after)


def record_step(
    db: StateDB,
    d: directives.RiskDirective,
    step: str,
    now: datetime,
    *,
    by: str,
    note: str = "",
    severity: str = "HIGH",
) -> None:
    """The event and the incident note of one step of a directive's life."""
    what = f"{d.action}{' ' + d.sleeve if d.sleeve else ''} (directive {d.id}, {d.mode})"
    message = f"{what} {step} by {by}{': ' + note if note else ''}"
    journal.record_event(
        db,
        Event(
            ts=now,
            event_type=f"DIRECTIVE_{step.upper()}",
            severity=severity,
            action=d.action,
            symbol=d.sleeve,
            message=message,
            payload={"directive_id": d.id, "mode": d.mode, "by": by, "note": note},
        ),
    )
    journal.record_incident(
        db,
        journal.Incident(
            ts=now,
            rule=RULE,
            severity=severity,
            action=f"{d.action}:{step}",
            message=message,
            guard_decision_id=d.guard_decision_id,
        ),
    )


def escalate_overdue(
    db: StateDB, *, mode: Mode, now: datetime, run_id: str | None = None
) -> list[directives.RiskDirective]:
    """Pending directives past their deadline with no answer that escalate (REDUCE_RISK_50,
    DISABLE_SLEEVE in live mode): each is marked escalated once, with a CRITICAL event
    and incident note; it stays pending (never executed without a human)."""
    escalated = []
    with db.transaction():
        for d in directives.open_directives(db, mode=mode, now=now, run_id=run_id):
            if not overdue(
                d.state,
                confirm_by=d.confirm_by,
                on_timeout=d.on_timeout,
                escalated=d.escalated_at is not None,
                now=now,
            ):
                continue
            after = replace(d, escalated_at=now)
            directives.update_directive(db, after)
            record_step(
                db,
                after,
                "escalated",
                now,
                by="risk-guard",
                note=f"no answer since {utc_minute(d.ts)} (deadline "
                f"{d.confirm_by:%H:%M}); confirm or cancel it: stagectl trading confirm|cancel "
                f"{d.id}",
                severity="CRITICAL",
            )
            escalated.append(after)
    return escalated
