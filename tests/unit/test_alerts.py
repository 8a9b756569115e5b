"""domain.alerts: which findings are news (rising edges) and which are held back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stagectl.domain.alerts import DUPLICATE, LATCHED, LastSent, hold_back, rising

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)
COOLDOWN = timedelta(hours=6)


def hit(rule: str, severity: str, sleeve: str | None = None) -> dict[str, object]:
    return {"rule": rule, "sleeve": sleeve, "severity": severity}


def test_rising_names_the_findings_the_previous_decision_did_not_have() -> None:
    previous = [hit("mdd_limit", "CRITICAL"), hit("sleeve_mdd_limit", "HIGH", "SOLUSDT")]
    now = [
        hit("mdd_limit", "CRITICAL"),
        hit("sleeve_mdd_limit", "HIGH", "SOLUSDT"),
        hit("sleeve_mdd_limit", "HIGH", "ETHUSDT"),
        hit("sharpe_collapse", "CRITICAL"),
    ]
    assert rising(now, previous) == {("sleeve_mdd_limit", "ETHUSDT"), ("sharpe_collapse", None)}


def test_rising_counts_a_higher_severity_and_everything_after_no_decision() -> None:
    assert rising([hit("stale", "HIGH")], [hit("stale", "MEDIUM")]) == {("stale", None)}
    assert rising([hit("stale", "MEDIUM")], [hit("stale", "HIGH")]) == set()
    assert rising([hit("stale", "MEDIUM")], None) == {("stale", None)}


@pytest.mark.parametrize(
    ("severity", "last", "latched", "rising_edge", "expected"),
    [
        ("HIGH", None, False, False, None),  # never sent
        ("HIGH", LastSent("HIGH", NOW - timedelta(hours=1)), False, True, DUPLICATE),
        ("CRITICAL", LastSent("HIGH", NOW - timedelta(hours=1)), False, False, None),  # worse
        ("MEDIUM", LastSent("HIGH", NOW - timedelta(hours=1)), False, False, DUPLICATE),
        ("HIGH", LastSent("HIGH", NOW - COOLDOWN), False, False, None),  # reminder
        ("HIGH", LastSent("HIGH", NOW - COOLDOWN), True, False, LATCHED),
        ("HIGH", LastSent("HIGH", NOW - COOLDOWN), True, True, None),  # news while latched
        ("HIGH", LastSent("HIGH", NOW - timedelta(hours=1)), True, True, DUPLICATE),  # flapping
    ],
)
def test_hold_back(
    severity: str, last: LastSent | None, latched: bool, rising_edge: bool, expected: str | None
) -> None:
    reason = hold_back(
        severity, last, now=NOW, cooldown=COOLDOWN, latched=latched, rising_edge=rising_edge
    )
    assert reason == expected


def test_a_zero_cooldown_sends_every_time_unless_latched() -> None:
    last = LastSent("HIGH", NOW)
    args = {"now": NOW, "cooldown": timedelta(0), "rising_edge": False}
    assert hold_back("HIGH", last, latched=False, **args) is None  # type: ignore[arg-type]
    assert hold_back("HIGH", last, latched=True, **args) == LATCHED  # type: ignore[arg-type]
