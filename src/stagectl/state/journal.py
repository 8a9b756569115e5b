"""The journal: standard events (seed 001, ``domain.types.Event``) and incidents (the
runbook's incident log)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stagectl.domain.types import Event
from stagectl.state._codec import filters, json_text, opt_json_text, parse_json, parse_ts, ts_text
from stagectl.state.db import StateDB

SEVERITIES = ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")


@dataclass(frozen=True)
class Incident:
    """What happened when a rule fired: the runbook's incident log entry."""

    ts: datetime
    rule: str
    severity: str
    action: str
    message: str
    indicator_value: float | None = None
    run_id: str | None = None
    guard_decision_id: int | None = None
    market_state: Mapping[str, Any] = field(default_factory=dict)
    fills: list[Any] = field(default_factory=list)
    id: int | None = None
    """Its row id once recorded."""


_EVENT_COLUMNS = (
    "ts, event_type, severity, run_id, symbol, message, features_hash, engine_votes_json,"
    " consensus_score, action, size_usd, price, expected_edge_bps, realized_pnl, regime,"
    " costs_bps, payload_json"
)
_INCIDENT_COLUMNS = (
    "ts, run_id, guard_decision_id, rule, severity, action, indicator_value, message,"
    " market_state_json, fills_json"
)


def record_events(db: StateDB, events: Iterable[Event]) -> int:
    """Append events in one transaction; returns how many were written."""
    rows = [_event_row(event) for event in events]
    with db.transaction() as conn:
        conn.executemany(
            f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 17)})", rows
        )
    return len(rows)


def record_event(db: StateDB, event: Event) -> int:
    """Append one event; returns its id."""
    with db.transaction() as conn:
        cursor = conn.execute(
            f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 17)})",
            _event_row(event),
        )
    return _lastrowid(cursor.lastrowid)


def events(
    db: StateDB,
    *,
    run_id: str | None = None,
    event_type: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[Event]:
    """Events in time order, ``start <= ts < end``."""
    where, params = filters({"run_id": run_id, "event_type": event_type}, start, end)
    sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE 1 = 1{where}"
    sql += " ORDER BY ts, id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_event(row) for row in db.conn.execute(sql, params)]


def events_after(
    db: StateDB, *, run_id: str, event_type: str, after_id: int
) -> list[tuple[int, Event]]:
    """The run's events of that type recorded after row ``after_id``, with their row ids,
    in insertion order; the row id range is the search (``+`` keeps SQLite off the
    ``events`` indexes), so the cost is the rows written since, not the run's history."""
    sql = (
        f"SELECT id, {_EVENT_COLUMNS} FROM events"
        " WHERE id > ? AND +run_id = ? AND +event_type = ? ORDER BY id"
    )
    rows = db.conn.execute(sql, (after_id, run_id, event_type))
    return [(row[0], _event(row[1:])) for row in rows]


def last_event(db: StateDB, *, run_id: str, event_type: str) -> Event | None:
    """The run's latest event of that type (the ``events_run_ts`` index, read backwards)."""
    row = db.conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id = ? AND event_type = ?"
        " ORDER BY ts DESC, id DESC LIMIT 1",
        (run_id, event_type),
    ).fetchone()
    return None if row is None else _event(row)


def recent_event_times(
    db: StateDB, *, run_id: str, event_type: str, limit: int
) -> list[tuple[datetime, str | None]]:
    """The (time, symbol) of the run's newest ``limit`` events of that type, newest first
    (the ``events_run_ts`` index, read backwards)."""
    rows = db.conn.execute(
        "SELECT ts, symbol FROM events WHERE run_id = ? AND event_type = ?"
        " ORDER BY ts DESC, id DESC LIMIT ?",
        (run_id, event_type, limit),
    )
    return [(parse_ts(row[0]), row[1]) for row in rows]


