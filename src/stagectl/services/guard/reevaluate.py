"""The live guard's re-evaluation of the directives in force (seed 003 §4.3-4.4).

``services.guard.live`` calls ``review`` once per evaluation (not in a dry run), after
the decision is recorded, for the directives that concern the judged run (a paper run's
own, every live one in live mode). An active REDUCE_RISK_50 or DISABLE_SLEEVE is
reviewed when its review is due: one period (``reevaluate_after_h`` 24,
``reevaluate_after_days`` 7) after it became active (confirmed; issued, in paper mode)
or after its last review. The rules are ``domain.directives``'s, the replay's too:

- REDUCE_RISK_50, on this evaluation's decision: no REDUCE_RISK_50 rule breaches ->
  *recovered*: the multiplier one step up (0.5 -> 0.75 -> 1.0), and at 1.0 the directive
  is lifted (revoked by the risk guard); the rule that issued it breaches further past its
  threshold than the value that issued it -> *worsened*: a FLATTEN_ALL directive is issued
  with its own confirmation window (live: pending 30 min, then it executes; paper: at the
  next bar), and the REDUCE_RISK_50 stays in force meanwhile (a vetoed FLATTEN_ALL leaves
  the book halved); else -> *kept*.
- DISABLE_SLEEVE: the sleeve's own 30-day Sharpe, from the strategy's backtest of that
  sleeve alone over the 30 days up to ``now`` (``services.trading.restart.
  strategy_backtest``, on the data the run replays when it recorded any, else the
  strategy's bundled data) above ``reenable_backtest_sharpe_30d_min`` (0) -> *recovered*:
  lifted, the sleeve trades again; else, or with no data to backtest -> *kept* disabled.

Every review is a step: a ``DIRECTIVE_RECOVERED``, ``DIRECTIVE_KEPT`` or
``DIRECTIVE_WORSENED`` event and an incident note (``record_step``), ``reviewed_at`` set,
the next review one period later. Nothing is reviewed:

- while the run's equity snapshots are stale (the guard's ``equity_snapshots_stale``
  finding: is run-live down?): a review reads this evaluation's indicators, and a book
  must not recover on old data;
- while a FLATTEN_ALL is open (pending, active or executed): the book is flat or being
  flattened, and the restart (``trading enable``) decides.

Reviews that fell due meanwhile run at the first evaluation after. Backtests run before
the one write transaction, which re-reads each directive: a review that cron and
run-live's own guard both find due is made once.

Entry: ``review(db, home, config, source, *, run_id, mode, decision, decision_id, now)``
-> the steps, in the shape the guard's result lists directives (plus ``step``, ``note``);
``alert_text(steps)`` is the notification.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.config.risk_guard import RiskGuardConfig, Rule
from stagectl.domain.directives import (
    DISABLE_SLEEVE,
    FLATTEN_ALL,
    REDUCE_RISK_50,
    REVIEWED_ACTIONS,
    DirectiveState,
    Review,
    confirmation_window,
    further_past,
    review_due,
    review_reduce,
    review_since,
    review_sleeve,
)
from stagectl.domain.jsonable import utc_minute
from stagectl.domain.types import Mode
from stagectl.errors import InputError
from stagectl.services.trading.directives import record_step
from stagectl.state import directives, journal
from stagectl.state.db import StateDB
from stagectl.state.directives import RiskDirective

REVIEWER = "risk-guard"
STALE_RULE = "equity_snapshots_stale"  # the guard's own finding (history.decision_dict)
RUN_STARTED_EVENT = "RUN_STARTED"  # run-live records its parameters, replay_data among them
SEVERITY = {Review.RECOVERED: "MEDIUM", Review.KEPT: "MEDIUM", Review.WORSENED: "CRITICAL"}

SleeveSharpe = tuple[float | None, str]
"""A sleeve's 30-day backtest Sharpe (None: unknown) and the window or why there is none."""


