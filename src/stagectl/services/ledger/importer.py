"""``stagectl metrics import``: a trade file into the fill ledger, one transaction per file.

Order of work: a CSV is read and validated in chunks by a reader thread, one chunk ahead of
the writer, and every good row is written inside one ``BEGIN IMMEDIATE`` transaction
(``state.ledger.insert_trade_batches``); the first bad row (unless ``skip_bad``) rolls it
back and is reported once the rest of the file is validated. A process killed
half-way leaves the ledger as it was; a second import of the same file adds nothing because
fills are unique on (account, ``SYMBOL:trade id``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.data.trade_files import infer_format, read_trades
from stagectl.data.trade_validation import BadRow, TradeColumns
from stagectl.errors import InputError

if TYPE_CHECKING:
    from stagectl.state.ledger import TradeBatch

IMPORT_SOURCE = "import"
DEFAULT_ACCOUNT = "import"


@dataclass(frozen=True)
class ImportRequest:
    path: Path
    fmt: str | None = None
    account: str = DEFAULT_ACCOUNT
    symbol: str | None = None
    skip_bad: bool = False


@dataclass(frozen=True)
class ImportResult:
    path: Path
    fmt: str
    account: str
    state_path: Path
    rows: int
    inserted: int
    duplicates: int
    bad: list[BadRow] = field(default_factory=list)

    @property
    def skipped_bad(self) -> int:
        return len(self.bad)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "format": self.fmt,
            "account": self.account,
            "state": str(self.state_path),
            "rows": self.rows,
            "inserted": self.inserted,
            "already_recorded": self.duplicates,
            "skipped_bad": self.skipped_bad,
            "bad_rows": [b.to_dict() for b in self.bad],
        }


def trade_rows(columns: TradeColumns) -> tuple[Iterator[tuple[Any, ...]], int]:
    """The good rows of ``columns`` in ``state.ledger.TRADE_ROW_FIELDS`` order (an iterator
    over the columns, so no list of tuples is built) and how many there are. The numpy
    columns become lists first: iterating a list is several times cheaper per element."""
    fields = tuple(
        column.tolist()
        for column in (
            columns.trade_id,
            columns.symbol,
            columns.side,
            columns.qty,
            columns.price,
            columns.fee,
            columns.fee_currency,
            columns.liquidity,
            columns.order_id,
            columns.ts,
        )
    )
    if not columns.bad:
        return zip(*fields, strict=True), len(columns)
    bad_rows = {b.row for b in columns.bad}
    keep = [int(number) not in bad_rows for number in columns.row_numbers]
    return compress(zip(*fields, strict=True), keep), len(columns) - len(bad_rows)


def trade_batch(columns: TradeColumns) -> TradeBatch:
    """The good rows of ``columns`` staged for ``state.ledger.insert_trade_batches``: the
    low-cardinality columns (symbol, side, fee, fee currency, liquidity, order id) become
    one integer per row indexing their distinct combinations (pandas factorize, in C)."""
    import numpy as np
    import pandas as pd

    from stagectl.state.ledger import TradeBatch
    from stagectl.state.ledger_totals import UnbookableFee, totals_from_columns

    keep = _good_rows(columns)
    kind_columns = (
        columns.symbol,
        columns.side,
        columns.fee,
        columns.fee_currency,
        columns.liquidity,
        columns.order_id,
    )
    if keep is not None:
        kind_columns = tuple(column[keep] for column in kind_columns)
    key = np.zeros(len(kind_columns[0]), dtype=np.int64)
    distinct_rows = []
    for column in kind_columns:
        codes, distinct = pd.factorize(column, use_na_sentinel=False)
        key = pd.factorize(key * len(distinct) + codes)[0].astype(np.int64)  # stays < rows
        distinct_rows.append((codes, distinct))
    kind_codes, kind_keys = pd.factorize(key)
    first = np.zeros(len(kind_keys), dtype=np.int64)
    first[kind_codes[::-1]] = np.arange(len(kind_codes))[::-1]
    kinds = [
        tuple(_text_or_none(distinct[codes[row]]) for codes, distinct in distinct_rows)
        for row in first.tolist()
    ]
    totals = None
    if keep is None:
        with suppress(UnbookableFee):  # validated already; the ledger then reads rows back
            totals = totals_from_columns(
                columns.symbol, columns.side, columns.qty, columns.fee, columns.fee_currency
            )
    from stagectl.state.ledger import STAGE_GROUP_ROWS

    fields = [columns.trade_id, kind_codes, columns.qty, columns.price, columns.ts]
    if keep is not None:
        fields = [fields[0][keep], fields[1], *(column[keep] for column in fields[2:])]
    count = len(fields[0])
    staged = np.empty((count, len(fields)), dtype=object)
    for k, column in enumerate(fields):
        staged[:, k] = column.tolist()  # Python objects: the database driver cannot bind numpy ints
    full = count - count % STAGE_GROUP_ROWS
    return TradeBatch(
        groups=staged[:full].reshape(-1, STAGE_GROUP_ROWS * len(fields)).tolist(),
        tail=staged[full:].tolist(),
        count=count,
        kinds=kinds,
        totals=totals,
    )


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


def record_trades(db: Any, columns: TradeColumns, account: str, source: str) -> Any:
    """Write the good rows of ``columns`` for ``account`` in one transaction."""
    from stagectl.state.ledger import insert_trade_batches

    return insert_trade_batches(db, [trade_batch(columns)], exchange=account, source=source)


class _ChunkReader:
    """Reads and validates chunks in a thread, one chunk ahead of the writer, and only
    while the writer is inside SQLite (``INSERT ... SELECT`` releases the GIL; staging with
    ``executemany`` does not, and a thread competing for the GIL there would stall it on
    every row). ``go()`` lets the reader prepare one more chunk."""

    def __init__(self, chunks: Iterator[TradeColumns]) -> None:
        import queue
        import threading

        self._chunks = chunks
        self._ready: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._go = threading.Semaphore(1)
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="metrics-import-reader")
        self._thread.daemon = True
        self._thread.start()

    def _work(self) -> None:
        try:
            while True:
                self._go.acquire()
                if self._stop:
                    return
                chunk = next(self._chunks, None)
                if chunk is None:
                    self._ready.put(("end", None))
                    return
                self._ready.put(("chunk", (chunk, trade_batch(chunk))))
        except BaseException as error:  # handed to the writer, which re-raises it
            self._ready.put(("error", error))

    def go(self) -> None:
        self._go.release()

    def __iter__(self) -> Iterator[tuple[TradeColumns, TradeBatch]]:
        while True:
            kind, item = self._ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item

    def close(self) -> None:
        self._stop = True
        self._go.release()
        self._thread.join()


# Rows per chunk of a large CSV: small enough that the first chunk (read before any write
# can start) is a small share of the file, large enough that per-chunk costs vanish.
CHUNK_ROWS = 100_000


def run(request: ImportRequest, *, home: Home, progress: Any = None) -> ImportResult:
    """Validate ``request.path`` and record its fills; InputError on the first bad row."""
    from stagectl.data.trade_files import csv_chunks

    if not request.account.strip():
        raise InputError("must name an account", where="--source")
    fmt = infer_format(request.path, request.fmt)
    if not request.path.is_file():
        raise InputError("no such file", where=str(request.path))
    chunked = None
    if fmt == "csv":
        chunked = csv_chunks(request.path, symbol=request.symbol, rows_per_chunk=CHUNK_ROWS)
    if chunked is None:
        columns = read_trades(request.path, fmt, symbol=request.symbol)
        _check_bad(request, columns.bad, len(columns.bad))
        return _write(request, fmt, home, len(columns), iter([columns]), progress)
    rows, chunks = chunked
    return _write(request, fmt, home, rows, chunks, progress)


def _check_bad(request: ImportRequest, bad: list[BadRow], count: int) -> None:
    """InputError naming the first bad row, unless ``--skip-bad``."""
    if not bad or request.skip_bad:
        return
    first = bad[0]
    more = f" ({count - 1} more bad rows)" if count > 1 else ""
    raise InputError(
        f"{first.field}: {first.message}; nothing was imported{more} "
        "(--skip-bad imports the good rows)",
        where=f"{request.path}:{first.row}",
    )


def _write(
    request: ImportRequest,
    fmt: str,
    home: Home,
    rows: int,
    chunks: Iterator[TradeColumns],
    progress: Any,
) -> ImportResult:
    """Read ``chunks`` one ahead in a thread and write them in one transaction; a bad row
    (without ``--skip-bad``) rolls the transaction back and is reported after the rest of
    the file is validated (for the count of bad rows)."""
    from stagectl.state.db import open_state
    from stagectl.state.ledger import insert_trade_batches

    bad: list[BadRow] = []
    reader = _ChunkReader(chunks)
    items = iter(reader)

    def checked(item: tuple[TradeColumns, TradeBatch] | None) -> TradeBatch | None:
        if item is None:
            return None
        columns, batch = item
        bad.extend(columns.bad)
        if columns.bad and not request.skip_bad:
            for rest, _ in _drain(reader, items):
                bad.extend(rest.bad)
            _check_bad(request, bad, len(bad))
        return batch

    def batches(first: TradeBatch | None) -> Iterator[TradeBatch]:
        batch = first
        while batch is not None:
            yield batch  # the ledger calls reader.go() once this batch is staged
            batch = checked(next(items, None))

    state_path = home.state_path
    try:
        first = checked(next(items, None))  # a bad first chunk stops before the state opens
        with open_state(state_path) as db:
            if progress is not None:
                progress(f"writing {rows - len(bad)} fills to {state_path} in one transaction")
            counts = insert_trade_batches(
                db,
                batches(first),
                exchange=request.account,
                source=IMPORT_SOURCE,
                before_write=reader.go,
            )
    finally:
        reader.close()
    return ImportResult(
        path=request.path,
        fmt=fmt,
        account=request.account,
        state_path=state_path,
        rows=rows,
        inserted=counts.inserted,
        duplicates=counts.skipped,
        bad=bad,
    )


def _drain(
    reader: _ChunkReader, items: Iterator[tuple[TradeColumns, TradeBatch]]
) -> Iterator[tuple[TradeColumns, TradeBatch]]:
    """The reader's remaining chunks, read one after another (nothing is written)."""
    while True:
        reader.go()
        item = next(items, None)
        if item is None:
            return
        yield item
