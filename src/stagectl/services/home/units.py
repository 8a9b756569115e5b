"""The systemd units and the crontab that run a desk (docs/operations.md, "Run it as a
service", "Run it from cron"), written by ``stagectl init --with-units``.

The packaged templates (``deploy/``) name the home, the stagectl executable and the
environment file as ``@HOME@``, ``@STAGECTL@`` and ``@ENV_FILE@`` (systemd and the shell
own ``$`` and ``%``); ``render`` fills them in. ``JOBS`` is the one list of scheduled
commands: each is rendered through the same three templates (``stagectl-job.service``,
``stagectl-job.timer`` and ``crontab-job``), so a new schedule is one entry here.

The rendered files go to ``HOME/deploy/`` and are rewritten by every ``init
--with-units`` (they are derived from the templates; the desk changes a unit with a
``systemctl edit`` drop-in). The environment file ``HOME/stagectl.env`` holds the
credentials: it is created once, mode 0600, and never rewritten; one that is readable by
group or others is refused before anything is written.

Entries: ``prepare(UnitsRequest, *, home) -> dict[str, str]`` (every check, nothing
written), ``write(files, *, home) -> UnitsResult``, ``render(home_root, stagectl, mail_to)``
(pure) and ``installed_stagectl()``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagectl.config.home import Home, deploy_dir
from stagectl.errors import InputError
from stagectl.reports import write_atomic

UNITS_DIR = "deploy"
ENV_FILE = "stagectl.env"
RUN_LIVE_UNIT = "stagectl-run-live.service"
TELEGRAM_UNIT = "stagectl-telegram.service"
ALERT_UNIT = "stagectl-alert@.service"
CRONTAB = "crontab"
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")
# characters a path may have to be written into a unit file and a crontab line unquoted:
# no space, no quote, no $ or % (systemd's and the shell's expansions, cron's newline)
_SAFE_PATH = re.compile(r"[A-Za-z0-9/._+,:@-]+")
_SAFE_ADDRESS = re.compile(r"[A-Za-z0-9._+@-]+(,[A-Za-z0-9._+@-]+)*")


@dataclass(frozen=True)
class ScheduledJob:
    """One scheduled stagectl command: a systemd service and timer, and a crontab line."""

    name: str
    """The units are ``stagectl-<name>.service`` and ``.timer``; cron logs to
    ``HOME/logs/<name>.log``."""
    description: str
    on_calendar: str
    """systemd's ``OnCalendar=``, in UTC."""
    cron: str
    """The same times as cron's five fields, read in ``CRON_TZ=UTC``."""
    args: tuple[str, ...]
    """stagectl's arguments; ``{home}`` stands for the home. Every job writes a
    ``--metrics-file``: ``stagectl schedule status`` reads its last run from there."""
    alerts_itself: bool = False
    """True when the command's exit 1 is its own finding that it has already sent to the
    notify channels (the risk guard): 1 is then a success for the unit and cron stays
    quiet. Otherwise exit 1 is a failed check that must page (health, daily), like 2, 3
    and 70."""

    @property
    def quiet_exits(self) -> tuple[int, ...]:
        """The exit codes that page nobody: 0, and 1 for a job that alerts itself."""
        return (0, 1) if self.alerts_itself else (0,)

    def metrics_file(self, home: Path) -> Path:
        """The textfile the job's ``--metrics-file`` names."""
        at = self.args.index("--metrics-file")
        return Path(self.args[at + 1].format(home=home))


