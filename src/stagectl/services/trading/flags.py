"""Show and set the desk's trading state (ACTIVE, REDUCE_ONLY, HALTED) with its history.

``status`` is a fast path (``stagectl trading status``): it opens the state database
read-only in spirit (``migrate=False``, sqlite3 only) and never imports sqlite-utils,
pandas, numpy, ccxt or rich. A home with no state database, or a database whose
schema predates the flags table, has never had its state set: it is ACTIVE.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.domain.orders import TradingState
from stagectl.errors import InputError
from stagectl.state import flags
from stagectl.state.db import open_state

HISTORY_LIMIT = 20


@dataclass(frozen=True)
class TradingStatus:
    """The current state, where it came from and the latest changes (newest first)."""

    path: Path
    database_exists: bool
    current: flags.TradingFlag
    history: tuple[flags.TradingFlagChange, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_db": str(self.path),
            "database_exists": self.database_exists,
            "trading_state": self.current.state.value,
            "reason": self.current.reason,
            "source": self.current.source,
            "updated_at": self.current.updated_at,
            "history": [_change_dict(change) for change in self.history],
        }


@dataclass(frozen=True)
class TradingChange:
    """The outcome of a set: what it was, what it is now."""

    path: Path
    change: flags.TradingFlagChange

    @property
    def changed(self) -> bool:
        return self.change.from_state != self.change.to_state

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_db": str(self.path),
            "changed": self.changed,
            **_change_dict(self.change),
        }


def _change_dict(change: flags.TradingFlagChange) -> dict[str, Any]:
    return {
        "ts": change.ts,
        "from_state": change.from_state.value,
        "to_state": change.to_state.value,
        "reason": change.reason,
        "source": change.source,
    }


def status(path: Path, *, history_limit: int = HISTORY_LIMIT) -> TradingStatus:
    """The trading state in the database at ``path``; changes nothing."""
    if not path.exists():
        return TradingStatus(path, False, flags.NEVER_SET, ())
    with open_state(path, migrate=False) as db:
        try:
            current = flags.get_trading_state(db)
            history = tuple(flags.trading_state_history(db, limit=history_limit))
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return TradingStatus(path, True, flags.NEVER_SET, ())
            raise db.translate_error(error) from error
    return TradingStatus(path, True, current, history)


def set_state(
    path: Path, state: TradingState, *, reason: str, source: str, now: datetime
) -> TradingChange:
    """Set the trading state (the database is created and migrated when needed)."""
    reason = reason.strip()
    if not reason:
        raise InputError("a trading state change needs a reason", where="--reason")
    with open_state(path) as db:
        change = flags.set_trading_state(db, state, reason=reason, source=source, now=now)
    return TradingChange(path, change)


def state_path_for(home: Home, *, paper: bool) -> Path:
    """The state database of a mode, as run-live chooses it (services.run_live.state_path):
    ``--state`` when given; else paper uses HOME/state/paper.db, live the home's database."""
    if home.state_override is not None or not paper:
        return home.state_path
    return home.root / "state" / "paper.db"
