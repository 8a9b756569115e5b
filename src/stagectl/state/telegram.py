"""The on-call bot's place in its Telegram update stream (``telegram_offsets``, migration
``0015_telegram_offsets``): the last update it took, per bot.

The service writes it inside the transaction that records the update's event, before the
command acts: a bot that stops between the two has taken the command without running
it (the operator sends it again), never the other way round.
"""

from __future__ import annotations

from datetime import datetime

from stagectl.state._codec import ts_text
from stagectl.state.db import StateDB


def last_update_id(db: StateDB, bot_id: str) -> int | None:
    """The last update the bot took; None when it never took one."""
    row = db.conn.execute(
        "SELECT last_update_id FROM telegram_offsets WHERE bot_id = ?", (bot_id,)
    ).fetchone()
    return None if row is None else int(row[0])


def take_update(db: StateDB, bot_id: str, update_id: int, *, now: datetime) -> bool:
    """Mark ``update_id`` taken; False (nothing written) when it, or a later one, already
    was. Call it inside the transaction that records what the update asks."""
    with db.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO telegram_offsets (bot_id, last_update_id, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (bot_id) DO UPDATE SET last_update_id = excluded.last_update_id,"
            " updated_at = excluded.updated_at"
            " WHERE excluded.last_update_id > telegram_offsets.last_update_id",
            (bot_id, update_id, ts_text(now)),
        )
    return cursor.rowcount > 0
