"""Validate and encode trade columns for the ledger (``metrics import``, ``metrics fetch``).

Validation is column-wise and vectorised: each column is factorized (pandas, C hash
table) and each *distinct* value is converted once with the exact Decimal rules, then
spread back with a numpy take; no Python object is built per row except the text cells
themselves. Every bad cell becomes a :class:`BadRow` with its row and field (the first
failing field of a row, in the order trade_id, timestamp, symbol, side, amount, price,
fee, fee_currency, liquidity, order_id).

The limits of each value (what a trade may hold) are :mod:`stagectl.data.trade_values`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from stagectl.data.trade_values import (
    FUTURE_SLACK,
    MAX_SYMBOL_CHARS,
    Reject,
    check_ids,
    exact_decimal,
    shown,
    timestamps,
)
from stagectl.errors import InputError

_CURRENCY = re.compile(r"[A-Z0-9]{1,16}")

KIND_COLUMNS = ("symbol", "side", "fee", "fee_currency", "liquidity", "order_id")
"""The ``TradeColumns`` fields of few distinct values (``TradeColumns.codes``)."""


@dataclass(frozen=True)
class BadRow:
    """One rejected row: its number (CSV line or JSON element), the field and why."""

    row: int
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass
class TradeColumns:
    """Validated, encoded columns (numpy object arrays, one entry per row, text as stored);
    ``bad`` lists the rejected rows. ``fee_currency``, ``liquidity`` and ``order_id`` hold
    None where the file had nothing."""

    row_numbers: Any
    trade_id: Any
    ts: Any
    symbol: Any
    side: Any
    qty: Any
    price: Any
    fee: Any
    fee_currency: Any
    liquidity: Any
    order_id: Any
    bad: list[BadRow] = field(default_factory=list)
    codes: dict[str, tuple[Any, int]] = field(default_factory=dict)
    """For the low-cardinality columns (``KIND_COLUMNS``), each row's code of its distinct
    input value and how many there are (validation factorized them already), so batching
    them does not hash every cell again; rows with equal codes hold equal values."""

    def __len__(self) -> int:
        return len(self.row_numbers)

    def first_row(self, symbol: str, trade_id: str) -> int | None:
        """The row number of the first good row of trade ``trade_id`` on ``symbol``."""
        hits = (self.symbol == symbol) & (self.trade_id == trade_id)
        if self.bad:
            hits &= ~np.isin(self.row_numbers, [b.row for b in self.bad])
        found = np.flatnonzero(hits)
        return int(self.row_numbers[found[0]]) if len(found) else None


def validate_values(values: dict[str, list[str]], *, now: datetime | None = None) -> TradeColumns:
    """Validate trades given as text columns (the names of a trades CSV after aliases, e.g.
    from an exchange API); ROW is the 1-based position."""
    n = len(values["trade_id"])
    arrays = {name: np.array(column, dtype=object).reshape(n) for name, column in values.items()}
    return validate_columns(RawColumns(row_numbers=np.arange(1, n + 1), values=arrays), now=now)


@dataclass
class RawColumns:
    """Text columns as read, by name; ``bad`` holds the rows the reader already refused
    (index -> (field, message)): a JSON value of the wrong type, say."""

    row_numbers: Any  # numpy int array
    values: dict[str, Any]  # name -> numpy object array (or a list of JSON values)
    bad: dict[int, tuple[str, str]] = field(default_factory=dict)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _column(raw: RawColumns, name: str, default: str = "") -> Any:
    """A column as an object array of text: CSV cells stay as read; JSON values become text."""
    values = raw.values.get(name)
    n = len(raw.row_numbers)
    if values is None:
        return np.full(n, default, dtype=object)
    if isinstance(values, np.ndarray):
        return values
    return np.array([_text(v) for v in values], dtype=object).reshape(n)


@dataclass
class _Mapped:
    """A converted column: per-row values, and the codes of its distinct inputs."""

    values: Any
    codes: Any
    n_distinct: int


def validate_columns(raw: RawColumns, *, now: datetime | None = None) -> TradeColumns:
    """Check and encode every column; a row's first failing field (in the order below) is
    the one reported, as :class:`BadRow` with the file's row number. A time may be at
    most a day after ``now`` (default: the wall clock)."""
    bad: dict[int, BadRow] = {}

    def reject(index: int, name: str, message: str) -> None:
        if index not in bad:
            bad[index] = BadRow(int(raw.row_numbers[index]), name, message)

    for index, (name, message) in sorted(raw.bad.items()):
        reject(index, name, message)
    latest = (now if now is not None else datetime.now(UTC)) + FUTURE_SLACK
    trade_id = _trade_ids(_column(raw, "trade_id"), reject)
    ts = timestamps(_column(raw, "timestamp"), reject, latest)
    symbols = _mapped(_column(raw, "symbol"), "symbol", _symbol, reject)
    sides = _mapped(_column(raw, "side"), "side", _side, reject)
    qty = _mapped(_column(raw, "amount"), "amount", _positive, reject)
    price = _mapped(_column(raw, "price"), "price", _positive, reject)
    fee = _mapped(_column(raw, "fee", "0"), "fee", _finite, reject)
    currency = _mapped(_column(raw, "fee_currency"), "fee_currency", _currency, reject)
    liquidity = _mapped(_column(raw, "liquidity"), "liquidity", _liquidity, reject)
    orders = _mapped(_column(raw, "order_id"), "order_id", str.strip, reject)
    _check_fee_currencies(symbols, fee, currency, reject)
    check_ids(orders.values, "order_id", reject)
    return TradeColumns(
        row_numbers=raw.row_numbers,
        trade_id=trade_id,
        ts=ts,
        symbol=symbols.values,
        side=sides.values,
        qty=qty.values,
        price=price.values,
        fee=fee.values,
        fee_currency=_none_if_empty(currency),
        liquidity=_none_if_empty(liquidity),
        order_id=_none_if_empty(orders),
        bad=[bad[k] for k in sorted(bad)],
        codes={
            name: (column.codes, column.n_distinct)
            for name, column in zip(
                KIND_COLUMNS, (symbols, sides, fee, currency, liquidity, orders), strict=True
            )
        },
    )


def _mapped(values: Any, name: str, convert: Callable[[str], str], reject: Reject) -> _Mapped:
    """Convert each distinct value once (``pandas.factorize``, a hash table in C) and spread
    the results back with one take; a value that fails rejects every row holding it."""
    import pandas as pd

    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    converted = np.empty(len(distinct), dtype=object)
    errors: dict[int, str] = {}
    for k, value in enumerate(distinct):
        try:
            converted[k] = convert(value)
        except ValueError as error:
            errors[k] = f"{error} (got {shown(value)})"
            converted[k] = ""
    if errors:
        for row in np.flatnonzero(np.isin(codes, list(errors))):
            reject(int(row), name, errors[int(codes[row])])
    return _Mapped(values=converted[codes], codes=codes, n_distinct=len(distinct))


def _none_if_empty(column: _Mapped) -> Any:
    values = column.values
    if len(values) and (values == "").any():
        values = values.copy()
        values[values == ""] = None
    return values


def _trade_ids(values: Any, reject: Reject) -> Any:
    """Trade ids, stripped; an empty or unsafe one rejects its row. Ids are unique per
    row, so this is one pass of ``str.strip`` rather than a factorize."""
    ids = np.array([v.strip() for v in values], dtype=object).reshape(len(values))
    for row in np.flatnonzero(ids == ""):
        reject(int(row), "trade_id", f"missing trade id (got {shown(values[row])})")
    check_ids(ids, "trade_id", reject)
    return ids


def _positive(text: str) -> str:
    if not text.strip():
        raise ValueError("missing")
    value = exact_decimal(text)
    if value <= 0:
        raise ValueError("must be positive")
    return str(value)


def _finite(text: str) -> str:
    return str(exact_decimal(text))


def _side(text: str) -> str:
    side = text.strip().lower()
    if side not in ("buy", "sell"):
        raise ValueError("must be buy or sell")
    return side


def _liquidity(text: str) -> str:
    liquidity = text.strip().lower()
    if liquidity not in ("", "maker", "taker"):
        raise ValueError("must be maker or taker")
    return liquidity


def _currency(text: str) -> str:
    currency = text.strip().upper()
    if currency and not (currency.isascii() and _CURRENCY.fullmatch(currency)):
        raise ValueError("not a currency: 1-16 ASCII letters and digits")
    return currency


def _symbol(text: str) -> str:
    from stagectl.data.files import normalize_symbol

    if not text.strip():
        raise ValueError("missing symbol")
    if len(text) > 2 * MAX_SYMBOL_CHARS:
        raise ValueError(f"not a symbol: longer than {2 * MAX_SYMBOL_CHARS} characters")
    try:
        symbol = normalize_symbol(text)
    except InputError as error:
        raise ValueError(error.message) from None
    if not symbol.isascii() or len(symbol) > MAX_SYMBOL_CHARS:
        raise ValueError(f"not a symbol: up to {MAX_SYMBOL_CHARS} ASCII letters and digits")
    return symbol


def _check_fee_currencies(
    symbols: _Mapped, fees: _Mapped, currencies: _Mapped, reject: Reject
) -> None:
    """A non-zero fee needs a currency that is the symbol's base or quote (domain.ledger).

    Each distinct (symbol, fee, currency) is judged once: the three columns' codes are
    combined into one integer key and factorized."""
    import pandas as pd

    from stagectl.domain.types import fee_in_base

    key = (symbols.codes.astype(np.int64) * max(fees.n_distinct, 1) + fees.codes) * max(
        currencies.n_distinct, 1
    ) + currencies.codes
    codes, distinct = pd.factorize(key)
    first = np.zeros(len(distinct), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    verdict: dict[int, str] = {}
    for k, row in enumerate(first):
        symbol, fee, currency = symbols.values[row], fees.values[row], currencies.values[row]
        if not symbol or not fee or Decimal(fee) == 0:
            continue
        if not currency:
            verdict[k] = "a non-zero fee needs its currency"
            continue
        try:
            fee_in_base(symbol, currency, Decimal(1))
        except ValueError as error:
            verdict[k] = str(error)
    if verdict:
        for row in np.flatnonzero(np.isin(codes, list(verdict))):
            reject(int(row), "fee_currency", verdict[int(codes[row])])
