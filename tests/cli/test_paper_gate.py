"""`stagectl paper-gate`: every exit path, --json and --out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stagectl.reports import load_signing_key, verify_envelope
from tests.conftest import Run
from tests.integration.paper_seed import Seed, write

START = datetime(2024, 10, 1, tzinfo=UTC)
NOW = datetime(2024, 11, 11, tzinfo=UTC)


def seed(home: Path, **changes: object) -> None:
    spec = Seed(start=START, end=NOW)
    for name, value in changes.items():
        setattr(spec, name, value)
    write(home / "state" / "stagectl.db", spec)


def test_a_passing_paper_run_exits_0_with_a_table(run: Run, home: Path) -> None:
    seed(home)
    result = run(["paper-gate", "--now", "2024-11-11"])
    assert result.exit_code == 0, result.stderr
    assert "PASS: all 7 checks passed" in result.stdout
    for label in ("30D Sharpe", "Max MDD", "Slippage ratio", "Funding ratio"):
        assert label in result.stdout
    assert "Signal consistency" in result.stdout
    assert "Kill switch fires" in result.stdout


def test_a_failing_criterion_exits_1(run: Run, home: Path) -> None:
    seed(home, slip_bps=5.0)
    result = run(["paper-gate", "--now", "2024-11-11T00:00:00Z"])
    assert result.exit_code == 1
    assert "FAIL: 1 of 7 checks failed" in result.stdout


def test_a_short_window_option_is_honoured(run: Run, home: Path) -> None:
    seed(home)
    result = run(["paper-gate", "--now", "2024-11-11", "--days", "7", "--json"])
    body = result.json()["body"]
    assert body["window"]["days"] == 7
    assert body["evidence"]["daily_returns"] == 7


def test_json_prints_one_signed_envelope(run: Run, home: Path, hmac_key: str) -> None:
    seed(home, decisions=[(NOW - timedelta(days=2), "FLATTEN_ALL", "CRITICAL")])
    result = run(["paper-gate", "--now", "2024-11-11", "--json"])
    assert result.exit_code == 1
    envelope = json.loads(result.stdout)
    assert envelope["kind"] == "paper-gate"
    assert {"criteria", "verdict", "window"} <= set(envelope["body"])
    assert envelope["body"]["verdict"] == {"passed": False, "failed": ["kill_switch_fires"]}
    assert [c["id"] for c in envelope["body"]["criteria"]] == [
        "history_days",
        "sharpe_30d",
        "max_mdd_pct",
        "slippage_ratio",
        "funding_ratio",
        "signal_consistency_pct",
        "kill_switch_fires",
    ]
    key = load_signing_key()
    assert key is not None
    assert verify_envelope(envelope, key).valid


def test_out_without_a_key_is_refused_unless_unsigned(run: Run, home: Path) -> None:
    seed(home)
    out = home / "reports" / "gate.json"
    refused = run(["paper-gate", "--now", "2024-11-11", "--out", out])
    assert refused.exit_code == 2
    assert "STAGECTL_HMAC_KEY" in refused.stderr
    written = run(["paper-gate", "--now", "2024-11-11", "--out", out, "--unsigned"])
    assert written.exit_code == 0
    assert json.loads(out.read_text())["body"]["verdict"]["passed"] is True


def test_without_now_it_judges_the_latest_finished_run_covering_the_window(
    run: Run, home: Path
) -> None:
    seed(home)
    seed(home, run_id="paper-2", start=NOW + timedelta(days=1), end=NOW + timedelta(days=6))
    result = run(["paper-gate", "--json"])
    assert result.exit_code == 0, result.stderr
    window = result.json()["body"]["window"]
    assert window["run_id"] == "paper-1"
    assert window["end"] == "2024-11-11T00:00:00Z"
    assert window["as_of"] == {
        "at": "2024-11-11T00:00:00Z",
        "basis": "last bar",
        "reason": "finished run (completed)",
    }
    assert window["choice"]["skipped"] == [{"run_id": "paper-2", "reason": "covers 5.00 days"}]
    assert (
        "run paper-1: the latest finished paper run covering 30 days; "
        "skipped run paper-2: covers 5.00 days"
    ) in result.stderr
    assert "as of the run's last bar 2024-11-11T00:00:00Z" in result.stderr


def test_no_finished_run_covering_the_window_exits_1_naming_each_run(run: Run, home: Path) -> None:
    seed(home, start=NOW - timedelta(days=5))
    result = run(["paper-gate", "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("stagectl: no finished paper run covers the gate's 30 days")
    )
    assert "run paper-1: covers 5.00 days" in result.stderr


def test_run_judges_that_run_even_when_it_is_short(run: Run, home: Path) -> None:
    seed(home, start=NOW - timedelta(days=5))
    result = run(["paper-gate", "--run", "paper-1", "--json"])
    assert result.exit_code == 1
    body = result.json()["body"]
    assert body["window"]["choice"]["why"] == "given by --run"
    assert body["verdict"]["failed"][0] == "history_days"


def test_run_of_a_live_run_exits_2_naming_the_option(run: Run, home: Path) -> None:
    seed(home, mode="live", run_id="live-1")
    result = run(["paper-gate", "--run", "live-1"])
    assert result.exit_code == 2
    assert result.stderr.startswith("stagectl: --run: run live-1 is a live run")


def test_no_state_database_exits_2_and_says_what_is_missing(run: Run) -> None:
    result = run(["paper-gate", "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no state database" in result.stderr


def test_a_state_without_a_paper_run_exits_2(run: Run, home: Path) -> None:
    seed(home, mode="live")
    result = run(["paper-gate", "--now", "2024-11-11"])
    assert result.exit_code == 2
    assert "no paper run with equity snapshots" in result.stderr


def test_bad_options_exit_2(run: Run, home: Path) -> None:
    assert run(["paper-gate", "--now", "next tuesday"]).exit_code == 2
    assert run(["paper-gate", "--days", "0"]).exit_code == 2
    missing = run(["paper-gate", "-c", home / "nope.yaml"])
    assert missing.exit_code == 2


def test_help_has_an_example(run: Run) -> None:
    result = run(["paper-gate", "--help"])
    assert result.exit_code == 0
    assert "Example: stagectl paper-gate" in result.stdout
