"""The trading state of each mode (ACTIVE, REDUCE_ONLY, HALTED) and its history.

One row per mode in ``trading_states`` (``paper`` and ``live``: a kill switch on the
paper book does not stop the live one, and the other way round) holds the current state
so every command and every restart sees it; each change is appended to
``trading_flag_history`` in the same transaction. A mode whose state was never set is
ACTIVE. History rows recorded before the modes were separated have no mode
(``mode`` None): they applied to both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from stagectl.domain.types import MODES, Mode, TradingState
from stagectl.state._codec import parse_ts, ts_text
from stagectl.state.db import StateDB


@dataclass(frozen=True)
class TradingFlag:
    mode: Mode
    state: TradingState
    reason: str
    source: str
    updated_at: datetime | None


@dataclass(frozen=True)
class TradingFlagChange:
    ts: datetime
    mode: Mode | None
    from_state: TradingState
    to_state: TradingState
    reason: str
    source: str


def never_set(mode: Mode) -> TradingFlag:
    """The state of a mode nobody has set: ACTIVE."""
    return TradingFlag(mode, TradingState.ACTIVE, "never set", "default", None)


def get_trading_state(db: StateDB, mode: Mode) -> TradingFlag:
    row = db.conn.execute(
        "SELECT trading_state, reason, source, updated_at FROM trading_states WHERE mode = ?",
        (_checked(mode),),
    ).fetchone()
    if row is None:
        return never_set(mode)
    return TradingFlag(mode, TradingState(row[0]), row[1], row[2], parse_ts(row[3]))


def trading_states(db: StateDB) -> dict[Mode, TradingFlag]:
    """The state of every mode, paper first."""
    return {mode: get_trading_state(db, mode) for mode in MODES}


def set_trading_state(
    db: StateDB,
    mode: Mode,
    state: TradingState,
    *,
    reason: str,
    source: str,
    now: datetime,
) -> TradingFlagChange:
    """Set a mode's trading state and append the change to the history.

    Setting the state it already has is recorded too (the reason may be new),
    which keeps repeated emergency actions visible in the audit trail.
    """
    state = TradingState(state)
    if not reason:
        raise ValueError("a trading state change needs a reason")
    with db.transaction() as conn:
        previous = get_trading_state(db, mode).state
        conn.execute(
            "INSERT INTO trading_states (mode, trading_state, reason, source, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (mode) DO UPDATE SET"
            " trading_state = excluded.trading_state, reason = excluded.reason,"
            " source = excluded.source, updated_at = excluded.updated_at",
            (_checked(mode), state.value, reason, source, ts_text(now)),
        )
        conn.execute(
            "INSERT INTO trading_flag_history (ts, mode, from_state, to_state, reason, source)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ts_text(now), mode, previous.value, state.value, reason, source),
        )
    return TradingFlagChange(now, mode, previous, state, reason, source)


def trading_state_history(
    db: StateDB, *, modes: Iterable[Mode] = MODES, limit: int = 100
) -> list[TradingFlagChange]:
    """The most recent changes of ``modes`` first (rows of no mode belong to every mode)."""
    wanted = [_checked(mode) for mode in modes]
    marks = ", ".join("?" * len(wanted))
    rows = db.conn.execute(
        "SELECT ts, mode, from_state, to_state, reason, source FROM trading_flag_history"
        f" WHERE mode IS NULL OR mode IN ({marks}) ORDER BY id DESC LIMIT ?",
        (*wanted, limit),
    )
    return [
        TradingFlagChange(
            parse_ts(row[0]),
            row[1],
            TradingState(row[2]),
            TradingState(row[3]),
            row[4],
            row[5],
        )
        for row in rows
    ]


def _checked(mode: Mode) -> Mode:
    """A mode string from a caller that bypassed the type checker is refused here."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode
