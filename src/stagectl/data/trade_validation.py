"""Validate and encode trade columns for the ledger (``metrics import``, ``metrics fetch``).

Validation is column-wise and vectorised: each column is factorized (pandas, C hash
table) and each *distinct* value is converted once with the exact Decimal rules, then
spread back with a numpy take; no Python object is built per row except the text cells
themselves. Every bad cell becomes a :class:`BadRow` with its row and field (the first
failing field of a row, in the order trade_id, timestamp, symbol, side, amount, price,
fee, fee_currency, liquidity).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from stagectl.errors import InputError


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

    def __len__(self) -> int:
        return len(self.row_numbers)


def validate_values(values: dict[str, list[str]]) -> TradeColumns:
    """Validate trades given as text columns (the names of a trades CSV after aliases, e.g.
    from an exchange API); ROW is the 1-based position."""
    n = len(values["trade_id"])
    arrays = {name: np.array(column, dtype=object).reshape(n) for name, column in values.items()}
    return validate_columns(RawColumns(row_numbers=np.arange(1, n + 1), values=arrays))


@dataclass
class RawColumns:
    row_numbers: Any  # numpy int array
    values: dict[str, Any]  # name -> numpy object array (or a list of JSON values)


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


Reject = Callable[[int, str, str], None]


@dataclass
class _Mapped:
    """A converted column: per-row values, and the codes of its distinct inputs."""

    values: Any
    codes: Any
    n_distinct: int


def validate_columns(raw: RawColumns) -> TradeColumns:
    """Check and encode every column; a row's first failing field (in the order below) is
    the one reported, as :class:`BadRow` with the file's row number."""
    bad: dict[int, BadRow] = {}

    def reject(index: int, name: str, message: str) -> None:
        if index not in bad:
            bad[index] = BadRow(int(raw.row_numbers[index]), name, message)

    trade_id = _trade_ids(_column(raw, "trade_id"), reject)
    ts = _timestamps(_column(raw, "timestamp"), reject)
    symbols = _mapped(_column(raw, "symbol"), "symbol", _symbol, reject)
    sides = _mapped(_column(raw, "side"), "side", _side, reject)
    qty = _mapped(_column(raw, "amount"), "amount", _positive, reject)
    price = _mapped(_column(raw, "price"), "price", _positive, reject)
    fee = _mapped(_column(raw, "fee", "0"), "fee", _finite, reject)
    currency = _mapped(_column(raw, "fee_currency"), "fee_currency", _currency, reject)
    liquidity = _mapped(_column(raw, "liquidity"), "liquidity", _liquidity, reject)
    orders = _mapped(_column(raw, "order_id"), "order_id", str.strip, reject)
    _check_fee_currencies(symbols, fee, currency, reject)
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
            errors[k] = f"{error} (got {value!r})"
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
    """Trade ids, stripped; an empty one rejects its row. Ids are unique per row, so this
    is one pass of ``str.strip`` rather than a factorize."""
    ids = np.array([v.strip() for v in values], dtype=object).reshape(len(values))
    for row in np.flatnonzero(ids == ""):
        reject(int(row), "trade_id", f"missing trade id (got {values[row]!r})")
    return ids


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip() or "0")
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not value.is_finite():
        raise ValueError("not a finite number")
    return value


def _positive(text: str) -> str:
    if not text.strip():
        raise ValueError("missing")
    value = _decimal(text)
    if value <= 0:
        raise ValueError("must be positive")
    return str(value)


def _finite(text: str) -> str:
    return str(_decimal(text))


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
    return text.strip().upper()


def _symbol(text: str) -> str:
    from stagectl.data.files import normalize_symbol

    if not text.strip():
        raise ValueError("missing symbol")
    try:
        return normalize_symbol(text)
    except InputError as error:
        raise ValueError(error.message) from None


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


