"""Read trade files for ``metrics import`` into validated text columns (docs/ledger.md).

Two formats:

- ``ccxt-json``: a JSON list of ccxt unified trades (``id``, ``order``, ``timestamp`` or
  ``datetime``, ``symbol``, ``side``, ``takerOrMaker``, ``price``, ``amount``, ``fee``
  ``{cost, currency}`` and/or ``fees``). Numbers are read as exact decimals (``parse_float``
  is :class:`~decimal.Decimal`), never through binary floats. ROW is the 1-based element.
- ``csv``: a header row, then one trade per line. Columns ``timestamp, trade_id, side,
  price, amount`` are required (``taker_side`` may stand for ``side``, ``qty`` for
  ``amount``); ``symbol, fee, fee_currency, liquidity, order_id`` are optional. The shared
  data's public trades (``timestamp,trade_id,price,amount,taker_side``) are read as taker
  fills of the account named by ``--source``. ROW is the file line (the header is line 1).

Validation is column-wise and vectorised: each column is factorized (pandas, C hash
table) and each *distinct* value is converted once with the exact Decimal rules, then
spread back with a numpy take; no Python object is built per row except the text cells
themselves. Every bad cell becomes a :class:`BadRow` with its row and field (the first
failing field of a row, in the order trade_id, timestamp, symbol, side, amount, price,
fee, fee_currency, liquidity).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from stagectl.errors import InputError

FORMATS = ("ccxt-json", "csv")
REQUIRED_CSV = ("timestamp", "trade_id", "side", "price", "amount")
ALIASES = {"taker_side": "side", "qty": "amount", "takerormaker": "liquidity", "order": "order_id"}
_SHARED_TRADES = re.compile(r"^[a-z]+_(?:perp|spot)_(?P<symbol>[A-Z0-9]+)_trades", re.IGNORECASE)


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


def _open_text(path: Path) -> io.TextIOBase:
    try:
        if path.name.endswith(".gz"):
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return open(path, encoding="utf-8", newline="")
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror or error}", where=str(path)) from None


def read_trades(path: Path, fmt: str, *, symbol: str | None) -> TradeColumns:
    """Parse and validate ``path``; raises InputError for a file that cannot be read at all."""
    raw = _read_csv(path, symbol) if fmt == "csv" else _read_ccxt(path, symbol)
    return _validate(raw)


def validate_values(values: dict[str, list[str]]) -> TradeColumns:
    """Validate trades given as text columns (the names of a trades CSV after aliases, e.g.
    from an exchange API); ROW is the 1-based position."""
    n = len(values["trade_id"])
    arrays = {name: np.array(column, dtype=object).reshape(n) for name, column in values.items()}
    return _validate(_RawColumns(row_numbers=np.arange(1, n + 1), values=arrays))


@dataclass
class _RawColumns:
    row_numbers: Any  # numpy int array
    values: dict[str, Any]  # name -> numpy object array (or a list of JSON values)


def _read_csv(path: Path, symbol: str | None) -> _RawColumns:
    """Header and columns of a trades CSV; a row of the wrong width stops it (FILE:LINE).

    Files without quotes or carriage returns (what exchanges and our exports write) take
    the fast path: the field count of every line is checked on the raw bytes with numpy,
    then pandas' C parser reads every cell as text. Anything else goes through the csv
    module, which knows quoting."""
    data = _read_bytes(path)
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
    return _RawColumns(row_numbers=np.arange(2, n + 2), values=values)


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"cannot read: {error}", where=str(path)) from None


def _header(path: Path, names: list[str]) -> tuple[list[str], list[str]]:
    """The raw header names (lower case) and the names after aliases; checks the required."""
    raw = [h.strip().lower() for h in names]
    header = [ALIASES.get(h, h) for h in raw]
    missing = [c for c in REQUIRED_CSV if c not in header]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}", where=f"{path}:1")
    return raw, header


def _read_csv_fast(path: Path, data: bytes) -> tuple[list[str], dict[str, Any], int]:
    import pandas as pd

    if not data.strip():
        raise InputError("empty file: expected a header row", where=f"{path}:1")
    try:
        first = data.split(b"\n", 1)[0].decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"cannot read as CSV: {error}", where=str(path)) from None
    raw, header = _header(path, first.split(","))
    _check_widths(path, data, len(header))
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
    return raw, values, len(frame)


def _check_widths(path: Path, data: bytes, width: int) -> None:
    """Every line has ``width - 1`` commas (no quoting on this path): counted with numpy."""
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


def _read_ccxt(path: Path, symbol: str | None) -> _RawColumns:
    try:
        with _open_text(path) as handle:
            document = json.load(handle, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise InputError(f"not JSON: {error.msg}", where=f"{path}:{error.lineno}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read: {error}", where=str(path)) from None
    if not isinstance(document, list):
        raise InputError("expected a JSON list of ccxt trades", where=str(path))
    names: tuple[str, ...] = (
        "trade_id",
        "timestamp",
        "symbol",
        "side",
        "price",
        "amount",
        "fee",
        "fee_currency",
    )
    names = (*names, "liquidity", "order_id")
    values: dict[str, Any] = {name: [] for name in names}
    for trade in document:
        item = trade if isinstance(trade, dict) else {}
        fee_cost, fee_currency = _ccxt_fee(item)
        stamp = item.get("timestamp")
        values["trade_id"].append(item.get("id"))
        values["timestamp"].append(stamp if stamp is not None else item.get("datetime"))
        values["symbol"].append(symbol if symbol is not None else item.get("symbol"))
        values["side"].append(item.get("side"))
        values["price"].append(item.get("price"))
        values["amount"].append(item.get("amount"))
        values["fee"].append(fee_cost)
        values["fee_currency"].append(fee_currency)
        values["liquidity"].append(item.get("takerOrMaker"))
        values["order_id"].append(item.get("order"))
    return _RawColumns(row_numbers=np.arange(1, len(document) + 1), values=values)


def _ccxt_fee(trade: dict[str, Any]) -> tuple[Any, Any]:
    """``fee`` or the ``fees`` list summed per currency; two currencies cannot be booked."""
    entries = [f for f in trade.get("fees") or [] if isinstance(f, dict)]
    if not entries and isinstance(trade.get("fee"), dict):
        entries = [trade["fee"]]
    entries = [f for f in entries if f.get("cost") not in (None, 0, "0")]
    if not entries:
        return "0", None
    currencies = {f.get("currency") for f in entries}
    if len(currencies) > 1:
        return "fees in several currencies", None
    total: Any = Decimal(0)
    for entry in entries:
        try:
            total += Decimal(str(entry.get("cost")))
        except InvalidOperation:
            return entry.get("cost"), currencies.pop()
    return total, currencies.pop()


# --- column validation -----------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _column(raw: _RawColumns, name: str, default: str = "") -> Any:
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


def _validate(raw: _RawColumns) -> TradeColumns:
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

    from stagectl.domain.ledger import fee_in_base

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
