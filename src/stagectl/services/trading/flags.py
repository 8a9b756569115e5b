"""Show and set the trading state of each mode (ACTIVE, REDUCE_ONLY, HALTED) with its history.

Paper and live runs share the home's one state database; each mode has its own trading
state (``state.flags``). ``trading status`` shows both. A restrictive change (``disable``,
``reduce-only``) applies to both modes unless one is named, so the kill switch never
misses a book; ``enable`` re-enables one mode, paper unless ``--live`` is given.

``trading status`` is a fast path: it opens the state database
without migrating (sqlite3 only) and never imports sqlite-utils, pandas, numpy, ccxt or
rich. A home with no state database has never had its state set: every mode is ACTIVE.
A database of an older schema is migrated first, so an old desk-wide HALTED is shown
as it is, never read as "never set".

Two entries, one per sub-command, both of the one service shape:

- ``run_status(TradingStatusRequest(), *, home) -> TradingStatus`` (``trading status``);
- ``run_set(TradingSetRequest, *, home, clock) -> TradingChange`` (``trading enable``,
  ``disable`` and ``reduce-only``: the state to set is in the request); ``clock`` stamps
  the change (default: the wall clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stagectl.config.home import Home
from stagectl.config.state_url import StateLocation, state_exists
from stagectl.domain.types import MODES, Mode, TradingState
from stagectl.errors import InputError
from stagectl.state import flags
from stagectl.state.db import DatabaseError, StateDB, open_state

HISTORY_LIMIT = 20


@dataclass(frozen=True)
class TradingStatusRequest:
    """How many of the latest changes to show."""

    history_limit: int = HISTORY_LIMIT
    now: datetime | None = None
    """When the directives' states are read (None: the wall clock)."""


@dataclass(frozen=True)
class TradingSetRequest:
    """The state to set, the modes it applies to, why (``--reason``) and who sets it."""

    state: TradingState
    modes: tuple[Mode, ...]
    reason: str
    source: str = "operator"


@dataclass(frozen=True)
class TradingStatus:
    """The current state of every mode and the latest changes (newest first)."""

    path: StateLocation
    database_exists: bool
    states: dict[Mode, flags.TradingFlag]
    history: tuple[flags.TradingFlagChange, ...]
    directives: tuple[dict[str, Any], ...] = ()
    """The open risk directives (pending, active, executed), oldest first."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_db": str(self.path),
            "database_exists": self.database_exists,
            "modes": {
                mode: {
                    "trading_state": flag.state.value,
                    "reason": flag.reason,
                    "source": flag.source,
                    "updated_at": flag.updated_at,
                }
                for mode, flag in self.states.items()
            },
            "directives": list(self.directives),
            "history": [_change_dict(change) for change in self.history],
        }


@dataclass(frozen=True)
class TradingChange:
    """The outcome of a set: per mode, what it was and what it is now."""

    path: StateLocation
    changes: tuple[flags.TradingFlagChange, ...]

    def changed(self, change: flags.TradingFlagChange) -> bool:
        return change.from_state != change.to_state

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_db": str(self.path),
            "changes": [
                {**_change_dict(change), "changed": self.changed(change)} for change in self.changes
            ],
        }


def _change_dict(change: flags.TradingFlagChange) -> dict[str, Any]:
    return {
        "ts": change.ts,
        "mode": change.mode,
        "from_state": change.from_state.value,
        "to_state": change.to_state.value,
        "reason": change.reason,
        "source": change.source,
    }


def _never_set(path: StateLocation, exists: bool) -> TradingStatus:
    return TradingStatus(path, exists, {mode: flags.never_set(mode) for mode in MODES}, ())


def run_status(request: TradingStatusRequest, *, home: Home) -> TradingStatus:
    """The trading state of every mode in the home's state database; changes nothing."""
    path, history_limit = home.state_path, request.history_limit
    if not state_exists(path):
        return _never_set(path, False)
    now = request.now or datetime.now(UTC)
    with open_state(path, migrate=False) as db:
        current = not db.pending_migrations()
        if current:
            return _read_status(db, history_limit, now)
    with open_state(path) as db:
        return _read_status(db, history_limit, now)


def _read_status(db: StateDB, history_limit: int, now: datetime) -> TradingStatus:
    from stagectl.services.trading.directives import directive_dict
    from stagectl.state.directives import open_directives

    try:
        states = flags.trading_states(db)
        history = tuple(flags.trading_state_history(db, limit=history_limit))
        standing = tuple(directive_dict(d, now) for d in open_directives(db, mode=None, now=now))
    except DatabaseError as error:
        raise db.translate_error(error) from error
    return TradingStatus(db.path, True, states, history, standing)


def run_set(
    request: TradingSetRequest,
    *,
    home: Home,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> TradingChange:
    """Set the trading state of the request's modes in one transaction (the database is
    created and migrated when needed)."""
    reason = request.reason.strip()
    if not reason:
        raise InputError("a trading state change needs a reason", where="--reason")
    path, now = home.state_path, clock()
    with open_state(path) as db, db.transaction():
        changes = tuple(
            flags.set_trading_state(
                db, mode, request.state, reason=reason, source=request.source, now=now
            )
            for mode in request.modes
        )
    return TradingChange(path, changes)
