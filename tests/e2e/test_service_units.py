"""The systemd units and the crontab `stagectl init --with-units` writes, as the machine
runs them: each cron line under cron's bare environment (`env -i PATH=/usr/bin:/bin
HOME=...`) against a fresh home, the documented crontab the same way, and every unit
through `systemd-analyze verify` (skipped, saying so, where systemd is not installed)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stagectl.services.home.units import (
    CRONTAB,
    ENV_FILE,
    JOBS,
    ScheduledJob,
    install_commands,
    render,
)
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import STAGECTL

OPERATIONS = REPO_ROOT / "docs" / "operations.md"
DOCS_HOME = "/srv/stagectl"
DOCS_STAGECTL = "/srv/stagectl/.venv/bin/stagectl"
DOCS_MAIL_TO = "ops@example.com"
NO_LIVE_RUN = "stagectl: no live run with equity snapshots in the state database"


@dataclass(frozen=True)
class Crontab:
    """A crontab's environment lines and its jobs (schedule, command)."""

    env: dict[str, str]
    jobs: list[tuple[str, str]]


def parse_crontab(text: str) -> Crontab:
    env: dict[str, str] = {}
    jobs: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            name, value = line.split("=", 1)
            env[name.strip()] = value.strip()
            continue
        fields = line.split(None, 5)
        jobs.append((" ".join(fields[:5]), fields[5]))
    return Crontab(env, jobs)