_CANONICAL_TS_LEN = 27  # 2024-06-07T08:00:00.000000Z, what state._codec.ts_text writes
_TS_PUNCTUATION = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: ".", 26: "Z"}
_TS_DIGITS = [k for k in range(26) if k not in _TS_PUNCTUATION]
# Years 1-9999: what Python's datetime (and so the ledger's reader) can hold.
_FIRST_TS = np.datetime64("0001-01-01T00:00:00", "us")
_LAST_TS = np.datetime64("9999-12-31T23:59:59.999999", "us")


def _timestamps(values: Any, reject: Reject) -> Any:
    """UTC ``ts_text`` strings from epoch milliseconds or ISO-8601 (no zone = UTC).

    A value already in the stored form (``2024-06-07T08:00:00.000000Z``: what our exports
    and ``ts_text`` write) is checked with integer arithmetic on its characters (a numpy
    byte matrix: shape, then month, day in month, hour, minute, second ranges) and kept as
    it is. Only the others are parsed (pandas, vectorised) and formatted."""
    n = len(values)
    canonical = _canonical(values)
    out = values.copy()
    rest = np.flatnonzero(~canonical)
    if len(rest):
        out[rest] = _parse_times(np.array([values[k].strip() for k in rest], dtype=object))
        for k in rest[out[rest] == ""]:
            reject(
                int(k),
                "timestamp",
                f"not an ISO-8601 time or epoch milliseconds: {values[k].strip()!r}",
            )
    return out.reshape(n)


def _parse_times(texts: Any) -> Any:
    """Epoch milliseconds (up to 15 digits) or ISO-8601 as stored text; "" where invalid."""
    import pandas as pd

    n = len(texts)
    is_ms = np.fromiter((v.isdigit() and len(v) <= 15 for v in texts), dtype=bool, count=n)
    micros = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)  # NaT
    if is_ms.any():
        millis = texts[is_ms].astype(np.int64)
        stamps = pd.to_datetime(millis, unit="ms", utc=True, errors="coerce")
        micros[is_ms] = stamps.as_unit("us").asi8
    if (~is_ms).any():
        stamps = pd.to_datetime(texts[~is_ms], utc=True, format="ISO8601", errors="coerce")
        micros[~is_ms] = stamps.as_unit("us").asi8
    moments = micros.view("datetime64[us]")
    valid = ~np.isnat(moments)
    valid[valid] = (moments[valid] >= _FIRST_TS) & (moments[valid] <= _LAST_TS)
    out = np.full(n, "", dtype=object)
    if valid.any():
        formatted = np.datetime_as_string(moments[valid], unit="us").astype(object)
        out[valid] = formatted + "Z"
    return out


def _canonical(values: Any) -> Any:
    """Which values are valid times written exactly as ``dddd-dd-ddTdd:dd:dd.ddddddZ``."""
    n = len(values)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    shaped = lengths == _CANONICAL_TS_LEN
    rows = np.flatnonzero(shaped)
    if not len(rows):
        return shaped
    try:
        joined = "".join(values[rows].tolist()).encode("ascii")
    except UnicodeEncodeError:
        return np.zeros(n, dtype=bool)
    chars = np.frombuffer(joined, dtype=np.uint8).reshape(len(rows), _CANONICAL_TS_LEN)
    digits = chars[:, _TS_DIGITS].astype(np.int64) - ord("0")
    ok = ((digits >= 0) & (digits <= 9)).all(axis=1)
    for position, char in _TS_PUNCTUATION.items():
        ok &= chars[:, position] == ord(char)
    place = np.array([1000, 100, 10, 1])
    year = digits[:, 0:4] @ place
    month, day = digits[:, 4:6] @ place[2:], digits[:, 6:8] @ place[2:]
    hour, minute, second = (digits[:, k : k + 2] @ place[2:] for k in (8, 10, 12))
    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)
    ok &= (hour < 24) & (minute < 60) & (second < 60)
    first = ((year - 1970) * 12 + np.clip(month, 1, 12) - 1).astype("datetime64[M]")
    days_in_month = (first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")
    ok &= day <= days_in_month.astype(np.int64)
    shaped[rows] = ok
    return shaped
