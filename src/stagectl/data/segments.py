"""Candle files that belong together: one symbol, one bar interval, segments joined in time.

``regime-analyze`` and ``metrics export-windows`` take candle files by path (``--candles``),
not by the data directory's naming convention, so nothing else tells whether a file holds
the symbol the fills are of, or whether two files may be joined. This module reads each
file with the validating loader (``data.loaders.read_candle_file``) and then decides:

- **Symbol**: from the file's name (``data.files.classify``: ``binance_perp_SOLUSDT_1m_ohlcv
  _2025-05.csv.gz``, ``SOLUSDT_1m.csv``) and from a ``symbol`` column when the file has one
  (every row must name the same symbol, and it must agree with the name). A file that tells
  neither has no symbol (``None``); the caller decides (:func:`check_candle_symbol`). Files
  that tell different symbols are never joined.
- **Interval**: from the name's timeframe, else the median spacing of the file's bars; when
  the name tells it, the bars must be that far apart (median spacing). All files share one.
- **Join**: each file's rows sorted (a note says so), a timestamp twice in one file refused
  (``file:line``), files concatenated in time order; a bar in two files is kept once when
  both give the same values and refused (naming both files) when they differ.
- **Segments**: after the join, more than ``domain.segments.MAX_MISSING_BARS`` missing bars
  between neighbours is a gap; the set records its gaps and segment starts so windowed
  indicators restart after each (``domain.segments.per_segment``), and a note names each.

The loader itself is untouched: this module only composes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stagectl.data.files import classify, normalize_symbol
from stagectl.data.loaders import (
    DECOMPRESSION_ERRORS,
    OHLCV_COLUMNS,
    read_candle_file,
)
from stagectl.domain.segments import Gap, find_gaps, segment_starts
from stagectl.errors import InputError, first_line

SYMBOL_COLUMN = "symbol"
MAX_GAP_NOTES = 20
"""Gap notes beyond this many are summed up in one line (the JSON lists every gap)."""
_TIMEFRAME = re.compile(r"(\d+)([mhdw])")
_UNIT = {"m": "min", "h": "h", "d": "D", "w": "W"}
_READ_ERRORS = (OSError, EOFError, UnicodeDecodeError, ValueError, *DECOMPRESSION_ERRORS)
FILE_NAME = "file name"
COLUMN = "symbol column"


@dataclass(frozen=True)
class CandleFile:
    """One validated candle file: bars sorted by open time, unique; what it says it holds."""

    path: Path
    frame: pd.DataFrame
    symbol: str | None
    symbol_told_by: str | None  # FILE_NAME or COLUMN; None when the file does not tell
    interval: pd.Timedelta | None  # None: one bar and no timeframe in the name
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CandleSet:
    """Candle files joined into one series of one symbol, with its gaps."""

    frame: pd.DataFrame
    files: tuple[CandleFile, ...]
    interval: pd.Timedelta | None
    gaps: tuple[Gap, ...]
    starts: np.ndarray  # position of each segment's first bar (domain.segments)
    notes: tuple[str, ...]

    @property
    def symbol(self) -> str | None:
        """The symbol the files tell (they agree), None when no file tells one."""
        told = [f.symbol for f in self.files if f.symbol is not None]
        return told[0] if told else None

    @property
    def segments(self) -> int:
        return len(self.starts)


def read_candle_set(paths: Sequence[Path]) -> CandleSet:
    """Read, check and join candle files (see the module docstring); InputError (exit 2)
    naming the file when they do not belong together."""
    if not paths:
        raise InputError("pass --candles FILE (OHLCV CSV)", where="--candles")
    files = tuple(read_candle_file_checked(path) for path in paths)
    _same_symbol(files)
    interval = _same_interval(files)
    frame, overlap_notes = _join(files)
    if interval is None and len(frame) > 1:
        interval = _spacing(pd.DatetimeIndex(frame.index))
    gaps = find_gaps(pd.DatetimeIndex(frame.index), interval) if interval is not None else []
    notes = [note for f in files for note in f.notes] + overlap_notes + _gap_notes(gaps, interval)
    return CandleSet(
        frame=frame,
        files=files,
        interval=interval,
        gaps=tuple(gaps),
        starts=segment_starts(pd.DatetimeIndex(frame.index), gaps),
        notes=tuple(notes),
    )


def check_candle_symbol(
    candles: CandleSet, symbol: str, *, symbol_is: str, vouched: bool
) -> list[str]:
    """Refuse candles of another symbol than ``symbol`` (exit 2 naming the file and both
    symbols); ``symbol_is`` says where ``symbol`` comes from (``"--symbol is"``, ``"the
    fills are"``). A file that does not tell its symbol is taken as ``symbol`` only when the
    user ``vouched`` for it with ``--symbol`` (a note says so), else refused."""
    notes = []
    for candle_file in candles.files:
        where = str(candle_file.path)
        if candle_file.symbol is None:
            if not vouched:
                raise InputError(
                    "cannot tell the candles' symbol from the file name or a symbol column; "
                    f"name the file like <exchange>_perp_{symbol}_1m_ohlcv.csv.gz or "
                    f"{symbol}_1m.csv, or pass --symbol {symbol} if they are {symbol} candles",
                    where=where,
                )
            notes.append(
                f"{where}: the file tells no symbol (name or symbol column); "
                f"its candles are taken as {symbol} (--symbol)"
            )
        elif candle_file.symbol != symbol:
            raise InputError(
                f"holds {candle_file.symbol} candles (told by its {candle_file.symbol_told_by})"
                f", but {symbol_is} {symbol}",
                where=where,
            )
    return notes


def read_candle_file_checked(path: Path) -> CandleFile:
    """One file validated by the loader, sorted, without a repeated timestamp; its symbol
    and interval as far as the file tells them."""
    if not path.is_file():
        raise InputError("no such file", where=str(path))
    frame, lines = read_candle_file(path)
    notes = []
    if not frame.index.is_monotonic_increasing:
        order = np.argsort(pd.DatetimeIndex(frame.index).asi8, kind="stable")
        frame, lines = frame.iloc[order], lines[order]
        notes.append(f"{path}: rows were not in time order; sorted on load")
    repeated = np.flatnonzero(frame.index.duplicated(keep="first"))
    if repeated.size:
        row = int(repeated[0])
        first = int(lines[np.flatnonzero(frame.index == frame.index[row])[0]])
        raise InputError(
            f"duplicate timestamp {_stamp(frame.index[row])} (first on line {first})",
            where=f"{path}:{int(lines[row])}",
        )
    frame.index.name = "timestamp"
    symbol, told_by = _file_symbol(path)
    return CandleFile(
        path=path,
        frame=frame,
        symbol=symbol,
        symbol_told_by=told_by,
        interval=_file_interval(path, frame.index),
        notes=tuple(notes),
    )


def _file_symbol(path: Path) -> tuple[str | None, str | None]:
    """The symbol the file's name and its ``symbol`` column tell (they must agree)."""
    named = classify(path)
    from_name = _normalized(named.symbol, path) if named is not None else None
    from_column = _column_symbol(path)
    if from_name is not None and from_column is not None and from_name != from_column:
        raise InputError(
            f"its name says {from_name} but its symbol column says {from_column}", where=str(path)
        )
    if from_column is not None:
        return from_column, COLUMN if from_name is None else FILE_NAME
    return (from_name, FILE_NAME) if from_name is not None else (None, None)


def _column_symbol(path: Path) -> str | None:
    """The one symbol of the file's ``symbol`` column (blank cells ignored), or None."""
    try:
        header = pd.read_csv(path, nrows=0)
        names = [c for c in header.columns if str(c).strip().lower() == SYMBOL_COLUMN]
        if not names:
            return None
        column = pd.read_csv(path, usecols=[names[0]], dtype=str, keep_default_na=False)
    except _READ_ERRORS as error:
        message = f"cannot read its symbol column: {first_line(error)}"
        raise InputError(message, where=str(path)) from error
    values = sorted({v.strip() for v in column[names[0]] if v.strip()})
    symbols = sorted({_normalized(v, path) for v in values})
    if len(symbols) > 1:
        shown = ", ".join(symbols[:5]) + (", ..." if len(symbols) > 5 else "")
        raise InputError(
            f"its symbol column holds several symbols ({shown}): one symbol per file",
            where=str(path),
        )
    return symbols[0] if symbols else None


def _normalized(symbol: str, path: Path) -> str:
    try:
        return normalize_symbol(symbol)
    except InputError as error:
        raise InputError(error.message, where=str(path)) from None


def _file_interval(path: Path, index: pd.Index) -> pd.Timedelta | None:
    """The name's timeframe, checked against the bars' median spacing; else that spacing."""
    named = classify(path)
    spacing = _spacing(pd.DatetimeIndex(index)) if len(index) > 1 else None
    match = _TIMEFRAME.fullmatch(named.timeframe) if named is not None else None
    if match is None or int(match[1]) == 0:
        return spacing
    interval = pd.Timedelta(int(match[1]), unit=_UNIT[match[2]])  # type: ignore[arg-type]
    if spacing is not None and spacing != interval:
        raise InputError(
            f"its name says {interval_text(interval)} bars, but they are "
            f"{interval_text(spacing)} apart (median spacing)",
            where=str(path),
        )
    return interval


def _spacing(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The median step between consecutive bars."""
    steps = np.diff(index.as_unit("ns").asi8)
    return pd.Timedelta(int(np.median(steps)), unit="ns")


def _same_symbol(files: tuple[CandleFile, ...]) -> None:
    told = [f for f in files if f.symbol is not None]
    for other in told[1:]:
        if other.symbol != told[0].symbol:
            raise InputError(
                f"holds {other.symbol} candles (told by its {other.symbol_told_by}), "
                f"but {told[0].path} holds {told[0].symbol}: candles of one symbol only",
                where=str(other.path),
            )


def _same_interval(files: tuple[CandleFile, ...]) -> pd.Timedelta | None:
    known = [(f.path, f.interval) for f in files if f.interval is not None]
    if not known:
        return None
    first_path, first = known[0]
    for path, interval in known[1:]:
        if interval != first:
            raise InputError(
                f"has {interval_text(interval)} bars, but {first_path} has "
                f"{interval_text(first)} bars: join candles of one interval only",
                where=str(path),
            )
    return first


def _join(files: tuple[CandleFile, ...]) -> tuple[pd.DataFrame, list[str]]:
    """The files' bars in time order; a bar in two files kept once if the values agree."""
    if len(files) == 1:
        return files[0].frame, []
    frame = pd.concat([f.frame for f in files])
    origin = np.concatenate([np.full(len(f.frame), k) for k, f in enumerate(files)])
    order = np.argsort(pd.DatetimeIndex(frame.index).asi8, kind="stable")
    frame, origin = frame.iloc[order], origin[order]
    repeated = frame.index.duplicated(keep="first")
    if not repeated.any():
        return frame, []
    values = frame[list(OHLCV_COLUMNS)].to_numpy()
    stamps = pd.DatetimeIndex(frame.index).asi8
    later = np.flatnonzero(repeated)
    first_of = np.searchsorted(stamps, stamps[later], side="left")
    differs = ~(values[later] == values[first_of]).all(axis=1)
    if differs.any():
        k = int(np.flatnonzero(differs)[0])
        a, b = files[int(origin[first_of[k]])], files[int(origin[later[k]])]
        shown = ", ".join(
            f"{c} {values[first_of[k]][j]:g} vs {values[later[k]][j]:g}"
            for j, c in enumerate(OHLCV_COLUMNS)
            if values[first_of[k]][j] != values[later[k]][j]
        )
        raise InputError(
            f"the bar {_stamp(frame.index[later[k]])} is in both {a.path} and {b.path} with "
            f"different values ({shown}): the files do not belong together",
            where=str(b.path),
        )
    pairs = sorted({(int(origin[i]), int(origin[j])) for i, j in zip(first_of, later, strict=True)})
    notes = [
        f"{files[a].path} and {files[b].path} overlap with identical values; each bar is used once"
        for a, b in pairs
    ]
    return frame[~repeated], notes


def _gap_notes(gaps: list[Gap], interval: pd.Timedelta | None) -> list[str]:
    if interval is None:
        return []
    notes = [
        f"gap: {gap.missing_bars:,} missing {interval_text(interval)} bars between "
        f"{_stamp(gap.last_before)} and {_stamp(gap.first_after)}; "
        "indicators restart after it"
        for gap in gaps[:MAX_GAP_NOTES]
    ]
    if len(gaps) > MAX_GAP_NOTES:
        notes.append(f"... and {len(gaps) - MAX_GAP_NOTES} more gaps (listed in --json)")
    return notes


def interval_text(interval: pd.Timedelta) -> str:
    """``1m``, ``5m``, ``1h``, ``1d``; seconds otherwise (``90s``)."""
    seconds = interval.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _stamp(moment: pd.Timestamp) -> str:
    return moment.isoformat().replace("+00:00", "Z")
