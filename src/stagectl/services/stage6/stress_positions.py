"""Positions for the Stress Lab: a ``--positions`` file or the state database.

A positions file is YAML (``.yaml``/``.yml``), JSON (``.json``) or CSV (``.csv``)
holding a list of ``symbol, qty, entry_price`` (YAML/JSON: a list of mappings, or a
mapping with a ``positions`` list). ``qty`` is signed in base units (negative =
short); ``entry_price`` is in USDT and > 0. Every problem is an InputError naming
``file:line`` (CSV) or ``file: positions[i].field`` (YAML/JSON).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagectl.config.home import Home
from stagectl.config.loader import parse_yaml_document
from stagectl.config.state_url import state_exists
from stagectl.errors import InputError

FIELDS = ("symbol", "qty", "entry_price")
MAX_POSITIONS_BYTES = 1024 * 1024  # a book of a few hundred symbols is a few kilobytes


@dataclass(frozen=True)
class PositionInput:
    symbol: str
    qty: float
    entry_price: float


def load_positions_file(path: Path) -> list[PositionInput]:
    """Parse and validate a positions file (format chosen by its suffix)."""
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json", ".csv"):
        raise InputError(
            "unknown positions file type: use .yaml, .yml, .json or .csv", where=str(path)
        )
    text = _read_text(path)
    rows = _csv_rows(text, path) if suffix == ".csv" else _document_rows(text, path, suffix)
    positions = [_position(row, where) for row, where in rows]
    seen: set[str] = set()
    for position, (_, where) in zip(positions, rows, strict=True):
        if position.symbol in seen:
            raise InputError(f"{position.symbol} is listed twice", where=where)
        seen.add(position.symbol)
    return positions


def _read_text(path: Path) -> str:
    """The file's text, read up to MAX_POSITIONS_BYTES: a larger file, a device or an
    endless pipe is refused without being read whole."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POSITIONS_BYTES + 1)
    except OSError as error:
        raise InputError(f"cannot read positions file: {error.strerror}", where=str(path)) from None
    if len(raw) > MAX_POSITIONS_BYTES:
        raise InputError(
            f"positions file larger than {MAX_POSITIONS_BYTES // 1024 // 1024} MiB", where=str(path)
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("cannot read positions file: not UTF-8 text", where=str(path)) from None


def _csv_rows(text: str, path: Path) -> list[tuple[dict[str, Any], str]]:
    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [f for f in FIELDS if f not in header]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)} (need symbol, qty, entry_price)",
            where=f"{path}:1",
        )
    rows = []
    for number, raw in enumerate(reader, start=2):
        row = {str(k).strip().lower(): v for k, v in raw.items() if k is not None}
        if all(not str(v or "").strip() for v in row.values()):
            continue
        rows.append((row, f"{path}:{number}"))
    return rows


def _document_rows(text: str, path: Path, suffix: str) -> list[tuple[dict[str, Any], str]]:
    if suffix != ".json":
        # The config loader's YAML: an alias bomb, deep nesting or a huge integer is one
        # ConfigError (exit 2) naming file:line, not a hang or a RecursionError.
        document = parse_yaml_document(text, str(path))
    else:
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else "too deep"
            raise InputError(f"not valid JSON: {first}", where=str(path)) from None
    if isinstance(document, dict) and set(document) == {"positions"}:
        document = document["positions"]
    if not isinstance(document, list):
        raise InputError("expected a list of positions (symbol, qty, entry_price)", where=str(path))
    rows = []
    for index, item in enumerate(document):
        where = f"{path}: positions[{index}]"
        if not isinstance(item, dict):
            raise InputError("each position must be a mapping", where=where)
        unknown = sorted(str(k) for k in item if k not in FIELDS)
        if unknown:
            raise InputError(f"unknown field(s) {', '.join(unknown)}", where=where)
        rows.append((item, where))
    return rows


def _position(row: dict[str, Any], where: str) -> PositionInput:
    from stagectl.data.files import normalize_symbol

    raw_symbol = row.get("symbol")
    if raw_symbol is None or not str(raw_symbol).strip():
        raise InputError("symbol is missing", where=where)
    symbol = normalize_symbol(str(raw_symbol))
    qty = _number(row.get("qty"), "qty", where)
    price = _number(row.get("entry_price"), "entry_price", where)
    if qty == 0:
        raise InputError("qty must not be 0 (leave flat positions out)", where=where)
    if price <= 0:
        raise InputError(f"entry_price must be > 0, got {price}", where=where)
    return PositionInput(symbol, qty, price)


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"{name} is missing or not a number", where=where)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: {value!r} is not a number", where=where) from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be finite, got {value!r}", where=where)
    return number


def positions_from_state(home: Home) -> list[PositionInput] | None:
    """The live books' open positions from the state database, or None without one (paper
    runs' books share the database and are left out)."""
    if not state_exists(home.state_path):
        return None
    from stagectl.state.db import open_state
    from stagectl.state.ledger import positions

    with open_state(home.state_path, migrate=False) as db:
        return [
            PositionInput(p.symbol, float(p.qty), float(p.entry_price))
            for p in positions(db, mode="live")
            if p.qty != 0
        ]
