"""The desk's trading state (ACTIVE, REDUCE_ONLY, HALTED) and its history.

One row in ``trading_flags`` holds the current state so every command and every
restart sees it; each change is appended to ``trading_flag_history`` in the
same transaction. A database where the state was never set is ACTIVE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stagectl.domain.orders import TradingState
from stagectl.state._codec import parse_ts, ts_text
from stagectl.state.db import StateDB


@dataclass(frozen=True)
class TradingFlag:
    state: TradingState
    reason: str
    source: str
    updated_at: datetime | None


@dataclass(frozen=True)
class TradingFlagChange:
    ts: datetime
    from_state: TradingState
    to_state: TradingState
    reason: str
    source: str


NEVER_SET = TradingFlag(TradingState.ACTIVE, reason="never set", source="default", updated_at=None)


def get_trading_state(db: StateDB) -> TradingFlag:
    row = db.conn.execute(
        "SELECT trading_state, reason, source, updated_at FROM trading_flags WHERE id = 1"
    ).fetchone()
    if row is None:
        return NEVER_SET
    return TradingFlag(TradingState(row[0]), row[1], row[2], parse_ts(row[3]))


def set_trading_state(
    db: StateDB, state: TradingState, *, reason: str, source: str, now: datetime
) -> TradingFlagChange:
    """Set the trading state and append the change to the history.

    Setting the state it already has is recorded too (the reason may be new),
    which keeps repeated emergency actions visible in the audit trail.
    """
    state = TradingState(state)
    if not reason:
        raise ValueError("a trading state change needs a reason")
    with db.transaction() as conn:
        previous = get_trading_state(db).state
        conn.execute(
            "INSERT INTO trading_flags (id, trading_state, reason, source, updated_at)"
            " VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " trading_state = excluded.trading_state, reason = excluded.reason,"
            " source = excluded.source, updated_at = excluded.updated_at",
            (state.value, reason, source, ts_text(now)),
        )
        conn.execute(
            "INSERT INTO trading_flag_history (ts, from_state, to_state, reason, source)"
            " VALUES (?, ?, ?, ?, ?)",
            (ts_text(now), previous.value, state.value, reason, source),
        )
    return TradingFlagChange(now, previous, state, reason, source)


def trading_state_history(db: StateDB, *, limit: int = 100) -> list[TradingFlagChange]:
    """The most recent changes first."""
    rows = db.conn.execute(
        "SELECT ts, from_state, to_state, reason, source FROM trading_flag_history"
        " ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [
        TradingFlagChange(
            parse_ts(row[0]), TradingState(row[1]), TradingState(row[2]), row[3], row[4]
        )
        for row in rows
    ]
