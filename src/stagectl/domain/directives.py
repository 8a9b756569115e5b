"""The life of a risk directive (seed 003 §4), as pure rules: who it binds and when.

A directive is what the risk guard asks of one mode's book: FLATTEN_ALL (every sleeve to
0), REDUCE_RISK_50 (every sleeve x 0.5, re-evaluated after 24 h), DISABLE_SLEEVE (one
sleeve to 0, re-evaluated after 7 days). Its states:

- ``pending``: waiting for a human, until ``confirm_by``. Real (live) mode only: the
  runbook names a person to confirm. What happens at the deadline is ``on_timeout``:
  ``execute`` (FLATTEN_ALL: "a human confirms within 30 min, else it executes
  automatically") or ``escalate`` (REDUCE_RISK_50, DISABLE_SLEEVE: notify again with a
  higher severity; never executed without a human).
- ``active``: in force: confirmed, auto-executed at its deadline, or issued in paper mode
  (a paper run executes every directive at its next bar, so the paper gate sees what the
  guard would do).
- ``executed``: FLATTEN_ALL once the loop has flattened the book and latched trading to
  HALTED; it binds until revoked by the restart procedure.
- ``cancelled`` (vetoed while pending) and ``revoked`` (lifted): closed, bind no more.

A directive binds the loop (its multiplier applies) when its effective state at ``now``
is ``active`` or ``executed`` and it has not expired. A pending one past its deadline
with ``on_timeout = execute`` is effectively active from the deadline on, whether or not
anyone has recorded the transition yet: the loop never waits for a bookkeeping step to
obey the runbook.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

FLATTEN_ALL = "FLATTEN_ALL"
REDUCE_RISK_50 = "REDUCE_RISK_50"
DISABLE_SLEEVE = "DISABLE_SLEEVE"


class DirectiveState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXECUTED = "executed"
    CANCELLED = "cancelled"
    REVOKED = "revoked"

    @property
    def closed(self) -> bool:
        return self in (DirectiveState.CANCELLED, DirectiveState.REVOKED)


class OnTimeout(StrEnum):
    EXECUTE = "execute"
    ESCALATE = "escalate"


def effective_state(
    state: DirectiveState,
    *,
    confirm_by: datetime | None,
    on_timeout: OnTimeout | None,
    now: datetime,
) -> DirectiveState:
    """The state that holds at ``now``: a pending directive past its deadline whose
    timeout executes it is active."""
    if (
        state == DirectiveState.PENDING
        and on_timeout == OnTimeout.EXECUTE
        and confirm_by is not None
        and now >= confirm_by
    ):
        return DirectiveState.ACTIVE
    return state


def binds(
    state: DirectiveState,
    *,
    confirm_by: datetime | None,
    on_timeout: OnTimeout | None,
    expires_at: datetime | None,
    now: datetime,
) -> bool:
    """Whether the directive's multiplier applies to the book at ``now``."""
    if expires_at is not None and now >= expires_at:
        return False
    effective = effective_state(state, confirm_by=confirm_by, on_timeout=on_timeout, now=now)
    return effective in (DirectiveState.ACTIVE, DirectiveState.EXECUTED)


def overdue(
    state: DirectiveState,
    *,
    confirm_by: datetime | None,
    on_timeout: OnTimeout | None,
    escalated: bool,
    now: datetime,
) -> bool:
    """A pending directive whose deadline has passed with no answer, that escalates and
    has not been escalated yet."""
    return (
        state == DirectiveState.PENDING
        and on_timeout == OnTimeout.ESCALATE
        and confirm_by is not None
        and now >= confirm_by
        and not escalated
    )


def confirmation_window(
    action: str, *, live: bool, flatten_confirm: timedelta, others_confirm: timedelta
) -> tuple[DirectiveState, timedelta | None, OnTimeout | None]:
    """How a new directive starts: paper mode is active at once; live mode waits for a
    human (FLATTEN_ALL executes at its deadline, the others escalate)."""
    if not live:
        return DirectiveState.ACTIVE, None, None
    if action == FLATTEN_ALL:
        return DirectiveState.PENDING, flatten_confirm, OnTimeout.EXECUTE
    return DirectiveState.PENDING, others_confirm, OnTimeout.ESCALATE
