"""The life of a risk directive (``domain.directives``): who it binds, when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stagectl.domain.directives import (
    DirectiveState,
    OnTimeout,
    binds,
    confirmation_window,
    effective_state,
    overdue,
)

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
HALF_HOUR = timedelta(minutes=30)
FOUR_HOURS = timedelta(hours=4)


def test_paper_directives_are_active_at_once_with_no_deadline() -> None:
    for action in ("FLATTEN_ALL", "REDUCE_RISK_50", "DISABLE_SLEEVE"):
        window = confirmation_window(
            action, live=False, flatten_confirm=HALF_HOUR, others_confirm=FOUR_HOURS
        )
        assert window == (DirectiveState.ACTIVE, None, None)


def test_live_flatten_waits_half_an_hour_then_executes_the_others_escalate() -> None:
    flatten = confirmation_window(
        "FLATTEN_ALL", live=True, flatten_confirm=HALF_HOUR, others_confirm=FOUR_HOURS
    )
    reduce = confirmation_window(
        "REDUCE_RISK_50", live=True, flatten_confirm=HALF_HOUR, others_confirm=FOUR_HOURS
    )
    assert flatten == (DirectiveState.PENDING, HALF_HOUR, OnTimeout.EXECUTE)
    assert reduce == (DirectiveState.PENDING, FOUR_HOURS, OnTimeout.ESCALATE)


def test_a_pending_flatten_binds_from_its_deadline_without_anyone_recording_it() -> None:
    deadline = T0 + HALF_HOUR
    kwargs = {"confirm_by": deadline, "on_timeout": OnTimeout.EXECUTE, "expires_at": None}
    assert not binds(DirectiveState.PENDING, now=deadline - timedelta(seconds=1), **kwargs)
    assert binds(DirectiveState.PENDING, now=deadline, **kwargs)
    assert (
        effective_state(
            DirectiveState.PENDING, confirm_by=deadline, on_timeout=OnTimeout.EXECUTE, now=deadline
        )
        == DirectiveState.ACTIVE
    )


def test_a_pending_reduce_never_binds_unconfirmed_and_is_overdue_once() -> None:
    deadline = T0 + FOUR_HOURS
    late = deadline + timedelta(hours=10)
    assert not binds(
        DirectiveState.PENDING,
        confirm_by=deadline,
        on_timeout=OnTimeout.ESCALATE,
        expires_at=None,
        now=late,
    )
    common = {"confirm_by": deadline, "on_timeout": OnTimeout.ESCALATE, "now": late}
    assert overdue(DirectiveState.PENDING, escalated=False, **common)
    assert not overdue(DirectiveState.PENDING, escalated=True, **common)
    assert not overdue(DirectiveState.ACTIVE, escalated=False, **common)
    assert not overdue(
        DirectiveState.PENDING,
        confirm_by=deadline,
        on_timeout=OnTimeout.ESCALATE,
        escalated=False,
        now=deadline - timedelta(seconds=1),
    )


def test_closed_or_expired_directives_bind_no_more_executed_ones_do() -> None:
    common = {"confirm_by": None, "on_timeout": None, "now": T0}
    assert binds(DirectiveState.EXECUTED, expires_at=None, **common)
    assert binds(DirectiveState.ACTIVE, expires_at=T0 + timedelta(seconds=1), **common)
    assert not binds(DirectiveState.ACTIVE, expires_at=T0, **common)
    assert not binds(DirectiveState.CANCELLED, expires_at=None, **common)
    assert not binds(DirectiveState.REVOKED, expires_at=None, **common)
