"""run-live's in-loop guard (incremental, ``services.guard.stream``) against cron's
full-history evaluation (``risk-guard --now T --run R``), at every hour of real 30-day
paper runs of the bundled data.

At each bar, once it has settled and before the loop's own guard, the test runs cron's
service as of that bar's close (a dry run: recorded with ``dry_run = 1``, so the loop's
hour is still its own to record) and a second incremental guard on the same state. The
loop's recorded decisions and incidents must equal cron's, field for field (values to
1e-9), and the incremental decision must equal cron's in action, severity, hits, near
misses and every indicator value (1e-9).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from stagectl.config.home import Home
from stagectl.services.guard import live as cron
from stagectl.services.guard.stream import IncrementalGuard
from stagectl.services.live import run as service
from stagectl.state.db import StateDB, open_state
from stagectl.state.directives import guard_decisions
from stagectl.state.journal import events, incidents
from tests.guard_equality import same

CONFIG = Path(__file__).parents[2] / "config"
START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 30, 23, tzinfo=UTC)
TIGHTENED = {
    # every rule fires somewhere in March 2026, and the book keeps trading (no FLATTEN_ALL)
    "daily_pnl_extreme": 0.15,
    "sharpe_negative_3d": 3.0,
    "sharpe_collapse": -99.0,
    "mdd_limit": 50.0,
    "return_30d_limit": -99.0,
    "turnover_spike": 5.0,
    "slippage_high_5d": -100.0,  # every day with fills breaches: REDUCE_RISK_50 on day 5
    "funding_drag_high": 0.05,
    "signal_mismatch_high": 0.0,
    "sleeve_mdd_limit": 0.5,  # DISABLE_SLEEVE
    "sleeve_drag": 1.0,
    "signal_flapping": 1,
}


@dataclass
class Judged:
    """What the run and cron said, hour by hour."""

    result: service.RunLiveResult
    config: Path
    hours: list[datetime] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    twin: IncrementalGuard | None = None


def differences(ours: Any, theirs: Any) -> str:
    """What differs, for the failure message."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        keys = sorted(set(ours) | set(theirs))
        return ", ".join(
            f"{k} {ours.get(k)} != {theirs.get(k)}"
            for k in keys
            if not same(ours.get(k), theirs.get(k))
        )
    return f"{ours} != {theirs}"


def home_with(root: Path, rules: dict[str, float] | None) -> tuple[Home, Path]:
    """A home holding the strategy and guard configs (tightened when ``rules`` is given),
    so run-live's guard and cron read the same file."""
    config_dir = root / "config"
    config_dir.mkdir(parents=True)
    shutil.copy(CONFIG / "futures_alt_ensemble.yaml", config_dir)
    guard = yaml.safe_load((CONFIG / "risk_guard_alt_ensemble.yaml").read_text())
    for rule in guard["rules"]:
        rule["value"] = (rules or {}).get(rule["id"], rule["value"])
    path = config_dir / "risk_guard_alt_ensemble.yaml"
    path.write_text(yaml.safe_dump(guard, sort_keys=False))
    return Home(root=root), path


def replay_beside_cron(
    root: Path, rules: dict[str, float] | None, **request: Any
) -> tuple[Judged, StateDB]:
    home, config = home_with(root, rules)
    judged = Judged(result=None, config=config)  # type: ignore[arg-type]
    db: list[StateDB] = []

    def on_step(data: Any, outcome: Any) -> None:
        now = data.close_ts
        batch = cron.run(
            cron.LiveGuardRequest(now=now, config=config, dry_run=True), home=home, env={}
        )
        if not db:
            db.append(open_state(home.state_path))
            judged.twin = IncrementalGuard(batch_config(home, config), run_id=batch.run_id,
                                           mode="paper")  # fmt: skip
        assert judged.twin is not None
        streamed = judged.twin.evaluate(db[0], now)
        judged.hours.append(now)
        ours = {**streamed.decision, "data": streamed.data}
        theirs = {**batch.decision, "data": batch.data}
        for key in ("action", "severity", "bar", "hits", "near", "indicators", "data"):
            if not same(ours[key], theirs[key]):
                told = differences(ours[key], theirs[key])
                judged.mismatches.append(f"{now:%m-%d %H}h {key}: {told}")

    judged.result = service.run(
        service.RunLiveRequest(start=START, end=END, **request), home=home, on_step=on_step
    )
    return judged, db[0]


