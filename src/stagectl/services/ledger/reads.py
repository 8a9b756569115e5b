"""Reading the fill ledger for the metrics commands: lots carried in, window fills, marks.

The lots open at a time T depend on the whole history before T, but only through the
position there: with the ledger's running totals the position comes from ``fill_totals`` and
the lots from a short backward scan (:func:`newest_lots`). Without them, the history is read
as text columns (only side, qty, price and fee), turned into integer minor units (each
distinct value converted once) and run through the domain's exact integer FIFO kernel. The
open lots come back as the domain's ``Lot``s (:func:`open_lots`, which ``window_metrics``
books as lots) or as *opening fills* (:func:`carried_lots`: a long lot is a buy of its size
at its price, a short lot a sell, which FIFO books into exactly the same lot queue, for
``pnl_windows``). The SQL is ``state.ledger_reads``'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stagectl.config.state_url import StateLocation

if TYPE_CHECKING:
    from stagectl.state.db import StateDB
    from stagectl.state.ledger_checkpoints import LedgerRows, LotText

_INT64_SAFE = 2**62
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
CHECKPOINT_GAP = 8192
"""The most fills booked on top of a checkpoint; further from one, the lots come from the
running totals and a backward scan instead."""


def open_ledger(path: StateLocation) -> StateDB:
    """The state database for reading; a missing file is an input error naming it."""
    from stagectl.state.db import open_state

    return open_state(path, migrate=False)


def ledger_symbols(db: StateDB, before: datetime | None = None) -> list[str]:
    """Distinct symbols with fills (before ``before``)."""
    from stagectl.state.ledger_reads import symbols_with_fills

    return symbols_with_fills(db, before)


def _units(texts: Sequence[str]) -> tuple[int, list[int]]:
    """``(places, units)`` for decimal strings, as ``domain.ledger.scaled_units`` gives them
    for their values: each distinct string converted once, plain ones (``-12.340``) from
    their digits, anything else (an exponent) through Decimal."""
    from stagectl.domain.ledger import scaled_units

    distinct = set(texts)
    if not all(map(_PLAIN_DECIMAL.fullmatch, distinct)):
        listed = list(distinct)
        places, units = scaled_units([Decimal(t) for t in listed])
        mapping = dict(zip(listed, units, strict=True))
        return places, [mapping[t] for t in texts]
    split = {t: t.partition(".")[::2] for t in distinct}
    digits = {t: (whole, fraction.rstrip("0")) for t, (whole, fraction) in split.items()}
    places = max((len(fraction) for _, fraction in digits.values()), default=0)
    mapping = {t: int(whole + part.ljust(places, "0")) for t, (whole, part) in digits.items()}
    return places, [mapping[t] for t in texts]


def carried_lots(db: StateDB, symbol: str, before: datetime) -> list[Any]:
    """The FIFO lots of ``symbol`` open just before ``before``, as opening domain Fills
    (``open_lots``, each as ``Lot.opening_fill``: what ``pnl_windows`` books)."""
    return [lot.opening_fill() for lot in open_lots(db, symbol, before)]


def open_lots(db: StateDB, symbol: str, before: datetime) -> list[Any]:
    """The FIFO lots of ``symbol`` open just before ``before`` (domain Lots, oldest first).

    From the newest lot checkpoint before ``before`` and the fills since it
    (``state.ledger_checkpoints``); else, with the ledger's running totals
    (``state.ledger_totals``), from the fills from ``before`` on and the few newest ones
    before it; otherwise the whole history runs through the integer FIFO kernel."""
    from stagectl.state.ledger_reads import position_before

    lots = _checkpoint_open_lots(db, symbol, before)
    if lots is not None:
        return lots
    position = position_before(db, symbol, before)
    fills = None if position is None else newest_lots(db, symbol, before, position)
    if fills is None:
        fills = scan_carried_lots(db, symbol, before)
    return [_fill_lot(fill) for fill in fills]


def checkpoint_lots(db: StateDB, symbol: str, before: datetime) -> list[Any] | None:
    """``carried_lots`` from a trusted checkpoint at most ``CHECKPOINT_GAP`` fills before
    ``before``; None without one."""
    lots = _checkpoint_open_lots(db, symbol, before)
    return None if lots is None else [lot.opening_fill() for lot in lots]


def _checkpoint_open_lots(db: StateDB, symbol: str, before: datetime) -> list[Any] | None:
    """``open_lots`` from a trusted checkpoint (None without one near enough)."""
    from stagectl.state import ledger_checkpoints as checkpoints
    from stagectl.state._codec import ts_text

    if not checkpoints.has_checkpoints(db.conn):
        return None
    before_ts = ts_text(before)
    checkpoint = checkpoints.newest_at_or_before(db.conn, symbol, before_ts)
    if checkpoint is None:
        return None
    gap = checkpoints.rows_between(
        db.conn, symbol, checkpoint.before_ts, before_ts, limit=CHECKPOINT_GAP
    )
    if gap is None:
        return None
    return stored_lots(symbol, book_lots(symbol, checkpoint.lots, gap))


def stored_lots(symbol: str, lots: Sequence[LotText]) -> list[Any]:
    """Stored open lots as the domain's Lots (each distinct price text converted once)."""
    from stagectl.domain.ledger import Lot
    from stagectl.state._codec import parse_ts

    prices = {text: Decimal(text) for text in {lot[1] for lot in lots}}
    return [
        Lot(symbol, Decimal(qty), prices[price], trade_id, parse_ts(ts))
        for qty, price, trade_id, ts in lots
    ]


