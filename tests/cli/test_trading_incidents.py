"""stagectl trading incidents: the incident log an on-call engineer reads (seed 003 §4.2
step 6: time, rule, value, fills, market state) without SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from stagectl.state.db import open_state
from stagectl.state.journal import Incident, record_incident
from stagectl.state.runs import Run as RunRow
from stagectl.state.runs import start_run
from tests.conftest import Run

T0 = datetime(2026, 5, 6, 10, tzinfo=UTC)
FILL = {"trade_id": "ETHUSDT:1", "side": "sell", "qty": "0.1", "price": "1800.5"}


def _log(home: Path) -> None:
    with open_state(home / "state" / "stagectl.db") as db:
        for name in ("run-a", "run-b"):
            start_run(db, RunRow(name, "run-live", "paper", T0 - timedelta(days=30)))
        for hour, (rule, run) in enumerate(
            [
                ("sharpe_collapse", "run-a"),
                ("mdd_limit", "run-b"),
                ("signal_mismatch_high", "run-b"),
            ]
        ):
            record_incident(
                db,
                Incident(
                    T0 + timedelta(hours=hour),
                    rule,
                    "CRITICAL",
                    "FLATTEN_ALL",
                    f"{rule} fired",
                    indicator_value=-0.61 - hour,
                    run_id=run,
                    market_state={"equity": 9_512.25},
                    fills=[FILL],
                ),
            )


def test_incidents_lists_the_log_oldest_first_with_rule_value_and_run(run: Run, home: Path) -> None:
    _log(home)
    result = run(["trading", "incidents"])
    assert result.exit_code == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "fired" in line]
    assert [r.split()[3] for r in rows] == ["sharpe_collapse", "mdd_limit", "signal_mismatch_high"]
    assert "-0.61" in rows[0] and "run-a" in rows[0]


def test_incidents_filters_by_run_time_and_count(run: Run, home: Path) -> None:
    _log(home)
    by_run = run(["trading", "incidents", "--run", "run-b", "--json"]).json()["incidents"]
    assert [i["rule"] for i in by_run] == ["mdd_limit", "signal_mismatch_high"]
    since = run(["trading", "incidents", "--since", "2026-05-06T11:30Z", "--json"]).json()
    assert [i["rule"] for i in since["incidents"]] == ["signal_mismatch_high"]
    newest = run(["trading", "incidents", "--limit", "2", "--json"]).json()["incidents"]
    assert [i["rule"] for i in newest] == ["mdd_limit", "signal_mismatch_high"]


def test_one_incident_shows_its_market_state_and_fills(run: Run, home: Path) -> None:
    _log(home)
    first = run(["trading", "incidents", "--json"]).json()["incidents"][0]
    result = run(["trading", "incidents", "--id", str(first["id"])])
    assert result.exit_code == 0, result.stderr
    assert "incident" in result.stdout and "sharpe_collapse -> FLATTEN_ALL" in result.stdout
    assert "market equity: 9,512.25" in result.stdout
    assert (
        "fills (last 24 h): 1" in result.stdout
        and "price=1800.5, qty=0.1, side=sell" in result.stdout
    )


def test_an_unknown_incident_or_bad_limit_is_exit_2_naming_the_option(run: Run, home: Path) -> None:
    _log(home)
    missing = run(["trading", "incidents", "--id", "999"])
    assert missing.exit_code == 2 and "--id" in missing.stderr and "999" in missing.stderr
    assert missing.stdout == ""
    bad = run(["trading", "incidents", "--limit", "0"])
    assert bad.exit_code == 2 and "--limit" in bad.stderr


def test_a_home_without_a_state_database_has_an_empty_log(run: Run, home: Path) -> None:
    result = run(["trading", "incidents", "--json"])
    assert result.exit_code == 0 and result.json()["incidents"] == []
    assert not (home / "state" / "stagectl.db").exists()


def test_an_incident_id_in_a_home_without_a_state_database_is_exit_2(run: Run, home: Path) -> None:
    result = run(["trading", "incidents", "--id", "3"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("stagectl: --id: no incident 3 in ")
