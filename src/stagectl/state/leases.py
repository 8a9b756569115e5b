"""Run leases: which process drives a run (``run_leases``, migration ``0016_run_leases``).

A lease is taken in one write transaction that reads the current row first: under the
write lock of either backend (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's advisory lock) two
run-live processes cannot both see the run free. Times are the holder's wall clock (hosts
keep NTP time; the lease's length dwarfs their skew).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from stagectl.state._codec import parse_ts, ts_text
from stagectl.state.db import Connection, StateDB

_COLUMNS = "run_id, holder, host, pid, acquired_at, renewed_at, expires_at"


@dataclass(frozen=True)
class Lease:
    run_id: str
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime


class LeaseHeld(Exception):
    """Another holder's lease on the run is live."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(f"run {lease.run_id} is leased to {lease.holder}")
        self.lease = lease


def get_lease(db: StateDB, run_id: str) -> Lease | None:
    row = db.conn.execute(f"SELECT {_COLUMNS} FROM run_leases WHERE run_id = ?", (run_id,))
    found = row.fetchone()
    return None if found is None else _lease(found)


def lease_holder(conn: Connection, run_id: str) -> str | None:
    """Who holds the run's lease now (read on ``conn``, e.g. inside a write transaction)."""
    found = conn.execute("SELECT holder FROM run_leases WHERE run_id = ?", (run_id,)).fetchone()
    return None if found is None else str(found[0])


def acquire_lease(
    db: StateDB,
    run_id: str,
    *,
    holder: str,
    host: str,
    pid: int,
    now: datetime,
    ttl: timedelta,
    abandoned: Callable[[Lease], bool] = lambda lease: False,
) -> Lease:
    """Take the run's lease for ``holder`` until ``now + ttl``.

    Raises LeaseHeld when another holder's lease has not expired and is not
    ``abandoned`` (its process is known to be gone). The holder's own lease is renewed."""
    with db.transaction() as conn:
        current = get_lease(db, run_id)
        if (
            current is not None
            and current.holder != holder
            and current.expires_at > now
            and not abandoned(current)
        ):
            raise LeaseHeld(current)
        conn.execute(
            f"INSERT INTO run_leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id) DO UPDATE SET holder = excluded.holder,"
            " host = excluded.host, pid = excluded.pid, acquired_at = excluded.acquired_at,"
            " renewed_at = excluded.renewed_at, expires_at = excluded.expires_at",
            (run_id, holder, host, pid, ts_text(now), ts_text(now), ts_text(now + ttl)),
        )
    return Lease(run_id, holder, host, pid, now, now, now + ttl)


def renew_lease(db: StateDB, run_id: str, *, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Extend ``holder``'s lease to ``now + ttl``; False when it is no longer theirs."""
    with db.transaction() as conn:
        cursor = conn.execute(
            "UPDATE run_leases SET renewed_at = ?, expires_at = ? WHERE run_id = ? AND holder = ?",
            (ts_text(now), ts_text(now + ttl), run_id, holder),
        )
    return cursor.rowcount == 1


def release_lease(db: StateDB, run_id: str, *, holder: str) -> None:
    """Give the lease up (only ``holder``'s own)."""
    with db.transaction() as conn:
        conn.execute("DELETE FROM run_leases WHERE run_id = ? AND holder = ?", (run_id, holder))


def _lease(row: tuple[object, ...]) -> Lease:
    return Lease(
        run_id=str(row[0]),
        holder=str(row[1]),
        host=str(row[2]),
        pid=int(str(row[3])),
        acquired_at=parse_ts(str(row[4])),
        renewed_at=parse_ts(str(row[5])),
        expires_at=parse_ts(str(row[6])),
    )
