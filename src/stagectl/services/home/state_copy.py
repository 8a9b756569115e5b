"""`stagectl state copy SRC DST`: move a desk between SQLite and PostgreSQL.

The source must be at the latest schema (``stagectl --state SRC init``); the destination
must hold no desk data (a new SQLite file, or an empty PostgreSQL database made by
``createdb``): it is migrated, filled in one transaction and verified table by table
(row count and digest, ``state.copy``) before that transaction commits.

Entry: ``run(StateCopyRequest(source, destination), *, home) -> StateCopyResult`` (the
home is not read: SRC and DST are named in full).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation, state_exists
from stagectl.errors import InputError
from stagectl.state.copy import TableCopy, check_current, check_empty, copy_state
from stagectl.state.db import DatabaseError, StateDB, open_state

T = TypeVar("T")


@dataclass(frozen=True)
class StateCopyRequest:
    source: StateLocation
    destination: StateLocation


@dataclass
class StateCopyResult:
    source: StateLocation
    destination: StateLocation
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "destination": str(self.destination),
            "rows": self.rows,
            "verified": True,
            "tables": {t.table: {"rows": t.rows, "digest": t.digest} for t in self.tables},
        }


def run(request: StateCopyRequest, *, home: Home) -> StateCopyResult:
    """Copy the source state into the empty destination, verified row for row."""
    source, destination = request.source, request.destination
    if str(source) == str(destination):
        raise InputError("the source and the destination are the same database")
    with open_state(source, migrate=False) as src:
        _translated(src, lambda: check_current(src, str(source)))
        if state_exists(destination):
            with open_state(destination, migrate=False) as dst:
                _translated(dst, lambda: check_empty(dst, str(destination)))
        with open_state(destination, migrate=True) as dst:
            tables = _translated(dst, lambda: copy_state(src, dst))
    return StateCopyResult(source, destination, tables)


def _translated(db: StateDB, step: Callable[[], T]) -> T:
    """Run ``step``; a database error becomes stagectl's (locked: exit 3) when it has one."""
    try:
        return step()
    except DatabaseError as error:
        translated = db.translate_error(error)
        if translated is error:
            raise
        raise translated from error