def review(
    db: StateDB,
    home: Home,
    config: RiskGuardConfig,
    source: ConfigSource,
    *,
    run_id: str,
    mode: Mode,
    decision: dict[str, Any],
    decision_id: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Review every due directive of the run (module docstring); the steps made."""
    if any(h["rule"] == STALE_RULE for h in decision["hits"]):
        return []  # a review on old data could recover a book blindly: wait for fresh data
    standing = directives.open_directives(db, mode=mode, now=now, run_id=run_id)
    if any(d.action == FLATTEN_ALL for d in standing):
        return []
    due = [d for d in standing if _due(d, config, now)]
    if not due:
        return []
    sharpe = {
        d.sleeve: _sleeve_sharpe(db, home, config, source, d.sleeve, run_id, now)
        for d in due
        if d.action == DISABLE_SLEEVE and d.sleeve is not None
    }
    steps: list[dict[str, Any]] = []
    with db.transaction():
        for d in due:
            current = None if d.id is None else directives.get_directive(db, d.id)
            if current is None or not _due(current, config, now):
                continue  # reviewed meanwhile by the other caller (cron or run-live)
            if current.action == REDUCE_RISK_50:
                steps += _review_reduce(db, config, current, decision, decision_id, run_id, now)
            elif current.sleeve is not None:
                steps.append(_review_sleeve(db, config, current, sharpe[current.sleeve], now))
    return steps


def alert_text(steps: list[dict[str, Any]]) -> str:
    """The one message about the reviews of an evaluation."""
    lines = [f"stagectl risk-guard: {len(steps)} directive review step(s)"]
    lines += [
        f"- directive {s['id']} {s['action']}{' ' + s['sleeve'] if s['sleeve'] else ''} "
        f"{s['step']}: {s['note']}"
        for s in steps
    ]
    return "\n".join(lines)


def period(action: str, config: RiskGuardConfig) -> timedelta:
    """How long after activation, and after each review, the next review is due."""
    if action == DISABLE_SLEEVE:
        return timedelta(days=config.actions.disable_sleeve.reevaluate_after_days)
    return timedelta(hours=config.actions.reduce_risk_50.reevaluate_after_h)


def _due(d: RiskDirective, config: RiskGuardConfig, now: datetime) -> bool:
    if d.action not in REVIEWED_ACTIONS or not d.binds(now):
        return False
    if d.effective_state(now) != DirectiveState.ACTIVE:
        return False
    since = review_since(d.ts, confirmed_at=d.confirmed_at, reviewed_at=d.reviewed_at)
    return review_due(since, period(d.action, config), now)


def _issuing_rule(d: RiskDirective, config: RiskGuardConfig) -> Rule | None:
    """The rule whose value the directive recorded: the first REDUCE_RISK_50 rule of the
    config among those that fired it (the decision lists hits in the config's order)."""
    fired = {r.strip() for r in (d.rule or "").split(",")}
    return next((r for r in config.rules if r.action == d.action and r.id in fired), None)


def _scaled(value: float | None, rule: Rule) -> float | None:
    return None if value is None else value * rule.scale


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _next(d: RiskDirective, config: RiskGuardConfig, now: datetime) -> str:
    return f"next review {utc_minute(now + period(d.action, config))}"


def _review_reduce(
    db: StateDB,
    config: RiskGuardConfig,
    d: RiskDirective,
    decision: dict[str, Any],
    decision_id: int,
    run_id: str,
    now: datetime,
) -> list[dict[str, Any]]:
    reducing = [h for h in decision["hits"] if h["action"] == REDUCE_RISK_50]
    rule = _issuing_rule(d, config)
    hit = next((h for h in reducing if rule is not None and h["rule"] == rule.id), None)
    worsened = None
    if rule is not None and hit is not None:
        value, reference = _scaled(hit["value"], rule), _scaled(d.indicator_value, rule)
        worsened = (rule, hit) if further_past(rule.op, value, reference) else None
    outcome = review_reduce(d.multiplier, breaching=bool(reducing), worsened=bool(worsened))
    hours = f"{period(d.action, config).total_seconds() / 3600:g} h"
    breaching = ", ".join(f"{h['rule']} = {_shown(h['value'])}" for h in reducing)
    if outcome.outcome == Review.RECOVERED:
        note = (
            f"re-evaluated after {hours}: no REDUCE_RISK_50 rule breaches; multiplier "
            f"{d.multiplier:g} -> {outcome.multiplier:g}"
        )
        after = replace(d, multiplier=outcome.multiplier, reviewed_at=now)
        if outcome.lifted:
            note += ": back to full size, lifted"
            after = _lifted(after, now, note)
        else:
            note += f"; {_next(d, config, now)}"
        return [_step(db, after, Review.RECOVERED, note, now)]
    if outcome.outcome == Review.KEPT:
        note = (
            f"re-evaluated after {hours}: {breaching} still breaches, no further than "
            f"{_shown(d.indicator_value)} when it fired: kept at {d.multiplier:g}; "
            f"{_next(d, config, now)}"
        )
        return [_step(db, replace(d, reviewed_at=now), Review.KEPT, note, now)]
    if worsened is None:  # review_reduce escalates only what worsened
        return []
    rule, hit = worsened
    flatten = _escalation(db, config, d, rule, hit, (decision_id, run_id), now)
    note = (
        f"re-evaluated after {hours}: {rule.id} = {_shown(hit['value'])}, further past "
        f"{rule.value} than {_shown(d.indicator_value)} when it fired: escalated to "
        f"FLATTEN_ALL (directive {flatten.id}); this one binds until that executes"
    )
    worse = _step(db, replace(d, reviewed_at=now), Review.WORSENED, note, now)
    issued = f"escalated from REDUCE_RISK_50 directive {d.id}: {rule.id} kept worsening"
    record_step(db, flatten, "issued", now, by=REVIEWER, note=issued, severity="CRITICAL")
    return [worse, _dict(flatten, "issued", issued)]


def _escalation(
    db: StateDB,
    config: RiskGuardConfig,
    d: RiskDirective,
    rule: Rule,
    hit: dict[str, Any],
    issuer: tuple[int, str],
    now: datetime,
) -> RiskDirective:
    """The FLATTEN_ALL a worsened REDUCE_RISK_50 issues, recorded, with the confirmation
    window any FLATTEN_ALL of its mode gets (``domain.directives.confirmation_window``);
    ``issuer``: the guard decision and the run of this evaluation."""
    actions = config.actions
    state, wait, on_timeout = confirmation_window(
        FLATTEN_ALL,
        live=d.mode == "live",
        flatten_confirm=timedelta(minutes=actions.flatten_all.confirm_within_min),
        others_confirm=timedelta(hours=actions.reduce_risk_50.confirm_within_h),
    )
    flatten = RiskDirective(
        now,
        FLATTEN_ALL,
        0.0,
        reason=f"REDUCE_RISK_50 directive {d.id} worsened: {rule.id}",
        mode=d.mode,
        state=state,
        rule=rule.id,
        indicator_value=hit["value"],
        confirm_by=None if wait is None else now + wait,
        on_timeout=on_timeout,
        guard_decision_id=issuer[0],
        run_id=issuer[1],
    )
    return replace(flatten, id=directives.record_directive(db, flatten))


def _review_sleeve(
    db: StateDB, config: RiskGuardConfig, d: RiskDirective, sharpe: SleeveSharpe, now: datetime
) -> dict[str, Any]:
    minimum = config.actions.disable_sleeve.reenable_backtest_sharpe_30d_min
    value, window = sharpe
    outcome = review_sleeve(value, minimum)
    days = f"{config.actions.disable_sleeve.reevaluate_after_days:g} days"
    figure = f"{d.sleeve}'s 30-day backtest Sharpe {_shown(value)} ({window})"
    if outcome == Review.RECOVERED:
        note = f"re-evaluated after {days}: {figure} > {minimum:g}: re-enabled"
        return _step(db, _lifted(replace(d, reviewed_at=now), now, note), outcome, note, now)
    note = (
        f"re-evaluated after {days}: {figure} not > {minimum:g}: kept disabled; "
        f"{_next(d, config, now)}"
    )
    return _step(db, replace(d, reviewed_at=now), outcome, note, now)


def _lifted(d: RiskDirective, now: datetime, note: str) -> RiskDirective:
    reason = f"{d.reason + '; ' if d.reason else ''}lifted by {REVIEWER}: {note}"
    return replace(
        d, state=DirectiveState.REVOKED, revoked_at=now, closed_by=REVIEWER, reason=reason
    )


def _step(
    db: StateDB, after: RiskDirective, outcome: Review, note: str, now: datetime
) -> dict[str, Any]:
    directives.update_directive(db, after)
    record_step(db, after, outcome.value, now, by=REVIEWER, note=note, severity=SEVERITY[outcome])
    return _dict(after, outcome.value, note)


def _dict(d: RiskDirective, step: str, note: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "action": d.action,
        "sleeve": d.sleeve,
        "multiplier": d.multiplier,
        "expires_at": d.expires_at,
        "state": d.state.value,
        "confirm_by": d.confirm_by,
        "step": step,
        "note": note,
    }


def _sleeve_sharpe(
    db: StateDB,
    home: Home,
    config: RiskGuardConfig,
    source: ConfigSource,
    sleeve: str,
    run_id: str,
    now: datetime,
) -> SleeveSharpe:
    """The sleeve's own 30-day Sharpe at ``now`` from the strategy's backtest of it alone."""
    from stagectl.config.loader import load_guard_strategy
    from stagectl.domain.restart import SLEEVE_SHARPE_DAYS, sleeve_sharpe_30d
    from stagectl.services.trading.restart import strategy_backtest

    strategy, _ = load_guard_strategy(home, config, source)
    days = timedelta(days=SLEEVE_SHARPE_DAYS)
    try:
        result, window = strategy_backtest(
            strategy, _replay_data(db, run_id), now, days, symbol=sleeve
        )
    except InputError as error:
        return None, f"no backtest: {error.message}"
    value = float(sleeve_sharpe_30d(result.net_returns).iloc[-1])
    return (value if math.isfinite(value) else None), window


def _replay_data(db: StateDB, run_id: str) -> Path | None:
    """The data directory the run replays (its ``RUN_STARTED`` parameters), else None."""
    started = journal.events(db, run_id=run_id, event_type=RUN_STARTED_EVENT, limit=1)
    data = (started[0].payload or {}).get("replay_data") if started else None
    return Path(data) if isinstance(data, str) and data else None
