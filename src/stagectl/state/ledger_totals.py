"""Running totals of the fill ledger per symbol: the fill count and the exact net position.

``fill_totals`` (migration ``0006_ledger_totals``) holds, per symbol, how many fills the
ledger has and the sum of their *book deltas* (``+qty`` for a buy, ``-qty`` for a sell,
minus a fee charged in the base asset: the convention of ``domain.ledger``), as Decimal
text. Every insert of fills (``state.ledger``) updates it in the same transaction, so it is
always the sum over exactly the *visible* rows in ``fills``: an import adds its totals in
the transaction that makes its rows visible (``state.ledger_imports``; until then they are
in ``fill_import_totals``, see ``state.fill_visibility``).

Why: the FIFO lots open at a time T depend on the whole history before T, but only
through the position at T. Given the position P, the open lots are the newest opening
fills walking back from T until they cover |P| (FIFO consumes the oldest first), which
``state.ledger_reads.newest_fills`` reads with a short backward index scan. With these totals,
``P(T) = total - (deltas of the fills at or after T)``, so ``metrics window`` reads the
recent fills only, not a million rows of history; and when more fills lie after T than
before it (``regime-analyze`` on old candles, a ``--start`` early in a long ledger), P(T)
is the sum over the fills before T instead (an index-only count decides), so the larger
side is never read.

Trust, not hope: a reader uses the totals only when the stored count plus the rows of
unfinished imports equals ``count(*)`` of the symbol's fills (an index-only count);
otherwise (a database from before
the migration, a fill written by other means) it falls back to reading the history.
That count walks the symbol's whole history in the index (~60 ms per million fills), so
``fill_totals_mark`` (migration ``0014_fill_totals_mark``) spares it: every write that
keeps the totals exact moves the mark to the largest fill id it left (:func:`keep_mark`),
and a reader that finds ``max(id)`` equal to the mark trusts the totals at once. An insert
by other means leaves the mark behind, a deleted ledger row removes it (a trigger), and
the reader counts as before. A
fill whose fee is in a third currency cannot be booked (``domain.ledger``): its symbol's
totals row is dropped so readers take the slow path and report the problem there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any

from stagectl.state.db import Connection, has_table
from stagectl.state.fill_visibility import SIMULATED_SQL

# Sums of Decimals are exact in this context (no rounding at 28 digits).
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class SymbolTotal:
    """A symbol's fill count and exact net book delta; ``bookable`` is False when one of
    the fills has a fee in a third currency (the position is then unknown, and 0 here)."""

    fills: int
    position: Decimal
    bookable: bool = True


class UnbookableFee(ValueError):
    """A fee in a currency that is neither the base nor the quote of the symbol."""


def book_delta(
    symbol: str, side: str, qty: str | Decimal, fee: str | Decimal, fee_currency: str | None
) -> Decimal:
    """One fill's change of the position, exact (from the text columns as stored, or
    Decimals)."""
    from stagectl.domain.types import fee_in_base

    signed = Decimal(qty) if side == "buy" else -Decimal(qty)
    if fee_currency and fee != "0":
        try:
            if fee_in_base(symbol, fee_currency, Decimal(fee)):
                return EXACT.subtract(signed, Decimal(fee))
        except ValueError as error:
            raise UnbookableFee(str(error)) from None
    return signed


def sum_deltas(symbol: str, rows: Iterable[tuple[str, str, str, str | None]]) -> SymbolTotal:
    """Count and exact sum of ``(side, qty, fee, fee_currency)`` rows of one symbol.

    Equal rows are counted first (a hash count in C: fills repeat their sizes and fees)
    and each distinct one is booked once, times its count; the sum is the same Decimal,
    exponent included, as adding the rows one by one."""
    total = _ZERO
    counted = Counter(rows)
    for (side, qty, fee, currency), n in counted.items():
        delta = book_delta(symbol, side, qty, fee, currency)
        total = EXACT.add(total, delta if n == 1 else EXACT.multiply(Decimal(n), delta))
    return SymbolTotal(counted.total(), total)


def totals_from_columns(
    symbols: Any, sides: Any, qtys: Any, fees: Any, currencies: Any
) -> dict[str, SymbolTotal]:
    """Per-symbol totals of validated import columns (numpy object arrays of stored text)."""
    parts = totals_by_part(symbols, sides, qtys, fees, currencies, part_rows=max(len(symbols), 1))
    return parts[0] if parts else {}


def totals_by_part(
    symbols: Any, sides: Any, qtys: Any, fees: Any, currencies: Any, *, part_rows: int
) -> list[dict[str, SymbolTotal]]:
    """Per-symbol totals of each run of ``part_rows`` consecutive rows of validated import
    columns (numpy object arrays of stored text), vectorised: the columns are factorized
    once, distinct (part, symbol, qty, side) and (part, symbol, fee, currency) combinations
    are counted with numpy, and each is converted to Decimal once."""
    import numpy as np
    import pandas as pd

    sym_codes, sym_names = pd.factorize(symbols, use_na_sentinel=False)
    n_parts = -(-len(sym_codes) // part_rows)
    n_groups = n_parts * len(sym_names)  # a group is one symbol within one part
    groups = (np.arange(len(sym_codes)) // part_rows) * len(sym_names) + sym_codes
    qty_codes, qty_values = pd.factorize(qtys, use_na_sentinel=False)
    is_buy = (sides == "buy").astype(np.int64)
    key = (groups.astype(np.int64) * len(qty_values) + qty_codes) * 2 + is_buy
    size = n_groups * len(qty_values) * 2
    if size <= 4 * len(key) + 1024:  # a dense key space: count with bincount, no sort
        dense = np.bincount(key, minlength=size)
        keys = np.flatnonzero(dense)
        counts = dense[keys]
    else:
        keys, counts = np.unique(key, return_counts=True)
    positions = dict.fromkeys(range(n_groups), _ZERO)
    fills = np.bincount(groups, minlength=n_groups)
    for k, n in zip(keys.tolist(), counts.tolist(), strict=True):
        buy, rest = k % 2, k // 2
        group, qty = divmod(rest, len(qty_values))
        amount = EXACT.multiply(Decimal(n), Decimal(qty_values[qty]))
        positions[group] = EXACT.add(positions[group], amount if buy else -amount)
    charged = np.flatnonzero((fees != "0") & pd.notna(currencies))
    if len(charged):  # distinct (group, fee, currency) counted as one integer key each
        fee_codes, fee_values = pd.factorize(fees[charged])
        cur_codes, cur_values = pd.factorize(currencies[charged])
        fee_key = (groups[charged].astype(np.int64) * len(fee_values) + fee_codes) * len(
            cur_values
        ) + cur_codes
        fee_keys, fee_counts = np.unique(fee_key, return_counts=True)
        for k, n in zip(fee_keys.tolist(), fee_counts.tolist(), strict=True):
            rest, currency_code = divmod(k, len(cur_values))
            group, fee_code = divmod(rest, len(fee_values))
            symbol = str(sym_names[group % len(sym_names)])
            fee, currency = str(fee_values[fee_code]), str(cur_values[currency_code])
            fee_delta = book_delta(symbol, "buy", "0", fee, currency)
            positions[group] = EXACT.add(positions[group], EXACT.multiply(Decimal(n), fee_delta))
    out: list[dict[str, SymbolTotal]] = [{} for _ in range(n_parts)]
    for group in np.flatnonzero(fills).tolist():
        part, symbol_code = divmod(group, len(sym_names))
        out[part][str(sym_names[symbol_code])] = SymbolTotal(int(fills[group]), positions[group])
    return out


def has_totals(conn: Connection) -> bool:
    return has_table(conn, "fill_totals")


def new_fill_totals(conn: Connection, after_id: int) -> dict[str, SymbolTotal]:
    """Totals of the fills with ``id > after_id`` (the rows a batch just inserted, read
    inside its transaction); not ``bookable`` for a symbol with a fee that cannot be
    booked."""
    by_symbol: dict[str, list[tuple[str, str, str, str | None]]] = {}
    for symbol, side, qty, fee, currency in conn.execute(
        "SELECT symbol, side, qty, fee, fee_currency FROM fills WHERE id > ?"
        f" AND source NOT IN {SIMULATED_SQL} ORDER BY id",
        (after_id,),
    ):
        by_symbol.setdefault(symbol, []).append((side, qty, fee, currency))
    totals: dict[str, SymbolTotal] = {}
    for symbol, rows in by_symbol.items():
        try:
            totals[symbol] = sum_deltas(symbol, rows)
        except UnbookableFee:
            totals[symbol] = SymbolTotal(len(rows), _ZERO, bookable=False)
    return totals


def add_to_totals(conn: Connection, added: Mapping[str, SymbolTotal], *, was_empty: bool) -> None:
    """Add the totals of rows that just became visible (inside the transaction that wrote
    them, or that completed their import).

    A symbol without a totals row starts one: from the batch alone when the batch holds all
    of its visible fills (``was_empty``: the table had no fills before the batch), else
    from its whole visible history (once, e.g. after the migration)."""
    for symbol, batch in added.items():
        if not batch.bookable:
            conn.execute("DELETE FROM fill_totals WHERE symbol = ?", (symbol,))
            continue
        if batch.fills == 0:
            continue
        row = conn.execute(
            "SELECT fills, position FROM fill_totals WHERE symbol = ?", (symbol,)
        ).fetchone()
        try:
            if row is not None:
                total = SymbolTotal(
                    row[0] + batch.fills, EXACT.add(Decimal(row[1]), batch.position)
                )
            elif was_empty or ledger_fill_count(conn, symbol) == batch.fills:
                total = batch
            else:
                total = _history_total(conn, symbol)
        except UnbookableFee:
            conn.execute("DELETE FROM fill_totals WHERE symbol = ?", (symbol,))
            continue
        conn.execute(
            "INSERT INTO fill_totals (symbol, fills, position) VALUES (?, ?, ?)"
            " ON CONFLICT (symbol) DO UPDATE SET fills = excluded.fills,"
            " position = excluded.position",
            (symbol, total.fills, str(total.position)),
        )


def _fill_count(conn: Connection, symbol: str) -> int:
    """All rows of ``symbol``, visible or not: an index-only count."""
    return int(conn.execute("SELECT count(*) FROM fills WHERE symbol = ?", (symbol,)).fetchone()[0])


def ledger_fill_count(conn: Connection, symbol: str) -> int:
    """The fills of ``symbol`` the ledger counts: every row minus those of unfinished
    imports and the simulated ones (each an index-only count)."""
    from stagectl.state.fill_visibility import simulated_fill_count, unfinished_fill_count

    return (
        _fill_count(conn, symbol)
        - unfinished_fill_count(conn, symbol)
        - simulated_fill_count(conn, symbol)
    )


def _history_total(conn: Connection, symbol: str) -> SymbolTotal:
    from stagectl.state.fill_visibility import ledger_clause

    rows = conn.execute(
        "SELECT side, qty, fee, fee_currency FROM fills"
        f" WHERE symbol = ? AND {ledger_clause(conn)}",
        (symbol,),
    )
    return sum_deltas(symbol, rows)


def has_mark(conn: Connection) -> bool:
    return has_table(conn, "fill_totals_mark")


def largest_fill_id(conn: Connection) -> int:
    """The largest fill id (0 when empty): one probe of the rowid b-tree."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM fills").fetchone()[0])


