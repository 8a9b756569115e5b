"""stagectl health on a real paper run over the bundled data: each check passes on the
healthy run and fails on a planted defect (stale data, a gap, rejections, errors,
latency); exit 1 on any FAIL; --json is one document; --metrics-file is written."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run

SOON = "2026-03-03T00:20:00Z"
"""Twenty minutes after the run's last bar (opened 2026-03-02T23:00Z) closed."""


@pytest.fixture
def paper_run(run: Run) -> str:
    result = run(["run-live", "--start", "2026-03-01", "--end", "2026-03-02", "--json"])
    assert result.exit_code == 0, result.stderr
    return str(result.json()["run_id"])


def _health(run: Run, *args: Any) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
    result = run(["health", *args, "--json"])
    document = result.json()["body"]  # one JSON document (the report), also on a FAIL
    return result.exit_code, {c["check"]: c for c in document["checks"]}, document


def _sql(home: Path, statement: str, *params: Any) -> None:
    with sqlite3.connect(home / "state" / "stagectl.db") as conn:
        conn.execute(statement, params)


def test_a_healthy_paper_run_passes_every_check_and_skips_the_exchange(
    run: Run, paper_run: str
) -> None:
    code, checks, document = _health(run, "--now", SOON)
    assert code == 0 and document["passed"] is True and document["run_id"] == paper_run
    assert {name: c["status"] for name, c in checks.items()} == {
        "data gaps": "PASS",
        "last-bar age": "PASS",
        "snapshot age": "PASS",
        "loop latency": "PASS",
        "order rejections": "PASS",
        "order errors": "PASS",
        "exchange reachable, clock skew": "SKIP",
    }
    assert checks["last-bar age"]["value"] == 80.0 and checks["snapshot age"]["value"] == 20.0
    assert checks["data gaps"]["value"] == 0 and "48 bars" in checks["data gaps"]["reason"]
    assert "paper run: no exchange" in checks["exchange reachable, clock skew"]["reason"]
    assert "p50" in checks["loop latency"]["reason"] and checks["loop latency"]["threshold"]


def test_stale_data_warns_then_fails_and_max_bar_age_overrides_the_config(
    run: Run, paper_run: str
) -> None:
    code, checks, _ = _health(run, "--now", "2026-03-03T01:00:00Z")  # 120 min after the open
    assert code == 0 and checks["last-bar age"]["status"] == "WARN"
    code, checks, _ = _health(run, "--now", "2026-03-03T01:00:00Z", "--max-bar-age", "100m")
    assert code == 1 and checks["last-bar age"]["status"] == "FAIL"
    code, checks, _ = _health(run, "--now", "2026-03-03T06:00:00Z")
    assert code == 1
    assert checks["last-bar age"]["status"] == checks["snapshot age"]["status"] == "FAIL"


def test_a_clock_behind_the_bars_fails_the_ages_instead_of_passing_them(
    run: Run, paper_run: str
) -> None:
    """The last bar opened 2026-03-02T23:00Z and settled at midnight: a host whose clock
    reads 22:00 is an hour behind whoever stamped them, and negative ages once passed."""
    code, checks, _ = _health(run, "--now", "2026-03-02T22:00:00Z")
    assert code == 1
    for name in ("last-bar age", "snapshot age"):
        assert checks[name]["status"] == "FAIL" and checks[name]["value"] < 0
        assert "in the future" in checks[name]["reason"] and "sync NTP" in checks[name]["reason"]
    code, checks, _ = _health(run, "--now", "2026-03-02T23:59:59.800000Z")
    assert checks["snapshot age"]["status"] == "PASS"  # 0.2 s: within the skew tolerance
    code, checks, _ = _health(run, "--now", "2026-03-02T23:59:59.300000Z")
    assert checks["snapshot age"]["status"] == "WARN"  # 0.7 s: past warn_clock_skew_s


def test_a_missing_snapshot_fails_the_snapshot_age_alone(
    run: Run, home: Path, paper_run: str
) -> None:
    _sql(home, "DELETE FROM equity_snapshots WHERE ts > '2026-03-02T21:00'")
    code, checks, _ = _health(run, "--now", SOON)
    assert code == 1 and checks["snapshot age"]["status"] == "FAIL"
    assert checks["last-bar age"]["status"] == "PASS"


@pytest.mark.parametrize(("bars", "status", "code"), [(1, "WARN", 0), (3, "FAIL", 1)])
def test_a_gap_in_a_sleeves_bars_warns_or_fails(
    run: Run, home: Path, paper_run: str, bars: int, status: str, code: int
) -> None:
    _sql(
        home,
        "DELETE FROM events WHERE event_type = 'DECISION' AND symbol = 'SOLUSDT'"
        " AND ts >= '2026-03-02T10:00' AND ts < ?",
        f"2026-03-02T{10 + bars:02d}:00",
    )
    exit_code, checks, _ = _health(run, "--now", SOON)
    gaps = checks["data gaps"]
    assert (exit_code, gaps["status"], gaps["value"]) == (code, status, bars)
    assert f"SOLUSDT {bars}" in gaps["reason"]


