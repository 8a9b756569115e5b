"""`stagectl state info`: where the state database is, its backend, server version,
schema version and contents.

A fast path: only sqlite3 is imported for a SQLite state (``open_state(path,
migrate=False)``; psycopg for a PostgreSQL one), and nothing in the database is created
or changed.

Entry: ``run(StateInfoRequest(), *, home) -> StateInfo``; the database is
``home.state_path``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation
from stagectl.state.db import DatabaseError, StateDB, open_state
from stagectl.state.migration_names import MIGRATION_NAMES
from stagectl.state.runs import RunSummary, run_summaries

ONE_STATE = "0007_one_state"
RUNS_SHOWN = 20


@dataclass(frozen=True)
class StateInfoRequest:
    """``state info`` takes no input but the home (``--home``, ``--state``)."""


@dataclass
class StateInfo:
    path: StateLocation
    backend: str
    server_version: str
    size_bytes: int
    wal_size_bytes: int
    journal_mode: str
    schema_version: int
    latest_version: int
    pending_migrations: list[str]
    unknown_migrations: list[str]
    row_counts: dict[str, int] = field(default_factory=dict)
    runs: list[RunSummary] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.unknown_migrations:
            return "newer than this stagectl"
        if self.pending_migrations:
            return "behind: run `stagectl init` to migrate"
        return "up to date"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "backend": self.backend,
            "server_version": self.server_version,
            "size_bytes": self.size_bytes,
            "wal_size_bytes": self.wal_size_bytes,
            "journal_mode": self.journal_mode,
            "schema": {
                "version": self.schema_version,
                "latest": self.latest_version,
                "pending": self.pending_migrations,
                "unknown": self.unknown_migrations,
                "status": self.status,
            },
            "tables": self.row_counts,
            "runs": [
                {
                    "run_id": s.run.run_id,
                    "kind": s.run.kind,
                    "mode": s.run.mode,
                    "account": s.run.account,
                    "status": s.run.status,
                    "started_at": s.run.started_at,
                    "ended_at": s.run.ended_at,
                    "equity_snapshots": s.snapshots,
                    "last_snapshot": s.last_snapshot,
                    "fills": s.fills,
                }
                for s in self.runs
            ],
        }


def run(request: StateInfoRequest, *, home: Home) -> StateInfo:
    """Inspect the home's state database without changing it."""
    with open_state(home.state_path, migrate=False) as db:
        try:
            return _inspect(db)
        except DatabaseError as error:
            translated = db.translate_error(error)
            if translated is error:
                raise
            raise translated from error


def _inspect(db: StateDB) -> StateInfo:
    applied = db.applied_migrations()
    size, wal = db.storage_bytes()
    return StateInfo(
        path=db.path if db.backend == "postgresql" else db.file.resolve(),
        backend=db.backend,
        server_version=db.server_version(),
        size_bytes=size,
        wal_size_bytes=wal,
        journal_mode=db.journal_mode(),
        schema_version=len(applied),
        latest_version=len(MIGRATION_NAMES),
        pending_migrations=[name for name in MIGRATION_NAMES if name not in applied],
        unknown_migrations=[name for name in applied if name not in MIGRATION_NAMES],
        row_counts=db.row_counts(),
        runs=_runs(db, applied),
    )


def _runs(db: StateDB, applied: list[str]) -> list[RunSummary]:
    """The latest runs; none from a schema too old to hold runs' modes and accounts."""
    if ONE_STATE not in applied:
        return []
    return run_summaries(db, limit=RUNS_SHOWN)