def _fill_lot(fill: Any) -> Any:
    """An opening domain Fill (the walk back, the scan) as the Lot it opens."""
    from stagectl.domain.ledger import Lot

    qty = fill.qty if fill.side == "buy" else fill.qty.copy_negate()
    return Lot(fill.symbol, qty, fill.price, fill.trade_id, fill.ts)


def book_lots(symbol: str, seed: Sequence[LotText], rows: LedgerRows) -> list[LotText]:
    """The lots open after booking ``rows`` (stored fills, in ledger order) on top of the
    open lots ``seed``, exactly (the integer FIFO kernel)."""
    if not len(rows):
        return list(seed)
    n_seed = len(seed)
    shorts = [lot[0].startswith("-") for lot in seed]
    pieces = _open_pieces(
        symbol,
        ["sell" if short else "buy" for short in shorts] + list(rows.sides),
        [lot[0][1:] if short else lot[0] for lot, short in zip(seed, shorts, strict=True)]
        + list(rows.qtys),
        [lot[1] for lot in seed] + list(rows.prices),
        ["0"] * n_seed + list(rows.fees),
        [None] * n_seed + list(rows.fee_currencies),
    )
    lots: list[LotText] = []
    for k, qty in pieces:
        if k < n_seed:
            lots.append((qty, *seed[k][1:]))
        else:
            j = k - n_seed
            lots.append((qty, rows.prices[j], rows.trade_ids[j], rows.times[j]))
    return lots


def _open_pieces(
    symbol: str,
    sides: Sequence[str],
    qtys: Sequence[str],
    prices: Sequence[str],
    fees: Sequence[str],
    currencies: Sequence[str | None],
) -> list[tuple[int, str]]:
    """The lots FIFO leaves open after these fills (stored text columns, booked in order):
    ``(index of the opening fill, signed quantity as Decimal text)``, oldest first."""
    import numpy as np

    from stagectl.domain.ledger import fifo_kernel
    from stagectl.domain.types import fee_in_base

    n = len(sides)
    if not n:
        return []
    base_fee = ["0"] * n
    for k, (fee, currency) in enumerate(zip(fees, currencies, strict=True)):
        if currency and fee != "0" and fee_in_base(symbol, currency, Decimal(fee)):
            base_fee[k] = fee
    qty_places, qty_u = _units(list(qtys) + base_fee)
    _, price_u = _units(prices)
    bound = sum(map(abs, qty_u)) * max(price_u)
    dtype: Any = np.int64 if bound < _INT64_SAFE else object
    qty_arr = np.array(qty_u[:n], dtype=dtype)
    fee_arr = np.array(qty_u[n:], dtype=dtype)
    delta = np.where(np.array(sides) == "buy", qty_arr, -qty_arr) - fee_arr
    kernel = fifo_kernel(delta, np.array(price_u, dtype=dtype))
    return [
        (int(k), str(Decimal(int(units)).scaleb(-qty_places)))
        for k, units in zip(kernel.lot_fill_index, kernel.lot_qty, strict=True)
    ]


