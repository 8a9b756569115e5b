"""``stagectl risk-guard``, live mode: the runbook's hourly check on the state database.

Order of work (docs/risk-guard.md):

1. load ``risk_guard_alt_ensemble.yaml``; open the state database (missing file
   or no equity snapshot: exit 2 naming what is missing; locked or unreadable:
   exit 3);
2. choose the run (``--run``, else the run of the mode with the latest snapshot)
   and its as-of time: ``--now``, else the run's own clock (the wall clock for a
   run trading in real time, its last bar for a replayed or finished run;
   ``domain.run_clock``); read its equity snapshots up to then, its fills,
   funding payments and signal events, and put them on an hourly grid
   (:mod:`stagectl.services.guard.history`);
3. compute the twelve indicators and evaluate every rule at the last hour at or
   before ``now``; stale snapshots (older than ``STALE_AFTER``) are a WARNING of
   their own, since a guard reading old data must not say all-clear;
4. in one transaction: the decision (``guard_decisions``, flagged ``dry_run``),
   an incident per HIGH or CRITICAL hit, and (not in a dry run) the risk
   directives run-live obeys; then (not in a dry run) the re-evaluation of the
   directives in force whose review is due (:mod:`stagectl.services.guard.reevaluate`);
5. notify (Telegram, webhook, apprise URLs) when the severity's ``escalation.notify``
   is on, the severity is MEDIUM or worse and the alert is news (a new or escalated
   finding, or one past ``notify.cooldown_h``: :mod:`stagectl.services.guard.alerts`);
   a failed notification is reported, never raised.

Entry: ``run(LiveGuardRequest, *, home, env=None, wall_clock, delivery=None) ->
LiveGuardResult``; ``env`` is where the notifiers read their tokens (default:
``os.environ``), ``wall_clock`` the time of a run trading in real time (default: the
system's UTC), ``delivery`` how alerts wait between retries (``notify.Delivery``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.config.state_url import StateLocation, state_exists
from stagectl.domain.jsonable import utc_minute
from stagectl.domain.run_clock import AsOf
from stagectl.domain.types import Mode
from stagectl.errors import ExternalError, InputError, StagectlError
from stagectl.notify.dispatch import Delivery
from stagectl.state.db import DatabaseError

KIND = "risk-guard"
STALE_AFTER = timedelta(hours=2)
SNAPSHOTS_HINT = (
    "the risk guard reads the equity snapshots that `stagectl run-live` records every bar "
    "(`run-live --live` for the live run); start it (or import a run's snapshots) and rerun"
)


@dataclass(frozen=True)
class LiveGuardRequest:
    """``-c``, ``--now`` (parsed; None: the judged run's own clock), ``--dry-run``,
    ``--run`` and ``--live/--paper``."""

    now: datetime | None = None
    config: Path | None = None
    dry_run: bool = False
    run_id: str | None = None
    mode: Mode = "paper"


@dataclass
class LiveGuardResult:
    """The decision and everything written or sent because of it."""

    config: ConfigSource
    state_path: StateLocation
    now: datetime
    as_of: AsOf
    dry_run: bool
    run_id: str
    decision: dict[str, Any]
    data: dict[str, Any]
    decision_id: int
    incident_ids: list[int]
    directives: list[dict[str, Any]]
    notifications: list[dict[str, Any]] = field(default_factory=list)
    already_evaluated: bool = False
    """This hour of the run had a recorded decision already (``decision_id``): nothing
    was recorded or sent again."""

    @property
    def exit_code(self) -> int:
        from stagectl.domain.risk_rules import exit_code_for

        return exit_code_for(self.decision["action"])

    def body(self) -> dict[str, Any]:
        return {
            "mode": "dry-run" if self.dry_run else "live",
            "run_id": self.run_id,
            "evaluated_at": self.now,
            "as_of": self.as_of.to_dict(),
            "decision": self.decision,
            "data": self.data,
            "state": {
                "path": str(self.state_path),
                "guard_decision_id": self.decision_id,
                "incident_ids": self.incident_ids,
                "directives": self.directives,
                "already_evaluated": self.already_evaluated,
            },
            "notifications": self.notifications,
        }


def run(
    request: LiveGuardRequest,
    *,
    home: Home,
    env: dict[str, str] | None = None,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    delivery: Delivery | None = None,
) -> LiveGuardResult:
    """Evaluate the guard as of ``request.now``, else the judged run's own clock
    (``domain.run_clock``), on the state database; see the module docstring."""
    from stagectl.config.loader import load_risk_guard
    from stagectl.services.guard.evidence import judged_run

    config, source = load_risk_guard(home, request.config)
    db = _open(home.state_path)
    try:
        judged = judged_run(
            db,
            run_id=request.run_id,
            mode=request.mode,
            now=request.now,
            wall=wall_clock(),
            hint=SNAPSHOTS_HINT,
        )
        return _evaluate(
            home,
            db,
            config,
            source,
            as_of=judged.as_of,
            dry_run=request.dry_run,
            run_id=judged.run_id,
            env=env,
            delivery=delivery,
        )
    except DatabaseError as error:
        raise _state_error(home.state_path, error) from error
    finally:
        db.close()


def _open(path: StateLocation) -> Any:
    from stagectl.state.db import open_state

    if not state_exists(path):
        raise InputError(f"no state database at {path}, so no equity snapshots; {SNAPSHOTS_HINT}")
    try:
        return open_state(path, migrate=True)
    except InputError as error:
        # unreadable, corrupt or from a newer stagectl: the guard cannot read its state
        raise ExternalError(
            f"cannot read the state database: {error.message}", where=str(path)
        ) from None
    except DatabaseError as error:
        raise _state_error(path, error) from error


def _state_error(path: StateLocation, error: DatabaseError) -> StagectlError:
    from stagectl.state.db import translate_error

    translated = translate_error(path, 0, error)
    if isinstance(translated, ExternalError):
        return translated
    return ExternalError(f"cannot read the state database: {error}", where=str(path))


def _evaluate(
    home: Home,
    db: Any,
    config: Any,
    source: ConfigSource,
    *,
    as_of: AsOf,
    dry_run: bool,
    run_id: str,
    env: dict[str, str] | None,
    delivery: Delivery | None,
) -> LiveGuardResult:
    import pandas as pd

    from stagectl.domain.risk_indicators import compute_indicators
    from stagectl.domain.risk_rules import evaluate_rules
    from stagectl.services.guard import history as gi

    now = as_of.at
    history = gi.read_history(db, run_id=run_id, now=now)
    if history is None:
        raise InputError(
            f"no equity snapshots at or before {now.isoformat()} in run {run_id}; {SNAPSHOTS_HINT}"
        )
    inputs, data = gi.build_inputs(history, config, now=now)
    frames = compute_indicators(inputs)
    at = pd.DatetimeIndex(inputs.equity.index[-1:])
    table = evaluate_rules(
        frames,
        config.rules,
        at,
        daily_utc=config.schedule.daily_utc,
        near_threshold_pct=config.near_threshold_pct,
    )
    decision = gi.decision_dict(table, config, data, now=now, stale_after=STALE_AFTER)
    written, notifications, reviewed = conclude(
        home,
        db,
        config,
        source,
        history,
        decision,
        now=now,
        dry_run=dry_run,
        env=env,
        delivery=delivery,
    )
    return LiveGuardResult(
        config=source,
        state_path=home.state_path,
        now=now,
        as_of=as_of,
        dry_run=dry_run,
        run_id=history.run_id,
        decision=decision,
        data=data,
        decision_id=written.decision_id,
        incident_ids=written.incident_ids,
        directives=[*written.directives, *reviewed],
        notifications=notifications,
        already_evaluated=written.already_evaluated,
    )


def conclude(
    home: Home,
    db: Any,
    config: Any,
    source: ConfigSource,
    history: Any,
    decision: dict[str, Any],
    *,
    now: datetime,
    dry_run: bool,
    env: dict[str, str] | None,
    delivery: Delivery | None = None,
) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """What every evaluation does with its decision, cron's and run-live's incremental one
    (``services.guard.stream``) alike: record it (``history.record``: one transaction,
    an hour already recorded is not recorded again), notify unless the hour was recorded
    already (``services.guard.alerts``: news only), and, unless a dry run, escalate the
    overdue directives and review those due. Returns ``history.Written``, the
    notifications (sent, failed or skipped) and the review steps."""
    from stagectl.services.guard import alerts
    from stagectl.services.guard import history as gi

    written = gi.record(db, config, history, decision, now=now, dry_run=dry_run)
    environment = os.environ if env is None else env
    how = delivery or Delivery(base_dir=home.root)
    notifications = []
    if not written.already_evaluated:
        notifications = alerts.decision(
            db,
            config,
            decision,
            run_id=history.run_id,
            mode=history.mode,
            rising=written.rising,
            now=now,
            env=environment,
            delivery=how,
        )
    notifications += [] if dry_run else _escalate(db, config, history, now, environment, how)
    reviewed: list[dict[str, Any]] = []
    if not dry_run:
        reviewed, told = _review(
            home, db, config, source, history, decision, written.decision_id, now, environment, how
        )
        notifications += told
    return written, notifications, reviewed


def _escalate(
    db: Any, config: Any, history: Any, now: datetime, env: Any, how: Delivery
) -> list[dict[str, Any]]:
    """Pending directives past their confirmation deadline with no answer escalate once
    (seed 003 §4.3-4.4: notify again, severity up); the notifications sent."""
    from stagectl.services.trading.directives import escalate_overdue

    overdue = escalate_overdue(db, mode=history.mode, now=now, run_id=history.run_id)
    if not overdue:
        return []
    lines = [f"stagectl risk-guard: ESCALATED ({len(overdue)} directive(s) unanswered)"]
    lines += [
        f"- directive {d.id} {d.action}{' ' + d.sleeve if d.sleeve else ''} ({d.mode}), "
        f"pending since {utc_minute(d.ts)}: stagectl trading confirm {d.id} --by NAME"
        for d in overdue
    ]
    from stagectl.services.guard import alerts

    fields = {"escalated": [d.id for d in overdue]}
    return alerts.directives(
        "\n".join(lines), fields, config, kind="escalation", env=env, delivery=how
    )


def _review(
    home: Home,
    db: Any,
    config: Any,
    source: ConfigSource,
    history: Any,
    decision: dict[str, Any],
    decision_id: int,
    now: datetime,
    env: Any,
    how: Delivery,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The review steps of the directives in force that are due (seed 003 §4.3-4.4:
    REDUCE_RISK_50 after 24 h, DISABLE_SLEEVE after 7 days), and the notifications sent."""
    from stagectl.services.guard import alerts, reevaluate

    steps = reevaluate.review(
        db,
        home,
        config,
        source,
        run_id=history.run_id,
        mode=history.mode,
        decision=decision,
        decision_id=decision_id,
        now=now,
    )
    if not steps:
        return [], []
    fields = {"reviewed": [s["id"] for s in steps]}
    text = reevaluate.alert_text(steps)
    return steps, alerts.directives(text, fields, config, kind="review", env=env, delivery=how)
