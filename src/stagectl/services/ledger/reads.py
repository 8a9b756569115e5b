"""Reading the fill ledger for the metrics commands: lots carried in, window fills, marks.

The lots open at a time T need the whole history before T. Rather than building a million
``Fill`` objects, the history is read as text columns (only side, qty, price and fee), turned
into integer minor units (each distinct value converted once) and run through the domain's
exact integer FIFO kernel. The open lots come back as *opening fills* (a long lot is a buy of
its size at its price, a short lot a sell), which FIFO books into exactly the same lot queue,
so the domain's ``window_metrics`` and ``pnl_windows`` can consume the carried-in lots.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from stagectl.errors import InputError

_INT64_SAFE = 2**62


def parse_moment(text: str, *, option: str) -> datetime:
    """``YYYY-MM-DD`` or ISO-8601 as an aware UTC datetime (a naive time is UTC)."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO-8601 datetime", where=option
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def ts_text(moment: datetime) -> str:
    from stagectl.state._codec import ts_text as encode

    return encode(moment)


def open_ledger(path: Path) -> Any:
    """The state database for reading; a missing file is an input error naming it."""
    from stagectl.state.db import open_state

    return open_state(path, migrate=False)


def ledger_symbols(conn: sqlite3.Connection, before: datetime | None = None) -> list[str]:
    """Distinct symbols with fills (before ``before``), by skipping along the (symbol, ts)
    index: one index probe per symbol instead of a scan of every fill."""
    symbols: list[str] = []
    last = ""
    limit = ts_text(before) if before is not None else None
    while True:
        row = conn.execute("SELECT min(symbol) FROM fills WHERE symbol > ?", (last,)).fetchone()
        if row is None or row[0] is None:
            return symbols
        last = row[0]
        if (
            limit is None
            or conn.execute(
                "SELECT 1 FROM fills WHERE symbol = ? AND ts < ? LIMIT 1", (last, limit)
            ).fetchone()
        ):
            symbols.append(last)


def _units(texts: Sequence[str]) -> tuple[int, list[int]]:
    """``(places, units)`` for decimal strings: each distinct string converted once."""
    from stagectl.domain.ledger import scaled_units

    distinct = list(set(texts))
    places, units = scaled_units([Decimal(t) for t in distinct])
    mapping = dict(zip(distinct, units, strict=True))
    return places, [mapping[t] for t in texts]


def carried_lots(conn: sqlite3.Connection, symbol: str, before: datetime) -> list[Any]:
    """The FIFO lots of ``symbol`` open just before ``before``, as opening domain Fills.

    With the ledger's running totals (``state.ledger_totals``) only the fills from
    ``before`` on and the few newest ones before it are read; otherwise the whole history
    runs through the integer FIFO kernel."""
    from stagectl.state.ledger_totals import position_before

    position = position_before(conn, symbol, ts_text(before))
    lots = None if position is None else newest_lots(conn, symbol, before, position)
    return scan_carried_lots(conn, symbol, before) if lots is None else lots


def newest_lots(
    conn: sqlite3.Connection, symbol: str, before: datetime, position: Decimal
) -> list[Any] | None:
    """The open FIFO lots given the exact position just before ``before`` (None if the
    fills cannot make up that position: then the totals are not to be trusted).

    FIFO consumes the oldest lots first, so the lots of a long position P are the newest
    buys' book deltas walking back from ``before`` until they add up to P (the oldest of
    them only partly); fills against the position in between consumed older lots, not
    these. A short position mirrors it with sells. The walk never leaves the current
    episode on the position's side: that episode opened at least |P|. The rows come from a
    backward scan of the (symbol, ts) index, read only as far as needed."""
    from stagectl.domain.ledger import Fill, Side
    from stagectl.state.ledger_totals import EXACT, book_delta

    if position == 0:
        return []
    side: Side = "buy" if position > 0 else "sell"
    needed = abs(position)
    lots = []
    rows = conn.execute(
        "SELECT trade_id, ts, side, qty, price, fee, fee_currency FROM fills"
        " WHERE symbol = ? AND ts < ? AND side = ? ORDER BY ts DESC, id DESC",
        (symbol, ts_text(before), side),
    )
    for trade_id, ts, _, qty, price, fee, currency in rows:
        opened = abs(book_delta(symbol, side, qty, fee, currency))
        take = min(opened, needed)
        lots.append(
            Fill(
                trade_id=trade_id,
                ts=datetime.fromisoformat(ts),
                symbol=symbol,
                side=side,
                qty=take,
                price=Decimal(price),
            )
        )
        needed = EXACT.subtract(needed, take)
        if needed == 0:
            break
    return lots[::-1] if needed == 0 else None


