"""``stagectl metrics export-windows``: consecutive PnL windows of one symbol as CSV.

Windows are ``[start + k*w, start + (k+1)*w)`` (``domain.ledger_windows.pnl_windows``); fills
before ``start`` only seed the FIFO lots (read as carried-in lots, exactly). ``start`` defaults
to the first fill floored to the window, ``end`` to the last fill's window end. Mids come from
1-minute candles when given (the close of the bar opening at t is the mid at t + 1 min), else
from fill prices (the last fill at or before each bound); ``mid_source`` says which.

Entry: ``run(ExportRequest, *, home) -> ExportResult``; with ``out`` the CSV is written there
(atomically) and ``written`` names it, without it the caller prints ``csv_text()``.
``read_candles_file``, ``candle_mids`` and ``pnl_table`` are shared with ``regime-analyze``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.errors import InputError
from stagectl.services.ledger import reads as ledger

if TYPE_CHECKING:
    from stagectl.state.db import StateDB

MID_CANDLES = "candles"
MID_FILLS = "fill_prices"


@dataclass(frozen=True)
class ExportRequest:
    window_s: float
    symbol: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    candles: Path | None = None
    out: Path | None = None  # --out: write the CSV here instead of returning it to print


@dataclass(frozen=True)
class ExportResult:
    symbol: str | None
    table: Any  # pandas DataFrame, columns domain.ledger_windows.PNL_WINDOW_COLUMNS
    mid_source: str
    written: Path | None = None  # the CSV file written (request.out), None when not asked

    def csv_text(self) -> str:
        text: str = self.table.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        return text


def read_candles_file(path: Path) -> Any:
    """One validated OHLCV file (``data.loaders``), sorted by bar open time."""
    from stagectl.data.loaders import read_candle_file

    if not path.is_file():
        raise InputError("no such file", where=str(path))
    frame, _ = read_candle_file(path)
    return frame.sort_index()


def candle_mids(candles: Any) -> Any:
    """Closes indexed by bar close time (open + 1 bar): the mid known at that instant."""
    import pandas as pd

    step = pd.Series(candles.index).diff().median() if len(candles) > 1 else pd.Timedelta("1min")
    return pd.Series(candles["close"].to_numpy(float), index=candles.index + step)


def _floor(moment: datetime, window_s: float) -> datetime:
    epoch = moment.timestamp()
    return datetime.fromtimestamp(epoch - epoch % window_s, tz=UTC)


def _choose_symbol(db: StateDB, symbol: str | None) -> str | None:
    if symbol is not None:
        return symbol
    symbols = ledger.ledger_symbols(db)
    if len(symbols) > 1:
        raise InputError(
            f"the ledger holds several symbols ({', '.join(symbols)}); pass --symbol",
            where="--symbol",
        )
    return symbols[0] if symbols else None


def pnl_table(db: StateDB, request: ExportRequest, symbol: str | None, mids: Any) -> Any:
    """The PnL windows of ``symbol`` from the open ledger (an empty table without fills)."""
    import pandas as pd

    from stagectl.domain.ledger_windows import PNL_WINDOW_COLUMNS, pnl_windows

    span = ledger.fill_span(db, symbol) if symbol is not None else None
    if span is None and (request.start is None or request.end is None):
        return pd.DataFrame(columns=list(PNL_WINDOW_COLUMNS))
    start = request.start or _floor(span[0], request.window_s)  # type: ignore[index]
    end = request.end or _floor(span[1], request.window_s) + timedelta(  # type: ignore[index]
        seconds=request.window_s
    )
    if end <= start:
        raise InputError("--end must be after --start", where="--end")
    fills: list[Any] = []
    if symbol is not None:
        fills = ledger.carried_lots(db, symbol, start)
        fills += ledger.window_fills(db, symbol, start, end)[0]
    return pnl_windows(fills, request.window_s, start, end, mids)


def _fill_mids(db: StateDB, symbol: str | None) -> Any:
    """Fill prices as a float Series on their times (the mids when no candles are given)."""
    import pandas as pd

    from stagectl.state.ledger_reads import fill_prices

    if symbol is None:
        return None
    recorded = fill_prices(db, symbol)
    if not len(recorded):
        return None
    index = pd.DatetimeIndex(pd.to_datetime(list(recorded.times), utc=True, format="ISO8601"))
    series = pd.Series([float(p) for p in recorded.prices], index=index)
    return series[~series.index.duplicated(keep="last")]


def run(request: ExportRequest, *, home: Home) -> ExportResult:
    """The windows from one snapshot of the home's ledger, written to ``request.out`` when
    given."""
    from stagectl.reports.io import write_atomic
    from stagectl.state.ledger_reads import snapshot

    if request.window_s <= 0:
        raise InputError("must be a positive number of seconds", where="--window")
    candles = read_candles_file(request.candles) if request.candles else None
    with ledger.open_ledger(home.state_path) as db, snapshot(db):
        symbol = _choose_symbol(db, request.symbol)
        if candles is not None:
            mids, source = candle_mids(candles), MID_CANDLES
        else:
            mids, source = _fill_mids(db, symbol), MID_FILLS
        table = pnl_table(db, request, symbol, mids)
    result = ExportResult(symbol=symbol, table=table, mid_source=source)
    if request.out is None:
        return result
    write_atomic(request.out, result.csv_text().encode())
    return replace(result, written=request.out)
