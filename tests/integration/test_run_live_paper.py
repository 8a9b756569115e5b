"""run-live on the paper broker, replayed from the bundled data (seeds 002, 003)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stagectl.config.home import Home
from stagectl.config.loader import load_strategy
from stagectl.domain.backtest import run_backtest
from stagectl.exchange.paper import PaperBroker
from stagectl.services.live import analyze as artifacts_analyze
from stagectl.services.live import run as service
from stagectl.services.live.artifacts import ARTIFACT_FILES
from stagectl.services.strategy.sleeves import build_sleeves
from stagectl.state.db import open_state
from stagectl.state.equity import snapshots
from stagectl.state.journal import events
from stagectl.state.ledger import fills
from tests.conftest import skip_when_ignored

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 30, 23, tzinfo=UTC)
SHORT_END = datetime(2026, 3, 5, 23, tzinfo=UTC)


def _home(root: Path) -> Home:
    root.mkdir(parents=True, exist_ok=True)
    return Home(root=root)


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, service.RunLiveResult]:
    home = _home(tmp_path_factory.mktemp("run-live") / "home")
    # no breakers, no in-loop guard: the run must hold the plain backtest's positions
    request = service.RunLiveRequest(start=START, end=END, breakers=False, guard=False)
    result = service.run(request, home=home)
    return home, result


def test_thirty_day_paper_run_holds_the_backtest_positions_bar_for_bar(
    month: tuple[Home, service.RunLiveResult],
) -> None:
    home, result = month
    assert result.status == "completed" and result.bars == 720
    config, _ = load_strategy(home)
    specs, _ = build_sleeves(config, None, START, END)
    backtest = run_backtest(specs, initial_equity=config.initial_equity_usd)
    with open_state(result.state_path) as db:
        rows = snapshots(db, result.run_id)
        checks = events(db, run_id=result.run_id, event_type="signal_check")
    assert len(rows) == 720
    for symbol in backtest.positions.columns:
        expected = np.sign(backtest.positions[symbol].to_numpy())
        book = np.array([row.sleeves[symbol]["state"] for row in rows])
        target = np.array([row.sleeves[symbol]["position"] for row in rows])
        assert (book == expected).all(), symbol
        assert (np.sign(target) == expected).all(), symbol
        assert np.abs(expected).sum() > 0, "the window should hold positions"
    assert len(checks) == 1440
    assert all(e.payload["paper"] == e.payload["replay"] for e in checks)  # type: ignore[index]


def test_reconciliation_holds_within_a_cent_at_every_snapshot(
    month: tuple[Home, service.RunLiveResult],
) -> None:
    _, result = month
    with open_state(result.state_path) as db:
        recon = events(db, run_id=result.run_id, event_type="RECONCILIATION")
        run_fills = fills(db, run_id=result.run_id)
    assert len(recon) == 720 and run_fills
    for event in recon:
        payload = event.payload or {}
        assert abs(payload["drift_usd"]) <= 0.01
        identity = (
            payload["initial"]
            + payload["realized"]
            + payload["unrealized"]
            - payload["fees"]
            - payload["funding"]
        )
        assert identity == pytest.approx(float(payload["equity_broker"]), abs=0.01)
    assert result.max_abs_drift_usd <= 0.01
    assert any((e.payload or {})["funding"] != 0 for e in recon), "funding must be charged"


def test_artifacts_are_written_and_analyze_answers_yes(
    month: tuple[Home, service.RunLiveResult],
) -> None:
    home, result = month
    assert sorted(p.name for p in result.artifacts_dir.iterdir()) == sorted(ARTIFACT_FILES)
    analysis = artifacts_analyze.run(artifacts_analyze.AnalyzeRequest(result.run_id), home=home)
    answers = {a.question: a.answer for a in analysis.answers}
    assert analysis.passed, analysis.body()
    assert answers[artifacts_analyze.QUESTIONS[1]] == "yes"  # stage3 caps size ETH and SOL down


def _straight(tmp_path: Path) -> list[tuple[datetime, float]]:
    home = _home(tmp_path / "straight")
    result = service.run(service.RunLiveRequest(start=START, end=SHORT_END), home=home)
    with open_state(result.state_path) as db:
        return [(s.ts, s.equity) for s in snapshots(db, result.run_id)]


def test_stopped_run_resumes_without_duplicate_orders_or_lost_fills(tmp_path: Path) -> None:
    home = _home(tmp_path / "resumed")
    calls = {"n": 0}

    def stop_after_30() -> bool:
        calls["n"] += 1
        return calls["n"] >= 30

    first = service.run(
        service.RunLiveRequest(start=START, end=SHORT_END), home=home, should_stop=stop_after_30
    )
    assert (first.status, first.bars) == ("aborted", 30)
    second = service.run(service.RunLiveRequest(), home=home)
    assert second.resumed and second.run_id == first.run_id
    assert (second.status, second.bars) == ("completed", 120 - 30)
    _assert_clean(second, tmp_path)


def _assert_clean(result: service.RunLiveResult, tmp_path: Path) -> None:
    with open_state(result.state_path) as db:
        ids = [
            r[0]
            for r in db.conn.execute(
                "SELECT client_order_id FROM orders WHERE run_id = ?", (result.run_id,)
            )
        ]
        paper_fills = db.conn.execute(
            "SELECT count(*) FROM paper_records WHERE account = ? AND kind = 'fill'",
            (f"paper:{result.run_id}",),
        ).fetchone()[0]
        ledger_fills = fills(db, run_id=result.run_id)
        series = [(s.ts, s.equity) for s in snapshots(db, result.run_id)]
    assert len(ids) == len(set(ids))
    assert len(ledger_fills) == paper_fills > 0
    assert series == _straight(tmp_path)


class CrashingBroker(PaperBroker):
    """A paper broker whose process dies around the n-th order it is sent."""

    crash_at = 3
    after_accepting = True

    def place(self, request: Any) -> Any:
        type(self).sent = getattr(type(self), "sent", 0) + 1
        if type(self).sent == self.crash_at:
            if self.after_accepting:
                super().place(request)
            raise KeyboardInterrupt("simulated crash")
        return super().place(request)


@pytest.mark.parametrize("after_accepting", [True, False])
def test_crash_between_recording_an_order_and_its_ack_sends_it_once(
    tmp_path: Path, after_accepting: bool
) -> None:
    home = _home(tmp_path / "crash")
    CrashingBroker.sent = 0  # type: ignore[attr-defined]
    CrashingBroker.after_accepting = after_accepting
    with pytest.raises(KeyboardInterrupt):
        service.run(
            service.RunLiveRequest(start=START, end=SHORT_END),
            home=home,
            broker_factory=CrashingBroker,
        )
    with open_state(home.state_path) as db:
        (pending,) = db.conn.execute("SELECT count(*) FROM orders WHERE status = 'new'").fetchone()
    # the bar's answers are recorded together after its sends: the crash leaves the
    # orders sent earlier in that bar and the one being sent recorded but unacknowledged
    assert pending >= 1
    resumed = service.run(service.RunLiveRequest(), home=home)
    assert resumed.resumed and resumed.status == "completed"
    assert resumed.orders_recovered == pending - (0 if after_accepting else 1)
    _assert_clean(resumed, tmp_path)


def test_sigint_finishes_the_bar_writes_artifacts_and_exits_130(tmp_path: Path) -> None:
    skip_when_ignored(signal.SIGINT)
    home = _home(tmp_path / "sigint")
    env = {**os.environ, "STAGECTL_HOME": str(home.root), "NO_COLOR": "1"}
    env.pop("STAGECTL_STATE", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stagectl",
            "run-live",
            "--start",
            "2026-03-01",
            "--end",
            "2026-03-30",
            "--speed",
            "7200x",
            "--json",
        ],
        cwd=home.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not list(home.artifacts_dir.glob("*")) and not _snapshot_count(home):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    import json

    summary = json.loads(stdout)
    assert summary["status"] == "aborted" and 0 < summary["bars"] < 720
    written = sorted(p.name for p in Path(summary["artifacts"]).iterdir())
    assert written == sorted(ARTIFACT_FILES)


def _snapshot_count(home: Home) -> int:
    path = home.state_path
    if not path.exists():
        return 0
    import sqlite3

    try:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("SELECT count(*) FROM equity_snapshots").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_paper_book_and_ledger_agree_on_cash(month: tuple[Home, service.RunLiveResult]) -> None:
    _, result = month
    with open_state(result.state_path) as db:
        row = db.conn.execute(
            "SELECT book_json FROM paper_books WHERE account = ?", (f"paper:{result.run_id}",)
        ).fetchone()
    import json

    book = json.loads(row[0])
    assert Decimal(book["initial"]) == Decimal("10000.0")
    assert result.equity is not None and abs(result.equity - 10_000) < 1_000
