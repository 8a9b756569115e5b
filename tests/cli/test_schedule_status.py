"""`stagectl schedule status`: every scheduled job's last run, exit code and next due
time, from the textfiles the jobs write; exit 1 on a failed or overdue job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stagectl.config.home import Home
from stagectl.services.home import schedule
from stagectl.services.home.units import JOBS, ScheduledJob
from tests.conftest import Run

NOW = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)  # a Thursday


@pytest.fixture
def desk(run: Run, home: Path) -> Path:
    assert run(["init", str(home)]).exit_code == 0
    return home


def _job(name: str) -> ScheduledJob:
    return next(job for job in JOBS if job.name == name)


def _plant(desk: Path, name: str, *, exit_code: int, at: datetime) -> None:
    """The textfile a run of ``name`` would have left (the two samples status reads)."""
    labels = f'{{command="{name}"}}'
    _job(name).metrics_file(desk).write_text(
        "# TYPE stagectl_command_exit_code gauge\n"
        f"stagectl_command_exit_code{labels} {exit_code}.0\n"
        "# TYPE stagectl_command_last_run_timestamp_seconds gauge\n"
        f"stagectl_command_last_run_timestamp_seconds{labels} {at.timestamp()}\n"
    )


def _status(desk: Path, now: datetime = NOW) -> dict[str, schedule.JobStatus]:
    result = schedule.run(schedule.ScheduleStatusRequest(now), home=Home.resolve(desk))
    return {j.job.name: j for j in result.jobs}


def test_a_fresh_home_lists_every_job_as_never_run_and_exits_0(run: Run, desk: Path) -> None:
    result = run(["schedule", "status", "--json"])
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert [j["name"] for j in doc["jobs"]] == [job.name for job in JOBS]
    assert {j["status"] for j in doc["jobs"]} == {"never run"}
    assert doc["ok"] is True and doc["attention"] == []
    daily = next(j for j in doc["jobs"] if j["name"] == "daily")
    assert daily["cron_utc"] == "0 2 * * *" and daily["last_run"] is None
    assert daily["command"].startswith(f"stagectl daily --out {desk}/reports/")
    human = run(["schedule", "status"])
    assert human.exit_code == 0
    assert "never run" in human.stdout and "no job needs attention" in human.stdout


def test_next_due_follows_each_jobs_utc_schedule(desk: Path) -> None:
    due = {name: job.next_due for name, job in _status(desk).items()}
    assert due["risk-guard"] == datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    assert due["funding-scan"] == datetime(2026, 1, 1, 1, 5, tzinfo=UTC)
    assert due["daily"] == datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    assert due["weekly"] == datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # the next Monday
    assert due["health"] == datetime(2026, 1, 1, 0, 45, tzinfo=UTC)
    assert due["attribution"] == datetime(2026, 1, 1, 23, 55, tzinfo=UTC)


def test_after_the_jobs_ran_status_shows_each_last_run_and_flags_the_failed(
    run: Run, desk: Path
) -> None:
    """Every job's own command, as its unit runs it: the guard's two cannot judge a fresh
    home (exit 2, no live run), the others run; status reads what each left."""
    before = datetime.now(UTC).replace(microsecond=0)
    codes = {}
    for job in JOBS:
        codes[job.name] = run([arg.format(home=desk) for arg in job.args]).exit_code
    assert codes["risk-guard"] == codes["weekly"] == 2
    assert codes["daily"] == codes["funding-scan"] == 0
    result = run(["schedule", "status", "--json"])
    assert result.exit_code == 1
    doc = result.json()
    failed = [job for job in JOBS if codes[job.name] not in job.quiet_exits]
    assert doc["attention"] == [job.name for job in failed]
    for job in doc["jobs"]:
        assert job["exit_code"] == codes[job["name"]]
        assert datetime.fromisoformat(job["last_run"]) >= before
        assert job["status"] == ("failed" if job["name"] in doc["attention"] else "ok")
    human = run(["schedule", "status"])
    assert f"needs attention: {', '.join(doc['attention'])}" in human.stdout
    assert "failed: the last run exited 2" in human.stdout


def test_exit_1_is_a_failure_except_for_the_guard_whose_1_is_its_own_alert(
    desk: Path,
) -> None:
    an_hour_ago = NOW - timedelta(hours=1)
    for name in ("risk-guard", "weekly", "daily", "funding-scan"):
        _plant(desk, name, exit_code=1, at=an_hour_ago)
    status = _status(desk)
    assert (status["risk-guard"].status, status["weekly"].status) == ("ok", "ok")
    assert (status["daily"].status, status["funding-scan"].status) == ("failed", "failed")
    assert status["daily"].reason == "the last run exited 1"


def test_a_job_two_due_times_behind_is_overdue(desk: Path) -> None:
    # funding-scan runs at :05: last run 22:05 the day before; 23:05 and 00:05 have passed
    _plant(desk, "funding-scan", exit_code=0, at=NOW - timedelta(hours=2, minutes=25))
    # daily ran yesterday 02:00; the next due is today 02:00: not overdue
    _plant(desk, "daily", exit_code=0, at=NOW - timedelta(hours=22, minutes=29))
    status = _status(desk)
    assert status["daily"].status == "ok"
    # within the 30-minute grace after the second due time (00:05 + 30 min): still ok
    assert status["funding-scan"].status == "ok"
    late = _status(desk, NOW + timedelta(minutes=6))
    assert late["funding-scan"].status == "overdue"
    assert "2026-01-01T00:05:00Z" in late["funding-scan"].reason


def test_an_unreadable_textfile_needs_attention(run: Run, desk: Path) -> None:
    _job("daily").metrics_file(desk).write_text("this is not { a textfile\n")
    result = run(["schedule", "status", "--json"])
    assert result.exit_code == 1
    daily = next(j for j in result.json()["jobs"] if j["name"] == "daily")
    assert daily["status"] == "unreadable"


def test_every_job_writes_a_metrics_file_into_the_homes_metrics_directory(desk: Path) -> None:
    for job in JOBS:
        assert job.metrics_file(desk).parent == desk / "metrics", job.name
