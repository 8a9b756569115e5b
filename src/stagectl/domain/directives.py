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

Re-evaluation (seed 003 §4.3-4.4). An active REDUCE_RISK_50 or DISABLE_SLEEVE has no
expiry: it is reviewed one period (24 h, 7 days) after it became active, then one period
after each review, and only a review (or a human) lifts it, so it never lapses back to
full size unseen. At a review:

- REDUCE_RISK_50, "if the indicators recover, recover gradually to 1.0; if they keep
  deteriorating, escalate to FLATTEN_ALL": no REDUCE_RISK_50 rule breaches -> recovered,
  the multiplier one ``RECOVERY_STEP`` up (0.5 -> 0.75 -> 1.0; at 1.0 it is lifted); the
  rule that issued it breaches further past its threshold than the value that issued it
  -> worsened (a FLATTEN_ALL is issued, with its own confirmation window); else -> kept.
- DISABLE_SLEEVE, "if the sleeve's own 30-day backtest Sharpe > 0, restore it; else keep
  it off": recovered (lifted) or kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

FLATTEN_ALL = "FLATTEN_ALL"
REDUCE_RISK_50 = "REDUCE_RISK_50"
DISABLE_SLEEVE = "DISABLE_SLEEVE"
REVIEWED_ACTIONS = (REDUCE_RISK_50, DISABLE_SLEEVE)
RECOVERY_STEP = 0.25
"""How far a REDUCE_RISK_50's multiplier recovers at each review: 0.5 -> 0.75 -> 1.0."""


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


class Review(StrEnum):
    """The outcome of one re-evaluation (the name of the step recorded for it)."""

    RECOVERED = "recovered"
    KEPT = "kept"
    WORSENED = "worsened"


def review_since(
    ts: datetime, *, confirmed_at: datetime | None, reviewed_at: datetime | None
) -> datetime:
    """Where the current review period starts: the last review, else when the directive
    became active (confirmed in live mode; issued active in paper mode)."""
    return reviewed_at or confirmed_at or ts


def review_due(since: datetime, period: timedelta, now: datetime) -> bool:
    """A review is due one period after ``since`` (``review_since``)."""
    return now >= since + period


def recovered_multiplier(multiplier: float) -> float:
    """One recovery step up, capped at 1.0 (full size)."""
    return min(1.0, multiplier + RECOVERY_STEP)


def further_past(op: str, value: float | None, reference: float | None) -> bool:
    """Whether ``value`` lies further past a rule's threshold than ``reference`` (both
    scaled as the rule compares them): larger for ``>``/``>=``, smaller for ``<``/``<=``,
    larger in magnitude for ``abs>``. False when either is unknown, and for ``not_in``
    (a set of states has no direction)."""
    if value is None or reference is None:
        return False
    if not (math.isfinite(value) and math.isfinite(reference)):
        return False
    if op in (">", ">="):
        return value > reference
    if op in ("<", "<="):
        return value < reference
    if op == "abs>":
        return abs(value) > abs(reference)
    return False


@dataclass(frozen=True)
class ReduceReview:
    """A REDUCE_RISK_50 review: the outcome and the multiplier from then on."""

    outcome: Review
    multiplier: float

    @property
    def lifted(self) -> bool:
        """Recovered all the way to full size: the directive closes."""
        return self.outcome == Review.RECOVERED and self.multiplier >= 1.0


def review_reduce(multiplier: float, *, breaching: bool, worsened: bool) -> ReduceReview:
    """Seed 003 §4.3 at a review: no REDUCE_RISK_50 rule breaching -> one step up;
    breaching and ``worsened`` (``further_past`` the value that issued it) -> escalate;
    breaching, not worse -> keep the multiplier."""
    if not breaching:
        return ReduceReview(Review.RECOVERED, recovered_multiplier(multiplier))
    if worsened:
        return ReduceReview(Review.WORSENED, multiplier)
    return ReduceReview(Review.KEPT, multiplier)


def review_sleeve(sharpe_30d: float | None, minimum: float) -> Review:
    """Seed 003 §4.4 at a review: the sleeve's own 30-day backtest Sharpe above
    ``minimum`` (0) re-enables it; unknown (too little data) or not above keeps it off."""
    if sharpe_30d is not None and math.isfinite(sharpe_30d) and sharpe_30d > minimum:
        return Review.RECOVERED
    return Review.KEPT
