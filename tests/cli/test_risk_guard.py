"""`stagectl risk-guard`: every exit code, --json, --replay and --export."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.home import defaults_dir
from tests.conftest import Run
from tests.integration.paper_seed import Seed, write
from tests.integration.test_risk_guard_live import CRASH_FROM, HOURS, _seed, at_hour

TOKEN = "987654:cli-secret-token"


def _iso(h: int) -> str:
    return at_hour(h).isoformat()


@pytest.fixture
def seeded(home: Path) -> Path:
    _seed(home / "state" / "stagectl.db")
    return home


def test_calm_state_exits_0(run: Run, seeded: Path) -> None:
    result = run(["risk-guard", "--dry-run", "--now", _iso(CRASH_FROM - 2)])
    assert result.exit_code == 0, result.stderr
    assert "NO_ACTION" in result.stdout
    assert "dry run" in result.stdout


def test_breach_exits_1_and_lists_the_rules(run: Run, seeded: Path) -> None:
    result = run(["risk-guard", "--now", _iso(HOURS - 1)])
    assert result.exit_code == 1
    assert "FLATTEN_ALL (severity CRITICAL)" in result.stdout
    assert "mdd_limit" in result.stdout
    assert "FLATTEN_ALL" in result.stdout.splitlines()[-1]  # the directive written


def test_json_prints_one_envelope_with_the_decision(run: Run, seeded: Path) -> None:
    result = run(["risk-guard", "--dry-run", "--json", "--now", _iso(HOURS - 1)])
    assert result.exit_code == 1
    document = result.json()
    assert document["kind"] == "risk-guard"
    assert document["body"]["decision"]["action"] == "FLATTEN_ALL"
    assert document["body"]["mode"] == "dry-run"


def test_out_writes_a_signed_report(run: Run, seeded: Path, hmac_key: str) -> None:
    out = seeded / "reports" / "guard.json"
    result = run(["risk-guard", "--dry-run", "--out", out, "--now", _iso(CRASH_FROM - 2)])
    assert result.exit_code == 0
    assert run(["report", "verify", out]).exit_code == 0


@pytest.mark.parametrize(
    "edit",
    [
        lambda body: body["state"].update(directives=[]),
        lambda body: body["state"].update(incident_ids=[]),
        lambda body: body["data"].update(run_id="paper-2"),
        lambda body: body["data"].update(fills=0),
        lambda body: body.update(run_id="paper-2"),
        lambda body: body.update(evaluated_at="2030-01-01T00:00:00Z"),
        lambda body: body.update(mode="dry-run"),
        lambda body: body.update(notifications=[]),
        lambda body: body.update(note="added after signing"),
    ],
    ids=[
        "state.directives",
        "state.incident_ids",
        "data.run_id",
        "data.fills",
        "run_id",
        "evaluated_at",
        "mode",
        "notifications",
        "a new section",
    ],
)
def test_editing_any_part_of_the_signed_report_fails_report_verify(
    run: Run, seeded: Path, hmac_key: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """The old report signed only body.decision: all of these verified VALID."""
    out = seeded / "guard.json"
    assert run(["risk-guard", "--out", out, "--now", _iso(HOURS - 1)]).exit_code == 1
    report = json.loads(out.read_text())
    assert report["body"]["state"]["directives"]
    edit(report["body"])
    out.write_text(json.dumps(report, indent=2))
    result = run(["report", "verify", out, "--json"])
    assert result.exit_code == 1
    assert result.json()["reason"].startswith("signature mismatch")


def test_without_now_a_finished_run_is_judged_at_its_last_bar(run: Run, home: Path) -> None:
    now = datetime(2024, 11, 11, tzinfo=UTC)
    write(home / "state" / "stagectl.db", Seed(start=datetime(2024, 10, 1, tzinfo=UTC), end=now))
    result = run(["risk-guard", "--dry-run", "--json"])
    assert result.exit_code in (0, 1), result.stderr
    body = result.json()["body"]
    assert body["evaluated_at"] == "2024-11-11T00:00:00Z"
    assert body["as_of"] == {
        "at": "2024-11-11T00:00:00Z",
        "basis": "last bar",
        "reason": "finished run (completed)",
    }
    assert body["data"]["last_snapshot_age_min"] == 0.0
    assert "as of the run's last bar 2024-11-11T00:00:00Z: finished run (completed)" in (
        result.stderr
    )
    weekly = run(["risk-guard", "--weekly"])
    assert "Week: 2024-11-04 → 2024-11-10" in weekly.stdout
    assert "as of the run's last bar 2024-11-11T00:00:00Z" in weekly.stderr


def test_no_snapshots_exits_2_and_says_how_to_get_them(run: Run, home: Path) -> None:
    result = run(["risk-guard", "--dry-run"])
    assert result.exit_code == 2
    assert "equity snapshots" in result.stderr
    assert "`stagectl run-live` records every bar (`run-live --live`" in result.stderr


def test_bad_now_exits_2(run: Run, seeded: Path) -> None:
    assert run(["risk-guard", "--now", "yesterday"]).exit_code == 2


def test_replay_options_without_replay_exit_2(run: Run, seeded: Path) -> None:
    assert run(["risk-guard", "--export", "out"]).exit_code == 2


def test_locked_state_exits_3(run: Run, seeded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGECTL_BUSY_TIMEOUT_MS", "50")
    holder = sqlite3.connect(seeded / "state" / "stagectl.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = run(["risk-guard", "--dry-run", "--now", _iso(CRASH_FROM - 2)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 3
    assert "locked" in result.stderr


def test_corrupt_state_exits_3(run: Run, home: Path) -> None:
    (home / "state").mkdir()
    (home / "state" / "stagectl.db").write_bytes(b"garbage" * 500)
    assert run(["risk-guard", "--dry-run"]).exit_code == 3


def test_failed_notification_is_reported_without_the_token_and_exit_follows_decision(
    run: Run, seeded: Path
) -> None:
    config = seeded / "guard.yaml"
    text = (defaults_dir() / "risk_guard_alt_ensemble.yaml").read_text()
    config.write_text(text.replace("retries: 3 ", "retries: 0 "))
    env = {
        "FUTURES_TELEGRAM_BOT_TOKEN": TOKEN,
        "FUTURES_TELEGRAM_CHAT_ID": "42",
        "STAGECTL_TELEGRAM_API_BASE": "http://127.0.0.1:9",
    }
    result = run(["risk-guard", "-c", config, "--now", _iso(HOURS - 1)], env=env)
    assert result.exit_code == 1
    assert "notification via telegram failed" in result.stderr
    assert TOKEN not in result.stdout + result.stderr


REPLAY_WINDOW = ["--replay-start", "2024-06-01", "--replay-end", "2024-08-15"]


def test_replay_prints_triggers_and_guarded_vs_unguarded(run: Run, home: Path) -> None:
    result = run(["risk-guard", "--replay", *REPLAY_WINDOW, "--limit", "0"])
    assert result.exit_code == 0, result.stderr
    assert "Triggers" in result.stdout
    assert "mdd_limit" in result.stdout or "sharpe_collapse" in result.stdout
    assert "Guarded vs unguarded" in result.stdout
    assert "more row(s) not shown" not in result.stdout
    assert "replay: 100 %" in result.stderr


def test_replay_prints_its_summary_first_and_at_most_limit_rows_per_list(
    run: Run, home: Path
) -> None:
    result = run(["risk-guard", "--replay", *REPLAY_WINDOW, "--limit", "5"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("replay 2024-06-01T00:00Z .. 2024-08-15T23:00Z: 1824 bars")
    assert out.index("Guarded vs unguarded") < out.index("Triggers") < out.index("Guard actions")
    triggers = out[out.index("Triggers") : out.index("Guard actions")].splitlines()
    assert len([line for line in triggers if line.startswith("2024-")]) == 5
    assert "... 57 more row(s) not shown (--limit 0 shows all" in out


def test_replay_json_and_export(run: Run, home: Path) -> None:
    export = home / "replay"
    result = run(
        [
            "risk-guard",
            "--replay",
            "--json",
            "--eval",
            "daily",
            "--export",
            export,
            "--replay-start",
            "2024-06-01",
            "--replay-end",
            "2024-08-15",
        ]
    )
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["kind"] == "risk-guard-replay"
    summary = document["body"]["summary"]
    assert summary["evaluation"] == "daily"
    assert set(summary["guarded"]) == {"sharpe", "max_drawdown", "total_return", "final_equity"}
    with (export / "equity.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["timestamp", "equity_unguarded", "equity_guarded"]
    assert len(rows) - 1 == summary["bars"]
    with (export / "triggers.csv").open() as handle:
        triggers = list(csv.DictReader(handle))
    assert len(triggers) == summary["triggers"]


def test_replay_export_replaces_each_file_whole_never_rewrites_it_in_place(
    run: Run, home: Path
) -> None:
    """Each export file is written beside and renamed over the old one, so an interrupted
    export leaves the old file or the new one, never a cut one: a hard link made to the
    old file keeps its bytes."""
    export = home / "replay"
    export.mkdir()
    old = home / "equity-before.csv"
    old.write_text("old\n")
    os.link(old, export / "equity.csv")
    window = ["--replay-start", "2024-06-01", "--replay-end", "2024-06-15"]
    result = run(["risk-guard", "--replay", "--eval", "daily", *window, "--export", export])
    assert result.exit_code == 0, result.stderr
    assert old.read_text() == "old\n"
    assert (export / "equity.csv").read_text().startswith("timestamp,equity_unguarded,")
    assert sorted(p.name for p in export.iterdir()) == ["actions.csv", "equity.csv", "triggers.csv"]


def test_replay_with_a_bad_window_exits_2(run: Run, home: Path) -> None:
    result = run(["risk-guard", "--replay", "--replay-start", "2030-01-01"])
    assert result.exit_code == 2


def test_replay_bad_eval_exits_2(run: Run, home: Path) -> None:
    assert run(["risk-guard", "--replay", "--eval", "weekly"]).exit_code == 2


def test_weekly_without_state_exits_2(run: Run, home: Path) -> None:
    assert run(["risk-guard", "--weekly"]).exit_code == 2


def test_weekly_out_writes_a_report_whose_review_is_signed(
    run: Run, home: Path, hmac_key: str
) -> None:
    now = datetime(2024, 11, 11, tzinfo=UTC)
    write(home / "state" / "stagectl.db", Seed(start=datetime(2024, 10, 1, tzinfo=UTC), end=now))
    out = home / "weekly.json"
    result = run(["risk-guard", "--weekly", "--now", "2024-11-11T00:00:00Z", "--out", out])
    assert result.exit_code in (0, 1)
    assert "=== Alt Ensemble Weekly Report ===" in result.stdout
    assert f"wrote {out}" in result.stderr
    report = json.loads(out.read_text())
    assert "weight_drift" in report["body"]
    assert run(["report", "verify", out]).exit_code == 0
    report["body"]["weight_drift"]["decision"] = "TAMPERED"
    out.write_text(json.dumps(report))
    assert run(["report", "verify", out]).exit_code == 1


def test_weekly_records_its_decision_for_run_live_unless_dry_run(run: Run, home: Path) -> None:
    now = datetime(2024, 11, 11, tzinfo=UTC)
    write(home / "state" / "stagectl.db", Seed(start=datetime(2024, 10, 1, tzinfo=UTC), end=now))
    args = ["risk-guard", "--weekly", "--now", "2024-11-11T00:00:00Z", "--json"]
    dry = json.loads(run([*args, "--dry-run"]).stdout)
    assert dry["body"]["rebalance_plan"] is None
    recorded = json.loads(run(args).stdout)["body"]["rebalance_plan"]
    assert (recorded["decision"], recorded["recorded"]) == ("SKIP", True)
