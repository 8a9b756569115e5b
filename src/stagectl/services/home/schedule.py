"""``stagectl schedule status``: every scheduled job (``units.JOBS``), when it runs, its
last run and exit code, and when it is next due (docs/operations.md, "The daily
schedule").

The last run is read from what every job leaves behind whichever way it ran (systemd
timer, cron line or by hand with the same arguments): the Prometheus textfile of its
``--metrics-file`` (``stagectl_command_last_run_timestamp_seconds`` and
``stagectl_command_exit_code``, written also when the command fails), parsed with
prometheus-client's own parser. No textfile: the job has never run.

A job needs attention (``schedule status`` exits 1, so a desk can page on it) when

- its last exit code is a failure: anything but 0, and but 1 for a job whose 1 is its
  own alert (the risk guard's, ``ScheduledJob.alerts_itself``); 130 (stopped) counts,
  the job did not finish;
- it is overdue: two due times have passed since its last run, plus ``GRACE`` (the
  units' ``TimeoutStartSec``, the longest a run may take, since the textfile is written
  when the run ends);
- its textfile cannot be read or has no last-run samples.

A job that has never run is not flagged: a fresh home has run nothing yet. Due times come
from the job's cron schedule (the same UTC times as its timer) through croniter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.services.home.units import JOBS, ScheduledJob

GRACE = timedelta(minutes=30)
LAST_RUN = "stagectl_command_last_run_timestamp_seconds"
EXIT_CODE = "stagectl_command_exit_code"
OK, NEVER, FAILED, OVERDUE, UNREADABLE = "ok", "never run", "failed", "overdue", "unreadable"


@dataclass(frozen=True)
class JobStatus:
    """One job's schedule and what its last run left."""

    job: ScheduledJob
    command: str
    metrics_file: Path
    next_due: datetime
    last_run: datetime | None
    exit_code: int | None
    status: str
    reason: str

    @property
    def needs_attention(self) -> bool:
        return self.status in (FAILED, OVERDUE, UNREADABLE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.job.name,
            "description": self.job.description,
            "cron_utc": self.job.cron,
            "on_calendar": self.job.on_calendar,
            "command": self.command,
            "metrics_file": str(self.metrics_file),
            "last_run": None if self.last_run is None else _iso(self.last_run),
            "exit_code": self.exit_code,
            "next_due": _iso(self.next_due),
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ScheduleStatus:
    """Every job's status, as of ``now``."""

    now: datetime
    jobs: list[JobStatus]

    @property
    def attention(self) -> list[JobStatus]:
        return [j for j in self.jobs if j.needs_attention]

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": _iso(self.now),
            "ok": not self.attention,
            "attention": [j.job.name for j in self.attention],
            "jobs": [j.to_dict() for j in self.jobs],
        }


@dataclass(frozen=True)
class ScheduleStatusRequest:
    """As of when (None: the current UTC time)."""

    now: datetime | None = None


def run(request: ScheduleStatusRequest, *, home: Home) -> ScheduleStatus:
    """Every job of ``units.JOBS`` as of ``request.now``."""
    moment = datetime.now(UTC) if request.now is None else request.now
    return ScheduleStatus(moment, [job_status(job, home.root, moment) for job in JOBS])


def job_status(job: ScheduledJob, home: Path, now: datetime) -> JobStatus:
    """One job's status from its textfile."""
    metrics_file = job.metrics_file(home)
    command = " ".join(["stagectl", *(arg.format(home=home) for arg in job.args)])
    last_run: datetime | None = None
    exit_code: int | None = None
    try:
        text = metrics_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        status, reason = NEVER, "no metrics file yet"
    except OSError as error:
        status, reason = UNREADABLE, f"cannot read: {error.strerror}"
    else:
        last_run, exit_code = _last_run(text)
        if last_run is None or exit_code is None:
            status, reason = UNREADABLE, f"no {LAST_RUN} and {EXIT_CODE} samples"
        else:
            status, reason = _judge(job, last_run, exit_code, now)
    return JobStatus(
        job, command, metrics_file, due_after(job.cron, now), last_run, exit_code, status, reason
    )


def due_after(cron: str, moment: datetime) -> datetime:
    """The first time strictly after ``moment`` that the cron schedule (UTC) names."""
    from croniter import croniter

    due: datetime = croniter(cron, moment.astimezone(UTC)).get_next(datetime)
    return due.astimezone(UTC)


def _judge(job: ScheduledJob, last_run: datetime, exit_code: int, now: datetime) -> tuple[str, str]:
    if exit_code not in job.quiet_exits:
        return FAILED, f"the last run exited {exit_code}"
    second_due = due_after(job.cron, due_after(job.cron, last_run))
    if now > second_due + GRACE:
        return OVERDUE, f"two due times passed since the last run (the second {_iso(second_due)})"
    return OK, ""


def _last_run(text: str) -> tuple[datetime | None, int | None]:
    """The last-run time and exit code of a textfile; None for what it lacks or cannot
    be parsed."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in (LAST_RUN, EXIT_CODE):
                    values[sample.name] = sample.value
    except ValueError:
        return None, None
    stamp, code = values.get(LAST_RUN), values.get(EXIT_CODE)
    return (
        None if stamp is None else datetime.fromtimestamp(stamp, UTC),
        None if code is None else int(code),
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
