"""Load and validate candle and funding CSV files.

Validation on load (a bad row is an InputError naming ``file:line`` and the column,
exit 2): required columns present, once each; every value parses (numbers finite;
timestamps ISO-8601, or epoch seconds or milliseconds, UTC, between 1678 and 2261);
prices > 0; high >= max(open, close); low <= min(open, close); volume >= 0;
timestamps unique. Rows out of order are sorted and the sort is reported
(``Loaded.resorted``). Blank lines are skipped; line numbers count the header as
line 1.

A clean file is parsed once by pandas' C parser with native types and checked
column by column (masks over whole columns); a file it cannot type is read again
as text. Where a check fails, the first failing row's line is looked up from its
position, so nothing per row is built unless there is an error to report.
"""

from __future__ import annotations

import lzma
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from stagectl.data import files
from stagectl.data.bundled import SAMPLE_DIR
from stagectl.domain.data_quality import (
    QualityPolicy,
    QualityReport,
    govern_candles,
    timeframe_seconds,
)
from stagectl.errors import InputError, first_line

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
FUNDING_COLUMN = "funding_rate"
MARK_COLUMN = "mark_price"
_ALIASES = {
    "time": "timestamp",
    "date": "timestamp",
    "datetime": "timestamp",
    "open_time": "timestamp",
    "ts": "timestamp",
    "rate": FUNDING_COLUMN,
    "fundingrate": FUNDING_COLUMN,
    "funding": FUNDING_COLUMN,
    "markprice": MARK_COLUMN,
    "mark": MARK_COLUMN,
}
Reader = Callable[[Path], tuple[pd.DataFrame, np.ndarray]]
# A corrupt compressed file fails inside the decompressor, with errors that are not OSError.
DECOMPRESSION_ERRORS = (zlib.error, lzma.LZMAError, zipfile.BadZipFile)
_EPOCH_MS_ABOVE = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973
# The times a nanosecond timestamp holds (1677-09-22 .. 2262-04-11), in whole epoch seconds.
_EPOCH_MIN_S = float(pd.Timestamp.min.value // 10**9 + 1)
_EPOCH_MAX_S = float(pd.Timestamp.max.value // 10**9 - 1)
_OUT_OF_RANGE = "within 1677-09-22 .. 2262-04-11"
_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


@dataclass
class Loaded:
    """A validated dataset and what loading it did."""

    frame: pd.DataFrame
    files: list[Path]
    resorted: bool = False
    notes: list[str] = field(default_factory=list)


def _csv(path: Path, **options: object) -> pd.DataFrame:
    """``pandas.read_csv`` with blank lines kept (for line numbers) and its errors as ours."""
    try:
        with warnings.catch_warnings():  # mixed types: the text path reports the value
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            frame: pd.DataFrame = pd.read_csv(  # type: ignore[call-overload]
                path, skip_blank_lines=False, keep_default_na=False, **options
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        message = f"not a readable CSV file: {first_line(error)}"
        raise InputError(message, where=str(path)) from error
    except (OSError, EOFError, *DECOMPRESSION_ERRORS) as error:
        raise InputError(f"cannot read: {first_line(error)}", where=str(path)) from error
    return frame


def _read(path: Path, columns: tuple[str, ...], *, as_text: bool) -> pd.DataFrame:
    """The file with our column names (none twice), checked to have ``columns``.

    ``as_text`` keeps every value as the file's text (the path that names a bad
    value). Otherwise pandas infers each column's type, and only an empty field is a
    missing value: ``NaN`` or ``null`` stay text. Asking for float64 outright would
    turn a column of ``True``/``False`` into 1.0/0.0; the empty ``dtype`` mapping
    fixes no type, but makes pandas' parallel reader gather the columns one by one,
    which lowers the peak memory of a large file by about 15 %.
    """
    frame = _csv(path, dtype=str) if as_text else _csv(path, dtype={}, na_values=[""])
    names = [_column_name(c) for c in frame.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # e.g. "close" and "Close", or "timestamp" and its alias "ts"
        message = f"column(s) {', '.join(repeated)} given twice (names ignore case and aliases)"
        raise InputError(message, where=f"{path}:1")
    frame.columns = names
    _require(names, path, ("timestamp", *columns))
    return frame


def _column_name(raw: object) -> str:
    name = str(raw).strip().lower()
    return _ALIASES.get(name, name)


def _require(names: list[str], path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in names]
    if missing:
        found = ", ".join(names) or "none"
        raise InputError(
            f"missing column(s) {', '.join(missing)} (found: {found})", where=f"{path}:1"
        )


def _bad(path: Path, lines: np.ndarray, row: int, message: str) -> InputError:
    return InputError(message, where=f"{path}:{int(lines[row])}")


def _is_number(column: pd.Series) -> bool:
    return is_numeric_dtype(column) and not is_bool_dtype(column)


def _shown(value: object) -> str:
    """A value as an error message quotes it: the text, or a parsed number as text."""
    return repr(value if isinstance(value, str) else str(value))


def _numbers(raw: pd.Series, path: Path, lines: np.ndarray, column: str) -> pd.Series:
    """The column as finite float64 (sharing the parser's memory when it is numeric)."""
    if _is_number(raw):
        values = raw.astype(np.float64)
    else:
        values = pd.to_numeric(raw.str.strip(), errors="coerce").astype(np.float64)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        row = int(np.argmax(bad))
        message = f"column {column}: {_shown(raw.iloc[row])} is not a finite number"
        raise _bad(path, lines, row, message)
    return values


_LOOKS_EPOCH = r"[+-]?\d+(?:\.\d*)?"


def _epoch_candidates(raw: pd.Series) -> pd.Series | None:
    """The text as numbers when its first values look like epochs, else None.

    ``to_numeric`` on half a million ISO strings costs ~0.5 s only to find they
    are not numbers; a look at the first values decides which parser runs.
    """
    head = raw.iloc[:100].str.strip()
    if head.empty or head.str.fullmatch(_LOOKS_EPOCH).mean() <= 0.5:
        return None
    return pd.to_numeric(raw.str.strip(), errors="coerce")


def _from_epochs(
    numeric: pd.Series, raw: pd.Series, path: Path, lines: np.ndarray
) -> pd.DatetimeIndex:
    """Epoch seconds, or milliseconds when any value is at least 1e11."""
    values: npt.NDArray[np.float64] = numeric.to_numpy(dtype=np.float64)
    bad = np.isnan(values)
    if bad.any():
        row = int(np.argmax(bad))
        raise _bad(path, lines, row, f"column timestamp: {_shown(raw.iloc[row])} is not an epoch")
    unit: Literal["s", "ms"] = "ms" if np.abs(values).max() >= _EPOCH_MS_ABOVE else "s"
    outside = _outside(values, unit)
    if outside is not None:
        row = int(np.argmax(outside))
        message = f"column timestamp: {_shown(raw.iloc[row])} is not an epoch {_OUT_OF_RANGE}"
        raise _bad(path, lines, row, message)
    if np.array_equal(values, np.round(values)):
        return pd.to_datetime(values.astype(np.int64), unit=unit, utc=True)
    return pd.to_datetime(values, unit=unit, utc=True)


def _outside(values: np.ndarray, unit: str) -> np.ndarray | None:
    """Which times (``unit`` since the epoch; NaT is the lowest int64) a nanosecond
    timestamp cannot hold, or None when it holds them all (two reductions, no mask)."""
    low, high = _EPOCH_MIN_S * _PER_SECOND[unit], _EPOCH_MAX_S * _PER_SECOND[unit]
    if values.size == 0 or (low <= values.min() and values.max() <= high):
        return None
    return ~((values >= low) & (values <= high))


def _from_iso(raw: pd.Series, path: Path, lines: np.ndarray) -> pd.DatetimeIndex:
    """ISO-8601 times (naive means UTC), parsed as one column.

    The parser allows spaces around a time; a value it refuses is tried once more
    stripped of any other white space, and only then reported. Parsed at a coarser
    unit, a year such as 0001 or 9999 parses but has no nanoseconds: refused too.
    """
    parsed = pd.DatetimeIndex(pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce"))
    failed = np.asarray(parsed.isna())
    if failed.any():
        text = raw.copy()
        text[failed] = raw[failed].str.strip()
        parsed = pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce"))
    bad = _outside(parsed.asi8, parsed.unit)
    if bad is not None:
        row = int(np.argmax(bad))
        message = (
            f"column timestamp: {_shown(raw.iloc[row])} is not an ISO-8601 time "
            f"or an epoch {_OUT_OF_RANGE}"
        )
        raise _bad(path, lines, row, message)
    return parsed


def _timestamps(raw: pd.Series, path: Path, lines: np.ndarray) -> pd.DatetimeIndex:
    """ISO-8601 (naive means UTC) or epoch seconds / milliseconds, as a UTC index."""
    numeric = raw if _is_number(raw) else _epoch_candidates(raw)
    if numeric is not None and numeric.notna().mean() > 0.5:
        parsed = _from_epochs(numeric, raw, path, lines)
    else:
        parsed = _from_iso(raw, path, lines)
    return pd.DatetimeIndex(parsed, name="timestamp").as_unit("ns")


def _fast_rows(path: Path, columns: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The file parsed natively when its columns have the types a clean file gives, else None.

    Rows whose every required field is empty (blank lines) are dropped with their
    line numbers; any other empty field sends the file to the text path.
    """
    frame = _read(path, columns, as_text=False)
    stamps = frame["timestamp"]
    if not all(_is_number(frame[c]) for c in columns) or not (
        _is_number(stamps) or isinstance(stamps.dtype, pd.StringDtype)
    ):
        return None
    lines = np.arange(2, len(frame) + 2)
    empty = [frame[c].isna().to_numpy() for c in ("timestamp", *columns)]
    some = np.logical_or.reduce(empty)
    if some.any():
        if not np.array_equal(some, np.logical_and.reduce(empty)):
            return None
        frame, lines = frame[~some], lines[~some]
    return frame, lines


def _text_rows(path: Path, columns: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray]:
    """Every value as the file's text, blank rows dropped: the path that names a bad value."""
    frame = _read(path, columns, as_text=True)
    lines = np.arange(2, len(frame) + 2)
    blank = (frame[["timestamp", *columns]].apply(lambda s: s.str.strip()) == "").all(axis=1)
    if blank.any():
        keep = ~blank.to_numpy()
        frame, lines = frame[keep], lines[keep]
    return frame, lines


Validate = Callable[[pd.DataFrame, Path, np.ndarray], pd.DataFrame]


def _read_validated(
    path: Path, columns: tuple[str, ...], validate: Validate
) -> tuple[pd.DataFrame, np.ndarray]:
    """One file through ``validate``: natively parsed when it can be, else as text.

    A clean file costs one pass of pandas' C parser and column-wise checks; where a
    check fails, the first failing row's line is looked up from its position.
    """
    frame, lines = _fast_rows(path, columns) or _text_rows(path, columns)
    return validate(frame, path, lines), lines


def _check_ohlcv(values: dict[str, np.ndarray], path: Path, lines: np.ndarray) -> None:
    o, h, low, c, v = (values[k] for k in OHLCV_COLUMNS)
    rules = (
        ("open", o <= 0, "open must be > 0"),
        ("high", h <= 0, "high must be > 0"),
        ("low", low <= 0, "low must be > 0"),
        ("close", c <= 0, "close must be > 0"),
        ("high", h < np.maximum(o, c), "high is below max(open, close)"),
        ("low", low > np.minimum(o, c), "low is above min(open, close)"),
        ("volume", v < 0, "volume is negative"),
    )
    first: tuple[int, str, str] | None = None
    for column, mask, message in rules:
        if mask.any():
            row = int(np.argmax(mask))
            if first is None or row < first[0]:
                first = (row, column, message)
    if first is not None:
        row, column, message = first
        shown = ", ".join(f"{k}={float(values[k][row])!r}" for k in OHLCV_COLUMNS)
        raise _bad(path, lines, row, f"column {column}: {message} ({shown})")


def _frame(columns: dict[str, pd.Series], index: pd.DatetimeIndex) -> pd.DataFrame:
    """The validated columns on the time index, without copying them."""
    return pd.DataFrame(columns, copy=False).set_axis(index)


def _candles(frame: pd.DataFrame, path: Path, lines: np.ndarray) -> pd.DataFrame:
    index = _timestamps(frame["timestamp"], path, lines)
    columns = {c: _numbers(frame[c], path, lines, c) for c in OHLCV_COLUMNS}
    _check_ohlcv({c: s.to_numpy() for c, s in columns.items()}, path, lines)
    return _frame(columns, index)


def _funding(frame: pd.DataFrame, path: Path, lines: np.ndarray) -> pd.DataFrame:
    index = _timestamps(frame["timestamp"], path, lines)
    rates = _numbers(frame[FUNDING_COLUMN], path, lines, FUNDING_COLUMN)
    return _frame({FUNDING_COLUMN: rates}, index)


def _marks(frame: pd.DataFrame, path: Path, lines: np.ndarray) -> pd.DataFrame:
    index = _timestamps(frame["timestamp"], path, lines)
    prices = _numbers(frame[MARK_COLUMN], path, lines, MARK_COLUMN)
    bad = prices.to_numpy() <= 0
    if bad.any():
        row = int(np.argmax(bad))
        message = f"column {MARK_COLUMN}: must be > 0 ({float(prices.iloc[row])!r})"
        raise _bad(path, lines, row, message)
    return _frame({MARK_COLUMN: prices}, index)


def read_mark_file(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """One mark-price file (``timestamp,mark_price``), validated, in file order."""
    return _read_validated(path, (MARK_COLUMN,), _marks)


def read_candle_file(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """One OHLCV file, validated row by row, in file order; also its line numbers."""
    return _read_validated(path, OHLCV_COLUMNS, _candles)


def read_funding_file(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """One funding file (fraction per settlement), validated, in file order."""
    return _read_validated(path, (FUNDING_COLUMN,), _funding)


def _origin(position: int, lines: list[np.ndarray]) -> tuple[int, int]:
    """Which file (its number) and line a row of the concatenated parts came from."""
    ends = np.cumsum([part.size for part in lines])
    number = int(np.searchsorted(ends, position, side="right"))
    start = int(ends[number - 1]) if number else 0
    return number, int(lines[number][position - start])


def _combine(paths: list[Path], reader: Reader) -> Loaded:
    """Read every part, sort when needed, refuse duplicate timestamps.

    Where a row came from is looked up only for the error: sorted stamps put a
    duplicate next to its first occurrence, so one comparison of neighbours finds it.
    """
    parts: list[pd.DataFrame] = []
    lines: list[np.ndarray] = []
    for path in paths:
        frame, numbers = reader(path)
        parts.append(frame)
        lines.append(numbers)
    frame = pd.concat(parts) if len(parts) > 1 else parts[0]
    order: np.ndarray | None = None
    resorted = not frame.index.is_monotonic_increasing
    if resorted:
        order = np.argsort(pd.DatetimeIndex(frame.index).asi8, kind="stable")
        frame = frame.iloc[order]
    stamps = pd.DatetimeIndex(frame.index).asi8
    repeated = stamps[1:] == stamps[:-1]
    if repeated.any():
        row = int(np.argmax(repeated)) + 1
        stamp = frame.index[row].isoformat().replace("+00:00", "Z")
        number, line = _origin(row if order is None else int(order[row]), lines)
        raise InputError(f"duplicate timestamp {stamp}", where=f"{paths[number]}:{line}")
    frame.index.name = "timestamp"
    notes = []
    if resorted:
        notes.append("rows were not in time order; sorted on load")
    return Loaded(frame=frame, files=paths, resorted=resorted, notes=notes)


def read_candles(
    symbol: str, timeframe: str = "1h", *, data_dir: Path | None = None, market: str = "perp"
) -> Loaded:
    """Like :func:`load_candles`, and also say which files were read and what was done."""
    paths = files.find(
        data_dir or SAMPLE_DIR,
        files.normalize_symbol(symbol),
        kind="ohlcv",
        market=market,
        timeframe=timeframe,
    )
    return _combine(paths, read_candle_file)


def read_marks(symbol: str, timeframe: str = "1h", *, data_dir: Path | None = None) -> Loaded:
    """Perp mark prices of one symbol (column ``mark_price``: the mark at each bar open)."""
    paths = files.find(
        data_dir or SAMPLE_DIR,
        files.normalize_symbol(symbol),
        kind="mark",
        market="perp",
        timeframe=timeframe,
    )
    return _combine(paths, read_mark_file)


def read_funding(symbol: str, *, data_dir: Path | None = None) -> Loaded:
    """Like :func:`load_funding`, and also say which files were read and what was done."""
    paths = files.find(
        data_dir or SAMPLE_DIR,
        files.normalize_symbol(symbol),
        kind="funding",
        market="perp",
        timeframe=files.FUNDING_TIMEFRAME,
    )
    return _combine(paths, read_funding_file)


def load_candles(
    symbol: str, timeframe: str = "1h", *, data_dir: Path | None = None, market: str = "perp"
) -> pd.DataFrame:
    """Validated OHLCV bars of one symbol.

    Index: UTC DatetimeIndex named ``timestamp`` = bar open time, sorted and unique.
    Columns: float64 open, high, low, close, volume (base-asset volume). ``data_dir``
    defaults to the bundled sample; ``market`` is ``perp`` or ``spot``.
    """
    return read_candles(symbol, timeframe, data_dir=data_dir, market=market).frame


def load_funding(symbol: str, *, data_dir: Path | None = None) -> pd.Series:
    """Perp funding rates of one symbol: fraction per 8h settlement (0.0001 = 0.01 %).

    Index: UTC DatetimeIndex named ``timestamp`` (settlement time), sorted and unique.
    """
    series = read_funding(symbol, data_dir=data_dir).frame[FUNDING_COLUMN]
    series.name = FUNDING_COLUMN
    return series


@dataclass(frozen=True)
class Governed:
    """Candles after the governance rules (domain.data_quality) and what they did."""

    frame: pd.DataFrame
    report: QualityReport
    loaded: Loaded


def load_governed_candles(
    symbol: str,
    timeframe: str = "1h",
    *,
    data_dir: Path | None = None,
    market: str = "perp",
    policy: QualityPolicy | None = None,
) -> Governed:
    """:func:`load_candles` with seed 001's rules applied: snapped to the grid, gaps under
    ``max_fill_gap_min`` forward-filled (``filled``), longer ones left out and reported,
    outlier returns flagged (``outlier``) and clipped in ``log_return``. The plain loaders
    stay the fast path; this pass costs one more vectorised sweep (docs/data.md)."""
    loaded = read_candles(symbol, timeframe, data_dir=data_dir, market=market)
    source = ", ".join(str(p) for p in loaded.files)
    frame, report = govern_candles(
        loaded.frame, timeframe_seconds(timeframe), policy, source=source
    )
    return Governed(frame=frame, report=report, loaded=loaded)