def newest_lots(
    db: StateDB, symbol: str, before: datetime, position: Decimal, *, max_lots: int | None = None
) -> list[Any] | None:
    """The open FIFO lots given the exact position just before ``before`` (None if the
    fills cannot make up that position: then the totals are not to be trusted; None too
    when there are more than ``max_lots``).

    FIFO consumes the oldest lots first, so the lots of a long position P are the newest
    buys' book deltas walking back from ``before`` until they add up to P (the oldest of
    them only partly); fills against the position in between consumed older lots, not
    these. A short position mirrors it with sells. The walk never leaves the current
    episode on the position's side: that episode opened at least |P|. The rows come from a
    backward scan of the (symbol, ts) index, read only as far as needed."""
    from stagectl.domain.types import Fill, Side
    from stagectl.state.ledger_reads import newest_fills
    from stagectl.state.ledger_totals import EXACT, book_delta

    if position == 0:
        return []
    side = Side.BUY if position > 0 else Side.SELL
    needed = abs(position)
    lots = []
    for fill in newest_fills(db, symbol, before, side):
        opened = abs(book_delta(symbol, side, fill.qty, fill.fee, fill.fee_currency))
        take = min(opened, needed)
        lots.append(
            Fill(
                trade_id=fill.trade_id,
                ts=fill.ts,
                symbol=symbol,
                side=side,
                qty=take,
                price=fill.price,
            )
        )
        needed = EXACT.subtract(needed, take)
        if needed == 0 or (max_lots is not None and len(lots) > max_lots):
            break
    return lots[::-1] if needed == 0 else None


def scan_carried_lots(db: StateDB, symbol: str, before: datetime) -> list[Any]:
    """``carried_lots`` from the whole history before ``before`` (no totals needed)."""
    from stagectl.domain.types import Fill, Side
    from stagectl.state.ledger_reads import fill_origins, history_columns

    history = history_columns(db, symbol, before)
    pieces = _open_pieces(
        symbol, history.sides, history.qtys, history.prices, history.fees, history.fee_currencies
    )
    if not pieces:
        return []
    origin = fill_origins(db, [history.row_ids[k] for k, _ in pieces])
    lots = []
    for k, qty in pieces:
        trade_id, ts = origin[history.row_ids[k]]
        short = qty.startswith("-")
        lots.append(
            Fill(
                trade_id=trade_id,
                ts=ts,
                symbol=symbol,
                side=Side.SELL if short else Side.BUY,
                qty=Decimal(qty[1:] if short else qty),
                price=Decimal(history.prices[k]),
            )
        )
    return lots


def window_fills(db: StateDB, symbol: str, start: datetime, end: datetime) -> tuple[list[Any], int]:
    """Domain Fills of ``symbol`` with ``start <= ts < end`` in ledger order, and how many had
    no recorded liquidity (booked as taker)."""
    from stagectl.state import ledger_reads

    recorded = ledger_reads.window_fills(db, symbol, start, end)
    unknown = sum(1 for fill in recorded if fill.liquidity is None)
    return recorded, unknown


def last_price(db: StateDB, symbol: str, before: datetime) -> Decimal | None:
    """The price of the last fill of ``symbol`` before ``before`` (the default mark)."""
    from stagectl.state.ledger_reads import last_fill_price

    return last_fill_price(db, symbol, before)


def fill_span(
    db: StateDB, symbol: str, *, between: tuple[datetime, datetime] | None = None
) -> tuple[datetime, datetime] | None:
    """The first and the last fill time of ``symbol`` (only ``start <= ts < end`` with
    ``between=(start, end)``); None without such fills."""
    from stagectl.state import ledger_reads

    return ledger_reads.fill_span(db, symbol, between=between)