def run_as_cron(command: str, crontab: Crontab, home: Path) -> subprocess.CompletedProcess[str]:
    """``command`` as cron runs it: ``SHELL -c`` with the crontab's variables, cron's
    ``PATH`` and ``HOME`` and nothing else (``PYTHONPATH`` only when the test run has one,
    so a worktree's code is what runs)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LOGNAME": "desk", **crontab.env}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [
            "env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            env.get("SHELL", "/bin/sh"),
            "-c",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh home set up as docs/operations.md says: init --with-units (one for the
    module: the tests only read its units; the cron lines append to its logs)."""
    if not STAGECTL.is_file():
        pytest.skip(f"stagectl is not installed beside {STAGECTL.parent}/python")
    base = tmp_path_factory.mktemp("units")
    home = base / "desk"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "LANG": "C.UTF-8"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run(
        [str(STAGECTL), "init", str(home), "--with-units", "--mail-to", "desk"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return home


def _documented_crontab(home: Path) -> str:
    """The crontab block of docs/operations.md with its paths moved to ``home``."""
    blocks = re.findall(r"```\n(.*?)```", OPERATIONS.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if "CRON_TZ=UTC" in b]
    return block.replace(DOCS_STAGECTL, str(STAGECTL)).replace(DOCS_HOME, str(home))


def test_the_documented_crontab_is_the_shipped_one() -> None:
    shipped = render(Path(DOCS_HOME), Path(DOCS_STAGECTL), DOCS_MAIL_TO)[CRONTAB]
    blocks = re.findall(r"```\n(.*?)```", OPERATIONS.read_text(encoding="utf-8"), re.S)
    (documented,) = [b for b in blocks if "CRON_TZ=UTC" in b]

    def active(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip() and line[0] != "#"]

    assert active(documented) == active(shipped)


def test_the_documented_systemd_install_is_what_init_prints() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    blocks = re.findall(r"```\n(.*?)```", text, re.S)
    (documented,) = [b for b in blocks if "systemctl --user link" in b]
    systemd, cron = install_commands(Path(DOCS_HOME))
    assert documented.splitlines() == systemd
    assert f"```\n{cron[0]}\n```" in text


@pytest.mark.parametrize("source", ["shipped", "documented"])
def test_each_cron_line_runs_under_cron_and_a_failure_reaches_the_mail(
    desk: Path, source: str
) -> None:
    text = (desk / "deploy" / CRONTAB).read_text()
    if source == "documented":
        text = _documented_crontab(desk)
    crontab = parse_crontab(text)
    mail_to = DOCS_MAIL_TO if source == "documented" else "desk"
    assert crontab.env["CRON_TZ"] == "UTC" and crontab.env["MAILTO"] == mail_to
    assert [schedule for schedule, _ in crontab.jobs] == [job.cron for job in JOBS]
    for job, (_, command) in zip(JOBS, crontab.jobs, strict=True):
        done = run_as_cron(command, crontab, desk)
        log = desk / "logs" / f"{job.name}.log"
        mail = done.stdout.splitlines()  # what cron mails to MAILTO
        assert done.stderr == ""
        if job.alerts_itself:
            # a fresh home has no live run: the guard cannot judge (2), and says so
            assert done.returncode == 2, (done.stdout, done.stderr)
            assert NO_LIVE_RUN in log.read_text()
            assert mail[0] == f"stagectl {job.name} exited 2; the end of {log}:"
            assert any(line.startswith(NO_LIVE_RUN) for line in mail[1:])
            continue
        # the other jobs run on a fresh paper home (the bundled data): they judge it (0, or
        # 1 for a failed check); the exit code in their textfile is the one cron saw, and
        # only a failure is mailed
        assert done.returncode in (0, 1), (job.name, done.stdout, log.read_text())
        assert bool(mail) is (done.returncode != 0)
        textfile = job.metrics_file(desk).read_text()
        assert f'stagectl_command_exit_code{{command="{job.name}"}} {done.returncode}.0' in textfile


def _stub_desk(tmp_path: Path, code: int) -> tuple[Path, Crontab]:
    """A desk whose crontab runs a stand-in stagectl that prints a line and exits ``code``."""
    home = tmp_path / "desk"
    (home / "logs").mkdir(parents=True)
    stub = tmp_path / "bin" / "stagectl"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "stagectl: said $1"\nexit {code}\n')
    stub.chmod(0o755)
    files = render(home, stub, "desk")
    (home / ENV_FILE).write_text(files[ENV_FILE])
    return home, parse_crontab(files[CRONTAB])


@pytest.mark.parametrize(("code", "mailed"), [(0, False), (1, True), (2, True), (130, True)])
def test_a_cron_line_of_a_job_without_its_own_alert_mails_its_exit_1(
    tmp_path: Path, code: int, mailed: bool
) -> None:
    """The daily chain's 1 (a failed integrity check) reaches the mail: it alerts nobody
    itself. Stand-in stagectl as below."""
    home, crontab = _stub_desk(tmp_path, code)
    (command,) = [c for (_, c), job in zip(crontab.jobs, JOBS, strict=True) if job.name == "daily"]
    done = run_as_cron(command, crontab, home)
    assert done.returncode == code
    assert bool(done.stdout) is mailed
    if mailed:
        assert (
            done.stdout.splitlines()[0]
            == f"stagectl daily exited {code}; the end of " + str(home / "logs" / "daily.log") + ":"
        )


@pytest.mark.parametrize(
    ("code", "mailed"), [(0, False), (1, False), (2, True), (3, True), (70, True), (130, True)]
)
def test_a_cron_line_mails_every_exit_but_0_and_1_and_keeps_the_code(
    tmp_path: Path, code: int, mailed: bool
) -> None:
    """The line's own logic, with a stand-in stagectl that prints a line and exits ``code``."""
    home, crontab = _stub_desk(tmp_path, code)
    _, command = crontab.jobs[0]
    done = run_as_cron(command, crontab, home)
    assert done.returncode == code
    assert "stagectl: said risk-guard" in (home / "logs" / "risk-guard.log").read_text()
    assert bool(done.stdout) is mailed
    if mailed:
        assert done.stdout.splitlines()[-1] == "stagectl: said risk-guard"


def test_a_missing_environment_file_reaches_the_mail(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    files = render(home, STAGECTL, "desk")
    crontab = parse_crontab(files[CRONTAB])
    done = run_as_cron(crontab.jobs[0][1], crontab, home)
    assert done.returncode != 0
    assert ENV_FILE in done.stdout + done.stderr  # cron mails both


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    return found


def _verify(directory: Path, tmp_path: Path) -> list[str]:
    """``systemd-analyze --user verify`` on every unit in ``directory``: its complaints, one
    per line (it exits 0 on unknown keys and bad values, so its output is what counts)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    units = sorted(str(p) for p in directory.iterdir() if p.suffix in (".service", ".timer"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    done = subprocess.run(
        [_systemd_analyze(), "--user", "verify", *units],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    complaints = (done.stdout + done.stderr).splitlines()
    return complaints if complaints or done.returncode == 0 else [f"exit {done.returncode}"]


def test_systemd_analyze_verify_accepts_every_unit(desk: Path, tmp_path: Path) -> None:
    assert _verify(desk / "deploy", tmp_path) == []


def test_systemd_analyze_verify_catches_a_broken_unit(desk: Path, tmp_path: Path) -> None:
    """The check above can fail: a bad value and a missing executable are reported."""
    broken = tmp_path / "deploy"
    shutil.copytree(desk / "deploy", broken)
    unit = broken / "stagectl-run-live.service"
    text = unit.read_text().replace("Restart=always", "Restart=sometimes")
    unit.write_text(text.replace(str(STAGECTL), "/nonexistent/stagectl"))
    complaints = "\n".join(_verify(broken, tmp_path))
    assert "sometimes" in complaints and "/nonexistent/stagectl" in complaints


def test_the_alert_units_command_runs_as_written(desk: Path) -> None:
    """stagectl-alert@.service's ExecStart, %i filled in as systemd does: a notify section
    with no credentials answers 1 (nobody told) and names the unit; never 127 or 2."""
    text = (desk / "deploy" / "stagectl-alert@.service").read_text()
    (exec_start,) = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    argv = exec_start.removeprefix("ExecStart=").replace("%i", "stagectl-weekly.service").split()
    env = {"PATH": "/usr/bin:/bin", "STAGECTL_HOME": str(desk), "MONITOR_EXIT_STATUS": "3"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run(argv, env=env, cwd=desk, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("stagectl-weekly.service failed: telegram skipped")


def test_the_credentials_file_is_owner_only(desk: Path) -> None:
    assert stat.S_IMODE((desk / ENV_FILE).stat().st_mode) == 0o600


def _cron_matches(field: str, value: int) -> bool:
    """One of cron's five fields (``*``, ``N``, ``A-B``, ``*/S``, comma lists) at ``value``."""
    for part in field.split(","):
        base, _, step = part.partition("/")
        low, high = (0, 99) if base == "*" else map(int, (base.split("-") * 2)[:2])
        if low <= value <= high and (value - low) % int(step or 1) == 0:
            return True
    return False


def _cron_times(schedule: str, after: datetime, count: int) -> list[datetime]:
    minute, hour, day, month, weekday = schedule.split()
    found, at = [], after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while len(found) < count:
        if (
            _cron_matches(minute, at.minute)
            and _cron_matches(hour, at.hour)
            and _cron_matches(day, at.day)
            and _cron_matches(month, at.month)
            and _cron_matches(weekday, at.isoweekday() % 7)
        ):
            found.append(at)
        at += timedelta(minutes=1)
    return found


@pytest.mark.parametrize("job", JOBS, ids=lambda job: job.name)
def test_each_timer_fires_when_its_cron_line_does(job: ScheduledJob) -> None:
    """A job's OnCalendar= and its cron schedule name the same UTC times (the next five
    after a fixed moment), so the two routes run the desk alike."""
    after = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    done = subprocess.run(
        [
            _systemd_analyze(),
            "calendar",
            "--iterations=5",
            f"--base-time={after:%Y-%m-%d %H:%M:%S} UTC",
            job.on_calendar,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "UTC"},
        check=True,
    )
    timers = [
        datetime.strptime(found, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        for found in re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", done.stdout)
    ]
    assert timers == _cron_times(job.cron, after, 5)


def test_the_documented_installation_links_and_enables_every_unit(tmp_path: Path) -> None:
    """docs/operations.md's systemctl lines, run offline against a root directory
    (``--root``, ``--global`` for ``--user``; ``--now`` needs a running manager): every
    file links, and the timers and run-live's service are wanted at start."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        pytest.skip("systemctl is not installed (apt-get install systemd)")
    root = tmp_path / "root"
    deploy = root / DOCS_HOME.lstrip("/") / "deploy"
    deploy.mkdir(parents=True)
    for name, text in render(Path(DOCS_HOME), STAGECTL, DOCS_MAIL_TO).items():
        (deploy / name).write_text(text)
    systemd, _ = install_commands(Path(DOCS_HOME))
    for line in systemd:
        if not line.startswith("systemctl --user "):
            continue  # loginctl enable-linger: the running system's business
        args = line.removeprefix("systemctl --user ").replace("--now ", "").split()
        done = subprocess.run(
            [systemctl, f"--root={root}", "--global", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    wanted = {p.parent.name + "/" + p.name for p in (root / "etc/systemd/user").glob("*.wants/*")}
    assert wanted == {
        "default.target.wants/stagectl-run-live.service",
        "default.target.wants/stagectl-telegram.service",
        *(f"timers.target.wants/stagectl-{job.name}.timer" for job in JOBS),
    }
