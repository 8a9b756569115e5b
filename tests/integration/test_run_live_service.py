"""stagectl-run-live.service's command as systemd runs it (its ExecStart, Environment=,
EnvironmentFile= and WorkingDirectory=), against the loopback exchange simulator: SIGTERM
stops it with exit 130, the status the unit counts as a clean stop, and the next start
(Restart=always) resumes the run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stagectl.config.home import Home
from stagectl.services.home.units import ENV_FILE, RUN_LIVE_UNIT
from stagectl.state import runs
from stagectl.state.db import open_state
from tests.conftest import invoke_cli
from tests.exchange_sim import API_KEY, API_SECRET, ExchangeSim
from tests.integration.test_run_live_ccxt import fresh_account, loopback_sim
from tests.loopback_http import free_port


def _settings(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def _service_env(home: Path, settings: dict[str, list[str]]) -> dict[str, str]:
    """What systemd gives the service: Environment= and the EnvironmentFile='s NAME=value
    lines over a bare environment (PYTHONPATH only when the test run has one)."""
    env = {"PATH": "/usr/bin:/bin"}
    for assignments in settings["Environment"]:
        env.update(item.split("=", 1) for item in assignments.split())  # type: ignore[arg-type]
    (env_file,) = settings["EnvironmentFile"]
    for line in Path(env_file).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split("=", 1)
            env[name] = value
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def _live_run_status(home: Path) -> str | None:
    with open_state(Home(root=home).state_path) as db:
        found = runs.list_runs(db, mode="live", limit=1)
    return found[0].status if found else None


def _wait(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 120  # only against a hang: nothing here is timed
    while not condition():
        assert process.poll() is None, f"exited before {what}: {process.communicate()[1]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _start(argv: list[str], env: dict[str, str], cwd: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_sigterm_stops_the_service_cleanly_and_a_restart_resumes_the_run(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    assert invoke_cli(["init", home, "--with-units"]).exit_code == 0
    with (home / ENV_FILE).open("a") as env_file:  # the credentials, as the desk adds them
        env_file.write(
            f"STAGECTL_EXCHANGE_API_KEY={API_KEY}\nSTAGECTL_EXCHANGE_API_SECRET={API_SECRET}\n"
        )
    settings = _settings((home / "deploy" / RUN_LIVE_UNIT).read_text())
    assert "130" in settings["SuccessExitStatus"][0].split()
    assert settings["KillSignal"] == ["SIGTERM"]
    env = _service_env(home, settings)
    (cwd,) = settings["WorkingDirectory"]
    with loopback_sim() as sim_server:
        sim: ExchangeSim = fresh_account(sim_server)
        # the unit's command, pointed at the simulator; the simulator's clock stands still,
        # so the loop waits for its first bar to close until the signal comes
        argv = [*settings["ExecStart"][0].split(), "--base-url", sim.base_url]
        # its metrics on a free port: the unit's fixed one may be taken by another run of
        # this suite on the same machine
        argv[argv.index("--metrics-port") + 1] = str(free_port())
        first = _start(argv, env, cwd)
        _wait(lambda: _live_run_status(home) == "running", first, "the run started")
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=300)
        assert first.returncode == 130, stderr
        assert f"signal {signal.SIGTERM.value}: finishing the current bar" in stderr
        assert "Traceback" not in stderr and API_SECRET not in stderr
        assert _live_run_status(home) == "aborted"

        again = _start(argv, env, cwd)  # Restart=always: the same command again
        _wait(lambda: _live_run_status(home) == "running", again, "the run resumed")
        again.send_signal(signal.SIGTERM)
        _, stderr = again.communicate(timeout=300)
    assert again.returncode == 130, stderr
    assert "(live, resumed)" in stderr
