"""The on-call bot's place in its Telegram update stream (``telegram_offsets``, migration
``0015_telegram_offsets``): the last update it took, per bot.

The service writes it inside the transaction that records the update's event, before the
command acts: a bot that stops between the two has taken the command without running
it (the operator sends it again), never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stagectl.state._codec import parse_ts, ts_text
from stagectl.state.db import StateDB


@dataclass(frozen=True)
class Taken:
    """The last update a bot took, and when."""

    update_id: int
    taken_at: datetime


def last_taken(db: StateDB, bot_id: str) -> Taken | None:
    """The last update the bot took; None when it never took one."""
    row = db.conn.execute(
        "SELECT last_update_id, updated_at FROM telegram_offsets WHERE bot_id = ?", (bot_id,)
    ).fetchone()
    return None if row is None else Taken(int(row[0]), parse_ts(row[1]))


def take_update(
    db: StateDB, bot_id: str, update_id: int, *, now: datetime, new_stream: bool = False
) -> bool:
    """Mark ``update_id`` taken; False (nothing written) when it, or a later one, already
    was. ``new_stream``: Telegram numbers the updates anew (after a week without any it
    starts from a random id), so the id replaces the last whatever it is. Call it inside
    the transaction that records what the update asks."""
    newer = "" if new_stream else " WHERE excluded.last_update_id > telegram_offsets.last_update_id"
    with db.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO telegram_offsets (bot_id, last_update_id, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (bot_id) DO UPDATE SET last_update_id = excluded.last_update_id,"
            f" updated_at = excluded.updated_at{newer}",
            (bot_id, update_id, ts_text(now)),
        )
    return cursor.rowcount > 0