JOBS: tuple[ScheduledJob, ...] = (
    ScheduledJob(
        "risk-guard",
        "the hourly risk guard of the live run",
        "*-*-* *:00:00 UTC",
        "0 * * * *",
        (
            "risk-guard",
            "--live",
            "--out",
            "{home}/reports/risk-guard-live.json",
            "--metrics-file",
            "{home}/metrics/risk-guard-live.prom",
        ),
        alerts_itself=True,
    ),
    ScheduledJob(
        "weekly",
        "the weekly review of the live run, Monday 00:00 UTC",
        "Mon *-*-* 00:00:00 UTC",
        "0 0 * * 1",
        (
            "risk-guard",
            "--weekly",
            "--live",
            "--out",
            "{home}/reports/weekly-latest.json",
            "--metrics-file",
            "{home}/metrics/weekly-live.prom",
        ),
        alerts_itself=True,
    ),
    ScheduledJob(
        "daily",
        "seed 001's daily research chain (ingest, data check, walk-forward, champion vs "
        "challenger), 02:00 UTC",
        "*-*-* 02:00:00 UTC",
        "0 2 * * *",
        (
            "daily",
            "--out",
            "{home}/reports/daily-latest.json",
            "--unsigned",
            "--metrics-file",
            "{home}/metrics/daily.prom",
        ),
    ),
    ScheduledJob(
        "funding-scan",
        "the hourly funding carry and perp-spot basis scan, 5 minutes past the hour",
        "*-*-* *:05:00 UTC",
        "5 * * * *",
        (
            "funding-scan",
            "--out",
            "{home}/reports/funding-scan-latest.json",
            "--unsigned",
            "--metrics-file",
            "{home}/metrics/funding-scan.prom",
        ),
    ),
    ScheduledJob(
        "health",
        "the health checks (data gaps, bar and snapshot age, loop latency, order errors, "
        "exchange reachability, clock skew), every 15 minutes",
        "*-*-* *:00/15:00 UTC",
        "*/15 * * * *",
        (
            "health",
            "--out",
            "{home}/reports/health.json",
            "--unsigned",
            "--metrics-file",
            "{home}/metrics/health.prom",
        ),
    ),
    ScheduledJob(
        "attribution",
        "the day's PnL attribution (by sleeve, regime, venue and cost) into reports/, 23:55 UTC",
        "*-*-* 23:55:00 UTC",
        "55 23 * * *",
        (
            "attribution",
            "--day",
            "today",
            "--out",
            "{home}/reports/attribution-latest.json",
            "--unsigned",
            "--metrics-file",
            "{home}/metrics/attribution.prom",
        ),
    ),
)


@dataclass(frozen=True)
class UnitsRequest:
    """The stagectl executable the units run, and where cron mails a failure."""

    stagectl: Path
    mail_to: str


@dataclass
class UnitsResult:
    """What ``write`` wrote, and the commands that install it."""

    directory: Path
    env_file: Path
    env_created: bool
    written: list[str] = field(default_factory=list)
    systemd: list[str] = field(default_factory=list)
    cron: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "written": self.written,
            "env_file": str(self.env_file),
            "env_file_created": self.env_created,
            "install": {"systemd": self.systemd, "cron": self.cron},
        }


def installed_stagectl() -> Path:
    """The stagectl executable of this installation: the console script beside the running
    Python (a virtualenv's ``bin/``), else the one on ``PATH``; never resolved through
    symlinks, so a unit keeps naming the virtualenv."""
    beside = Path(os.path.abspath(sys.executable)).parent / "stagectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("stagectl")
    if found is None:
        raise InputError(
            "cannot find the stagectl executable (neither beside this Python nor on PATH); "
            "install stagectl into a virtualenv and run its bin/stagectl",
            where="--with-units",
        )
    return Path(os.path.abspath(found))


def prepare(request: UnitsRequest, *, home: Home) -> dict[str, str]:
    """The files for ``home``, by name, once every check passed (nothing is written)."""
    _check_env_file(home)
    return render(home.root, request.stagectl, request.mail_to)


def _check_env_file(home: Home) -> None:
    """Refuse an environment file readable or writable by group or others: it holds
    credentials, and every unit and cron line reads it."""
    path = home.root / ENV_FILE
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", where=str(path)) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(
            f"holds credentials but is open to group or others (mode {stat.S_IMODE(mode):04o}): "
            f"run chmod 600 {path}, then init --with-units again",
            where=str(path),
        )


