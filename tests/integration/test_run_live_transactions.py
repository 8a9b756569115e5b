"""run-live's transactions: no broker call while the state DB's write lock is held, and a
locked database is a transient condition the loop rides out."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation
from stagectl.exchange.paper import PaperBroker
from stagectl.services.live import run as service
from stagectl.state.db import open_state
from stagectl.state.equity import snapshots
from tests.brokers import GuardedBroker, WriteLockProbe

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 4, 23, tzinfo=UTC)


def test_the_probe_sees_a_write_transaction_of_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "stagectl.db"
    with open_state(path) as db:
        probe = WriteLockProbe(path)
        assert not probe.held()
        with db.transaction():
            assert probe.held()
        assert not probe.held()


def test_a_paper_run_never_calls_the_broker_inside_a_write_transaction(tmp_path: Path) -> None:
    home = Home(root=tmp_path)
    guarded: list[GuardedBroker] = []

    def factory(store: Any, **kwargs: Any) -> GuardedBroker:
        broker = GuardedBroker(PaperBroker(store, **kwargs), WriteLockProbe(home.state_path))
        guarded.append(broker)
        return broker

    result = service.run(
        service.RunLiveRequest(start=START, end=END, stop_limits=True),
        home=home,
        broker_factory=factory,
    )
    (broker,) = guarded
    assert result.status == "completed" and result.orders_sent > 0
    assert {"place", "fetch_order", "fills_since", "equity", "positions"} <= set(broker.calls)
    assert broker.inside_a_transaction == []


def test_a_database_locked_by_another_writer_delays_the_loop_but_every_bar_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_url: StateLocation
) -> None:
    """On either backend: SQLite's write lock, PostgreSQL's write advisory lock."""
    home = Home(root=tmp_path, state_override=state_url)
    monkeypatch.setenv("STAGECTL_BUSY_TIMEOUT_MS", "300")
    alerts: list[str] = []
    locker = _Locker(home.state_path, hold_s=0.5)

    def on_step(data: Any, outcome: Any) -> None:
        if data.index == 24:
            locker.start()
            assert locker.holding.wait(timeout=10)

    result = service.run(
        service.RunLiveRequest(start=START, end=END),
        home=home,
        on_step=on_step,
        on_alert=alerts.append,
    )
    locker.join()
    assert locker.held_s >= 0.5
    assert result.status == "completed"
    with open_state(home.state_path) as db:
        done = snapshots(db, result.run_id)
    assert len(done) == result.bars == 96
    retries = [alert for alert in alerts if "retrying" in alert]
    assert retries and all("locked" in alert for alert in retries)


class _Locker(threading.Thread):
    """Holds the write lock from another connection for ``hold_s`` seconds (a write
    transaction that writes nothing)."""

    def __init__(self, path: StateLocation, hold_s: float) -> None:
        super().__init__(daemon=True)
        self.path, self.hold_s, self.held_s = path, hold_s, 0.0
        self.holding = threading.Event()

    def run(self) -> None:
        with open_state(self.path, busy_timeout_ms=5000) as db, db.transaction():
            began = time.monotonic()
            self.holding.set()
            time.sleep(self.hold_s)
            self.held_s = time.monotonic() - began


@pytest.mark.slow
def test_a_million_fill_import_next_to_a_paper_run_lets_the_run_finish_every_bar(
    tmp_path: Path,
) -> None:
    """The two as an operator runs them: ``stagectl run-live`` and ``stagectl metrics
    import`` in two processes on one home, with the default busy timeout."""
    from tests.integration.test_ledger_import_merge import trades_csv

    home = tmp_path / "home"
    home.mkdir()
    fills_file = trades_csv(tmp_path / "million.csv", 1_000_000)
    env = {**os.environ, "STAGECTL_HOME": str(home), "NO_COLOR": "1"}
    for name in ("STAGECTL_STATE", "STAGECTL_BUSY_TIMEOUT_MS"):
        env.pop(name, None)
    stagectl = [sys.executable, "-m", "stagectl"]
    paper = subprocess.Popen(
        [*stagectl, "run-live", "--start", "2026-03-01", "--end", "2026-03-04T23:00Z",
         "--speed", "36000x", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    state_path = home / "state" / "stagectl.db"
    deadline = time.monotonic() + 60
    while not _has_a_snapshot(state_path):
        assert time.monotonic() < deadline and paper.poll() is None
        time.sleep(0.05)
    running_at_import_start = paper.poll() is None
    importing = subprocess.run(
        [*stagectl, "metrics", "import", str(fills_file), "--source", "acct", "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    stdout, stderr = paper.communicate(timeout=600)
    assert importing.returncode == 0, importing.stderr
    assert json.loads(importing.stdout)["inserted"] == 1_000_000
    assert paper.returncode == 0, stderr.decode()
    summary = json.loads(stdout)
    assert summary["status"] == "completed" and summary["bars"] == 96
    with open_state(state_path) as db:
        assert len(snapshots(db, summary["run_id"])) == 96
    assert running_at_import_start  # the import ran while the run was trading


def _has_a_snapshot(path: Path) -> bool:
    if not path.exists():
        return False
    conn = sqlite3.connect(path, timeout=5)
    try:
        return bool(conn.execute("SELECT count(*) FROM equity_snapshots").fetchone()[0])
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def test_the_cli_says_on_stderr_when_it_retries_a_locked_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stagectl.cli.main import main
    from stagectl.services.live import run as service

    # The lock is taken the moment the run's window is loaded, right before its first
    # write (the run's start): held 0.3 s against a 0.2 s busy timeout, that write is
    # refused once and retried, whatever the machine's load.
    monkeypatch.setenv("STAGECTL_HOME", str(tmp_path))
    monkeypatch.setenv("STAGECTL_BUSY_TIMEOUT_MS", "200")
    monkeypatch.delenv("STAGECTL_STATE", raising=False)
    open_state(tmp_path / "state" / "stagectl.db").close()
    locker = _Locker(tmp_path / "state" / "stagectl.db", hold_s=0.3)
    load_window = service._replay_feed

    def load_then_lock(config: Any, params: dict[str, Any]) -> Any:
        feed = load_window(config, params)
        locker.start()
        assert locker.holding.wait(timeout=10)
        return feed

    monkeypatch.setattr(service, "_replay_feed", load_then_lock)
    err = _stderr_of(main, ["run-live", "--start", "2026-03-01", "--end", "2026-03-01T05:00Z"])
    locker.join()
    assert "alert: " in err and "locked; retrying" in err


def _stderr_of(main: Any, args: list[str]) -> str:
    from typer.testing import CliRunner

    runner = CliRunner()
    with runner.isolation() as (_, err, _):
        code = main(args)
        text = err.getvalue().decode()
    assert code == 0, text
    return text
