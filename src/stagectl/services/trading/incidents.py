"""``stagectl trading incidents``: the runbook's incident log, read from the state.

Every guard hit of HIGH or CRITICAL severity, every directive step (issued, confirmed,
cancelled, executed, escalated, revoked), every restart and emergency close is an
incident row with its time, rule, value, message, and (for guard hits) the market state
and the fills of the last 24 hours. This service lists them newest last, or shows one
whole. It changes nothing and never creates a state database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation, state_exists
from stagectl.errors import InputError
from stagectl.state.db import DatabaseError, open_state
from stagectl.state.journal import Incident, incidents

DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class IncidentsRequest:
    """``--run``, ``--since``, ``--limit`` (the newest that many) or ``--id``."""

    run_id: str | None = None
    since: datetime | None = None
    limit: int = DEFAULT_LIMIT
    incident_id: int | None = None


@dataclass(frozen=True)
class IncidentLog:
    path: StateLocation
    incidents: tuple[Incident, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"state_db": str(self.path), "incidents": [asdict(i) for i in self.incidents]}


def run(request: IncidentsRequest, *, home: Home) -> IncidentLog:
    """The incidents the request selects, oldest first."""
    path = home.state_path
    if request.limit < 1:
        raise InputError(f"--limit must be at least 1, got {request.limit}", where="--limit")
    rows: list[Incident] = []
    if state_exists(path):
        with open_state(path) as db:
            try:
                rows = incidents(
                    db,
                    start=request.since,
                    run_id=request.run_id,
                    incident_id=request.incident_id,
                    latest=None if request.incident_id is not None else request.limit,
                )
            except DatabaseError as error:
                raise db.translate_error(error) from error
    if request.incident_id is not None and not rows:
        raise InputError(f"no incident {request.incident_id} in {path}", where="--id")
    return IncidentLog(path, tuple(rows))
