"""Stress Lab's report rows and signed verdict.

A :class:`PreparedScenario` (the Market Intel rows a scenario's shocks apply to) is
evaluated on the aggregate row against core.yaml's thresholds (:func:`evaluate_scenario`);
each breach carries a ``cause`` (:func:`breach_cause`): ``baseline`` when the live market
already breaches that limit at least as badly, ``scenario`` when the shock (or the
replayed window) caused or worsened it. :func:`build_verdict` gathers the rows into the
signed section. The maths is G's (``stagectl.domain.stress``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stagectl.config.core import CoreConfig
    from stagectl.domain.market_intel import MarketIntelSnapshot
    from stagectl.domain.stress import Scenario, StressThresholds
    from stagectl.services.stage6 import compliance, verify_thresholds

KIND = "stress-lab"
BASELINE = "baseline"  # the name and kind of the unstressed row; reserved as a scenario name
# body and verdict key of that row ("baseline" there is the approved-thresholds file)
BASELINE_KEY = "market_baseline"


@dataclass(frozen=True)
class PreparedScenario:
    """One scenario ready to evaluate.

    ``snapshots``/``aggregate`` are the Market Intel rows the scenario's shocks apply
    to (now for hypothetical scenarios, the window's end for historical ones);
    ``market`` holds, per symbol, the scenario applied to the *current* snapshot to
    get the stressed spread and liquidity for the liquidation cost.
    """

    name: str
    kind: str
    description: str
    scenario: Scenario
    snapshots: dict[str, MarketIntelSnapshot]
    aggregate: MarketIntelSnapshot
    market: dict[str, Scenario]
    window: dict[str, Any] | None = None


def iso_utc(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _check_dict(check: Any, symbols: list[str], cause: str | None) -> dict[str, Any]:
    return {
        "metric": check.metric,
        "value": check.value,
        "limit": check.limit,
        "direction": check.direction,
        "breached": check.breached,
        "cause": cause if check.breached else None,
        "symbols": symbols,
    }


def _further_past(value: float, baseline: float, direction: str) -> bool:
    """Whether ``value`` lies strictly further past the limit's side than ``baseline``:
    higher for ``above``, lower for ``below``, larger magnitude for ``abs_above``. A value
    that is NaN where the other is not counts as further (the data changed nature);
    two NaNs do not."""
    if math.isnan(value) or math.isnan(baseline):
        return math.isnan(value) != math.isnan(baseline)
    if direction == "above":
        return value > baseline
    if direction == "below":
        return value < baseline
    return abs(value) > abs(baseline)


def breach_cause(check: Any, baseline_at_limit: Any, baseline_at_base_limit: Any) -> str:
    """``baseline`` or ``scenario`` for a breached scenario check.

    ``baseline`` when all three hold: the unstressed value breaches the base threshold
    (so the breach is listed on the baseline row), it breaches the limit this scenario
    was checked against (the same limit, overrides included), and the stressed value is
    not further past that limit than the unstressed one. Otherwise ``scenario``: the
    shock (or the replayed historical window, or a tighter override) caused or worsened
    the breach. The arguments are domain ``MetricCheck`` rows of the same metric.
    """
    if not (baseline_at_limit.breached and baseline_at_base_limit.breached):
        return "scenario"
    if _further_past(check.value, baseline_at_limit.value, check.direction):
        return "scenario"
    return BASELINE


def evaluate_scenario(
    p: PreparedScenario, thresholds: StressThresholds, live: MarketIntelSnapshot | None
) -> dict[str, Any]:
    """Checks on the aggregate row; ``symbols`` names the symbols breaching on their own.

    ``live`` is the unstressed aggregate at now each breach's cause is judged against;
    None for the baseline row itself, whose breaches are all ``baseline``."""
    from dataclasses import asdict

    from stagectl.domain.stress import StressMetrics, evaluate, run_scenario

    total = run_scenario(StressMetrics.from_snapshot(p.aggregate), p.scenario, thresholds)
    own = {
        s: set(run_scenario(StressMetrics.from_snapshot(snap), p.scenario, thresholds).breached)
        for s, snap in p.snapshots.items()
    }
    causes = dict.fromkeys((c.metric for c in total.checks), BASELINE)
    if live is not None:
        unstressed = StressMetrics.from_snapshot(live)
        at_limit = evaluate(unstressed, thresholds, p.scenario.threshold_overrides)
        at_base = evaluate(unstressed, thresholds)
        causes = {
            c.metric: breach_cause(c, lim, base)
            for c, lim, base in zip(total.checks, at_limit, at_base, strict=True)
        }
    checks = [
        _check_dict(c, [s for s, hit in own.items() if c.metric in hit], causes[c.metric])
        for c in total.checks
    ]
    return {
        "name": p.name,
        "kind": p.kind,
        "description": p.description,
        "shocks": [asdict(s) for s in p.scenario.shocks],
        "threshold_overrides": dict(p.scenario.threshold_overrides),
        "window": p.window,
        "price_moves_pct": dict(p.scenario.price_moves_pct),
        "checks": checks,
        "breaches": [c for c in checks if c["breached"]],
    }


def _verdict_row(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("metric", "value", "limit", "direction", "cause", "symbols")
    return {
        "name": result["name"],
        "kind": result["kind"],
        "breached": bool(result["breaches"]),
        "breaches": [{k: b[k] for k in keys} for b in result["breaches"]],
    }


def build_verdict(
    core: CoreConfig,
    verification: verify_thresholds.VerifyThresholdsResult,
    gate: compliance.Compliance,
    baseline: dict[str, Any],
    results: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The signed section: thresholds with the config sha256, verification, the compliance
    sign-off (None on a dry look without one), the baseline row, then the scenarios'
    breaches with their cause. ``breach_count`` counts every scenario breach,
    ``scenario_caused_breach_count`` those the shocks caused or worsened."""
    scenarios = [_verdict_row(r) for r in results]
    count = sum(len(s["breaches"]) for s in scenarios)
    caused = [[b for b in s["breaches"] if b["cause"] == "scenario"] for s in scenarios]
    baseline_row = _verdict_row(baseline)
    return {
        "status": "breach" if count or baseline_row["breached"] else "pass",
        "as_of": iso_utc(now),
        "thresholds": core.stress_lab.thresholds.model_dump(),
        "scenario_overrides": {
            n: s.overrides.present() for n, s in core.stress_lab.scenarios.items()
        },
        "config": {
            "path": str(verification.config.path),
            "sha256": verification.config_sha256,
        },
        "baseline": {
            "path": str(verification.baseline.path),
            "sha256": verification.baseline_sha256,
        },
        "verification": {
            "passed": verification.passed,
            "checks": len(verification.checks),
            "failed": sum(not c.passed for c in verification.checks),
        },
        "compliance": gate.record(),
        "baseline_breach_count": len(baseline_row["breaches"]),
        "scenarios_run": len(scenarios),
        "scenarios_breached": sum(s["breached"] for s in scenarios),
        "scenarios_breached_beyond_baseline": sum(bool(c) for c in caused),
        "breach_count": count,
        "scenario_caused_breach_count": sum(len(c) for c in caused),
        "market_baseline": baseline_row,
        "scenarios": scenarios,
    }