def batch_config(home: Home, path: Path) -> Any:
    from stagectl.config.loader import load_risk_guard

    return load_risk_guard(home, path)[0]


def recorded(db: StateDB, run_id: str) -> dict[bool, dict[datetime, Any]]:
    """The run's recorded decisions by hour: the loop's (False) and cron's dry runs (True)."""
    out: dict[bool, dict[datetime, Any]] = {False: {}, True: {}}
    for decision in guard_decisions(db, run_id=run_id, limit=100_000):
        assert decision.ts not in out[decision.dry_run]  # one per hour each
        out[decision.dry_run][decision.ts] = decision
    return out


def assert_loop_recorded_what_cron_did(judged: Judged, db: StateDB) -> list[Any]:
    """The loop's decisions and incidents equal cron's at every hour; the loop's decisions."""
    assert judged.hours and not judged.mismatches, judged.mismatches[:10]
    assert judged.twin is not None and (judged.twin.rebuilds, judged.twin.lag) == (0, 1)
    run_id = judged.result.run_id
    by_run = recorded(db, run_id)
    loop, batch = by_run[False], by_run[True]
    assert sorted(loop) == sorted(batch) == judged.hours
    for ts, decision in loop.items():
        twin = batch[ts]
        assert (decision.action, decision.severity) == (twin.action, twin.severity), ts
        assert same(list(decision.rule_results), list(twin.rule_results)), ts
    dry = {d.id: d.dry_run for by_hour in by_run.values() for d in by_hour.values()}

    def incident_rows(want_dry: bool) -> list[tuple[Any, ...]]:
        return [
            (i.ts, i.rule, i.severity, i.action, i.message, i.indicator_value, i.market_state,
             i.fills)
            for i in incidents(db)
            if i.run_id == run_id and dry[i.guard_decision_id or 0] == want_dry
        ]  # fmt: skip

    assert same(incident_rows(False), incident_rows(True))
    return sorted(loop.values(), key=lambda d: d.ts)


@pytest.mark.slow
def test_loop_guard_records_crons_decision_at_every_hour_of_a_30_day_run(
    tmp_path: Path,
) -> None:
    judged, db = replay_beside_cron(tmp_path / "home", None)
    with db:
        decisions = assert_loop_recorded_what_cron_did(judged, db)
        directives = db.conn.execute(
            "SELECT action, state, guard_decision_id FROM risk_directives WHERE run_id = ?",
            (judged.result.run_id,),
        ).fetchall()
    assert len(decisions) == 720
    # March 2026 breaches the runbook's own thresholds: a FLATTEN_ALL that latches the book
    assert {"FLATTEN_ALL", "MANUAL_REVIEW", "NO_ACTION"} <= {d.action for d in decisions}
    assert [(action, state) for action, state, _ in directives] == [("FLATTEN_ALL", "executed")]
    assert judged.result.trading_state == "HALTED"


@pytest.mark.slow
def test_loop_guard_equals_cron_when_tightened_rules_fire_directives(tmp_path: Path) -> None:
    judged, db = replay_beside_cron(tmp_path / "home", TIGHTENED)
    with db:
        decisions = assert_loop_recorded_what_cron_did(judged, db)
        issued = db.conn.execute(
            "SELECT action, state FROM risk_directives WHERE run_id = ? ORDER BY id",
            (judged.result.run_id,),
        ).fetchall()
        steps = {e.event_type for e in events(db)}  # the home has this one run
    fired = {str(h["rule"]) for d in decisions for h in d.rule_results if "rule" in h}
    assert set(TIGHTENED) - {"sharpe_collapse", "mdd_limit", "return_30d_limit"} <= fired
    # the loop's reviews (cron's code) keep the REDUCE_RISK_50, then find it worsened:
    # a FLATTEN_ALL, executed and latched
    assert issued == [
        ("REDUCE_RISK_50", "active"),
        ("DISABLE_SLEEVE", "active"),
        ("FLATTEN_ALL", "executed"),
    ]
    assert {"DIRECTIVE_KEPT", "DIRECTIVE_WORSENED", "DIRECTIVE_EXECUTED"} <= steps
    assert judged.result.trading_state == "HALTED"
