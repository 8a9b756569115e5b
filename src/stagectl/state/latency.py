"""The run-live loop's time per bar (``loop_latency``, migration ``0017_loop_latency``).

One row per (run, bar): the open (read, decide, write ahead, send) and the settlement, in
milliseconds, without the waits for the market and for limit orders. A redone bar (a
restart) replaces its row. ``stagectl health`` reads the recent rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stagectl.state._codec import parse_ts, ts_text
from stagectl.state.db import StateDB


@dataclass(frozen=True)
class BarLatency:
    run_id: str
    bar_ts: datetime
    open_ms: float
    settle_ms: float
    recorded_at: datetime

    @property
    def total_ms(self) -> float:
        return self.open_ms + self.settle_ms


def record_latency(db: StateDB, latency: BarLatency) -> None:
    """Insert or replace the bar's row (in the caller's transaction, or its own)."""
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO loop_latency (run_id, bar_ts, open_ms, settle_ms, total_ms,"
            " recorded_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, bar_ts) DO UPDATE"
            " SET open_ms = excluded.open_ms, settle_ms = excluded.settle_ms,"
            " total_ms = excluded.total_ms, recorded_at = excluded.recorded_at",
            (
                latency.run_id,
                ts_text(latency.bar_ts),
                latency.open_ms,
                latency.settle_ms,
                latency.total_ms,
                ts_text(latency.recorded_at),
            ),
        )


def recent_latency(db: StateDB, run_id: str, bars: int) -> list[BarLatency]:
    """The run's last ``bars`` rows, newest first."""
    rows = db.conn.execute(
        "SELECT run_id, bar_ts, open_ms, settle_ms, recorded_at FROM loop_latency"
        " WHERE run_id = ? ORDER BY bar_ts DESC LIMIT ?",
        (run_id, bars),
    )
    return [
        BarLatency(r[0], parse_ts(r[1]), float(r[2]), float(r[3]), parse_ts(r[4])) for r in rows
    ]
