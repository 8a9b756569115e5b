"""Reads of the fill ledger for the metrics commands (``metrics window``, ``export-windows``,
``regime-analyze``): symbols, window fills, the newest opening fills, the history as text
columns, marks and spans.

Each query is the one the metrics services were tuned with (docs/ledger.md, "Reading the
ledger for metrics"): every read of a symbol's fills walks the ``(symbol, ts)`` index, and
the bulk history read fetches only the columns the integer FIFO kernel needs, as the stored
text, so the caller converts each distinct value once. Money comes back as ``Decimal``,
times as aware UTC datetimes. Only the ledger's fills are read (``state.fill_visibility``: not
simulated (paper runs, recorded backtests), and not
the rows of an unfinished import), and a service that makes several reads wraps them in
:func:`snapshot` so they all see the same ledger.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from stagectl.domain.types import Fill, Liquidity, Side
from stagectl.state._codec import parse_ts, ts_text
from stagectl.state.db import StateDB
from stagectl.state.fill_visibility import ledger_clause


@dataclass(frozen=True)
class HistoryColumns:
    """A symbol's fills before a time, in ledger order (``ts``, then id), as stored text:
    ``row_ids`` identify the rows for :func:`fill_origins`."""

    row_ids: Sequence[int]
    sides: Sequence[str]
    qtys: Sequence[str]
    prices: Sequence[str]
    fees: Sequence[str]
    fee_currencies: Sequence[str | None]

    def __len__(self) -> int:
        return len(self.row_ids)


@dataclass(frozen=True)
class FillPrices:
    """Every fill price of a symbol in ledger order, as stored text (``ts`` in the fixed
    ``2024-06-07T08:00:00.000000Z`` form, prices as Decimal text)."""

    times: Sequence[str]
    prices: Sequence[str]

    def __len__(self) -> int:
        return len(self.times)


@contextmanager
def snapshot(db: StateDB) -> Iterator[None]:
    """One read transaction around the block: every read inside it sees the ledger as it
    was when the first one ran (WAL: writers go on meanwhile and are not blocked)."""
    if db.conn.in_transaction:
        yield
        return
    db.conn.execute("BEGIN")
    try:
        yield
    finally:
        if db.conn.in_transaction:
            db.conn.execute("COMMIT")


def symbols_with_fills(db: StateDB, before: datetime | None = None) -> list[str]:
    """Distinct symbols with visible fills (before ``before``), by skipping along the
    (symbol, ts) index: two index probes per symbol instead of a scan of every fill."""
    symbols: list[str] = []
    last = ""
    while True:
        row = db.conn.execute("SELECT min(symbol) FROM fills WHERE symbol > ?", (last,)).fetchone()
        if row is None or row[0] is None:
            return symbols
        last = row[0]
        if has_fills(db, last, before=before):
            symbols.append(last)


def has_fills(db: StateDB, symbol: str, *, before: datetime | None = None) -> bool:
    """Whether ``symbol`` has a visible fill (before ``before``)."""
    sql = f"SELECT 1 FROM fills WHERE symbol = ? AND {ledger_clause(db.conn)}"
    params = [symbol]
    if before is not None:
        sql += " AND ts < ?"
        params.append(ts_text(before))
    return db.conn.execute(sql + " LIMIT 1", params).fetchone() is not None


def window_fills(db: StateDB, symbol: str, start: datetime, end: datetime) -> list[Fill]:
    """The fills of ``symbol`` with ``start <= ts < end``, in ledger order."""
    rows = db.conn.execute(
        "SELECT trade_id, ts, side, qty, price, fee, fee_currency, liquidity FROM fills"
        f" WHERE symbol = ? AND ts >= ? AND ts < ? AND {ledger_clause(db.conn)}"
        " ORDER BY ts, id",
        (symbol, ts_text(start), ts_text(end)),
    )
    return [_ledger_fill(symbol, row) for row in rows]


def newest_fills(db: StateDB, symbol: str, before: datetime, side: str) -> Iterator[Fill]:
    """The fills of ``symbol`` on ``side`` before ``before``, newest first: a backward scan of
    the (symbol, ts) index that reads rows only as far as the caller iterates."""
    rows = db.conn.execute(
        "SELECT trade_id, ts, side, qty, price, fee, fee_currency, NULL FROM fills"
        f" WHERE symbol = ? AND ts < ? AND side = ? AND {ledger_clause(db.conn)}"
        " ORDER BY ts DESC, id DESC",
        (symbol, ts_text(before), side),
    )
    for row in rows:
        yield _ledger_fill(symbol, row)


def history_columns(db: StateDB, symbol: str, before: datetime) -> HistoryColumns:
    """Side, quantity, price and fee of every fill of ``symbol`` before ``before``."""
    rows = db.conn.execute(
        "SELECT id, side, qty, price, fee, fee_currency FROM fills"
        f" WHERE symbol = ? AND ts < ? AND {ledger_clause(db.conn)} ORDER BY ts, id",
        (symbol, ts_text(before)),
    ).fetchall()
    if not rows:
        return HistoryColumns((), (), (), (), (), ())
    ids, sides, qtys, prices, fees, currencies = zip(*rows, strict=True)
    return HistoryColumns(ids, sides, qtys, prices, fees, currencies)


def fill_origins(db: StateDB, row_ids: Sequence[int]) -> dict[int, tuple[str, datetime]]:
    """Trade id and time of the fills with these ``HistoryColumns.row_ids``."""
    if not row_ids:
        return {}
    marks = ",".join("?" * len(row_ids))
    rows = db.conn.execute(
        f"SELECT id, trade_id, ts FROM fills WHERE id IN ({marks})", list(row_ids)
    )
    return {int(row_id): (trade_id, parse_ts(ts)) for row_id, trade_id, ts in rows}


def last_fill_price(db: StateDB, symbol: str, before: datetime) -> Decimal | None:
    """The price of the last fill of ``symbol`` before ``before``."""
    row = db.conn.execute(
        f"SELECT price FROM fills WHERE symbol = ? AND ts < ? AND {ledger_clause(db.conn)}"
        " ORDER BY ts DESC, id DESC LIMIT 1",
        (symbol, ts_text(before)),
    ).fetchone()
    return None if row is None else Decimal(row[0])


def fill_span(
    db: StateDB, symbol: str, *, between: tuple[datetime, datetime] | None = None
) -> tuple[datetime, datetime] | None:
    """The times of the first and the last fill of ``symbol`` (with ``between=(start, end)``
    only those with ``start <= ts < end``); None without fills. Each end is the first
    visible row of an index scan from that end of the symbol's range (of ``between``'s part
    of it: rows of other symbols or other times are never read)."""
    sql = f"SELECT ts FROM fills WHERE symbol = ? AND {ledger_clause(db.conn)}"
    params = [symbol]
    if between is not None:
        sql += " AND ts >= ? AND ts < ?"
        params += [ts_text(between[0]), ts_text(between[1])]
    sql += " ORDER BY ts {} LIMIT 1"
    first = db.conn.execute(sql.format("ASC"), params).fetchone()
    if first is None:
        return None
    last = db.conn.execute(sql.format("DESC"), params).fetchone()
    return parse_ts(first[0]), parse_ts(last[0])


def fill_prices(db: StateDB, symbol: str) -> FillPrices:
    """Every fill time and price of ``symbol``, in ledger order."""
    rows = db.conn.execute(
        f"SELECT ts, price FROM fills WHERE symbol = ? AND {ledger_clause(db.conn)}"
        " ORDER BY ts, id",
        (symbol,),
    ).fetchall()
    if not rows:
        return FillPrices((), ())
    times, prices = zip(*rows, strict=True)
    return FillPrices(times, prices)


def position_before(db: StateDB, symbol: str, before: datetime) -> Decimal | None:
    """The exact position of ``symbol`` over its fills before ``before``, from the running
    totals (``state.ledger_totals``); None when the totals cannot be trusted."""
    from stagectl.state.ledger_totals import position_before as from_totals

    return from_totals(db.conn, symbol, ts_text(before))


def _ledger_fill(symbol: str, row: tuple[str, ...]) -> Fill:
    """A row as the domain's fill; NULL fee currency and liquidity: not recorded."""
    trade_id, ts, side, qty, price, fee, currency, liquidity = row
    return Fill(
        trade_id=trade_id,
        ts=parse_ts(ts),
        symbol=symbol,
        side=Side(side),
        qty=Decimal(qty),
        price=Decimal(price),
        fee=Decimal(fee),
        fee_currency=currency or "",
        liquidity=None if liquidity is None else Liquidity(liquidity),
    )