def keep_mark(conn: Connection, last_id: int) -> None:
    """Inside a write transaction that kept ``fill_totals`` exact and began with ``last_id``
    as the largest fill id: move the mark from there to the largest id now. A mark that was
    elsewhere (a write by other means came first) stays there, so readers keep counting."""
    if has_mark(conn):
        conn.execute(
            "UPDATE fill_totals_mark SET last_id = ? WHERE last_id = ?",
            (largest_fill_id(conn), last_id),
        )


def totals_trusted(conn: Connection, symbol: str, stored_fills: int) -> bool:
    """Whether ``symbol``'s totals row (``stored_fills`` fills) is the sum over its ledger
    fills: at once when the mark is at the largest fill id, else by counting them."""
    if has_mark(conn):
        row = conn.execute("SELECT last_id FROM fill_totals_mark").fetchone()
        if row is not None and row[0] == largest_fill_id(conn):
            return True
    return stored_fills == ledger_fill_count(conn, symbol)


def position_before(conn: Connection, symbol: str, before_ts: str) -> Decimal | None:
    """The exact position of ``symbol`` over the visible fills with ``ts < before_ts``, from
    the totals and the fills at or after ``before_ts``, or from the fills before it when
    those are fewer; None when the totals cannot be used.
    Its four reads must see one state of the ledger: call it inside a read transaction
    (``state.ledger_reads.snapshot``), or a fill written between them skews the answer."""
    from stagectl.state.fill_visibility import ledger_clause

    if not has_totals(conn):
        return None
    row = conn.execute(
        "SELECT fills, position FROM fill_totals WHERE symbol = ?", (symbol,)
    ).fetchone()
    if row is None or not totals_trusted(conn, symbol, row[0]):
        return None
    rows_after = conn.execute(
        "SELECT count(*) FROM fills WHERE symbol = ? AND ts >= ?", (symbol, before_ts)
    ).fetchone()[0]
    earlier = 2 * rows_after > row[0]  # fewer rows before T than after: sum those instead
    rows = conn.execute(
        "SELECT side, qty, fee, fee_currency FROM fills"
        f" WHERE symbol = ? AND ts {'<' if earlier else '>='} ? AND {ledger_clause(conn)}",
        (symbol, before_ts),
    )
    try:
        summed = sum_deltas(symbol, rows)
    except UnbookableFee:
        return None
    return summed.position if earlier else EXACT.subtract(Decimal(row[1]), summed.position)
