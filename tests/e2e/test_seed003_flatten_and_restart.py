"""Seed 003 as on-call lives it, through the installed stagectl in a fresh home: a
30-day paper replay with the guard in the loop, a FLATTEN_ALL forced by a tightened
copy of the guard config (the drill of docs/operations.md), the loop flattening and
latching, the restart refused by §4.5, an override, the weekly report and the paper
gate's verdict on that run."""

from __future__ import annotations

from tests.e2e.conftest import SIGNER, Operator

DRILL_LIMIT = 0.2  # running drawdown limit of the drill, in % (the runbook's is 12)
START, END = "2024-02-06", "2024-03-06"
TRIGGER, FLAT = "2024-02-18T13:00Z", "2024-02-18T14:00Z"


def _drill_configs(operator: Operator) -> str:
    """docs/operations.md "Drill": copies of the guard and strategy configs whose
    drawdown limit is tightened; the packaged files stay as they are."""
    config = operator.home / "config"
    guard = (config / "risk_guard_alt_ensemble.yaml").read_text()
    rule = '  - id: mdd_limit\n    indicator: running_mdd_pct\n    op: ">"\n    value: 12.0\n'
    assert rule in guard
    tight = rule.replace("value: 12.0", f"value: {DRILL_LIMIT}")
    (config / "risk_guard_drill.yaml").write_text(guard.replace(rule, tight))
    strategy = (config / "futures_alt_ensemble.yaml").read_text()
    line = "  config: risk_guard_alt_ensemble.yaml"
    assert line in strategy
    (config / "futures_drill.yaml").write_text(
        strategy.replace(line, "  config: risk_guard_drill.yaml")
    )
    return "config/futures_drill.yaml"


def test_forced_flatten_latches_refuses_restart_then_override_weekly_and_gate(
    operator: Operator,
) -> None:
    # 0. the default 30-day replay flattens itself on the bundled data and leaves paper
    #    HALTED, so the drill starts by restarting paper, as docs/operations.md says
    default = operator("run-live", "--json").json()
    assert default["trading_state"] == "HALTED"
    operator(
        "trading",
        "enable",
        "--paper",
        "--signed-off-by",
        SIGNER,
        "--cause",
        "default replay",
        "--override",
        "--reason",
        "before the drill",
    )
    strategy = _drill_configs(operator)

    # 1. the 30-day paper replay, the guard evaluated hourly inside the loop
    ran = operator("run-live", "-c", strategy, "--start", START, "--end", END, "--json")
    summary = ran.json()
    run_id = summary["run_id"]
    assert summary["status"] == "completed" and summary["bars"] == 720
    alerts = [line for line in ran.stderr.splitlines() if line.startswith("alert: ")]
    assert alerts[0] == "alert: paper trading state: ACTIVE"
    assert f"alert: risk guard {TRIGGER}: FLATTEN_ALL (CRITICAL): mdd_limit" in alerts
    executed = [a for a in alerts if "executed at" in a]
    assert len(executed) == 1 and f"executed at {FLAT}: the book is flat" in executed[0]

    # 2. the loop flattened and latched: flat book, HALTED, directive executed
    assert summary["trading_state"] == "HALTED" and summary["positions"] == {}
    status = operator("trading", "status", "--json").json()
    assert status["modes"]["paper"]["trading_state"] == "HALTED"
    assert status["modes"]["paper"]["source"] == "FLATTEN_ALL"
    assert status["modes"]["live"]["trading_state"] == "ACTIVE"
    [directive] = status["directives"]
    assert (directive["action"], directive["state"], directive["rule"]) == (
        "FLATTEN_ALL",
        "executed",
        "mdd_limit",
    )
    assert directive["value"] > DRILL_LIMIT

    # 3. the incident log has the trigger with its market state and fills
    log = operator("trading", "incidents", "--run", run_id, "--limit", "1000", "--json")
    first = log.json()["incidents"][0]
    assert (first["rule"], first["severity"], first["action"]) == (
        "mdd_limit",
        "CRITICAL",
        "FLATTEN_ALL",
    )
    assert first["ts"].startswith("2024-02-18T13:00") and first["fills"]
    shown = operator("trading", "incidents", "--id", str(first["id"]))
    assert "market equity:" in shown.stdout

    # 4. restart refused by §4.5 (the drawdown from the 60-day peak is above 8 %)
    cause = ("--signed-off-by", SIGNER, "--cause", "drill: drawdown limit tightened")
    refused = operator("trading", "enable", "--paper", *cause, "--json", expect=1).json()
    assert refused["latched"] and not refused["conditions_hold"]
    failing = [c["condition"] for c in refused["checks"] if not c["passed"]]
    assert failing == ["drawdown (60-day peak)"], refused
    still = operator("trading", "status", "--json").json()
    assert still["modes"]["paper"]["trading_state"] == "HALTED"

    # 5. the override, recorded as such
    operator("trading", "enable", "--paper", *cause, "--override", "--reason", "drill over")
    after = operator("trading", "status", "--json").json()
    assert after["modes"]["paper"]["trading_state"] == "ACTIVE"
    assert after["modes"]["paper"]["source"] == "RESTART_OVERRIDE"
    assert after["directives"] == []

    # 6. the weekly review of the drill run's last week (its own clock, no --now; --run,
    #    since the default replay's snapshots reach further in market time)
    weekly = operator("risk-guard", "--weekly", "--run", run_id, "--json", expect=None)
    assert weekly.exit_code in (0, 1), weekly
    week = weekly.json()["body"]
    assert week["run_id"] == run_id
    assert (week["week_start"], week["week_end"]) == ("2024-02-29", "2024-03-06")
    assert week["kill_switch"] == "FLATTEN_ALL" and week["guard_decisions"] >= 7 * 24

    # 7. the paper gate judges this run at its own end: FAIL, the kill switch fired
    gate = operator("paper-gate", "--json", expect=1).json()["body"]
    assert gate["window"]["run_id"] == run_id
    passed = {c["id"]: c["passed"] for c in gate["criteria"]}
    assert passed["history_days"] and not passed["kill_switch_fires"]
    assert gate["verdict"]["passed"] is False
