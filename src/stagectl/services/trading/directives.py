"""``stagectl trading confirm|cancel|revoke``: the human side of a risk directive.

The risk guard issues directives (``domain.directives``); in live mode they wait for a
person named by the runbook. This module is what that person does:

- ``run_confirm``: a pending directive becomes active (it binds the loop at its next bar);
- ``run_cancel``: a pending directive is vetoed (it never binds);
- ``run_revoke``: an active or executed directive is lifted. Lifting an executed
  FLATTEN_ALL is the restart of a flattened book, which the runbook allows only when
  its restart conditions hold: that goes through ``trading enable`` (``restart``), which
  checks them; ``revoke`` refuses it and says so.

Every step is one transaction: the directive's new state with who and when, an event
(``DIRECTIVE_CONFIRMED``, ``DIRECTIVE_CANCELLED``, ``DIRECTIVE_REVOKED``) and an incident
note, so the audit trail says who answered, when and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.domain.directives import FLATTEN_ALL, DirectiveState
from stagectl.domain.types import Event
from stagectl.errors import CheckFailed, InputError
from stagectl.state import directives, journal
from stagectl.state.db import StateDB, open_state

Clock = Callable[[], datetime]
RULE = "DIRECTIVE"


@dataclass(frozen=True)
class DirectiveRequest:
    """Which directive (``ID``), who answers (``--by``) and why (``--reason``)."""

    directive_id: int
    by: str
    reason: str = ""


@dataclass(frozen=True)
class DirectiveChange:
    """The directive after the step, and the step."""

    path: Path
    step: str
    before: DirectiveState
    directive: directives.RiskDirective

    def to_dict(self) -> dict[str, Any]:
        return {"state_db": str(self.path), "step": self.step, **directive_dict(self.directive)}


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
    """An active or executed directive is lifted (not an executed FLATTEN_ALL: that is a
    restart, ``trading enable``, which checks the runbook's restart conditions)."""

    def revoke(d: directives.RiskDirective, now: datetime) -> directives.RiskDirective:
        state = d.effective_state(now)
        if state not in (DirectiveState.ACTIVE, DirectiveState.EXECUTED):
            raise CheckFailed(
                f"directive {d.id} is {state.value}: only an active or executed one is "
                "revoked (a pending one is cancelled)",
                where="ID",
            )
        if d.action == FLATTEN_ALL:
            raise CheckFailed(
                f"directive {d.id} is a FLATTEN_ALL: lifting it restarts a flattened book; "
                f"run `stagectl trading enable --{d.mode or 'live'} --signed-off-by NAME "
                "--cause TEXT`, which checks the restart conditions first",
                where="ID",
            )
        return _closed(d, DirectiveState.REVOKED, now, request)

    return _step(request, home, clock(), "revoked", revoke, needs_reason=True)


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
    if not path.is_file():
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