def scan_carried_lots(conn: sqlite3.Connection, symbol: str, before: datetime) -> list[Any]:
    """``carried_lots`` from the whole history before ``before`` (no totals needed)."""
    import numpy as np

    from stagectl.domain.ledger import Fill, fee_in_base, fifo_kernel

    rows = conn.execute(
        "SELECT id, side, qty, price, fee, fee_currency FROM fills"
        " WHERE symbol = ? AND ts < ? ORDER BY ts, id",
        (symbol, ts_text(before)),
    ).fetchall()
    if not rows:
        return []
    ids, sides, qtys, prices, fees, currencies = zip(*rows, strict=True)
    base_fee = ["0"] * len(rows)
    for k, (fee, currency) in enumerate(zip(fees, currencies, strict=True)):
        if currency and fee != "0" and fee_in_base(symbol, currency, Decimal(fee)):
            base_fee[k] = fee
    qty_places, qty_u = _units(list(qtys) + base_fee)
    _, price_u = _units(prices)
    n = len(rows)
    bound = sum(map(abs, qty_u)) * max(price_u)
    dtype: Any = np.int64 if bound < _INT64_SAFE else object
    qty_arr = np.array(qty_u[:n], dtype=dtype)
    fee_arr = np.array(qty_u[n:], dtype=dtype)
    delta = np.where(np.array(sides) == "buy", qty_arr, -qty_arr) - fee_arr
    kernel = fifo_kernel(delta, np.array(price_u, dtype=dtype))
    if not len(kernel.lot_fill_index):
        return []
    lot_rows = {int(ids[int(k)]): int(k) for k in kernel.lot_fill_index}
    marks = ",".join("?" * len(lot_rows))
    origin = {
        row[0]: row[1:]
        for row in conn.execute(
            f"SELECT id, trade_id, ts FROM fills WHERE id IN ({marks})", list(lot_rows)
        )
    }
    lots = []
    for k, qty_units in zip(kernel.lot_fill_index, kernel.lot_qty, strict=True):
        trade_id, ts = origin[int(ids[int(k)])]
        lots.append(
            Fill(
                trade_id=trade_id,
                ts=datetime.fromisoformat(ts),
                symbol=symbol,
                side="buy" if qty_units > 0 else "sell",
                qty=Decimal(abs(int(qty_units))).scaleb(-qty_places),
                price=Decimal(prices[int(k)]),
            )
        )
    return lots


def window_fills(
    conn: sqlite3.Connection, symbol: str, start: datetime, end: datetime
) -> tuple[list[Any], int]:
    """Domain Fills of ``symbol`` with ``start <= ts < end`` in ledger order, and how many had
    no recorded liquidity (booked as taker)."""
    from stagectl.domain.ledger import Fill

    unknown = 0
    fills = []
    for trade_id, ts, side, qty, price, fee, currency, liquidity in conn.execute(
        "SELECT trade_id, ts, side, qty, price, fee, fee_currency, liquidity FROM fills"
        " WHERE symbol = ? AND ts >= ? AND ts < ? ORDER BY ts, id",
        (symbol, ts_text(start), ts_text(end)),
    ):
        if liquidity is None:
            unknown += 1
        fills.append(
            Fill(
                trade_id=trade_id,
                ts=datetime.fromisoformat(ts),
                symbol=symbol,
                side=side,
                qty=Decimal(qty),
                price=Decimal(price),
                fee=Decimal(fee),
                fee_currency=currency or "",
                liquidity=liquidity or "taker",
            )
        )
    return fills, unknown


def last_price(conn: sqlite3.Connection, symbol: str, before: datetime) -> Decimal | None:
    """The price of the last fill of ``symbol`` before ``before`` (the default mark)."""
    row = conn.execute(
        "SELECT price FROM fills WHERE symbol = ? AND ts < ? ORDER BY ts DESC, id DESC LIMIT 1",
        (symbol, ts_text(before)),
    ).fetchone()
    return None if row is None else Decimal(row[0])


def fill_span(conn: sqlite3.Connection, symbol: str) -> tuple[datetime, datetime] | None:
    row = conn.execute("SELECT min(ts), max(ts) FROM fills WHERE symbol = ?", (symbol,)).fetchone()
    if row is None or row[0] is None:
        return None
    return datetime.fromisoformat(row[0]), datetime.fromisoformat(row[1])
