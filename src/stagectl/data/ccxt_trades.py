"""Read a ccxt trades JSON list (``metrics import --format ccxt-json``) into text columns.

A JSON list of ccxt unified trades: ``id``, ``order``, ``timestamp`` or ``datetime``,
``symbol``, ``side``, ``takerOrMaker``, ``price``, ``amount``, and the fee: ``fees``
(summed, exactly; fees in two currencies are refused) or else ``fee {cost, currency}``.
Numbers are kept as the text the file wrote them in, never through binary floats or
``int`` (whose conversion of more than 4,300 digits raises ValueError), and validated like
CSV cells (``data.trade_values``). Nesting deeper than ``MAX_JSON_DEPTH`` is refused
before parsing, so a hostile file cannot exhaust Python's recursion. A value of the wrong
JSON type (a list, an object, true) refuses its row. ROW is the 1-based element.
"""

from __future__ import annotations

import json
from decimal import Context, Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np

from stagectl.data.trade_validation import RawColumns
from stagectl.data.trade_values import exact_decimal, shown
from stagectl.errors import InputError

# The deepest nesting a ccxt trades file may have: the list, a trade, its ``fees`` list, a
# fee (4), with room for an exchange's raw ``info`` payload. Python's json module recurses
# once per level and fails with RecursionError near 1,000.
MAX_JSON_DEPTH = 64
# Digits enough to add any number of bounded fees exactly (trade_values.MAX_ABS and
# MAX_PLACES: 16 + 18 digits, and room for the count).
_SUM_PRECISION = 64


def read_ccxt(path: Path, data: bytes, symbol: str | None) -> RawColumns:
    """The trades of a ccxt JSON list as text columns; a value of the wrong JSON type (a
    list, an object, true) refuses its row in ``RawColumns.bad``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"cannot read: {error}", where=str(path)) from None
    _check_depth(path, data)
    try:
        document = json.loads(text, parse_int=str, parse_float=str, parse_constant=str)
    except json.JSONDecodeError as error:
        raise InputError(f"not JSON: {error.msg}", where=f"{path}:{error.lineno}") from None
    if not isinstance(document, list):
        raise InputError("expected a JSON list of ccxt trades", where=str(path))
    fields = {
        "trade_id": "id",
        "symbol": "symbol",
        "side": "side",
        "price": "price",
        "amount": "amount",
        "liquidity": "takerOrMaker",
        "order_id": "order",
    }
    values: dict[str, Any] = {name: [] for name in (*fields, "timestamp", "fee", "fee_currency")}
    bad: dict[int, tuple[str, str]] = {}
    for index, trade in enumerate(document):
        item = trade if isinstance(trade, dict) else {}
        if symbol is not None:
            item = {**item, "symbol": symbol}
        stamp = item.get("timestamp")
        row = {name: item.get(key) for name, key in fields.items()}
        row["timestamp"] = stamp if stamp is not None else item.get("datetime")
        try:
            row["fee"], row["fee_currency"] = _ccxt_fee(item)
        except ValueError as error:
            row["fee"], row["fee_currency"] = "0", None
            bad.setdefault(index, ("fee", str(error)))
        for name, value in row.items():
            if value is not None and not isinstance(value, str):
                bad.setdefault(
                    index, (name, f"expected a JSON string or number, got {shown(value)}")
                )
                value = None
            values[name].append(value)
    return RawColumns(row_numbers=np.arange(1, len(document) + 1), values=values, bad=bad)


def _check_depth(path: Path, data: bytes) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH`` before the json module recurses
    into it. Vectorised over the structural bytes: quotes not escaped by an odd run of
    backslashes delimit strings, and brackets outside strings are counted."""
    raw = np.frombuffer(data, dtype=np.uint8)
    structural = np.flatnonzero(np.isin(raw, np.frombuffer(b'"\\[]{}', dtype=np.uint8)))
    if not len(structural):
        return
    chars = raw[structural]
    backslash = chars == ord("\\")
    # Length of the run of adjacent backslashes ending at each structural byte.
    starts_run = backslash & ~np.r_[False, backslash[:-1] & (np.diff(structural) == 1)]
    index = np.arange(len(chars))
    run_start = np.maximum.accumulate(np.where(starts_run, index, 0))
    run = np.where(backslash, index - run_start + 1, 0)
    before = np.r_[0, run[:-1]]
    adjacent = np.r_[False, np.diff(structural) == 1]
    escaped = adjacent & (before % 2 == 1)
    quote = (chars == ord('"')) & ~escaped
    inside = (np.cumsum(quote) - quote) % 2 == 1
    opening = np.isin(chars, np.frombuffer(b"[{", dtype=np.uint8)) & ~inside
    closing = np.isin(chars, np.frombuffer(b"]}", dtype=np.uint8)) & ~inside
    depth = np.cumsum(opening.astype(np.int64) - closing)
    deep = np.flatnonzero(depth > MAX_JSON_DEPTH)
    if len(deep):
        line = data.count(b"\n", 0, int(structural[deep[0]])) + 1
        raise InputError(
            f"JSON nested deeper than {MAX_JSON_DEPTH} levels; a ccxt trades list needs 4",
            where=f"{path}:{line}",
        )


def _ccxt_fee(trade: dict[str, Any]) -> tuple[str, str | None]:
    """``fee`` or the ``fees`` list summed per currency (exact); ValueError for a fee that
    cannot be booked: not a list of objects, a cost that is no number, two currencies."""
    fees = trade.get("fees")
    if fees is not None and not isinstance(fees, list):
        raise ValueError(f"fees must be a list, got {shown(fees)}")
    entries = [f for f in fees or [] if isinstance(f, dict)]
    fee = trade.get("fee")
    if fee is not None and not isinstance(fee, dict):
        raise ValueError(f"fee must be an object {{cost, currency}}, got {shown(fee)}")
    if not entries and fee is not None:
        entries = [fee]
    costs: list[tuple[Decimal, Any]] = []
    for entry in entries:
        cost, currency = entry.get("cost"), entry.get("currency")
        if cost is None:
            continue
        if not isinstance(cost, str):
            raise ValueError(f"fee cost must be a number, got {shown(cost)}")
        if currency is not None and not isinstance(currency, str):
            raise ValueError(f"fee currency must be a string, got {shown(currency)}")
        value = exact_decimal(cost)
        if value != 0:
            costs.append((value, currency))
    if not costs:
        return "0", None
    currencies = {currency for _, currency in costs}
    if len(currencies) > 1:
        raise ValueError("fees in several currencies cannot be booked")
    with localcontext(Context(prec=_SUM_PRECISION)):
        total = sum((value for value, _ in costs), Decimal(0))
    return str(exact_decimal(str(total))), currencies.pop()
