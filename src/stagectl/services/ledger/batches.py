"""Validated trade columns cut into the batches ``state.ledger_merge`` stages and merges.

One batch per chunk read from a file: the low-cardinality columns (symbol, side, fee, fee
currency, liquidity, order id) become one integer ``kind`` per row indexing their distinct
combinations (pandas factorize, in C), so staging binds 5 values per trade; the rows are
split into merge parts of ``MERGE_BATCH_ROWS``, each with its per-symbol totals, computed
here (in the reader thread of ``metrics import``) rather than inside a write transaction.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any

from stagectl.data.trade_validation import TradeColumns

if TYPE_CHECKING:
    from stagectl.state.ledger_merge import TradeBatch


def trade_batch(columns: TradeColumns) -> TradeBatch:
    """The good rows of ``columns`` (every row not in ``columns.bad``) as a staged batch."""
    import numpy as np
    import pandas as pd

    from stagectl.state.ledger_merge import (
        MERGE_BATCH_ROWS,
        STAGE_GROUP_ROWS,
        TradeBatch,
        TradePart,
    )

    keep = _good_rows(columns)
    good = [
        column if keep is None else column[keep]
        for column in (
            columns.trade_id,
            columns.ts,
            columns.symbol,
            columns.side,
            columns.qty,
            columns.price,
            columns.fee,
            columns.fee_currency,
            columns.liquidity,
            columns.order_id,
        )
    ]
    trade_id, ts, symbol, side, qty, price, fee, currency, liquidity, order_id = good
    kind_columns = (symbol, side, fee, currency, liquidity, order_id)
    kind_codes, kind_keys = pd.factorize(_kind_key(columns, kind_columns, keep))
    first = np.zeros(len(kind_keys), dtype=np.int64)
    first[kind_codes[::-1]] = np.arange(len(kind_codes))[::-1]
    kinds = [tuple(_text_or_none(column[row]) for column in kind_columns) for row in first.tolist()]
    count = len(trade_id)
    totals = _part_totals(symbol, side, qty, fee, currency, MERGE_BATCH_ROWS)
    parts = [
        TradePart(rows=min(MERGE_BATCH_ROWS, count - start), totals=totals[k] if totals else None)
        for k, start in enumerate(range(0, count, MERGE_BATCH_ROWS))
    ]
    fields = [trade_id, kind_codes, qty, price, ts]
    staged = np.empty((count, len(fields)), dtype=object)
    for k, column in enumerate(fields):
        staged[:, k] = column.tolist()  # Python objects: the database driver cannot bind numpy ints
    full = count - count % STAGE_GROUP_ROWS
    row_numbers = columns.row_numbers if keep is None else columns.row_numbers[keep]
    return TradeBatch(
        groups=staged[:full].reshape(-1, STAGE_GROUP_ROWS * len(fields)).tolist(),
        tail=staged[full:].tolist(),
        count=count,
        kinds=kinds,
        parts=parts,
        row_numbers=row_numbers,
    )


def _kind_key(columns: TradeColumns, kind_columns: tuple[Any, ...], keep: Any) -> Any:
    """One int64 per row, equal for rows whose ``kind_columns`` (the good rows' values of
    ``KIND_COLUMNS``) are equal: the columns' codes from validation combined (a column
    without them is factorized here), re-factorized only when the product of their counts
    could overflow."""
    import numpy as np
    import pandas as pd

    from stagectl.data.trade_validation import KIND_COLUMNS

    rows = len(kind_columns[0])
    key, size = np.zeros(rows, dtype=np.int64), 1
    for name, column in zip(KIND_COLUMNS, kind_columns, strict=True):
        known = columns.codes.get(name)
        if known is None:
            codes, distinct = pd.factorize(column, use_na_sentinel=False)
            n = len(distinct)
        else:
            codes, n = known[0] if keep is None else known[0][keep], known[1]
        n = max(n, 1)
        if size * n >= 2**62:
            key = pd.factorize(key)[0].astype(np.int64)
            size = max(rows, 1)
        key, size = key * n + codes, size * n
    return key


def _part_totals(
    symbol: Any, side: Any, qty: Any, fee: Any, currency: Any, part_rows: int
) -> list[dict[str, Any]] | None:
    """Per-symbol totals of each merge part; None when a fee cannot be booked (validation
    refuses those, so the merge would then read the rows back)."""
    from stagectl.state.ledger_totals import UnbookableFee, totals_by_part

    with suppress(UnbookableFee):
        return totals_by_part(symbol, side, qty, fee, currency, part_rows=part_rows)
    return None


def _good_rows(columns: TradeColumns) -> Any:
    """A boolean mask of the rows that are not bad; None when every row is good."""
    import numpy as np

    if not columns.bad:
        return None
    bad_rows = np.array([b.row for b in columns.bad])
    return ~np.isin(columns.row_numbers, bad_rows)


def _text_or_none(value: Any) -> str | None:
    """A distinct value from ``pandas.factorize``: a missing one comes back as None or NaN."""
    import pandas as pd

    return None if pd.isna(value) else str(value)
