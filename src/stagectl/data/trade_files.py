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
from contextlib import contextmanager
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
_BLOCK_BYTES = 1 << 23  # read at a time while scanning a CSV: memory is this, not the file
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
    if fmt == "csv":
        layout = _scan_csv(path, rows_per_chunk)
        if layout is not None:
            chunks = _csv_chunks(
                path, layout, symbol=symbol, rows_per_chunk=rows_per_chunk, now=now
            )
            return TradeFile(layout.rows, layout.digest, chunks)
    data = _read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    if fmt == "csv":
        raw = _read_csv(path, _without_bom(data), symbol)
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
    """The file's content, unzipped for ``.gz``."""
    with _reading(path), _open_bytes(path) as handle:
        return handle.read()


def _open_bytes(path: Path) -> io.BufferedIOBase:
    """The file's content as a stream, unzipped for ``.gz``."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A truncated or corrupt gzip stream (which ``gzip`` reports as EOFError, BadGzipFile
    or zlib.error) or an unreadable file, met inside the block, is an InputError naming
    it."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise InputError(
            f"cannot read: not a complete gzip file ({error})", where=str(path)
        ) from None
    except OSError as error:
        raise InputError(f"cannot read: {error}", where=str(path)) from None


def _blocks(path: Path) -> Iterator[bytes]:
    """The file's content in blocks of at most ``_BLOCK_BYTES``."""
    with _reading(path), _open_bytes(path) as handle:
        while block := handle.read(_BLOCK_BYTES):
            yield block


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


@dataclass(frozen=True)
class _CsvLayout:
    """What the first pass over a CSV for the fast path found: its header (``head``: the
    header line with its newline, after a byte-order mark of ``bom`` bytes), its row count,
    the content offset where each chunk of rows ends, and the sha256 of the content."""

    raw: list[str]
    header: list[str]
    head: bytes
    bom: int
    rows: int
    chunk_ends: list[int]
    digest: str


def _scan_csv(path: Path, rows_per_chunk: int) -> _CsvLayout | None:
    """The first pass over a trades CSV, block by block (memory does not grow with the
    file): the sha256, the header, every line's width, the row count and the chunks'
    ends. None for a file the fast path cannot read (quotes, carriage returns, no complete
    first line, a blank one), which is read whole.

    Errors come in the order of a whole-file read: the header's, then the first line of
    the wrong width."""
    digest = hashlib.sha256()
    pending = b""
    bom: int | None = None
    layout: tuple[list[str], list[str], bytes] | None = None
    seen = lines = 0  # content bytes before ``pending``; complete lines checked (header: 0)
    wanted: list[int] = []  # the end of every ``rows_per_chunk``-th row
    last_end = 0
    for block in _blocks(path):
        digest.update(block)
        if b'"' in block or b"\r" in block:
            return None
        buf = pending + block
        if bom is None:
            if len(buf) < len(codecs.BOM_UTF8):
                pending = buf
                continue
            bom = len(codecs.BOM_UTF8) if buf.startswith(codecs.BOM_UTF8) else 0
            buf = buf[bom:]
        cut = buf.rfind(b"\n") + 1
        done, pending = buf[:cut], buf[cut:]
        if not done:
            continue
        if layout is None:
            line = done[: done.index(b"\n") + 1]
            if not line.strip():
                return None
            layout = (*_fast_header(path, line), line)
        ends = _check_widths(path, done, len(layout[1]), first_line=lines)
        index = np.arange(lines, lines + len(ends))
        picked = (index % rows_per_chunk == 0) & (index > 0)
        wanted += (ends[picked] + seen + 1).tolist()
        last_end = seen + int(ends[-1]) + 1
        lines += len(ends)
        seen += cut
    if layout is None or bom is None:
        return None
    rows = lines - 1
    if pending:  # a last line without its newline
        _check_widths(path, pending, len(layout[1]), first_line=lines)
        rows, last_end = lines, seen + len(pending)
        if rows % rows_per_chunk == 0:
            wanted.append(last_end)
    if not wanted or wanted[-1] != last_end:
        wanted.append(last_end)
    raw, header, head = layout
    return _CsvLayout(raw, header, head, bom, rows, wanted, digest.hexdigest())


def _csv_chunks(
    path: Path,
    layout: _CsvLayout,
    *,
    symbol: str | None,
    rows_per_chunk: int,
    now: datetime | None,
) -> Iterator[TradeColumns]:
    """A trades CSV as validated chunks of ``rows_per_chunk`` rows, in file order, with
    the file's row numbers, read lazily from the file, one chunk at a time (``metrics
    import`` runs it in a reader thread while SQLite writes the previous chunk).

    The header, the symbol and every line's width were checked by :func:`_scan_csv` before
    any chunk is read: those errors stop an import before it writes. A file whose content
    changed since (its sha256 is the import's identity) stops it at the end."""
    header = layout.header
    file_symbol = None if "symbol" in header else _file_symbol(path, symbol)
    if file_symbol is None and symbol is not None:
        raise InputError("the file has a symbol column; drop --symbol", where="--symbol")
    taker = "liquidity" not in header and "taker_side" in layout.raw

    def chunks() -> Iterator[TradeColumns]:
        digest = hashlib.sha256()
        with _reading(path), _open_bytes(path) as handle:
            digest.update(handle.read(layout.bom + len(layout.head)))
            previous = len(layout.head)
            for k, end in enumerate(layout.chunk_ends):
                body = handle.read(end - previous)
                digest.update(body)
                previous = end
                if body and not body.endswith(b"\n"):
                    body += b"\n"
                values, count = _frame_values(path, layout.head + body, header)
                if file_symbol is not None:
                    values["symbol"] = np.full(count, file_symbol, dtype=object)
                if taker:
                    values["liquidity"] = np.full(count, "taker", dtype=object)
                first = k * rows_per_chunk
                row_numbers = np.arange(first + 2, first + count + 2)
                yield validate_columns(RawColumns(row_numbers=row_numbers, values=values), now=now)
            while block := handle.read(_BLOCK_BYTES):
                digest.update(block)
        if digest.hexdigest() != layout.digest:
            raise InputError("the file changed while it was imported", where=str(path))

    return chunks()


def _check_widths(path: Path, data: bytes, width: int, *, first_line: int = 0) -> Any:
    """Every line has ``width - 1`` commas (no quoting on this path): counted with numpy.
    Returns the offsets of the line ends (the last one may be the end of the data);
    ``data`` begins at the file's line ``first_line + 1``."""
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
        raise InputError(
            f"expected {width} fields, found {found}", where=f"{path}:{first_line + k + 1}"
        )
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
