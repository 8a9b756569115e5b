"""When a risk-guard finding is told again: rising edges and the notify cooldown.

A finding is one rule on one sleeve (or the portfolio) at its severity. The hourly guard
finds a standing breach every hour; the desk needs to hear of it when it starts, when it
gets worse, and as a reminder once per cooldown, not hourly:

- **rising edge** (:func:`rising`): a finding the run's previous decision did not have at
  the same or a higher severity. Only a rising edge is a new incident.
- **notify** (:func:`hold_back`): a finding never sent, or sent at a lower severity (an
  escalation), goes out at once; one sent at the same or a higher severity less than
  ``cooldown`` ago is held back ("duplicate within cooldown"); after the cooldown it goes
  out again as a reminder, except while the mode is latched by a FLATTEN_ALL (the book is
  flat and halted until a human restarts it: a standing breach changes nothing, so only a
  rising edge is told).

An alert (one decision) is sent when any of its findings is not held back, and then
names them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stagectl.domain.risk_rules import SEVERITY_RANK

DUPLICATE = "duplicate within cooldown"
LATCHED = "unchanged while trading is latched"
Finding = tuple[str, str | None]
"""A rule id and its sleeve (None: the portfolio)."""


@dataclass(frozen=True)
class LastSent:
    """When a finding was last notified, and at which severity."""

    severity: str
    sent_at: datetime


def finding(hit: Mapping[str, Any]) -> Finding:
    """The finding of a decision's hit (``{"rule": ..., "sleeve": ...}``)."""
    return str(hit["rule"]), hit.get("sleeve") or None


def rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity, 0)


def rising(
    hits: Iterable[Mapping[str, Any]], previous: Iterable[Mapping[str, Any]] | None
) -> set[Finding]:
    """The findings of ``hits`` that ``previous`` (the run's previous decision's hits;
    None: there was none) did not have at the same or a higher severity."""
    before: dict[Finding, int] = {}
    for hit in previous or ():
        key = finding(hit)
        before[key] = max(before.get(key, 0), rank(str(hit.get("severity", ""))))
    return {
        finding(h) for h in hits if rank(str(h.get("severity", ""))) > before.get(finding(h), -1)
    }


def hold_back(
    severity: str,
    last: LastSent | None,
    *,
    now: datetime,
    cooldown: timedelta,
    latched: bool,
    rising_edge: bool,
) -> str | None:
    """Why a finding at ``severity`` is not notified now (see the module docstring), or
    None when it is."""
    if last is None or rank(severity) > rank(last.severity):
        return None
    if now - last.sent_at < cooldown:
        return DUPLICATE
    if latched and not rising_edge:
        return LATCHED
    return None
