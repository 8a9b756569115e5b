"""stagectl trading status|confirm|cancel|revoke|enable: the risk directives and the
restart of a flattened book (seed 003 §4), through the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from stagectl.domain.directives import DirectiveState, OnTimeout
from stagectl.domain.types import TradingState
from stagectl.state.db import open_state
from stagectl.state.directives import RiskDirective, get_directive, record_directive
from stagectl.state.equity import EquitySnapshot, record_snapshots
from stagectl.state.flags import set_trading_state
from stagectl.state.runs import Run as RunRow
from stagectl.state.runs import finish_run, start_run
from tests.conftest import Run

NOW = datetime.now(UTC).replace(microsecond=0)
# The bundled data's strategy passes every figure of §4.5 at GOOD (20-day Sharpe 5.8,
# 60-day 2.9, drawdown 2.8 %) and fails the drawdown at BAD (14.6 % below its 60-day peak).
GOOD = datetime(2024, 3, 2, 12, tzinfo=UTC)
BAD = datetime(2024, 3, 6, 12, tzinfo=UTC)


def _pending(home: Path, action: str, on_timeout: OnTimeout, deadline: datetime) -> int:
    with open_state(home / "state" / "stagectl.db") as db:
        return record_directive(
            db,
            RiskDirective(
                NOW - timedelta(minutes=5),
                action,
                0.0 if action == "FLATTEN_ALL" else 0.5,
                mode="live",
                state=DirectiveState.PENDING,
                confirm_by=deadline,
                on_timeout=on_timeout,
                rule="daily_loss_limit",
                indicator_value=-5.4,
            ),
        )


def _latched_paper_run(home: Path, last_bar: datetime) -> int:
    """A finished paper replay whose guard flattened it: HALTED, FLATTEN_ALL executed."""
    with open_state(home / "state" / "stagectl.db") as db:
        start_run(db, RunRow("replay-1", "run-live", "paper", last_bar - timedelta(days=30)))
        record_snapshots(db, [EquitySnapshot("replay-1", last_bar, 95_000.0)])
        finish_run(db, "replay-1", status="completed", ended_at=NOW)
        set_trading_state(
            db,
            "paper",
            TradingState.HALTED,
            reason="FLATTEN_ALL executed",
            source="FLATTEN_ALL",
            now=last_bar,
        )
        return record_directive(
            db,
            RiskDirective(
                last_bar - timedelta(days=2),
                "FLATTEN_ALL",
                0.0,
                mode="paper",
                state=DirectiveState.EXECUTED,
                executed_at=last_bar - timedelta(days=1),
                run_id="replay-1",
                rule="mdd_flatten",
                indicator_value=12.1,
            ),
        )


def _directive(home: Path, directive_id: int) -> RiskDirective:
    with open_state(home / "state" / "stagectl.db") as db:
        found = get_directive(db, directive_id)
    assert found is not None
    return found


def test_status_lists_a_pending_directive_with_its_rule_value_and_deadline(
    run: Run, home: Path
) -> None:
    deadline = NOW + timedelta(minutes=25)
    directive_id = _pending(home, "FLATTEN_ALL", OnTimeout.EXECUTE, deadline)
    listed = run(["trading", "status", "--json"]).json()["directives"]
    assert [(d["id"], d["action"], d["state"], d["rule"], d["value"]) for d in listed] == [
        (directive_id, "FLATTEN_ALL", "pending", "daily_loss_limit", -5.4)
    ]
    text = run(["trading", "status"]).stdout
    assert "pending-confirmation (executes at deadline)" in text and "FLATTEN_ALL" in text


def test_status_shows_a_recovering_reduce_at_its_multiplier_until_its_review_lifts_it(
    run: Run, home: Path
) -> None:
    reviewed = NOW - timedelta(hours=1)
    with open_state(home / "state" / "stagectl.db") as db:
        record_directive(
            db,
            RiskDirective(
                NOW - timedelta(hours=25), "REDUCE_RISK_50", 0.75, mode="live", reviewed_at=reviewed
            ),
        )
    [listed] = run(["trading", "status", "--json"]).json()["directives"]
    assert (listed["multiplier"], listed["expires_at"]) == (0.75, None)
    assert listed["reviewed_at"] == reviewed.isoformat().replace("+00:00", "Z")
    text = run(["trading", "status"]).stdout
    assert "x0.75" in text and "until its review lifts it" in text


def test_a_pending_flatten_past_its_deadline_shows_as_active(run: Run, home: Path) -> None:
    _pending(home, "FLATTEN_ALL", OnTimeout.EXECUTE, NOW - timedelta(minutes=1))
    [listed] = run(["trading", "status", "--json"]).json()["directives"]
    assert listed["state"] == "active"


def test_confirm_makes_a_pending_directive_active_and_records_who(run: Run, home: Path) -> None:
    directive_id = _pending(home, "REDUCE_RISK_50", OnTimeout.ESCALATE, NOW + timedelta(hours=4))
    result = run(["trading", "confirm", directive_id, "--by", "A. Chen", "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.json()["state"] == "active"
    stored = _directive(home, directive_id)
    assert (stored.state, stored.confirmed_by) == (DirectiveState.ACTIVE, "A. Chen")
    again = run(["trading", "confirm", directive_id, "--by", "A. Chen"])
    assert again.exit_code == 1 and "only a pending one is confirmed" in again.stderr


def test_cancel_vetoes_a_pending_directive_with_who_and_why(run: Run, home: Path) -> None:
    directive_id = _pending(home, "FLATTEN_ALL", OnTimeout.EXECUTE, NOW + timedelta(minutes=20))
    no_reason = run(["trading", "cancel", directive_id, "--by", "A. Chen"])
    assert no_reason.exit_code == 2 and "--reason" in no_reason.stderr
    vetoed = run(["trading", "cancel", directive_id, "--by", "A. Chen", "--reason", "stale mark"])
    assert vetoed.exit_code == 0, vetoed.stderr
    stored = _directive(home, directive_id)
    assert (stored.state, stored.closed_by) == (DirectiveState.CANCELLED, "A. Chen")
    assert "cancelled by A. Chen: stale mark" in (stored.reason or "")
    assert run(["trading", "status", "--json"]).json()["directives"] == []
    unknown = run(["trading", "cancel", "999", "--by", "x", "--reason", "y"])
    assert unknown.exit_code == 2 and "no directive 999" in unknown.stderr


def test_revoke_lifts_an_active_reduce_and_refuses_a_pending_one(run: Run, home: Path) -> None:
    directive_id = _pending(home, "REDUCE_RISK_50", OnTimeout.ESCALATE, NOW + timedelta(hours=4))
    pending = run(["trading", "revoke", directive_id, "--by", "A. Chen", "--reason", "x"])
    assert pending.exit_code == 1 and "a pending one is cancelled" in pending.stderr
    run(["trading", "confirm", directive_id, "--by", "A. Chen"])
    revoked = run(["trading", "revoke", directive_id, "--by", "B. Ode", "--reason", "reviewed"])
    assert revoked.exit_code == 0, revoked.stderr
    assert _directive(home, directive_id).state == DirectiveState.REVOKED


def test_enable_of_a_latched_mode_prints_the_failing_conditions_and_changes_nothing(
    run: Run, home: Path
) -> None:
    directive_id = _latched_paper_run(home, BAD)
    refused = run(["trading", "enable", "--paper", "--reason", "restart"])
    assert refused.exit_code == 1
    for line in ("cause recorded", "drawdown (60-day peak)", "sign-off", "FAIL"):
        assert line in refused.stdout
    document = run(["trading", "enable", "--paper", "--reason", "restart", "--json"]).json()
    failing = {c["condition"] for c in document["checks"] if not c["passed"]}
    assert failing == {"cause recorded", "drawdown (60-day peak)", "sign-off"}
    assert document["as_of"].startswith("2024-03-06T12:00") and document["changes"] == []
    status = run(["trading", "status", "--json"]).json()
    assert status["modes"]["paper"]["trading_state"] == "HALTED"
    assert [d["id"] for d in status["directives"]] == [directive_id]


def test_an_override_restarts_and_is_recorded_with_the_failing_conditions(
    run: Run, home: Path
) -> None:
    directive_id = _latched_paper_run(home, BAD)
    no_signer = run(["trading", "enable", "--paper", "--override", "--reason", "x"])
    assert no_signer.exit_code == 2 and "--signed-off-by" in no_signer.stderr
    forced = run(
        [
            "trading",
            "enable",
            "--paper",
            "--override",
            "--signed-off-by",
            "A. Chen",
            "--cause",
            "funding spike",
            "--reason",
            "desk head approves",
            "--json",
        ]
    )
    assert forced.exit_code == 0, forced.stderr
    [change] = forced.json()["changes"]
    assert (change["to_state"], change["source"]) == ("ACTIVE", "RESTART_OVERRIDE")
    assert "OVERRIDING drawdown (60-day peak)" in change["reason"]
    assert _directive(home, directive_id).state == DirectiveState.REVOKED
    assert run(["trading", "status", "--json"]).json()["directives"] == []


def test_revoke_of_the_flatten_restarts_when_every_condition_holds(run: Run, home: Path) -> None:
    directive_id = _latched_paper_run(home, GOOD)
    unsigned = run(["trading", "revoke", directive_id, "--by", "A. Chen", "--reason", "ok"])
    assert unsigned.exit_code == 1 and "cause recorded" in unsigned.stdout
    restarted = run(
        [
            "trading",
            "revoke",
            directive_id,
            "--by",
            "A. Chen",
            "--reason",
            "post-mortem done",
            "--cause",
            "exchange outage",
            "--json",
        ]
    )
    assert restarted.exit_code == 0, restarted.stderr
    document = restarted.json()
    assert document["state"] == "revoked" and document["restart"]["conditions_hold"] is True
    assert run(["trading", "status", "--json"]).json()["modes"]["paper"]["trading_state"] == (
        "ACTIVE"
    )
