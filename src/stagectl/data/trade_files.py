"""Read trade files for ``metrics import`` into validated text columns (docs/ledger.md).

Two formats:

- ``ccxt-json``: a JSON list of ccxt unified trades (``id``, ``order``, ``timestamp`` or
  ``datetime``, ``symbol``, ``side``, ``takerOrMaker``, ``price``, ``amount``, ``fee``
  ``{cost, currency}`` and/or ``fees``), read by :mod:`stagectl.data.ccxt_trades`. ROW is
  the 1-based element.
- ``csv``: a header row, then one trade per line. Columns ``timestamp, trade_id, side,
  price, amount`` are required (``taker_side`` may stand for ``side``, ``qty`` for
  ``amount``); ``symbol, fee, fee_currency, liquidity, order_id`` are optional. The shared
  data's public trades (``timestamp,trade_id,price,amount,taker_side``) are read as taker
  fills of the account named by ``--source``. ROW is the file line (the header is line 1).

Reading only turns the file into text columns (:class:`RawColumns`); validation and
encoding are :mod:`stagectl.data.trade_validation`. :func:`open_trade_file` gives what
``metrics import`` needs: the rows, validated in chunks, and the sha256 of the content
(the import's identity, so a rerun of a stopped import finds it).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from stagectl.data.ccxt_trades import read_ccxt
from stagectl.data.trade_validation import RawColumns, TradeColumns, validate_columns
from stagectl.data.trade_values import shown
from stagectl.errors import InputError

FORMATS = ("ccxt-json", "csv")
REQUIRED_CSV = ("timestamp", "trade_id", "side", "price", "amount")
ALIASES = {"taker_side": "side", "qty": "amount", "takerormaker": "liquidity", "order": "order_id"}
_SHARED_TRADES = re.compile(r"^[a-z]+_(?:perp|spot)_(?P<symbol>[A-Z0-9]+)_trades", re.IGNORECASE)


def infer_format(path: Path, given: str | None) -> str:
    if given is not None:
        if given not in FORMATS:
            raise InputError(
                f"unknown format {given!r}; use one of {', '.join(FORMATS)}", where="--format"
            )
        return given
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".json"):
        return "ccxt-json"
    if name.endswith(".csv"):
        return "csv"
    raise InputError("cannot tell the format from the file name; pass --format", where=str(path))


@dataclass(frozen=True)
class TradeFile:
    """A trade file opened for import: how many rows it has, the sha256 of its content
    (the bytes after gzip), and its rows validated chunk by chunk, in file order, read
    lazily as the iterator is consumed."""

    rows: int
    content_sha256: str
    chunks: Iterator[TradeColumns]


def open_trade_file(
    path: Path, fmt: str, *, symbol: str | None, rows_per_chunk: int, now: datetime | None = None
) -> TradeFile:
    """``path`` for import; raises InputError for a file that cannot be read at all (and,
    for a CSV, for a bad header, symbol or row width anywhere in it). ``now`` bounds the
    trades' times (``trade_validation.validate_columns``)."""
    data = _read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    if fmt == "csv":
        data = _without_bom(data)
        chunked = _csv_chunks(path, data, symbol=symbol, rows_per_chunk=rows_per_chunk, now=now)
        if chunked is not None:
            return TradeFile(chunked[0], digest, chunked[1])
        raw = _read_csv(path, data, symbol)
    else:
        raw = read_ccxt(path, data, symbol)
    columns = validate_columns(raw, now=now)
    return TradeFile(len(columns), digest, iter([columns]))


def read_trades(
    path: Path, fmt: str, *, symbol: str | None, now: datetime | None = None
) -> TradeColumns:
    """Parse and validate ``path`` whole; raises InputError for a file that cannot be read
    at all."""
    data = _read_bytes(path)
    if fmt == "csv":
        raw = _read_csv(path, _without_bom(data), symbol)
    else:
        raw = read_ccxt(path, data, symbol)
    return validate_columns(raw, now=now)


def first_row_of_trade(
    path: Path,
    fmt: str,
    trade: tuple[str, str],
    *,
    symbol: str | None,
    rows_per_chunk: int,
    now: datetime | None = None,
) -> int | None:
    """The row of the first good row of ``trade`` (symbol, trade id) in ``path``, read
    again chunk by chunk up to it (for an error that names it); None if it is not there."""
    for columns in open_trade_file(
        path, fmt, symbol=symbol, rows_per_chunk=rows_per_chunk, now=now
    ).chunks:
        row = columns.first_row(*trade)
        if row is not None:
            return row
    return None


def _without_bom(data: bytes) -> bytes:
    """The CSV without the UTF-8 byte-order mark spreadsheets write before the header."""
    return data.removeprefix(codecs.BOM_UTF8)


def _read_csv(path: Path, data: bytes, symbol: str | None) -> RawColumns:
    """Header and columns of a trades CSV; a row of the wrong width stops it (FILE:LINE).

    Files without quotes or carriage returns (what exchanges and our exports write) take
    the fast path: the field count of every line is checked on the raw bytes with numpy,
    then pandas' C parser reads every cell as text. Anything else goes through the csv
    module, which knows quoting."""
    if b'"' in data or b"\r" in data:
        header, values, n = _read_csv_module(path, data)
    else:
        header, values, n = _read_csv_fast(path, data)
    if "symbol" not in values:
        values["symbol"] = np.full(n, _file_symbol(path, symbol), dtype=object)
    elif symbol is not None:
        raise InputError("the file has a symbol column; drop --symbol", where="--symbol")
    if "liquidity" not in values and "taker_side" in header:
        values["liquidity"] = np.full(n, "taker", dtype=object)
    return RawColumns(row_numbers=np.arange(2, n + 2), values=values)