def attribute_realized(
    db: StateDB, *, run_id: str, symbol: str, at: datetime, amount: float, event_type: str
) -> bool:
    """Add ``amount`` to the ``realized_pnl`` of the run's latest ``event_type`` event for
    ``symbol`` at or before ``at`` (a decision; inside the caller's transaction, with the
    fills it attributes). False: no such event (the amount stays unattributed)."""
    with db.transaction() as conn:
        cursor = conn.execute(
            "UPDATE events SET realized_pnl = COALESCE(realized_pnl, 0) + ? WHERE id = ("
            "SELECT id FROM events WHERE run_id = ? AND event_type = ? AND symbol = ?"
            " AND ts <= ? ORDER BY ts DESC, id DESC LIMIT 1)",
            (amount, run_id, event_type, symbol, ts_text(at)),
        )
        return bool(cursor.rowcount)


def record_incident(db: StateDB, incident: Incident) -> int:
    """Append one incident; returns its id."""
    _check_severity(incident.severity)
    with db.transaction() as conn:
        cursor = conn.execute(
            f"INSERT INTO incidents ({_INCIDENT_COLUMNS}) VALUES ({', '.join('?' * 10)})",
            (
                ts_text(incident.ts),
                incident.run_id,
                incident.guard_decision_id,
                incident.rule,
                incident.severity,
                incident.action,
                incident.indicator_value,
                incident.message,
                json_text(dict(incident.market_state)),
                json_text(list(incident.fills)),
            ),
        )
    return _lastrowid(cursor.lastrowid)


def incidents(
    db: StateDB,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    run_id: str | None = None,
    incident_id: int | None = None,
    latest: int | None = None,
) -> list[Incident]:
    """Incidents in time order, ``start <= ts < end``, of one run or id when given;
    ``latest`` keeps only the newest that many."""
    where, params = filters({"run_id": run_id, "id": incident_id}, start, end)
    newest_first = latest is not None
    order = "ts DESC, id DESC" if newest_first else "ts, id"
    sql = f"SELECT id, {_INCIDENT_COLUMNS} FROM incidents WHERE 1 = 1{where} ORDER BY {order}"
    if newest_first:
        sql += " LIMIT ?"
        params.append(latest)
    rows = [_incident(row) for row in db.conn.execute(sql, params)]
    return rows[::-1] if newest_first else rows


def _incident(row: tuple[Any, ...]) -> Incident:
    return Incident(
        id=row[0],
        ts=parse_ts(row[1]),
        run_id=row[2],
        guard_decision_id=row[3],
        rule=row[4],
        severity=row[5],
        action=row[6],
        indicator_value=row[7],
        message=row[8],
        market_state=parse_json(row[9]),
        fills=parse_json(row[10]),
    )


def _check_severity(severity: str) -> None:
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")


def _lastrowid(value: int | None) -> int:
    if value is None:
        raise RuntimeError("SQLite returned no row id for an insert")
    return value


def _event_row(event: Event) -> tuple[Any, ...]:
    _check_severity(event.severity)
    return (
        ts_text(event.ts),
        event.event_type,
        event.severity,
        event.run_id,
        event.symbol,
        event.message,
        event.features_hash,
        opt_json_text(None if event.engine_votes is None else dict(event.engine_votes)),
        event.consensus_score,
        event.action,
        event.size_usd,
        event.price,
        event.expected_edge_bps,
        event.realized_pnl,
        event.regime,
        event.costs_bps,
        opt_json_text(None if event.payload is None else dict(event.payload)),
    )


def _event(row: tuple[Any, ...]) -> Event:
    return Event(
        ts=parse_ts(row[0]),
        event_type=row[1],
        severity=row[2],
        run_id=row[3],
        symbol=row[4],
        message=row[5],
        features_hash=row[6],
        engine_votes=parse_json(row[7]),
        consensus_score=row[8],
        action=row[9],
        size_usd=row[10],
        price=row[11],
        expected_edge_bps=row[12],
        realized_pnl=row[13],
        regime=row[14],
        costs_bps=row[15],
        payload=parse_json(row[16]),
    )
