"""Is a trade being merged already recorded with other values? (docs/ledger.md, "One
trade, one fill".)

The ledger keys a fill on (account, ``SYMBOL:ID``): the unique (exchange, trade_id) of
``fills``. A merge step (``state.ledger_merge``) inserts its staged trades with ``ON
CONFLICT DO NOTHING``; when some were not inserted, :func:`check_recorded` joins the
step's staged trades (the TEMP tables of ``state.ledger_merge``) with the recorded fills
on that key, inside the same transaction and
after the insert (so a trade recorded by an earlier row of the same statement is seen
too), and lets SQL keep only the pairs whose text differs in some value. Python then
decides each of those few with ``domain.fill_identity`` (``0.10`` and ``0.1`` are one
number) and raises :class:`FillConflict` for the first real one, which rolls the step
back. A step whose trades were all new pays nothing for the check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stagectl.domain.fill_identity import TRADE_VALUE_FIELDS, differing_fields


@dataclass(frozen=True)
class StoredFill:
    """Where the ledger's record of a trade came from: an import (its origin and content
    sha256), a run, or another writer (``source`` only)."""

    fill_id: int
    source: str
    import_id: int | None = None
    import_origin: str | None = None
    import_sha256: str | None = None
    run_id: str | None = None


class FillConflict(Exception):
    """A staged trade whose key (account, ``SYMBOL:ID``) is already recorded with other
    values (``domain.fill_identity``). ``position`` is the trade's index in its batch;
    ``differences`` are (field, staged value, stored value)."""

    def __init__(
        self,
        *,
        position: int,
        symbol: str,
        trade_id: str,
        differences: tuple[tuple[str, str | None, str | None], ...],
        stored: StoredFill,
    ) -> None:
        super().__init__(f"trade {symbol}:{trade_id} is recorded with other values")
        self.position = position
        self.symbol = symbol
        self.trade_id = trade_id
        self.differences = differences
        self.stored = stored


_SAME_TEXT = " AND ".join(f"f.{name} {{same}} {{{name}}}" for name in TRADE_VALUE_FIELDS)
_STAGED_COLUMNS = {
    "symbol": "k.symbol",
    "side": "k.side",
    "qty": "s.qty",
    "price": "s.price",
    "ts": "s.ts",
    "fee": "k.fee",
    "fee_currency": "k.fee_currency",
    "liquidity": "k.liquidity",
    "exchange_order_id": "k.exchange_order_id",
}

# The staged trades of a merge step whose key is recorded with other text in any value
# (the fill with the key may be one this very statement inserted, from an earlier row of
# the same input): one probe of the unique (exchange, trade_id) index per staged trade, run
# only in a step where some trade was not inserted. Text that differs may still be the same
# number (``0.10`` and ``0.1``): Python decides (``domain.fill_identity``).


def _recorded_sql(same: str) -> str:
    """The query below with ``same`` as the null-safe equality: SQLite's ``IS``, which
    PostgreSQL spells ``IS NOT DISTINCT FROM`` (SQLite only learned that in 3.39)."""
    return (
        "SELECT s.rowid, k.symbol, s.trade_id, f.id, "
        + ", ".join(_STAGED_COLUMNS[name] for name in TRADE_VALUE_FIELDS)
        + ", "
        + ", ".join(f"f.{name}" for name in TRADE_VALUE_FIELDS)
        + " FROM stagectl_trade_stage AS s"
        " JOIN stagectl_trade_kinds AS k ON k.kind = s.kind"
        " JOIN fill_imports AS i ON i.id = ?1"
        " JOIN fills AS f ON f.exchange = i.account AND f.trade_id = k.symbol || ':' || s.trade_id"
        " WHERE s.rowid BETWEEN ?2 AND ?3 AND NOT ("
        + _SAME_TEXT.format(same=same, **_STAGED_COLUMNS)
        + ") ORDER BY s.rowid"
    )


_RECORDED_SQL = {"sqlite": _recorded_sql("IS"), "postgresql": _recorded_sql("IS NOT DISTINCT FROM")}


def check_recorded(conn: Any, import_id: int, base_rowid: int, positions: tuple[int, int]) -> None:
    """Inside the merge transaction, after the insert: raise :class:`FillConflict` for the
    first trade at ``positions`` of the batch staged from ``base_rowid`` (in input order)
    whose recorded fill has other values, so the step rolls back."""
    width = len(TRADE_VALUE_FIELDS)
    bounds = (import_id, base_rowid + positions[0], base_rowid + positions[1])
    sql = _RECORDED_SQL[getattr(conn, "backend", "sqlite")]
    for row in conn.execute(sql, bounds):
        rowid, symbol, trade_id, fill_id = row[:4]
        staged = dict(zip(TRADE_VALUE_FIELDS, row[4 : 4 + width], strict=True))
        stored = dict(zip(TRADE_VALUE_FIELDS, row[4 + width :], strict=True))
        differ = differing_fields(staged, stored)
        if differ:
            raise FillConflict(
                position=rowid - base_rowid,
                symbol=symbol,
                trade_id=trade_id,
                differences=tuple((name, staged[name], stored[name]) for name in differ),
                stored=_stored_fill(conn, fill_id),
            )


def _stored_fill(conn: Any, fill_id: int) -> StoredFill:
    source, run_id, import_id, origin, sha256 = conn.execute(
        "SELECT f.source, f.run_id, f.import_id, i.origin, i.content_sha256 FROM fills AS f"
        " LEFT JOIN fill_imports AS i ON i.id = f.import_id WHERE f.id = ?",
        (fill_id,),
    ).fetchone()
    return StoredFill(fill_id, source, import_id, origin, sha256, run_id)


def offered_conflicts(
    conn: Any, offered: Sequence[Mapping[str, str | None]]
) -> tuple[FillConflict, ...]:
    """Inside the insert's transaction, after it: the offered fills (each with
    ``exchange``, ``trade_id`` and :data:`TRADE_VALUE_FIELDS`) whose key is recorded with
    other values, in offered order. For the few-row inserts of a run's own fills
    (``state.ledger.insert_fills``), called only when some row was not inserted."""
    fields = ", ".join(TRADE_VALUE_FIELDS)
    found: list[FillConflict] = []
    for position, fill in enumerate(offered):
        row = conn.execute(
            f"SELECT id, {fields} FROM fills WHERE exchange = ? AND trade_id = ?",
            (fill["exchange"], fill["trade_id"]),
        ).fetchone()
        if row is None:
            continue
        stored = dict(zip(TRADE_VALUE_FIELDS, row[1:], strict=True))
        differ = differing_fields(fill, stored)
        if differ:
            symbol, key = str(fill["symbol"]), str(fill["trade_id"])
            found.append(
                FillConflict(
                    position=position,
                    symbol=symbol,
                    trade_id=key.removeprefix(f"{symbol}:"),  # the ledger's SYMBOL:ID key
                    differences=tuple((name, fill[name], stored[name]) for name in differ),
                    stored=_stored_fill(conn, int(row[0])),
                )
            )
    return tuple(found)
