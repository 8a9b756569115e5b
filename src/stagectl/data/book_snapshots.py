"""Recorded order-book snapshots (the ``../shared/data`` format), read with the stdlib.

Two layouts are read, both long format with one price level per line (docs/data.md):
``timestamp,side,level,price,amount[,last_update_id]`` (a depth snapshot) and
``timestamp,local_timestamp,side,level,price,amount`` (top-25 snapshots). Lines with one
``timestamp`` form one snapshot; ``level`` 1 is the best price of its side. The file name
follows the shared-data style ``<exchange>_<market>_<SYMBOL>_book_...csv[.gz]``, which
names the venue and the symbol. A snapshot file may hold one side only (the 2022 depth
snapshot has no asks); the reader keeps what is there and the scorer says what is missing.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from stagectl.data.bundled import SAMPLE_DIR
from stagectl.domain.venues import BookLevel
from stagectl.errors import InputError

BUNDLED_BOOK = SAMPLE_DIR / "books" / "binance_perp_BTCUSDT_book_top25_2020-09-01.csv.gz"
"""Three real Binance BTCUSDT perp top-25 snapshots (see docs/data.md)."""

_NAME = re.compile(
    r"^(?P<exchange>[a-z0-9]+)_(?P<market>perp|spot)_(?P<symbol>[A-Z0-9]+)_book(?:_[^.]*)?"
    r"\.csv(?:\.gz)?$"
)
_REQUIRED = ("timestamp", "side", "level", "price", "amount")


@dataclass(frozen=True)
class BookSnapshot:
    """One recorded book: both sides best first, and where it was read from."""

    exchange: str
    market: str
    symbol: str
    timestamp: datetime
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    path: Path


def _parse_name(path: Path) -> re.Match[str]:
    match = _NAME.match(path.name)
    if match is None:
        raise InputError(
            f"{path}: not a book snapshot file name "
            "(<exchange>_<market>_<SYMBOL>_book_....csv[.gz])",
            where="--book",
        )
    return match


def _text(path: Path) -> str:
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
        return data.decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read: {error}", where="--book") from error


def _timestamp(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise InputError(f"{where}: timestamp {text!r} is not ISO-8601", where=where) from error
    if value.tzinfo is None:
        raise InputError(f"{where}: timestamp {text!r} has no timezone", where=where)
    return value


def _number(text: str, field: str, where: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as error:
        raise InputError(f"{where}: {field} {text!r} is not a number", where=where) from error
    if not value.is_finite() or value < 0 or (field == "price" and value == 0):
        raise InputError(f"{where}: {field} {text!r} is out of range", where=where)
    return value


def read_book_snapshots(path: Path) -> list[BookSnapshot]:
    """Every snapshot in the file, in file order; InputError names the line and field."""
    match = _parse_name(path)
    reader = csv.DictReader(io.StringIO(_text(path)))
    missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}: missing column {missing[0]!r}", where=str(path))
    sides: dict[str, dict[str, list[tuple[int, BookLevel]]]] = {}
    order: list[str] = []
    for line, row in enumerate(reader, start=2):
        where = f"{path}:{line}"
        side = row["side"]
        if side not in ("bid", "ask"):
            raise InputError(f"{where}: side {side!r} is not bid or ask", where=where)
        try:
            level = int(row["level"])
        except ValueError as error:
            raise InputError(
                f"{where}: level {row['level']!r} is not an integer", where=where
            ) from error
        stamp = row["timestamp"]
        if stamp not in sides:
            _timestamp(stamp, where)
            sides[stamp] = {"bid": [], "ask": []}
            order.append(stamp)
        entry = BookLevel(
            _number(row["price"], "price", where), _number(row["amount"], "amount", where)
        )
        sides[stamp][side].append((level, entry))
    if not order:
        raise InputError(f"{path}: no snapshot rows", where=str(path))
    return [
        BookSnapshot(
            exchange=match["exchange"],
            market=match["market"],
            symbol=match["symbol"],
            timestamp=_timestamp(stamp, str(path)),
            bids=tuple(lv for _, lv in sorted(sides[stamp]["bid"], key=lambda x: x[0])),
            asks=tuple(lv for _, lv in sorted(sides[stamp]["ask"], key=lambda x: x[0])),
            path=path,
        )
        for stamp in order
    ]
