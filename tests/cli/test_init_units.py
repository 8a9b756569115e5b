"""`stagectl init --with-units`: the systemd units and the crontab for the home, with its
paths and this installation's stagectl filled in, and a credentials file only its owner
can read."""

from __future__ import annotations

import stat
from pathlib import Path

from stagectl.services.home.units import JOBS, installed_stagectl
from tests.conftest import Run

UNITS = [
    "stagectl-run-live.service",
    "stagectl-telegram.service",
    "stagectl-alert@.service",
    *(f"stagectl-{job.name}.{kind}" for job in JOBS for kind in ("service", "timer")),
]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _setting(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_with_units_writes_every_unit_and_the_crontab_with_the_real_paths(
    run: Run, home: Path
) -> None:
    result = run(["init", "--with-units", "--mail-to", "desk@example.com", "--json"])
    assert result.exit_code == 0, result.stderr
    units = result.json()["units"]
    assert units["written"] == [f"deploy/{name}" for name in [*UNITS, "crontab"]]
    stagectl = str(installed_stagectl())
    env_file = str(home / "stagectl.env")
    for name in UNITS:
        text = (home / "deploy" / name).read_text()
        assert "@" not in text.replace("stagectl-alert@", ""), name  # no placeholder left
        if name.endswith(".service"):
            assert _setting(text, "WorkingDirectory") == [str(home)]
            assert _setting(text, "ExecStart")[0].split()[0] == stagectl
            assert _setting(text, "EnvironmentFile")[0].removeprefix("-") == env_file
    live = (home / "deploy" / "stagectl-run-live.service").read_text()
    assert _setting(live, "ExecStart") == [
        f"{stagectl} run-live --live --exchange binanceusdm --yes --metrics-port 9464"
    ]
    assert _setting(live, "Restart") == ["always"]
    assert _setting(live, "SuccessExitStatus") == ["130"]  # SIGTERM -> 130, a clean stop
    assert _setting(live, "KillSignal") == ["SIGTERM"]
    guard = (home / "deploy" / "stagectl-risk-guard.service").read_text()
    assert _setting(guard, "ExecStart") == [
        f"{stagectl} risk-guard --live --out {home}/reports/risk-guard-live.json "
        f"--metrics-file {home}/metrics/risk-guard-live.prom"
    ]
    assert (home / "metrics").is_dir()  # init made the textfile directory the units write
    bot = (home / "deploy" / "stagectl-telegram.service").read_text()
    assert _setting(bot, "ExecStart") == [f"{stagectl} telegram serve"]
    assert _setting(bot, "SuccessExitStatus") == ["130"]
    assert _setting(guard, "SuccessExitStatus") == ["1 130"]  # 1 is the guard's own alert
    assert _setting(guard, "OnFailure") == ["stagectl-alert@%n.service"]
    timers = {
        job.name: (home / "deploy" / f"stagectl-{job.name}.timer").read_text() for job in JOBS
    }
    assert _setting(timers["risk-guard"], "OnCalendar") == ["*-*-* *:00:00 UTC"]
    assert _setting(timers["weekly"], "OnCalendar") == ["Mon *-*-* 00:00:00 UTC"]
    assert _setting(timers["daily"], "OnCalendar") == ["*-*-* 02:00:00 UTC"]
    assert _setting(timers["funding-scan"], "OnCalendar") == ["*-*-* *:05:00 UTC"]
    assert _setting(timers["health"], "OnCalendar") == ["*-*-* *:00/15:00 UTC"]
    assert _setting(timers["attribution"], "OnCalendar") == ["*-*-* 23:55:00 UTC"]
    health = (home / "deploy" / "stagectl-health.service").read_text()
    assert _setting(health, "ExecStart") == [
        f"{stagectl} health --out {home}/reports/health.json --unsigned "
        f"--metrics-file {home}/metrics/health.prom"
    ]
    assert _setting(health, "SuccessExitStatus") == ["130"]  # a failing check pages
    daily = (home / "deploy" / "stagectl-daily.service").read_text()
    assert _setting(daily, "ExecStart") == [
        f"{stagectl} daily --out {home}/reports/daily-latest.json --unsigned "
        f"--metrics-file {home}/metrics/daily.prom"
    ]
    # the daily chain sends no alert of its own: its 1 (a failed check) fails the unit
    assert _setting(daily, "SuccessExitStatus") == ["130"]
    assert _setting(daily, "OnFailure") == ["stagectl-alert@%n.service"]
    crontab = (home / "deploy" / "crontab").read_text()
    assert {"CRON_TZ=UTC", "MAILTO=desk@example.com", f"STAGECTL_HOME={home}"} <= set(
        crontab.splitlines()
    )
    jobs = [line for line in crontab.splitlines() if line[:1].isdigit() or line[:1] == "*"]
    assert len(jobs) == len(JOBS)
    assert all(f" {stagectl} " in line and f". {env_file} " in line for line in jobs)
    assert units["install"]["cron"] == [f"crontab {home}/deploy/crontab"]
    assert units["install"]["systemd"][0].startswith(f"systemctl --user link {home}/deploy/")


def test_the_credentials_file_is_created_owner_only_and_kept_on_the_next_run(
    run: Run, home: Path
) -> None:
    assert run(["init", "--with-units"]).exit_code == 0
    env_file = home / "stagectl.env"
    assert _mode(env_file) == 0o600
    env_file.write_text("FUTURES_TELEGRAM_BOT_TOKEN=123:abc\n")
    (home / "deploy" / "crontab").write_text("# edited\n")
    again = run(["init", "--with-units", "--json"])
    assert again.exit_code == 0, again.stderr
    assert again.json()["units"]["env_file_created"] is False
    assert env_file.read_text() == "FUTURES_TELEGRAM_BOT_TOKEN=123:abc\n"
    assert "CRON_TZ=UTC" in (home / "deploy" / "crontab").read_text()  # rewritten


def test_a_credentials_file_readable_by_others_is_refused_before_anything_is_written(
    run: Run, home: Path
) -> None:
    env_file = home / "stagectl.env"
    env_file.write_text("FUTURES_TELEGRAM_BOT_TOKEN=123:abc\n")
    env_file.chmod(0o644)
    result = run(["init", "--with-units"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"stagectl: {env_file}: holds credentials but is open to group or others (mode "
        f"0644): run chmod 600 {env_file}, then init --with-units again"
    )
    assert sorted(p.name for p in home.iterdir()) == ["stagectl.env"]
    assert "123:abc" not in result.stdout + result.stderr
    env_file.chmod(0o600)
    assert run(["init", "--with-units"]).exit_code == 0


def test_a_home_path_the_units_cannot_name_unquoted_is_refused(run: Run, home: Path) -> None:
    spaced = home / "my desk"
    result = run(["init", str(spaced), "--with-units"])
    assert result.exit_code == 2
    assert "must be an absolute path of letters" in result.stderr
    assert not spaced.exists()


def test_mail_to_needs_with_units(run: Run, home: Path) -> None:
    result = run(["init", "--mail-to", "desk@example.com"])
    assert result.exit_code == 2
    assert "--mail-to only applies with --with-units" in result.stderr
    assert not (home / "config").exists()


def test_init_without_units_writes_none(run: Run, home: Path) -> None:
    result = run(["init", "--json"])
    assert result.json()["units"] is None
    assert not (home / "deploy").exists() and not (home / "stagectl.env").exists()
