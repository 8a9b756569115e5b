"""The notification log: when each alert was last sent, at which severity, and where.

One row per alert key (``notification_log``, migration ``0013_notification_log``),
replaced each time the alert goes out, so the guard that runs hourly in a new process
knows what it told the desk before. An alert that no channel delivered is not logged:
the next run tries again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from stagectl.state._codec import parse_ts, ts_text
from stagectl.state.db import StateDB


@dataclass(frozen=True)
class SentAlert:
    key: str
    severity: str
    sent_at: datetime
    channels: tuple[str, ...] = ()


def last_sent(db: StateDB, keys: Sequence[str]) -> dict[str, SentAlert]:
    """The log's row of each key that has one."""
    if not keys:
        return {}
    marks = ", ".join("?" * len(keys))
    rows = db.conn.execute(
        "SELECT alert_key, severity, sent_at, channels FROM notification_log"
        f" WHERE alert_key IN ({marks})",
        tuple(keys),
    )
    return {
        row[0]: SentAlert(row[0], row[1], parse_ts(row[2]), tuple(filter(None, row[3].split(","))))
        for row in rows
    }


def record_sent(db: StateDB, alerts: Iterable[SentAlert]) -> None:
    """Log the alerts as sent (each key's row replaced), in one transaction."""
    rows = [(a.key, a.severity, ts_text(a.sent_at), ",".join(a.channels)) for a in alerts]
    if not rows:
        return
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO notification_log (alert_key, severity, sent_at, channels)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (alert_key) DO UPDATE SET"
            " severity = excluded.severity, sent_at = excluded.sent_at,"
            " channels = excluded.channels",
            rows,
        )
