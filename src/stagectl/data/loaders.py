"""Load and validate candle and funding CSV files.

Validation on load (a bad row is an InputError naming ``file:line`` and the column,
exit 2): required columns present; every value parses (numbers finite; timestamps
ISO-8601, or epoch seconds or milliseconds, UTC); prices > 0; high >= max(open,
close); low <= min(open, close); volume >= 0; timestamps unique. Rows out of order
are sorted and the sort is reported (``Loaded.resorted``). Blank lines are skipped;
line numbers count the header as line 1.
"""

from __future__ import annotations

import lzma
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
from stagectl.errors import InputError

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
FUNDING_COLUMN = "funding_rate"
_ALIASES = {
    "time": "timestamp",
    "date": "timestamp",
    "datetime": "timestamp",
    "open_time": "timestamp",
    "ts": "timestamp",
    "rate": FUNDING_COLUMN,
    "fundingrate": FUNDING_COLUMN,
    "funding": FUNDING_COLUMN,
}
Reader = Callable[[Path], tuple[pd.DataFrame, np.ndarray]]
# A corrupt compressed file fails inside the decompressor, with errors that are not OSError.
DECOMPRESSION_ERRORS = (zlib.error, lzma.LZMAError, zipfile.BadZipFile)
_EPOCH_MS_ABOVE = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973
# The times a nanosecond timestamp holds (1677-09-22 .. 2262-04-11), in whole epoch seconds.
_EPOCH_MIN_S = float(pd.Timestamp.min.value // 10**9 + 1)
_EPOCH_MAX_S = float(pd.Timestamp.max.value // 10**9 - 1)
_OUT_OF_RANGE = "within 1677-09-22 .. 2262-04-11"


@dataclass
class Loaded:
    """A validated dataset and what loading it did."""

    frame: pd.DataFrame
    files: list[Path]
    resorted: bool = False
    notes: list[str] = field(default_factory=list)


def _read(path: Path, *, as_text: bool) -> pd.DataFrame:
    options: dict[str, object] = {"skip_blank_lines": False}
    if as_text:
        options.update(dtype=str, keep_default_na=False)
    try:
        frame: pd.DataFrame = pd.read_csv(path, **options)  # type: ignore[call-overload]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        message = f"not a readable CSV file: {_first_line(error)}"
        raise InputError(message, where=str(path)) from error
    except (OSError, EOFError, *DECOMPRESSION_ERRORS) as error:
        raise InputError(f"cannot read: {_first_line(error)}", where=str(path)) from error
    names = [_column_name(c) for c in frame.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # e.g. "close" and "Close", or "timestamp" and its alias "ts"
        message = f"column(s) {', '.join(repeated)} given twice (names ignore case and aliases)"
        raise InputError(message, where=f"{path}:1")
    frame.columns = names
    return frame


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _column_name(raw: object) -> str:
    name = str(raw).strip().lower()
    return _ALIASES.get(name, name)


def _require(frame: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(str(c) for c in frame.columns) or "none"
        raise InputError(
            f"missing column(s) {', '.join(missing)} (found: {found})", where=f"{path}:1"
        )


def _bad(path: Path, lines: np.ndarray, row: int, message: str) -> InputError:
    return InputError(message, where=f"{path}:{int(lines[row])}")


def _numbers(raw: pd.Series, path: Path, lines: np.ndarray, column: str) -> np.ndarray:
    if is_numeric_dtype(raw.dtype) and not is_bool_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64)
    else:
        values = pd.to_numeric(raw.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        text = raw.iloc[row]
        raise _bad(path, lines, row, f"column {column}: {text!r} is not a finite number")
    return values


def _epoch_candidates(text: pd.Series) -> pd.Series:
    """The text as numbers when it looks like epochs, else all NaN.

    ``to_numeric`` on half a million ISO strings costs ~0.5 s only to find they
    are not numbers; a look at the first values decides which parser runs.
    """
    head = text.iloc[:100]
    if head.empty or head.str.fullmatch(r"[+-]?\d+(?:\.\d*)?").mean() <= 0.5:
        return pd.Series(np.nan, index=text.index)
    return pd.to_numeric(text, errors="coerce")


def _timestamps(raw: pd.Series, path: Path, lines: np.ndarray) -> pd.DatetimeIndex:
    """ISO-8601 (naive means UTC) or epoch seconds / milliseconds, as a UTC index."""
    if is_numeric_dtype(raw.dtype) and not is_bool_dtype(raw.dtype):
        numeric = pd.Series(raw, dtype=np.float64)
        text = raw
    else:
        text = raw.astype(str).str.strip()  # object cells may be ints too long for int64
        numeric = _epoch_candidates(text)
    if numeric.notna().mean() > 0.5:
        bad = numeric.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise _bad(path, lines, row, f"column timestamp: {raw.iloc[row]!r} is not an epoch")
        values: npt.NDArray[np.float64] = numeric.to_numpy(dtype=np.float64)
        unit: Literal["s", "ms"] = "ms" if np.abs(values).max() >= _EPOCH_MS_ABOVE else "s"
        seconds = values / (1000.0 if unit == "ms" else 1.0)
        outside = ~((seconds >= _EPOCH_MIN_S) & (seconds <= _EPOCH_MAX_S))
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            message = f"column timestamp: {str(raw.iloc[row])!r} is not an epoch {_OUT_OF_RANGE}"
            raise _bad(path, lines, row, message)
        if np.array_equal(values, np.round(values)):
            parsed = pd.to_datetime(values.astype(np.int64), unit=unit, utc=True)
        else:
            parsed = pd.to_datetime(values, unit=unit, utc=True)
    else:
        iso = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        parsed = pd.DatetimeIndex(iso)
        # parsed at a coarser unit, a year such as 0001 or 9999 parses but has no nanoseconds
        outside = (parsed < pd.Timestamp.min.tz_localize("UTC")) | (
            parsed > pd.Timestamp.max.tz_localize("UTC")
        )
        bad_rows = np.flatnonzero(np.asarray(pd.isna(parsed)) | np.asarray(outside))
        if bad_rows.size:
            row = int(bad_rows[0])
            raise _bad(
                path,
                lines,
                row,
                f"column timestamp: {raw.iloc[row]!r} is not an ISO-8601 time or an epoch "
                f"{_OUT_OF_RANGE}",
            )
    return pd.DatetimeIndex(parsed, name="timestamp").as_unit("ns")


def _fast_rows(path: Path, columns: tuple[str, ...]) -> pd.DataFrame | None:
    """The file parsed natively when every value column is numeric and complete, else None.

    The common case (a clean file) costs one C-parser pass; anything odd is read
    again as text so that the error can name the exact line and value.
    """
    frame = _read(path, as_text=False)
    _require(frame, path, ("timestamp", *columns))
    for column in (*columns, "timestamp"):
        series = frame[column]
        if series.isna().any():
            return None
        if column != "timestamp" and (
            not is_numeric_dtype(series.dtype) or is_bool_dtype(series.dtype)
        ):
            return None
    return frame


def _rows(path: Path, columns: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray]:
    fast = _fast_rows(path, columns)
    if fast is not None:
        return fast, np.arange(2, len(fast) + 2)
    frame = _read(path, as_text=True)
    _require(frame, path, ("timestamp", *columns))
    lines = np.arange(2, len(frame) + 2)
    blank = (frame[["timestamp", *columns]].apply(lambda s: s.str.strip()) == "").all(axis=1)
    if blank.any():
        keep = ~blank.to_numpy()
        frame, lines = frame[keep], lines[keep]
    return frame, lines


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
        hits = np.flatnonzero(mask)
        if hits.size and (first is None or hits[0] < first[0]):
            first = (int(hits[0]), column, message)
    if first is not None:
        row, column, message = first
        shown = ", ".join(f"{k}={values[k][row]!r}" for k in OHLCV_COLUMNS)
        raise _bad(path, lines, row, f"column {column}: {message} ({shown})")


def read_candle_file(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """One OHLCV file, validated row by row, in file order; also its line numbers."""
    frame, lines = _rows(path, OHLCV_COLUMNS)
    index = _timestamps(frame["timestamp"], path, lines)
    values = {c: _numbers(frame[c], path, lines, c) for c in OHLCV_COLUMNS}
    _check_ohlcv(values, path, lines)
    return pd.DataFrame(values, index=index), lines


def read_funding_file(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """One funding file (fraction per settlement), validated, in file order."""
    frame, lines = _rows(path, (FUNDING_COLUMN,))
    index = _timestamps(frame["timestamp"], path, lines)
    rates = _numbers(frame[FUNDING_COLUMN], path, lines, FUNDING_COLUMN)
    return pd.DataFrame({FUNDING_COLUMN: rates}, index=index), lines


def _combine(paths: list[Path], reader: Reader) -> Loaded:
    """Read every part, sort when needed, refuse duplicate timestamps."""
    parts: list[pd.DataFrame] = []
    where: list[tuple[int, int]] = []
    for number, path in enumerate(paths):
        frame, lines = reader(path)
        parts.append(frame)
        where.extend((number, int(line)) for line in lines)
    frame = pd.concat(parts) if len(parts) > 1 else parts[0]
    resorted = not frame.index.is_monotonic_increasing
    if resorted:
        order = np.argsort(pd.DatetimeIndex(frame.index).asi8, kind="stable")
        frame = frame.iloc[order]
        where = [where[i] for i in order]
    duplicated = np.flatnonzero(frame.index.duplicated(keep="first"))
    if duplicated.size:
        row = int(duplicated[0])
        stamp = frame.index[row].isoformat().replace("+00:00", "Z")
        number, line = where[row]
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
