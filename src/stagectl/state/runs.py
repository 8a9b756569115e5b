"""Runs: one row per invocation that trades, backtests, replays or guards."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from stagectl.state._codec import opt_parse_ts, opt_ts_text, parse_ts, ts_text
from stagectl.state.db import StateDB

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


def start_run(db: StateDB, run: Run) -> None:
    """Record a run. A run id that already exists is an error (ids are unique per run)."""
    if run.mode not in RUN_MODES:
        raise ValueError(f"run mode must be one of {RUN_MODES}, got {run.mode!r}")
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO runs (run_id, kind, mode, config_path, config_sha256, started_at,"
            " ended_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.run_id,
                run.kind,
                run.mode,
                run.config_path,
                run.config_sha256,
                ts_text(run.started_at),
                opt_ts_text(run.ended_at),
                run.status,
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


def get_run(db: StateDB, run_id: str) -> Run | None:
    row = db.conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else _run(row)


def list_runs(db: StateDB, *, kind: str | None = None, limit: int = 100) -> list[Run]:
    """The most recent runs first."""
    sql = f"SELECT {_COLUMNS} FROM runs"
    params: list[object] = []
    if kind is not None:
        sql += " WHERE kind = ?"
        params.append(kind)
    sql += " ORDER BY started_at DESC, run_id LIMIT ?"
    params.append(limit)
    return [_run(row) for row in db.conn.execute(sql, params)]


_COLUMNS = "run_id, kind, mode, config_path, config_sha256, started_at, ended_at, status"


def _run(row: sqlite3.Row | tuple[object, ...]) -> Run:
    run_id, kind, mode, config_path, config_sha256, started_at, ended_at, status = row
    return Run(
        run_id=str(run_id),
        kind=str(kind),
        mode=str(mode),
        config_path=None if config_path is None else str(config_path),
        config_sha256=None if config_sha256 is None else str(config_sha256),
        started_at=parse_ts(str(started_at)),
        ended_at=opt_parse_ts(None if ended_at is None else str(ended_at)),
        status=str(status),
    )