def _read_bytes(path: Path) -> bytes:
    """The file's content, unzipped for ``.gz``; a truncated or corrupt gzip stream (which
    ``gzip`` reports as EOFError, BadGzipFile or zlib.error) is an InputError naming it."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise InputError(
            f"cannot read: not a complete gzip file ({error})", where=str(path)
        ) from None
    except OSError as error:
        raise InputError(f"cannot read: {error}", where=str(path)) from None


def _header(path: Path, names: list[str]) -> tuple[list[str], list[str]]:
    """The raw header names (lower case) and the names after aliases; checks the required."""
    raw = [h.strip().lower() for h in names]
    header = [ALIASES.get(h, h) for h in raw]
    missing = [c for c in REQUIRED_CSV if c not in header]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}", where=f"{path}:1")
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        names_shown = ", ".join(shown(name, plain=True) for name in twice)
        raise InputError(f"column(s) named twice: {names_shown}", where=f"{path}:1")
    return raw, header


def _read_csv_fast(path: Path, data: bytes) -> tuple[list[str], dict[str, Any], int]:
    raw, header = _fast_header(path, data)
    _check_widths(path, data, len(header))
    values, n = _frame_values(path, data, header)
    return raw, values, n


def _fast_header(path: Path, data: bytes) -> tuple[list[str], list[str]]:
    if not data.strip():
        raise InputError("empty file: expected a header row", where=f"{path}:1")
    try:
        first = data.split(b"\n", 1)[0].decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"cannot read as CSV: {error}", where=str(path)) from None
    return _header(path, first.split(","))


def _frame_values(path: Path, data: bytes, header: list[str]) -> tuple[dict[str, Any], int]:
    """Every cell of ``data`` (a header line, then rows) as text, by pandas' C parser."""
    import pandas as pd

    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            dtype=object,
            na_filter=False,
            skip_blank_lines=False,
            header=0,
            engine="c",
            encoding="utf-8",
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(f"cannot read as CSV: {error}", where=str(path)) from None
    values = {name: frame.iloc[:, k].to_numpy(dtype=object) for k, name in enumerate(header)}
    return values, len(frame)


def _csv_chunks(
    path: Path, data: bytes, *, symbol: str | None, rows_per_chunk: int, now: datetime | None
) -> tuple[int, Iterator[TradeColumns]] | None:
    """A trades CSV as validated chunks of ``rows_per_chunk`` rows, in file order, with
    the file's row numbers; None for a file the fast path cannot read (quotes, carriage
    returns), which is read whole.

    The header, the symbol and every line's width are checked here, on the whole file,
    before any chunk is read: those errors stop an import before it writes. The returned
    iterator does the reading and validating lazily, one chunk at a time (``metrics
    import`` runs it in a reader thread while SQLite writes the previous chunk)."""
    if b'"' in data or b"\r" in data:
        return None
    raw, header = _fast_header(path, data)
    ends = _check_widths(path, data, len(header))
    if not data.endswith(b"\n"):
        data += b"\n"
    n = len(ends) - 1
    file_symbol = None if "symbol" in header else _file_symbol(path, symbol)
    if file_symbol is None and symbol is not None:
        raise InputError("the file has a symbol column; drop --symbol", where="--symbol")
    taker = "liquidity" not in header and "taker_side" in raw
    head = data[: int(ends[0]) + 1]

    def chunks() -> Iterator[TradeColumns]:
        for first in range(0, max(n, 1), rows_per_chunk):
            last = min(first + rows_per_chunk, n)
            body = data[int(ends[first]) + 1 : int(ends[last]) + 1]
            values, count = _frame_values(path, head + body, header)
            if file_symbol is not None:
                values["symbol"] = np.full(count, file_symbol, dtype=object)
            if taker:
                values["liquidity"] = np.full(count, "taker", dtype=object)
            row_numbers = np.arange(first + 2, first + count + 2)
            yield validate_columns(RawColumns(row_numbers=row_numbers, values=values), now=now)

    return n, chunks()


def _check_widths(path: Path, data: bytes, width: int) -> Any:
    """Every line has ``width - 1`` commas (no quoting on this path): counted with numpy.
    Returns the offsets of the line ends (the last one may be the end of the data)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == ord("\n"))
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(raw))
    commas = np.flatnonzero(raw == ord(","))
    per_line = np.diff(np.searchsorted(commas, ends), prepend=0)
    wrong = np.flatnonzero(per_line != width - 1)
    if len(wrong):
        k = int(wrong[0])
        length = int(ends[k]) - (int(ends[k - 1]) + 1 if k else 0)
        found = int(per_line[k]) + 1 if length else 0
        raise InputError(f"expected {width} fields, found {found}", where=f"{path}:{k + 1}")
    return ends


def _read_csv_module(path: Path, data: bytes) -> tuple[list[str], dict[str, Any], int]:
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot read as CSV: {error}", where=str(path)) from None
    if not rows:
        raise InputError("empty file: expected a header row", where=f"{path}:1")
    raw, header = _header(path, rows[0])
    body = rows[1:]
    width = len(header)
    for k, row in enumerate(body):
        if len(row) != width:
            raise InputError(f"expected {width} fields, found {len(row)}", where=f"{path}:{k + 2}")
    columns = list(zip(*body, strict=True)) if body else [() for _ in header]
    values = {
        name: np.array(column, dtype=object) for name, column in zip(header, columns, strict=True)
    }
    return raw, values, len(body)


def _file_symbol(path: Path, symbol: str | None) -> str:
    if symbol is not None:
        return symbol
    match = _SHARED_TRADES.match(path.name)
    if match is None:
        raise InputError(
            "the file has no symbol column and its name names no symbol; pass --symbol",
            where=str(path),
        )
    return match["symbol"].upper()
