"""The live guard re-evaluates the directives in force (seed 003 §4.3-4.4): a
REDUCE_RISK_50 after 24 h recovers a step, is kept or escalates to FLATTEN_ALL; a
DISABLE_SLEEVE after 7 days comes back when the sleeve's 30-day backtest Sharpe > 0."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from stagectl.config.home import Home, defaults_dir
from stagectl.domain.directives import DirectiveState, OnTimeout
from stagectl.domain.types import Event, Mode
from stagectl.services.guard.live import LiveGuardRequest, LiveGuardResult, run
from stagectl.services.trading.directives import DirectiveRequest, run_confirm
from stagectl.state import directives, journal
from stagectl.state.db import open_state
from stagectl.state.directives import RiskDirective
from stagectl.state.equity import EquitySnapshot, record_snapshots
from stagectl.state.runs import Run, start_run

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PEAK = 100  # the equity is flat at 10,000 until this hour, then follows the drawdown given
HOURS = 25 * 24
DRAWDOWN_REDUCE = {
    "id": "drawdown_reduce",
    "indicator": "running_mdd_pct",
    "op": ">",
    "value": 2.0,
    "action": "REDUCE_RISK_50",
    "severity": "HIGH",
    "scope": "portfolio",
    "message": "drawdown above 2 %; halve every sleeve",
}


def at_hour(h: int) -> datetime:
    return T0 + timedelta(hours=h, minutes=10)


def _home(root: Path) -> Home:
    """A home whose guard has one rule: drawdown above 2 % halves the book."""
    home = Home(root=root)
    config = yaml.safe_load((defaults_dir() / "risk_guard_alt_ensemble.yaml").read_text())
    config["rules"] = [DRAWDOWN_REDUCE]
    home.config_dir.mkdir(parents=True)
    (home.config_dir / "risk_guard_alt_ensemble.yaml").write_text(yaml.safe_dump(config))
    return home


def _seed(
    home: Home,
    drawdown_pct: Callable[[int], float] = lambda h: 0.0,
    *,
    run_id: str = "paper-1",
    mode: Mode = "paper",
) -> None:
    """Hourly snapshots of one run: 10,000 flat, then ``drawdown_pct(h)`` below that peak
    from hour ``PEAK`` on."""
    with open_state(home.state_path) as db:
        start_run(db, Run(run_id, "run-live", mode, T0))
        record_snapshots(
            db,
            [
                EquitySnapshot(
                    run_id,
                    T0 + timedelta(hours=h, seconds=3),
                    10_000.0 * (1.0 - (drawdown_pct(h) if h >= PEAK else 0.0) / 100.0),
                )
                for h in range(HOURS)
            ],
        )


def _directive(home: Home, directive: RiskDirective) -> int:
    with open_state(home.state_path) as db:
        return directives.record_directive(db, directive)


def _get(home: Home, directive_id: int) -> RiskDirective:
    with open_state(home.state_path) as db:
        found = directives.get_directive(db, directive_id)
    assert found is not None
    return found


def _guard(home: Home, h: int, **request: Any) -> LiveGuardResult:
    return run(LiveGuardRequest(now=at_hour(h), **request), home=home, env={})


def _steps(result: LiveGuardResult) -> list[tuple[Any, ...]]:
    return [(d["id"], d["action"], d["step"], d["multiplier"]) for d in result.directives]


def _event_types(home: Home) -> list[str]:
    with open_state(home.state_path) as db:
        return [e.event_type for e in journal.events(db) if e.event_type.startswith("DIRECTIVE")]


def steps_of(drawdowns: dict[int, float]) -> Callable[[int], float]:
    """A drawdown that holds each value from its hour on."""

    def drawdown(h: int) -> float:
        return next((v for start, v in sorted(drawdowns.items(), reverse=True) if h >= start), 0.0)

    return drawdown


def test_an_issued_reduce_has_no_expiry_and_binds_past_24_hours_until_reviewed(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    _seed(home, steps_of({PEAK: 3.0}))
    issued = _guard(home, PEAK)
    assert [(d["action"], d["expires_at"]) for d in issued.directives] == [("REDUCE_RISK_50", None)]
    with open_state(home.state_path) as db:
        later = directives.active_directives(db, mode="paper", now=at_hour(PEAK + 30))
    assert [(d.action, d.multiplier) for d in later] == [("REDUCE_RISK_50", 0.5)]


def test_a_reduce_recovers_a_step_per_clear_review_and_is_lifted_at_full_size(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    _seed(home, steps_of({PEAK: 3.0, PEAK + 24: 1.0}))  # back under 2 % after a day
    reduce_id = _guard(home, PEAK).directives[0]["id"]
    assert _steps(_guard(home, PEAK + 23)) == []  # not due yet
    first = _guard(home, PEAK + 24)
    assert _steps(first) == [(reduce_id, "REDUCE_RISK_50", "recovered", 0.75)]
    assert "0.5 -> 0.75" in first.directives[0]["note"]
    after = _get(home, reduce_id)
    assert (after.state, after.multiplier, after.reviewed_at) == (
        DirectiveState.ACTIVE,
        0.75,
        at_hour(PEAK + 24),
    )
    assert _steps(_guard(home, PEAK + 30)) == []  # the next review is 24 h after this one
    second = _guard(home, PEAK + 48)
    assert _steps(second) == [(reduce_id, "REDUCE_RISK_50", "recovered", 1.0)]
    lifted = _get(home, reduce_id)
    assert (lifted.state, lifted.closed_by) == (DirectiveState.REVOKED, "risk-guard")
    with open_state(home.state_path) as db:
        assert directives.active_directives(db, mode="paper", now=at_hour(PEAK + 48)) == []
        notes = [i.message for i in journal.incidents(db) if i.rule == "DIRECTIVE"]
    assert _event_types(home) == ["DIRECTIVE_RECOVERED", "DIRECTIVE_RECOVERED"]
    assert len(notes) == 2 and "lifted" in notes[1]


def test_a_reduce_still_breaching_no_worse_is_kept_and_reviewed_again_a_day_later(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    _seed(home, steps_of({PEAK: 3.0, PEAK + 24: 2.5, PEAK + 48: 1.0}))
    reduce_id = _guard(home, PEAK).directives[0]["id"]
    kept = _guard(home, PEAK + 24)
    assert _steps(kept) == [(reduce_id, "REDUCE_RISK_50", "kept", 0.5)]
    assert "drawdown_reduce = 2.5 still breaches" in kept.directives[0]["note"]
    assert _steps(_guard(home, PEAK + 48)) == [(reduce_id, "REDUCE_RISK_50", "recovered", 0.75)]
    assert _event_types(home) == ["DIRECTIVE_KEPT", "DIRECTIVE_RECOVERED"]


def test_a_reduce_whose_rule_keeps_worsening_escalates_to_a_flatten_all_of_its_own(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    _seed(home, steps_of({PEAK: 3.0, PEAK + 24: 6.0}))
    reduce_id = _guard(home, PEAK).directives[0]["id"]
    result = _guard(home, PEAK + 24)
    worse, flatten = result.directives
    assert (worse["id"], worse["step"]) == (reduce_id, "worsened")
    assert (flatten["action"], flatten["step"], flatten["state"]) == (
        "FLATTEN_ALL",
        "issued",
        "active",
    )
    assert f"directive {flatten['id']}" in worse["note"]
    with open_state(home.state_path) as db:
        binding = directives.active_directives(db, mode="paper", now=at_hour(PEAK + 25))
        issued = directives.get_directive(db, flatten["id"])
    # the halved book stays halved until the flatten executes; paper flattens at once
    assert sorted((d.action, d.multiplier) for d in binding) == [
        ("FLATTEN_ALL", 0.0),
        ("REDUCE_RISK_50", 0.5),
    ]
    assert issued is not None
    assert (issued.rule, issued.indicator_value, issued.run_id) == (
        "drawdown_reduce",
        6.0,
        "paper-1",
    )
    assert issued.guard_decision_id == result.decision_id
    assert _event_types(home) == ["DIRECTIVE_WORSENED", "DIRECTIVE_ISSUED"]
    # while a FLATTEN_ALL is open nothing is reviewed: the restart decides
    assert _steps(_guard(home, PEAK + 48)) == []


def test_a_live_reduce_is_reviewed_24_hours_after_its_confirmation_and_escalates_pending(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    _seed(home, steps_of({PEAK: 3.0, PEAK + 24: 6.0}), run_id="live-1", mode="live")
    live = {"mode": "live", "run_id": "live-1"}
    issued = _guard(home, PEAK, **live).directives[0]
    assert (issued["state"], issued["confirm_by"]) == ("pending", at_hour(PEAK + 4))
    confirmed_at = at_hour(PEAK + 1)
    run_confirm(DirectiveRequest(issued["id"], by="alice"), home=home, clock=lambda: confirmed_at)
    assert _steps(_guard(home, PEAK + 24, **live)) == []  # 23 h after the confirmation
    worse, flatten = _guard(home, PEAK + 25, **live).directives
    assert worse["step"] == "worsened"
    # a FLATTEN_ALL of the live mode waits 30 minutes for a human, then executes
    assert (flatten["state"], flatten["confirm_by"]) == (
        "pending",
        at_hour(PEAK + 25) + timedelta(minutes=30),
    )
    stored = _get(home, flatten["id"])
    assert (stored.mode, stored.on_timeout) == ("live", OnTimeout.EXECUTE)


def test_a_pending_reduce_is_not_reviewed_until_24_hours_after_its_confirmation(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    _seed(home, steps_of({PEAK: 3.0, PEAK + 24: 1.0}), run_id="live-1", mode="live")
    live = {"mode": "live", "run_id": "live-1"}
    reduce_id = _guard(home, PEAK, **live).directives[0]["id"]
    assert _steps(_guard(home, PEAK + 30, **live)) == []  # nobody confirmed it
    confirmed_at = at_hour(PEAK + 31)
    run_confirm(DirectiveRequest(reduce_id, by="alice"), home=home, clock=lambda: confirmed_at)
    assert _steps(_guard(home, PEAK + 54, **live)) == []
    assert _steps(_guard(home, PEAK + 55, **live)) == [
        (reduce_id, "REDUCE_RISK_50", "recovered", 0.75)
    ]


def test_a_dry_run_reviews_nothing(tmp_path: Path) -> None:
    home = _home(tmp_path)
    _seed(home, steps_of({PEAK: 3.0, PEAK + 24: 1.0}))
    reduce_id = _guard(home, PEAK).directives[0]["id"]
    assert _guard(home, PEAK + 24, dry_run=True).directives == []
    assert _get(home, reduce_id).reviewed_at is None


def test_a_paper_run_reviews_only_its_own_directives(tmp_path: Path) -> None:
    home = _home(tmp_path)
    _seed(home)
    _seed(home, run_id="paper-2")
    other = _directive(
        home, RiskDirective(at_hour(PEAK), "REDUCE_RISK_50", 0.5, mode="paper", run_id="paper-2")
    )
    assert _steps(_guard(home, PEAK + 30, run_id="paper-1")) == []
    assert _get(home, other).multiplier == 0.5
    assert _steps(_guard(home, PEAK + 30, run_id="paper-2")) == [
        (other, "REDUCE_RISK_50", "recovered", 0.75)
    ]


DISABLED_AT = 7 * 24  # 2025-01-08; SOLUSDT's 30-day Sharpe is about -1.1 on 2025-01-15
# and about +0.8 on 2025-01-22 on the bundled data


def test_a_disabled_sleeve_stays_off_while_its_30_day_sharpe_is_negative_then_comes_back(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    _seed(home)
    sol = _directive(
        home,
        RiskDirective(
            at_hour(DISABLED_AT),
            "DISABLE_SLEEVE",
            0.0,
            sleeve="SOLUSDT",
            mode="paper",
            run_id="paper-1",
        ),
    )
    assert _steps(_guard(home, DISABLED_AT + 7 * 24 - 1)) == []  # not due yet
    kept = _guard(home, DISABLED_AT + 7 * 24)
    assert _steps(kept) == [(sol, "DISABLE_SLEEVE", "kept", 0.0)]
    assert "SOLUSDT's 30-day backtest Sharpe -" in kept.directives[0]["note"]
    assert "kept disabled" in kept.directives[0]["note"]
    assert _steps(_guard(home, DISABLED_AT + 7 * 24 + 24)) == []  # next review in 7 days
    back = _guard(home, DISABLED_AT + 14 * 24)
    assert _steps(back) == [(sol, "DISABLE_SLEEVE", "recovered", 0.0)]
    assert "re-enabled" in back.directives[0]["note"]
    assert _get(home, sol).state == DirectiveState.REVOKED
    with open_state(home.state_path) as db:
        assert (
            directives.active_directives(db, mode="paper", now=at_hour(DISABLED_AT + 14 * 24)) == []
        )


def test_a_disabled_sleeve_with_no_data_to_backtest_stays_off_and_says_why(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    _seed(home)
    sol = _directive(
        home,
        RiskDirective(
            at_hour(DISABLED_AT),
            "DISABLE_SLEEVE",
            0.0,
            sleeve="SOLUSDT",
            mode="paper",
            run_id="paper-1",
        ),
    )
    # the run replays a directory without candles
    with open_state(home.state_path) as db:
        journal.record_event(
            db,
            Event(
                ts=T0,
                event_type="RUN_STARTED",
                run_id="paper-1",
                payload={"replay_data": str(tmp_path / "nothing-here")},
            ),
        )
    kept = _guard(home, DISABLED_AT + 7 * 24)
    assert _steps(kept) == [(sol, "DISABLE_SLEEVE", "kept", 0.0)]
    assert "no backtest" in kept.directives[0]["note"]


@pytest.mark.parametrize("action", ["REDUCE_RISK_50", "DISABLE_SLEEVE"])
def test_nothing_is_reviewed_while_a_flatten_all_is_open(tmp_path: Path, action: str) -> None:
    home = _home(tmp_path)
    _seed(home)
    sleeve = "SOLUSDT" if action == "DISABLE_SLEEVE" else None
    held = _directive(
        home, RiskDirective(at_hour(0), action, 0.0, sleeve=sleeve, mode="paper", run_id="paper-1")
    )
    _directive(home, RiskDirective(at_hour(1), "FLATTEN_ALL", 0.0, mode="paper", run_id="paper-1"))
    assert _steps(_guard(home, 10 * 24)) == []
    assert _get(home, held).reviewed_at is None


def test_run_live_obeys_and_prints_a_reduce_recovering_at_its_reviews(tmp_path: Path) -> None:
    from stagectl.services.live import run as run_live
    from stagectl.state.equity import snapshots

    home = Home(root=tmp_path)
    start = datetime(2026, 3, 1, tzinfo=UTC)  # the strategy holds positions on these days
    home.state_path.parent.mkdir(parents=True)
    reduce_id = _directive(home, RiskDirective(start, "REDUCE_RISK_50", 0.5, mode="paper"))
    alerts: list[str] = []
    end = datetime(2026, 3, 3, 23, tzinfo=UTC)
    request = run_live.RunLiveRequest(start=start, end=end, breakers=False)  # sizes stay exact
    result = run_live.run(request, home=home, on_alert=alerts.append)
    assert result.status == "completed"
    recovered = [
        a for a in alerts if a.startswith(f"directive {reduce_id} REDUCE_RISK_50 recovered")
    ]
    assert len(recovered) == 2 and "0.5 -> 0.75" in recovered[0] and "lifted" in recovered[1]
    with open_state(home.state_path) as db:
        rows = snapshots(db, result.run_id)
    # the in-loop guard reviews at the bar closing 24 h after the directive, then 24 h
    # later; the next bar trades the new size
    first, second = start + timedelta(hours=24), start + timedelta(hours=48)
    for row in rows:
        size = 0.5 if row.ts <= first else 0.75 if row.ts <= second else 1.0
        held = {abs(v["position"]) for v in row.sleeves.values()} - {0.0}
        assert held <= {size}, row.ts


def test_nothing_is_reviewed_on_stale_snapshots(tmp_path: Path) -> None:
    home = _home(tmp_path)
    _seed(home, steps_of({PEAK: 3.0, PEAK + 24: 1.0}))
    reduce_id = _guard(home, PEAK).directives[0]["id"]
    stale = _guard(home, HOURS + 5)  # run-live stopped 5 hours ago
    assert "equity_snapshots_stale" in {h["rule"] for h in stale.decision["hits"]}
    assert _steps(stale) == []
    assert _get(home, reduce_id).reviewed_at is None
