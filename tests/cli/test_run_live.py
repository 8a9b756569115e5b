"""stagectl run-live and artifacts analyze: exit codes, --json, refusals."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from stagectl.data import load_candles
from tests.conftest import Run

CREDS = {"STAGECTL_EXCHANGE_API_KEY": "k-123", "STAGECTL_EXCHANGE_API_SECRET": "s-456"}
NO_CREDS = {
    "STAGECTL_EXCHANGE_API_KEY": None,
    "STAGECTL_EXCHANGE_API_SECRET": None,
    "STAGECTL_EXCHANGE_KEY_FILE": None,
}


def test_live_without_credentials_is_refused_with_exit_2(run: Run) -> None:
    result = run(["run-live", "--live", "--yes"], env=NO_CREDS)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "credentials" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_live_without_yes_on_a_non_tty_is_refused_and_never_prints_secrets(run: Run) -> None:
    result = run(["run-live", "--live"], env=CREDS)
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert "s-456" not in result.stderr + result.stdout
    assert "k-123" not in result.stderr + result.stdout


def test_bad_config_is_exit_2_naming_the_file(run: Run, home: Path) -> None:
    bad = home / "bad.yaml"
    bad.write_text("name: x\ntimeframe: 7h\n")
    result = run(["run-live", "-c", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml" in result.stderr


def test_bad_speed_and_duration_are_exit_2(run: Run) -> None:
    assert run(["run-live", "--speed", "fast"]).exit_code == 2
    assert run(["run-live", "--duration", "a while"]).exit_code == 2


def test_short_paper_replay_prints_one_json_summary_and_analyze_passes(
    run: Run, home: Path
) -> None:
    result = run(["run-live", "--start", "2026-03-01", "--end", "2026-03-02", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["status"] == "completed" and summary["bars"] == 48
    assert summary["state"] == str(home / "state" / "stagectl.db")
    assert summary["max_abs_drift_usd"] <= 0.01
    analyzed = run(["artifacts", "analyze", summary["run_id"], "--json"])
    assert analyzed.exit_code == 0, analyzed.stderr
    body = analyzed.json()
    assert body["passed"] is True and len(body["answers"]) == 5
    clock = {"at": "2026-03-03T00:00:00Z", "basis": "last bar", "reason": "replayed run"}
    assert body["as_of"] == clock
    assert "as of the run's last bar 2026-03-03T00:00:00Z: replayed run" in analyzed.stderr


def test_duration_stops_after_that_much_market_time(run: Run) -> None:
    result = run(
        ["run-live", "--start", "2026-03-01", "--end", "2026-03-03", "--duration", "6h", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert result.json()["bars"] == 6


def _data_end(*symbols: str) -> str:
    """The last bar every one of ``symbols`` has in the bundled data, as run-live prints it."""
    end: datetime = min(load_candles(s).index[-1] for s in symbols).to_pydatetime()
    return end.isoformat().replace("+00:00", "Z")


def test_a_paper_duration_alone_replays_that_much_of_the_data_end(run: Run) -> None:
    result = run(["run-live", "--duration", "36h", "--no-guard", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    end = _data_end("ETHUSDT", "SOLUSDT")
    first = datetime.fromisoformat(end) - timedelta(hours=35)
    assert summary["bars"] == 36
    assert summary["last_bar"] == end
    assert summary["first_bar"] == first.isoformat().replace("+00:00", "Z")


def test_a_paper_duration_longer_than_the_data_is_refused_saying_why(run: Run) -> None:
    result = run(["run-live", "--duration", "1000d"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("stagectl: --duration: 1000d of 1h bars up to ")
    assert "begins at 2024-01-01T00:00:00Z" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_window_the_data_cannot_fill_records_no_run_for_the_next_one_to_resume(
    run: Run,
) -> None:
    refused = run(["run-live", "--duration", "1h", "--no-guard"])
    assert refused.exit_code == 2, refused.stderr
    assert "fewer than 2 common bars" in refused.stderr

    result = run(["run-live", "--duration", "3h", "--no-guard", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["resumed"] is False
    assert summary["bars"] == 3


def test_analyze_a_missing_run_is_exit_2(run: Run) -> None:
    result = run(["artifacts", "analyze", "no-such-run"])
    assert result.exit_code == 2
    assert "missing" in result.stderr


def test_analyze_exits_1_when_reconciliation_did_not_balance(run: Run, home: Path) -> None:
    import json

    result = run(["run-live", "--start", "2026-03-01", "--end", "2026-03-01", "--json"])
    run_id = result.json()["run_id"]
    path = home / "artifacts" / "stage3" / run_id / "reconciliation_history.json"
    doc = json.loads(path.read_text())
    doc["snapshots"][-1]["drift_usd"] = 1.5
    path.write_text(json.dumps(doc))
    analyzed = run(["artifacts", "analyze", run_id, "--json"])
    assert analyzed.exit_code == 1
    answers = {a["question"]: a["answer"] for a in analyzed.json()["answers"]}
    assert answers["Did multi-asset reconciliation balance?"] == "no"
