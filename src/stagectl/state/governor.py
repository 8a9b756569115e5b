"""Portfolio Governor decisions and the current strategy weights, kept in the journal.

Every governor run is one ``events`` row (``event_type = 'governor.decision'``): ``ts``
is the decision time (the as-of of its Market Intel inputs), ``action`` is
``apply`` (the weights became current), ``propose`` (computed, not applied) or
``refuse`` (``--apply`` inside the rebalance interval), ``features_hash`` is the
sha256 of the canonical inputs and ``payload_json`` holds the inputs, every stage of
the decision, the config sha256 and the rebalance timing. The current weights are the
final weights of the latest applied decision (latest ``ts``, then latest id), so no
table of their own is needed and the history cannot disagree with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stagectl.domain.types import Event
from stagectl.state._codec import parse_json, parse_ts
from stagectl.state.db import StateDB
from stagectl.state.journal import record_event

EVENT_TYPE = "governor.decision"
ACTIONS = ("apply", "propose", "refuse")


@dataclass(frozen=True)
class GovernorRecord:
    """One recorded governor decision."""

    id: int
    ts: datetime
    action: str
    features_hash: str | None
    message: str | None
    payload: Mapping[str, Any]

    @property
    def weights(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.payload.get("final", {}).items()}


def record_decision(
    db: StateDB,
    *,
    ts: datetime,
    action: str,
    inputs_sha256: str,
    message: str,
    payload: Mapping[str, Any],
) -> int:
    """Append one decision; returns its event id."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    event = Event(
        ts=ts,
        event_type=EVENT_TYPE,
        severity="INFO",
        message=message,
        features_hash=inputs_sha256,
        action=action,
        payload=payload,
    )
    return record_event(db, event)


_SELECT = "SELECT id, ts, action, features_hash, message, payload_json FROM events"


def _record(row: tuple[Any, ...]) -> GovernorRecord:
    return GovernorRecord(row[0], parse_ts(row[1]), row[2], row[3], row[4], parse_json(row[5]))


def last_applied(db: StateDB) -> GovernorRecord | None:
    """The latest applied decision (its weights are the current ones), or None."""
    row = db.conn.execute(
        f"{_SELECT} WHERE event_type = ? AND action = 'apply' ORDER BY ts DESC, id DESC LIMIT 1",
        (EVENT_TYPE,),
    ).fetchone()
    return None if row is None else _record(row)


def decisions(db: StateDB, *, limit: int = 100) -> list[GovernorRecord]:
    """The most recent decisions first."""
    rows = db.conn.execute(
        f"{_SELECT} WHERE event_type = ? ORDER BY ts DESC, id DESC LIMIT ?", (EVENT_TYPE, limit)
    ).fetchall()
    return [_record(row) for row in rows]