def write(files: dict[str, str], *, home: Home) -> UnitsResult:
    """Write ``prepare``'s units and crontab into ``HOME/deploy/`` and create the
    environment file when it is missing."""
    directory = home.root / UNITS_DIR
    result = UnitsResult(directory, home.root / ENV_FILE, env_created=False)
    for name, text in files.items():
        if name == ENV_FILE:
            result.env_created = _create_owner_only(result.env_file, text)
            continue
        write_atomic(directory / name, text.encode())
        result.written.append(f"{UNITS_DIR}/{name}")
    result.systemd, result.cron = install_commands(home.root)
    return result


def render(home: Path, stagectl: Path, mail_to: str) -> dict[str, str]:
    """Every file for ``home``, by name: the run-live and Telegram bot services, the alert
    handler, a service
    and a timer per job, the crontab, and the environment file's first version."""
    for what, value in (("the home", str(home)), ("the stagectl executable", str(stagectl))):
        if not value.startswith("/") or not _SAFE_PATH.fullmatch(value):
            raise InputError(
                f"{what} {value!r} must be an absolute path of letters, digits and / . _ + , "
                ": @ - only, to be written into unit files and crontab lines unquoted",
                where="--with-units",
            )
    if not _SAFE_ADDRESS.fullmatch(mail_to):
        raise InputError(f"{mail_to!r} is not a mail address or user name", where="--mail-to")
    common = {
        "HOME": str(home),
        "STAGECTL": str(stagectl),
        "ENV_FILE": str(home / ENV_FILE),
        "MAILTO": mail_to,
    }
    templates = deploy_dir()

    def fill(template: str, **values: str) -> str:
        text = (templates / template).read_text(encoding="utf-8")
        for key, value in {**common, **values}.items():
            text = text.replace(f"@{key}@", value)
        left = _PLACEHOLDER.search(text)
        if left is not None:
            raise RuntimeError(f"deploy/{template}: placeholder {left.group()} has no value")
        return text

    files = {
        RUN_LIVE_UNIT: fill(RUN_LIVE_UNIT),
        TELEGRAM_UNIT: fill(TELEGRAM_UNIT),
        ALERT_UNIT: fill(ALERT_UNIT),
    }
    lines = [fill(CRONTAB)]
    for job in JOBS:
        values = {
            "NAME": job.name,
            "DESCRIPTION": job.description,
            "ON_CALENDAR": job.on_calendar,
            "CRON": job.cron,
            "ARGS": " ".join(arg.format(home=home) for arg in job.args),
            "LOG": str(home / "logs" / f"{job.name}.log"),
            "SUCCESS_EXIT": " ".join(str(code) for code in (*job.quiet_exits[1:], 130)),
            "QUIET_MAX": str(max(job.quiet_exits)),
        }
        files[f"stagectl-{job.name}.service"] = fill("stagectl-job.service", **values)
        files[f"stagectl-{job.name}.timer"] = fill("stagectl-job.timer", **values)
        lines.append(fill("crontab-job", **values))
    files[CRONTAB] = "".join(lines)
    files[ENV_FILE] = fill(ENV_FILE)
    return files


def install_commands(home: Path) -> tuple[list[str], list[str]]:
    """The commands that install the rendered files: as systemd user units, or as the
    user's crontab."""
    directory = home / UNITS_DIR
    units = [RUN_LIVE_UNIT, TELEGRAM_UNIT, ALERT_UNIT]
    units += [f"stagectl-{job.name}.{kind}" for job in JOBS for kind in ("service", "timer")]
    timers = [f"stagectl-{job.name}.timer" for job in JOBS]
    systemd = [
        "systemctl --user link " + " ".join(str(directory / unit) for unit in units),
        "systemctl --user enable --now " + " ".join(timers),
        f"systemctl --user enable --now {TELEGRAM_UNIT}",
        f"systemctl --user enable --now {RUN_LIVE_UNIT}",
        'sudo loginctl enable-linger "$USER"',
    ]
    return systemd, [f"crontab {directory / CRONTAB}"]


def _create_owner_only(path: Path, text: str) -> bool:
    """Create ``path`` with mode 0600 from the start; False when it exists (it is kept)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as error:
        raise InputError(f"cannot create: {error.strerror}", where=str(path)) from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return True
