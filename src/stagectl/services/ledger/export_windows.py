"""``stagectl metrics export-windows``: consecutive PnL windows of one symbol as CSV.

Windows are ``[start + k*w, start + (k+1)*w)`` (``domain.ledger_windows.pnl_windows``); fills
before ``start`` only seed the FIFO lots (read as carried-in lots, exactly). ``start`` defaults
to the first fill floored to the window, ``end`` to the last fill's window end. Mids come from
1-minute candles when given (the close of the bar opening at t is the mid at t + 1 min), else
from fill prices (the last fill at or before each bound); ``mid_source`` says which.

Entry: ``run(ExportRequest, *, home) -> ExportResult``; with ``out`` the CSV is written there
(atomically) and ``written`` names it, without it the caller prints ``csv_text()``.
``candle_mids``, ``check_symbol`` and ``pnl_table`` are shared with ``regime-analyze``.

The candles must be of the fills' symbol (``data.segments``): a file whose name or
``symbol`` column names another symbol is refused (exit 2); one that names none is used only
when ``--symbol`` vouches for it, and a note says so.
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
    from stagectl.data.segments import CandleSet
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
    notes: tuple[str, ...] = ()  # about the candles: a symbol taken on --symbol's word, gaps

    def csv_text(self) -> str:
        text: str = self.table.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        return text


def read_candles(path: Path) -> CandleSet:
    """One validated OHLCV file as a ``data.segments.CandleSet`` (symbol, interval, gaps)."""
    from stagectl.data.segments import read_candle_set

    return read_candle_set((path,))


def candle_mids(candles: Any, interval: Any = None) -> Any:
    """Closes indexed by bar close time (open + one bar): the mid known at that instant.

    The bar is ``interval`` when known (``CandleSet.interval``), else the median spacing."""
    import pandas as pd

    step = interval
    if step is None:
        step = (
            pd.Series(candles.index).diff().median() if len(candles) > 1 else pd.Timedelta("1min")
        )
    return pd.Series(candles["close"].to_numpy(float), index=candles.index + step)


def check_symbol(candles: CandleSet, fills_symbol: str | None, given: bool) -> list[str]:
    """The candles must be of the fills' symbol (``data.segments.check_candle_symbol``);
    without fills there is nothing to compare."""
    from stagectl.data.segments import check_candle_symbol

    if fills_symbol is None:
        return []
    symbol_is = "--symbol is" if given else "the fills are"
    return check_candle_symbol(candles, fills_symbol, symbol_is=symbol_is, vouched=given)


def floor_to_window(moment: datetime, window_s: float) -> datetime:
    """The start of the window holding ``moment`` (windows are aligned on the epoch)."""
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

    start, end = request.start, request.end
    if start is None or end is None:  # the fills' span fills in what the request leaves open
        span = ledger.fill_span(db, symbol) if symbol is not None else None
        if span is None:
            return pd.DataFrame(columns=list(PNL_WINDOW_COLUMNS))
        start = start or floor_to_window(span[0], request.window_s)
        end = end or floor_to_window(span[1], request.window_s) + timedelta(
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
    candles = read_candles(request.candles) if request.candles else None
    notes: list[str] = []
    with ledger.open_ledger(home.state_path) as db, snapshot(db):
        symbol = _choose_symbol(db, request.symbol)
        if candles is not None:
            notes = check_symbol(candles, symbol, request.symbol is not None)
            notes += candles.notes
            mids, source = candle_mids(candles.frame, candles.interval), MID_CANDLES
        else:
            mids, source = _fill_mids(db, symbol), MID_FILLS
        table = pnl_table(db, request, symbol, mids)
    result = ExportResult(symbol=symbol, table=table, mid_source=source, notes=tuple(notes))
    if request.out is None:
        return result
    write_atomic(request.out, result.csv_text().encode())
    return replace(result, written=request.out)
