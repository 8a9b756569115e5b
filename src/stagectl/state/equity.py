"""Equity snapshots: the account curve per run, one row per bar step.

These are analytics series (floats): the exact money lives in the fill ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stagectl.state._codec import filters, json_text, parse_json, parse_ts, ts_text
from stagectl.state.db import StateDB


@dataclass(frozen=True)
class EquitySnapshot:
    run_id: str
    ts: datetime
    equity: float
    realized: float = 0.0
    unrealized: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    sleeves: Mapping[str, Any] = field(default_factory=dict)


def record_snapshots(db: StateDB, snapshots: Iterable[EquitySnapshot]) -> int:
    """Insert or replace snapshots keyed by (run_id, ts) in one transaction.

    Writing the same bar again (a restarted bar step) replaces it. Returns
    the number of rows written.
    """
    rows = [
        (
            s.run_id,
            ts_text(s.ts),
            float(s.equity),
            float(s.realized),
            float(s.unrealized),
            float(s.fees),
            float(s.funding),
            json_text(dict(s.sleeves)),
        )
        for s in snapshots
    ]
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO equity_snapshots (run_id, ts, equity, realized, unrealized, fees,"
            " funding, sleeves_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, ts) DO UPDATE SET equity = excluded.equity,"
            " realized = excluded.realized, unrealized = excluded.unrealized,"
            " fees = excluded.fees, funding = excluded.funding,"
            " sleeves_json = excluded.sleeves_json",
            rows,
        )
    return len(rows)


def snapshots(
    db: StateDB,
    run_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[EquitySnapshot]:
    """A run's snapshots in time order, ``start <= ts < end``."""
    where, params = filters({"run_id": run_id}, start, end)
    sql = (
        "SELECT run_id, ts, equity, realized, unrealized, fees, funding, sleeves_json"
        f" FROM equity_snapshots WHERE 1 = 1{where} ORDER BY ts"
    )
    return [_snapshot(row) for row in db.conn.execute(sql, params)]


def snapshots_after(db: StateDB, run_id: str, after_id: int) -> list[tuple[int, EquitySnapshot]]:
    """The run's snapshots inserted after row ``after_id``, with their row ids, in insertion
    order (a bar rewritten in place keeps its row id and is not returned again). The row
    id range is the search (``+run_id`` keeps SQLite off the run index)."""
    sql = (
        "SELECT id, run_id, ts, equity, realized, unrealized, fees, funding, sleeves_json"
        " FROM equity_snapshots WHERE id > ? AND +run_id = ? ORDER BY id"
    )
    return [(row[0], _snapshot(row[1:])) for row in db.conn.execute(sql, (after_id, run_id))]


def _snapshot(row: tuple[Any, ...]) -> EquitySnapshot:
    return EquitySnapshot(
        run_id=row[0],
        ts=parse_ts(row[1]),
        equity=row[2],
        realized=row[3],
        unrealized=row[4],
        fees=row[5],
        funding=row[6],
        sleeves=parse_json(row[7]),
    )


def last_snapshot_ts(db: StateDB, run_id: str) -> datetime | None:
    """The time of a run's latest equity snapshot (its last completed bar step)."""
    row = db.conn.execute(
        "SELECT max(ts) FROM equity_snapshots WHERE run_id = ?", (run_id,)
    ).fetchone()
    return None if row is None or row[0] is None else parse_ts(row[0])


def snapshot_times(db: StateDB, run_id: str) -> list[datetime]:
    """The times of a run's snapshots (its bar closes), in time order."""
    rows = db.conn.execute(
        "SELECT ts FROM equity_snapshots WHERE run_id = ? ORDER BY ts", (run_id,)
    ).fetchall()
    return [parse_ts(row[0]) for row in rows]


def last_snapshot(db: StateDB, run_id: str) -> EquitySnapshot | None:
    """A run's latest equity snapshot (its last completed bar step)."""
    row = db.conn.execute(
        "SELECT run_id, ts, equity, realized, unrealized, fees, funding, sleeves_json"
        " FROM equity_snapshots WHERE run_id = ? ORDER BY ts DESC LIMIT 1",
        (run_id,),
    ).fetchone()
    return None if row is None else _snapshot(row)


def peak_equity(db: StateDB, run_id: str) -> float | None:
    """The highest equity of a run's snapshots (its drawdown's reference)."""
    row = db.conn.execute(
        "SELECT max(equity) FROM equity_snapshots WHERE run_id = ?", (run_id,)
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])
