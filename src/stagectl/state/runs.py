"""Runs: one row per invocation that trades, backtests, replays or guards.

Paper and live runs share the state database: a run carries its ``mode`` (``paper`` or
``live``) and, for a trading run, its ``account`` (``paper:<run id>`` for a paper book,
the exchange id for a live one). Commands pick a run by id, or the latest of a mode.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from stagectl.domain.run_clock import RUN_STARTED, RunClockFacts
from stagectl.state import journal
from stagectl.state._codec import opt_parse_ts, opt_ts_text, parse_ts, ts_text
from stagectl.state.db import StateDB
from stagectl.state.equity import last_snapshot_ts

RUN_MODES = ("paper", "live")
RUN_STATUSES = ("running", "completed", "failed", "aborted")


@dataclass(frozen=True)
class Run:
    run_id: str
    kind: str
    mode: str
    started_at: datetime
    status: str = "running"
    config_path: str | None = None
    config_sha256: str | None = None
    ended_at: datetime | None = None
    account: str | None = None


def start_run(db: StateDB, run: Run) -> None:
    """Record a run. A run id that already exists is an error (ids are unique per run)."""
    if run.mode not in RUN_MODES:
        raise ValueError(f"run mode must be one of {RUN_MODES}, got {run.mode!r}")
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO runs (run_id, kind, mode, config_path, config_sha256, started_at,"
            " ended_at, status, account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.run_id,
                run.kind,
                run.mode,
                run.config_path,
                run.config_sha256,
                ts_text(run.started_at),
                opt_ts_text(run.ended_at),
                run.status,
                run.account,
            ),
        )


def finish_run(db: StateDB, run_id: str, *, status: str, ended_at: datetime) -> None:
    """Close a run with its final status; an unknown run id is an error."""
    if status not in RUN_STATUSES or status == "running":
        raise ValueError(f"a finished run's status is completed, failed or aborted: {status!r}")
    with db.transaction() as conn:
        cursor = conn.execute(
            "UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ?",
            (status, ts_text(ended_at), run_id),
        )
        if cursor.rowcount != 1:
            raise KeyError(f"no run {run_id!r}")


def reopen_run(db: StateDB, run_id: str) -> None:
    """Mark a run as running again (run-live ``--resume``); an unknown run is a KeyError."""
    with db.transaction() as conn:
        cursor = conn.execute(
            "UPDATE runs SET status = 'running', ended_at = NULL WHERE run_id = ?", (run_id,)
        )
        if cursor.rowcount != 1:
            raise KeyError(f"no run {run_id!r}")


def get_run(db: StateDB, run_id: str) -> Run | None:
    row = db.conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else _run(row)


def list_runs(
    db: StateDB, *, kind: str | None = None, mode: str | None = None, limit: int = 100
) -> list[Run]:
    """The most recent runs first, of one kind and mode when given."""
    sql = f"SELECT {_COLUMNS} FROM runs WHERE 1 = 1"
    params: list[object] = []
    for column, value in (("kind", kind), ("mode", mode)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    sql += " ORDER BY started_at DESC, run_id LIMIT ?"
    params.append(limit)
    return [_run(row) for row in db.conn.execute(sql, params)]


def latest_traded_run(db: StateDB, *, mode: str, before: datetime | None) -> str | None:
    """The run of ``mode`` with the latest equity snapshot (before ``before`` when given):
    the run trading now, or the one that traded last; None when no run of that mode has
    one."""
    sql = (
        "SELECT e.run_id FROM equity_snapshots e JOIN runs r ON r.run_id = e.run_id"
        " WHERE r.mode = ?"
    )
    params: list[object] = [mode]
    if before is not None:
        sql += " AND e.ts < ?"
        params.append(ts_text(before))
    row = db.conn.execute(sql + " ORDER BY e.ts DESC, e.run_id LIMIT 1", params).fetchone()
    return None if row is None else str(row[0])


def clock_facts(db: StateDB, run_id: str) -> RunClockFacts | None:
    """What decides a run's clock (``domain.run_clock``): its status, the parameters of
    its ``RUN_STARTED`` record and its last snapshot; None for an unknown run."""
    run = get_run(db, run_id)
    if run is None:
        return None
    started = journal.events(db, run_id=run_id, event_type=RUN_STARTED, limit=1)
    return RunClockFacts(
        run_id,
        run.status,
        None if not started else dict(started[0].payload or {}),
        last_snapshot_ts(db, run_id),
    )


@dataclass(frozen=True)
class RunSummary:
    """A run and what it has recorded: equity snapshots (and the last one's time), fills."""

    run: Run
    snapshots: int
    last_snapshot: datetime | None
    fills: int


def run_summaries(db: StateDB, *, limit: int = 20) -> list[RunSummary]:
    """The most recently started runs first, with their snapshot and fill counts."""
    rows = db.conn.execute(
        f"SELECT {_COLUMNS},"
        " (SELECT count(*) FROM equity_snapshots e WHERE e.run_id = runs.run_id),"
        " (SELECT max(ts) FROM equity_snapshots e WHERE e.run_id = runs.run_id),"
        " (SELECT count(*) FROM fills f WHERE f.run_id = runs.run_id)"
        " FROM runs ORDER BY started_at DESC, run_id LIMIT ?",
        (limit,),
    ).fetchall()
    width = len(_COLUMNS.split(","))
    return [
        RunSummary(
            _run(row[:width]),
            int(row[width]),
            opt_parse_ts(row[width + 1]),
            int(row[width + 2]),
        )
        for row in rows
    ]


_COLUMNS = "run_id, kind, mode, config_path, config_sha256, started_at, ended_at, status, account"


def _run(row: sqlite3.Row | tuple[object, ...]) -> Run:
    run_id, kind, mode, config_path, config_sha256, started_at, ended_at, status, account = row
    return Run(
        run_id=str(run_id),
        kind=str(kind),
        mode=str(mode),
        config_path=None if config_path is None else str(config_path),
        config_sha256=None if config_sha256 is None else str(config_sha256),
        started_at=parse_ts(str(started_at)),
        ended_at=opt_parse_ts(None if ended_at is None else str(ended_at)),
        status=str(status),
        account=None if account is None else str(account),
    )
