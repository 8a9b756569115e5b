"""What the risk guard tells the desk, and when (docs/risk-guard.md, "Notifications").

- ``decision``: a decision of MEDIUM or worse whose severity's ``escalation.notify`` is
  on goes to every channel (``notify.dispatch``) unless each of its findings is held
  back (``domain.alerts.hold_back``: the same rule at the same severity sent within
  ``notify.cooldown_h``, or a standing breach while the mode is latched by a
  FLATTEN_ALL); then each channel is reported ``skipped`` with the reason. What went
  out is logged in the state (``state.notifications``) after the sending, in its own
  short transaction, so the next hourly run, another process, knows.
- ``directives``: an escalation or a review step, told once (the directive records it).
- ``could_not_judge``: a scheduled guard that could not judge (exit 2, 3 or 70) says so,
  with the exit code and the error line, its secrets masked.
- ``unit_failed``: a stagectl systemd unit failed (``stagectl notify unit-failed``, the
  units' ``OnFailure=`` handler): which unit, how it ended, where its journal is.
- ``test_message``: ``stagectl notify test``, one message to every channel.

Every entry returns results and never raises: a notification, or its bookkeeping,
cannot change the guard's exit code or keep its report from being written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.config.risk_guard import NotifyConfig, RiskGuardConfig
from stagectl.domain.alerts import DUPLICATE, Finding, LastSent, finding, hold_back, rank
from stagectl.domain.directives import FLATTEN_ALL
from stagectl.domain.types import Mode, TradingState
from stagectl.notify import Alert, Delivery, NotifyResult, dispatch
from stagectl.state import flags, notifications
from stagectl.state.db import StateDB

NOTIFY_FROM = 2  # MEDIUM and worse (SEVERITY_RANK)
KEY_PREFIX = "risk-guard"
COULD_NOT_JUDGE = (2, 3, 70)
"""The exit codes of a guard that could not judge: bad input, external failure, a bug."""


def decision(
    db: StateDB,
    config: RiskGuardConfig,
    decided: Mapping[str, Any],
    *,
    run_id: str,
    mode: Mode,
    rising: frozenset[Finding],
    now: datetime,
    env: Mapping[str, str],
    delivery: Delivery,
) -> list[dict[str, Any]]:
    """Tell the decision when its severity calls for it and it is news (module docstring)."""
    try:
        return _decision(db, config, decided, run_id, mode, rising, now, env, delivery)
    except Exception as failure:
        return [_broken("decision", failure)]


def directives(
    text: str,
    fields: Mapping[str, Any],
    config: RiskGuardConfig,
    *,
    kind: str,
    env: Mapping[str, str],
    delivery: Delivery,
) -> list[dict[str, Any]]:
    """An escalation or review alert (``kind``), to every channel; the results."""
    try:
        results = dispatch.send(Alert(text, fields), config.notify, env, delivery)
    except Exception as failure:
        return [_broken(kind, failure)]
    ids = fields.get("escalated") or fields.get("reviewed") or []
    return [{**r.to_dict(), "alert": kind, "directives": list(ids)} for r in results]


def could_not_judge(
    home: Home,
    config: Path | None,
    *,
    command: str,
    exit_code: int,
    error: str,
    env: Mapping[str, str] | None = None,
    delivery: Delivery | None = None,
) -> list[NotifyResult]:
    """Tell every channel of the guard config's ``notify`` section (the section alone when
    the rest of the file is broken) that ``command`` could not judge; nothing when no
    section can be loaded. Never raises."""
    try:
        settings = _notify_settings(home, config)
        if settings is None:
            return []
        environment = os.environ if env is None else env
        how = delivery or Delivery(base_dir=home.root)
        masked = dispatch.mask_secrets(error, settings, environment, how)
        text = f"stagectl {command}: the guard could not judge (exit {exit_code}): {masked}"
        fields = {"kind": "could-not-judge", "command": command, "exit_code": exit_code}
        title = f"stagectl {command}"
        alert = Alert(text, {**fields, "error": masked}, title=title, severity="HIGH")
        return dispatch.send(alert, settings, environment, how)
    except Exception as failure:
        return [_internal(failure)]


def unit_failed(
    home: Home,
    config: Path | None,
    *,
    unit: str,
    result: str | None,
    exit_status: str | None,
    env: Mapping[str, str] | None = None,
    delivery: Delivery | None = None,
) -> list[NotifyResult] | None:
    """Tell every channel of the guard config's ``notify`` section that the systemd unit
    ``unit`` failed (``result`` and ``exit_status`` as systemd gives them); None when no
    notify section can be loaded. Never raises."""
    how_ended = ", ".join(
        part
        for part in (result and f"result {result}", exit_status and f"exit {exit_status}")
        if part
    )
    text = (
        f"stagectl: the systemd unit {unit} failed ({how_ended or 'no details'}) on the "
        f"desk {home.root}; its journal: journalctl --user -u {unit} (without --user "
        "for a system unit)"
    )
    fields = {"kind": "unit-failed", "unit": unit, "result": result, "exit": exit_status}
    alert = Alert(text, fields, title=f"stagectl: {unit} failed", severity="HIGH")
    return _tell(home, config, alert, env, delivery)


def test_message(
    home: Home,
    config: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    delivery: Delivery | None = None,
) -> list[NotifyResult] | None:
    """A test message to every channel of the guard config's ``notify`` section (``stagectl
    notify test``), so the desk sees each channel work before an alert needs it; None
    when no notify section can be loaded. Never raises."""
    text = (
        f"stagectl: test message from the desk {home.root}; an alert from the risk guard "
        "or a failed unit reaches you here the same way"
    )
    alert = Alert(text, {"kind": "test"}, title="stagectl: test message", severity="INFO")
    return _tell(home, config, alert, env, delivery)


def _tell(
    home: Home,
    config: Path | None,
    alert: Alert,
    env: Mapping[str, str] | None,
    delivery: Delivery | None,
) -> list[NotifyResult] | None:
    try:
        settings = _notify_settings(home, config)
        if settings is None:
            return None
        environment = os.environ if env is None else env
        return dispatch.send(alert, settings, environment, delivery or Delivery(home.root))
    except Exception as failure:
        return [_internal(failure)]


def _internal(failure: Exception) -> NotifyResult:
    return NotifyResult("notify", "failed", 0, f"internal error ({type(failure).__name__})")


def alert_key(run_id: str, found: Finding) -> str:
    rule, sleeve = found
    return f"{KEY_PREFIX}:{run_id}:{rule}" + (f":{sleeve}" if sleeve else "")


def text(decided: Mapping[str, Any]) -> str:
    """The one message of a decision, for every channel."""
    lines = [f"stagectl risk-guard: {decided['action']} ({decided['severity']})"]
    lines += [
        f"- {h['rule']}{' ' + h['sleeve'] if h['sleeve'] else ''}: {h['indicator']} = "
        f"{_fmt(h['value'])} {h['op']} {h['threshold']}: {h['message']}"
        for h in decided["hits"]
    ]
    at = decided["at"]
    lines.append(f"evaluated at {at:%Y-%m-%dT%H:%M:%SZ}" if isinstance(at, datetime) else str(at))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _decision(
    db: StateDB,
    config: RiskGuardConfig,
    decided: Mapping[str, Any],
    run_id: str,
    mode: Mode,
    rising: frozenset[Finding],
    now: datetime,
    env: Mapping[str, str],
    delivery: Delivery,
) -> list[dict[str, Any]]:
    severity = decided["severity"]
    escalation = config.escalation.get(severity)
    if rank(severity) < NOTIFY_FROM or escalation is None or not escalation.notify:
        return []
    severities = {finding(h): h["severity"] for h in decided["hits"]}
    keys = {found: alert_key(run_id, found) for found in severities}
    logged = notifications.last_sent(db, list(keys.values()))
    latched = _latched(db, mode)
    cooldown = timedelta(hours=config.notify.cooldown_h)
    reasons = [
        hold_back(
            severities[found],
            _last(logged.get(key)),
            now=now,
            cooldown=cooldown,
            latched=latched,
            rising_edge=found in rising,
        )
        for found, key in keys.items()
    ]
    if reasons and all(reasons):
        reason = DUPLICATE if DUPLICATE in reasons else str(reasons[0])
        return [
            {**r.to_dict(), "alert": "decision"} for r in dispatch.held_back(config.notify, reason)
        ]
    alert = Alert(text(decided), {"decision": dict(decided)}, severity=severity)
    results = dispatch.send(alert, config.notify, env, delivery)
    took = tuple(r.channel for r in results if r.sent)
    if took:
        notifications.record_sent(
            db,
            [
                notifications.SentAlert(key, severities[found], now, took)
                for found, key in keys.items()
            ],
        )
    return [{**r.to_dict(), "alert": "decision"} for r in results]


def _last(row: notifications.SentAlert | None) -> LastSent | None:
    return None if row is None else LastSent(row.severity, row.sent_at)


def _latched(db: StateDB, mode: Mode) -> bool:
    """The mode is HALTED by a FLATTEN_ALL's latch (the book flat until a restart)."""
    flag = flags.get_trading_state(db, mode)
    return flag.state == TradingState.HALTED and flag.source == FLATTEN_ALL


def _notify_settings(home: Home, config: Path | None) -> NotifyConfig | None:
    from stagectl.config.loader import load_risk_guard, load_risk_guard_notify
    from stagectl.errors import StagectlError

    try:
        return load_risk_guard(home, config)[0].notify
    except StagectlError:
        pass
    try:
        return load_risk_guard_notify(home, config)
    except StagectlError:
        return None


def _broken(kind: str, failure: Exception) -> dict[str, Any]:
    """The result of an alert whose sending or bookkeeping failed unforeseen: its class
    only (a message might carry a secret)."""
    error = f"notification failed ({type(failure).__name__})"
    return {**NotifyResult("notify", "failed", 0, error).to_dict(), "alert": kind}