def _orders_set(status: str) -> Callable[[Path, str], None]:
    def plant(home: Path, run_id: str) -> None:
        _sql(home, "UPDATE orders SET status = ? WHERE run_id = ?", status, run_id)

    return plant


@pytest.mark.parametrize(
    ("check", "plant"),
    [("order rejections", _orders_set("rejected")), ("order errors", _orders_set("not_sent"))],
)
def test_rejected_or_unsent_orders_fail_their_rate(
    run: Run, home: Path, paper_run: str, check: str, plant: Callable[[Path, str], None]
) -> None:
    code, checks, _ = _health(run, "--now", SOON)
    assert checks[check]["status"] == "PASS" and "of" in checks[check]["reason"]
    plant(home, paper_run)
    code, checks, _ = _health(run, "--now", SOON)
    assert code == 1 and checks[check]["status"] == "FAIL" and checks[check]["value"] == 100.0


def test_slow_bars_fail_the_loop_latency(run: Run, home: Path, paper_run: str) -> None:
    _sql(home, "UPDATE loop_latency SET settle_ms = 45000 WHERE bar_ts >= '2026-03-02T20:00'")
    code, checks, _ = _health(run, "--now", SOON)
    assert code == 1 and checks["loop latency"]["status"] == "FAIL"
    assert checks["loop latency"]["value"] > 30_000


def test_an_unreachable_exchange_fails_and_offline_skips(run: Run, paper_run: str) -> None:
    args = ["--now", SOON, "--exchange", "binanceusdm"]
    code, checks, _ = _health(run, *args, "--base-url", "http://127.0.0.1:9")
    assert code == 1 and checks["exchange reachable, clock skew"]["status"] == "FAIL"
    code, checks, _ = _health(run, *args, "--offline")
    assert code == 0 and checks["exchange reachable, clock skew"]["status"] == "SKIP"


def test_no_run_fails_the_last_bar_age_and_skips_the_other_run_checks(run: Run, home: Path) -> None:
    """With no run-live run there is no loop to be healthy: a health timer reading an
    empty or wrong state (without the loop's STAGECTL_STATE, say) once passed forever."""
    code, checks, document = _health(run)
    assert code == 1 and document["run_id"] is None and document["passed"] is False
    age = checks.pop("last-bar age")
    assert age["status"] == "FAIL" and str(home / "state" / "stagectl.db") in age["reason"]
    assert "STAGECTL_STATE" in age["reason"]
    assert {c["status"] for c in checks.values()} == {"SKIP"}


def test_metrics_file_and_signed_out_as_the_schedule_runs_them(
    run: Run, home: Path, paper_run: str, hmac_key: str
) -> None:
    (home / "reports").mkdir(exist_ok=True)
    (home / "metrics").mkdir(exist_ok=True)
    out, prom = home / "reports" / "health.json", home / "metrics" / "health.prom"
    result = run(["health", "--out", out, "--metrics-file", prom, "--now", "2026-03-04"])
    assert result.exit_code == 1  # stale by then
    assert "health FAILED" in result.stdout and run(["report", "verify", out]).exit_code == 0
    text = prom.read_text()
    assert 'stagectl_health_check_status{check="last-bar age",command="health"} 2.0' in text
    assert "stagectl_health_bar_age_seconds" in text and "stagectl_checks_failed" in text
    assert 'stagectl_command_exit_code{command="health"} 1.0' in text
    assert run(["health", "--run", "nope"]).exit_code == 2


def test_thresholds_come_from_stage3_yaml_and_a_bad_one_is_exit_2(
    run: Run, home: Path, paper_run: str
) -> None:
    from tests.conftest import REPO_ROOT

    packaged = (REPO_ROOT / "config" / "stage3.yaml").read_text()
    strict, bad = home / "strict.yaml", home / "bad.yaml"
    strict.write_text(packaged + "health:\n  warn_bar_age_min: 30\n  max_bar_age_min: 60\n")
    code, checks, _ = _health(run, "-c", strict, "--now", SOON)  # 80 min after the open
    assert code == 1 and checks["last-bar age"]["threshold"] == "WARN > 30 min, FAIL > 60 min"
    bad.write_text(packaged + "health:\n  max_bar_age_minutes: 60\n")
    result = run(["health", "-c", bad])
    assert result.exit_code == 2 and "bad.yaml" in result.stderr
