"""``stagectl metrics import``: a trade file into the fill ledger, one transaction per file.

Order of work: parse and validate the whole file (nothing is written yet); stop at the first
bad row unless ``skip_bad``; then write every good row with one ``executemany`` inside one
``BEGIN IMMEDIATE`` transaction (``state.ledger.insert_trade_rows``). A process killed
half-way leaves the ledger as it was; a second import of the same file adds nothing because
fills are unique on (account, ``SYMBOL:trade id``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.errors import InputError
from stagectl.services.metrics_parse import infer_format, read_trades
from stagectl.services.metrics_validate import BadRow, TradeColumns

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


def record_trades(db: Any, columns: TradeColumns, account: str, source: str) -> Any:
    """Write the good rows of ``columns`` for ``account`` in one transaction."""
    from stagectl.state.ledger import insert_trade_rows
    from stagectl.state.ledger_totals import UnbookableFee, totals_from_columns

    totals = None
    if not columns.bad:
        with suppress(UnbookableFee):  # validated already; the ledger then reads rows back
            totals = totals_from_columns(
                columns.symbol, columns.side, columns.qty, columns.fee, columns.fee_currency
            )
    rows, count = trade_rows(columns)
    return insert_trade_rows(db, rows, count=count, exchange=account, source=source, totals=totals)


def run(request: ImportRequest, *, home: Home, progress: Any = None) -> ImportResult:
    """Validate ``request.path`` and record its fills; InputError on the first bad row."""
    from stagectl.state.db import open_state

    if not request.account.strip():
        raise InputError("must name an account", where="--source")
    fmt = infer_format(request.path, request.fmt)
    if not request.path.is_file():
        raise InputError("no such file", where=str(request.path))
    columns = read_trades(request.path, fmt, symbol=request.symbol)
    if columns.bad and not request.skip_bad:
        first = columns.bad[0]
        more = f" ({len(columns.bad) - 1} more bad rows)" if len(columns.bad) > 1 else ""
        raise InputError(
            f"{first.field}: {first.message}; nothing was imported{more} "
            "(--skip-bad imports the good rows)",
            where=f"{request.path}:{first.row}",
        )
    state_path = home.state_path
    with open_state(state_path) as db:
        if progress is not None:
            good = len(columns) - len(columns.bad)
            progress(f"writing {good} fills to {state_path} in one transaction")
        counts = record_trades(db, columns, request.account, IMPORT_SOURCE)
    return ImportResult(
        path=request.path,
        fmt=fmt,
        account=request.account,
        state_path=state_path,
        rows=len(columns),
        inserted=counts.inserted,
        duplicates=counts.skipped,
        bad=columns.bad,
    )
