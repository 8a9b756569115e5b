"""The JSON-line logs of the scheduled commands and run-live (docs/operations.md, "Logs"):
one object a line, rotated, never a secret, and never a reason to change an exit code."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run
from tests.integration.test_risk_guard_live import HOURS, _seed, at_hour

API_KEY = "exchange-api-key-7f3a9c"
API_SECRET = "exchange-api-secret-b81d22"
BOT_TOKEN = "123456:telegram-bot-token-x9"
HOOK_TOKEN = "hook-token-SECRET-4d5e6f"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def initialised(run: Run, home: Path) -> Path:
    assert run(["init", home]).exit_code == 0
    return home


def test_a_guard_run_logs_start_decision_and_end_as_json_lines(run: Run, home: Path) -> None:
    _seed(home / "state" / "stagectl.db")
    (home / "logs").mkdir()
    result = run(["risk-guard", "--dry-run", "--now", at_hour(HOURS - 1).isoformat()])
    assert result.exit_code == 1
    logged = lines(home / "logs" / "risk-guard-paper.jsonl")
    assert [line["event"] for line in logged] == ["started", "decision", "finished"]
    for line in logged:
        assert set(line) == {"time", "level", "command", "run", "event", "fields"}
        assert TIME.match(line["time"]) and line["command"] == "risk-guard"
    decision, finished = logged[1], logged[2]
    assert (decision["level"], decision["run"]) == ("WARNING", "paper-1")
    assert decision["fields"]["action"] == "FLATTEN_ALL"
    assert finished["fields"]["exit_code"] == 1
    assert result.stdout  # the human output is still there


def test_no_secret_reaches_the_log_from_the_environment_or_the_config(
    run: Run, initialised: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, secret in (
        ("STAGECTL_EXCHANGE_API_KEY", API_KEY),
        ("STAGECTL_EXCHANGE_API_SECRET", API_SECRET),
        ("FUTURES_TELEGRAM_BOT_TOKEN", BOT_TOKEN),
    ):
        monkeypatch.setenv(name, secret)
    guard = initialised / "config" / "risk_guard_alt_ensemble.yaml"
    text = guard.read_text().replace("  retries: 3 ", "  retries: 0 ")  # a refused hook: once
    # A webhook URL whose token only the config holds, spelled so the config is refused:
    # the error line quotes the value, and the log still shows no token.
    guard.write_text(text.replace("webhook_url: null", f"webhook_url: hxxp://h.test/{HOOK_TOKEN}"))
    refused = run(["risk-guard"])
    assert refused.exit_code == 2 and "notify.webhook_url" in refused.stderr
    assert HOOK_TOKEN not in refused.stderr  # nor on stderr: the URL is cut to its scheme
    guard.write_text(
        text.replace("webhook_url: null", f"webhook_url: https://127.0.0.1:9/{HOOK_TOKEN}")
    )
    assert run(["preflight", "--exchange", "binanceusdm", "--offline"]).exit_code in (0, 1)
    assert run(["risk-guard", "--weekly"]).exit_code == 2  # no snapshots yet
    logged = "".join(p.read_text() for p in (initialised / "logs").glob("*.jsonl"))
    assert '"exit_code":2' in logged and "config" in logged
    for secret in (API_KEY, API_SECRET, BOT_TOKEN, HOOK_TOKEN):
        assert secret not in logged


def test_a_log_that_cannot_be_written_keeps_the_exit_code(run: Run, initialised: Path) -> None:
    (initialised / "logs" / "verify-thresholds.jsonl").mkdir()  # not writable as a file
    result = run(["verify-thresholds"])
    assert result.exit_code == 0
    assert "not written" in result.stderr
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr
    failing = run(["verify-thresholds", "-c", "missing.yaml"])
    assert failing.exit_code == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_a_read_only_logs_directory_keeps_the_exit_codes(run: Run, initialised: Path) -> None:
    (initialised / "logs").chmod(0o500)
    try:
        assert run(["verify-thresholds"]).exit_code == 0
        assert run(["risk-guard", "-c", "missing.yaml"]).exit_code == 2
    finally:
        (initialised / "logs").chmod(0o700)
    assert list((initialised / "logs").iterdir()) == []


def test_the_log_rotates_at_its_size_and_keeps_its_backups(
    run: Run, initialised: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGECTL_LOG_MAX_BYTES", "400")
    monkeypatch.setenv("STAGECTL_LOG_BACKUPS", "2")
    for _ in range(4):
        assert run(["verify-thresholds"]).exit_code == 0
    names = sorted(p.name for p in (initialised / "logs").iterdir())
    assert names == [
        "verify-thresholds.jsonl",
        "verify-thresholds.jsonl.1",
        "verify-thresholds.jsonl.2",
    ]
    for path in (initialised / "logs").iterdir():
        assert all(line["command"] == "verify-thresholds" for line in lines(path))


def test_no_log_is_written_where_the_home_has_no_logs_directory(run: Run, home: Path) -> None:
    assert run(["verify-thresholds"]).exit_code == 0
    assert not (home / "logs").exists()


def test_a_paper_run_logs_its_bars_alerts_and_summary(run: Run, initialised: Path) -> None:
    result = run(["run-live", "--start", "2026-04-01", "--end", "2026-04-02T12:00"])
    assert result.exit_code == 0, result.stderr
    logged = lines(initialised / "logs" / "run-live-paper.jsonl")
    events = [line["event"] for line in logged]
    assert events[0] == "started" and events[-2:] == ["summary", "finished"]
    bars = [line for line in logged if line["event"] == "bar"]
    assert bars and all(b["fields"]["sent"] or b["fields"]["fills"] for b in bars)
    summary = logged[-2]
    assert summary["run"] == summary["fields"]["run_id"] == bars[0]["run"]
    assert summary["fields"]["orders_sent"] == sum(b["fields"]["sent"] for b in bars)
    assert logged[-1]["fields"]["exit_code"] == 0
