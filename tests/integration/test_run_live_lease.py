"""One driver per run: run-live's lease, on SQLite and on PostgreSQL.

A paper run replayed from the bundled data runs on both backends; a second run-live for a
run whose lease another host holds refuses (exit 3) until that lease expires, then takes
the run over and finishes it; a lease left by a process of this host that is gone (a
SIGKILL) is taken over at once."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation
from stagectl.errors import ExternalError
from stagectl.services.live import run as service
from stagectl.services.live.lease import LEASE_ENV, RunLease
from stagectl.state.db import StateDB, open_state
from stagectl.state.equity import snapshots
from stagectl.state.leases import acquire_lease, get_lease
from stagectl.state.runs import Run, start_run

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, 23, tzinfo=UTC)
BARS = 72


def _home(tmp_path: Path, state: StateLocation) -> Home:
    root = tmp_path / "home"
    root.mkdir(exist_ok=True)
    return Home(root=root, state_override=state)


def _request(**changes: object) -> service.RunLiveRequest:
    values: dict[str, object] = {"start": START, "end": END, "breakers": False, "guard": False}
    values.update(changes)
    return service.RunLiveRequest(**values)  # type: ignore[arg-type]


def _stopped_after_one_bar(home: Home) -> str:
    """A run that stopped after its first bar (as after Ctrl-C): aborted, resumable."""
    steps: list[object] = []
    result = service.run(
        _request(), home=home, should_stop=lambda: bool(steps), on_step=lambda *s: steps.append(s)
    )
    assert result.status == "aborted"
    return result.run_id


def test_a_paper_run_runs_on_either_backend_and_gives_its_lease_back(
    tmp_path: Path, state_url: StateLocation
) -> None:
    home = _home(tmp_path, state_url)
    result = service.run(_request(), home=home)
    assert result.status == "completed" and result.bars == BARS
    with open_state(state_url) as db:
        assert len(snapshots(db, result.run_id)) == BARS
        assert get_lease(db, result.run_id) is None


def test_a_second_driver_refuses_while_the_lease_lives_and_takes_over_after_it_expires(
    tmp_path: Path, state_url: StateLocation
) -> None:
    home = _home(tmp_path, state_url)
    run_id = _stopped_after_one_bar(home)
    now = datetime.now(UTC)
    with open_state(state_url) as db:  # another host drives the run now
        acquire_lease(
            db, run_id, holder="host-b:4242:beef", host="host-b", pid=4242, now=now,
            ttl=timedelta(seconds=60),
        )  # fmt: skip

    with pytest.raises(ExternalError) as refused:
        service.run(_request(resume=run_id), home=home, wall_clock=lambda: now)
    assert refused.value.exit_code == 3
    assert f"run {run_id} is driven by another run-live (host-b, pid 4242)" in str(refused.value)
    with open_state(state_url) as db:
        assert get_lease(db, run_id).holder == "host-b:4242:beef"  # type: ignore[union-attr]
        assert len(snapshots(db, run_id)) == 1  # the refused process wrote nothing

    later = now + timedelta(seconds=61)
    result = service.run(_request(resume=run_id), home=home, wall_clock=lambda: later)
    assert result.status == "completed" and result.resumed
    with open_state(state_url) as db:
        assert len(snapshots(db, run_id)) == BARS
        assert get_lease(db, run_id) is None


def test_a_lease_whose_process_on_this_host_is_gone_is_taken_over_at_once(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.db"
    home = _home(tmp_path, state)
    run_id = _stopped_after_one_bar(home)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    now = datetime.now(UTC)
    with open_state(state) as db:
        acquire_lease(
            db, run_id, holder=f"{socket.gethostname()}:{pid}:dead", host=socket.gethostname(),
            pid=pid, now=now, ttl=timedelta(hours=1),
        )  # fmt: skip
    result = service.run(_request(resume=run_id), home=home, wall_clock=lambda: now)
    assert result.status == "completed" and result.resumed


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a background thread's effect (a deadline against a hang, not a timing)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_the_heartbeat_renews_the_lease_and_notices_a_takeover(
    tmp_path: Path, state_url: StateLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEASE_ENV, "1")  # a beat every third of a second
    ticks = itertools.count()
    clock = lambda: START + timedelta(seconds=next(ticks))  # noqa: E731 - a moving clock
    with open_state(state_url) as db:
        start_run(db, Run("r1", "run-live", "paper", started_at=START))
        lease = RunLease.take(db, state_url, "r1", clock)
        try:
            first = get_lease(db, "r1")
            assert first is not None and first.holder == lease.holder
            _until(lambda: get_lease(db, "r1").renewed_at > first.renewed_at, "a renewal")  # type: ignore[union-attr]
            assert not lease.lost
            acquire_lease(  # another driver takes the run over (as after an expiry)
                db, "r1", holder="host-b:1:x", host="host-b", pid=1, now=clock(),
                ttl=timedelta(minutes=1), abandoned=lambda _: True,
            )  # fmt: skip
            _until(lambda: lease.lost, "the heartbeat to notice the takeover")
        finally:
            lease.release(db)
        assert get_lease(db, "r1").holder == "host-b:1:x"  # type: ignore[union-attr]


def test_a_driver_that_lost_its_lease_mid_run_writes_not_one_more_bar(
    tmp_path: Path, state_url: StateLocation
) -> None:
    """Per-bar fencing: the driver paused past its expiry (here: between two bars) and
    another host took the run over. Its heartbeat has not noticed yet (a beat every 20 s);
    the next bar's first write transaction reads the lease and refuses."""
    home = _home(tmp_path, state_url)
    steps: list[object] = []

    def another_host_takes_over(*step: object) -> None:
        steps.append(step)
        if len(steps) == 3:
            with open_state(state_url) as db:
                acquire_lease(
                    db, result_run_id(db), holder="host-b:7:cafe", host="host-b", pid=7,
                    now=datetime.now(UTC), ttl=timedelta(hours=1), abandoned=lambda _: True,
                )  # fmt: skip

    with pytest.raises(ExternalError) as stopped:
        service.run(_request(), home=home, on_step=another_host_takes_over)
    assert stopped.value.exit_code == 3
    assert "another run-live took the run over" in str(stopped.value)
    with open_state(state_url) as db:
        run_id = result_run_id(db)
        assert len(snapshots(db, run_id)) == 3  # the bars before the takeover, none after
        assert get_lease(db, run_id).holder == "host-b:7:cafe"  # type: ignore[union-attr]


def result_run_id(db: StateDB) -> str:
    """The one run of the test's state."""
    (row,) = db.conn.execute("SELECT run_id FROM runs").fetchall()
    return str(row[0])
