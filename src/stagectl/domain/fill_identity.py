"""When two records of one trade are the same fill (docs/ledger.md, "One trade, one fill").

The ledger keys a fill on (account, symbol, exchange trade id). A second record with the
same key is either the *same* fill (a re-import: nothing to do) or a *conflict* (the
exchange, a file or an earlier import disagrees about the trade: the import stops). They
are the same when every field of :data:`TRADE_VALUE_FIELDS` is equal as stored:

- ``qty``, ``price`` and ``fee`` are decimal text compared as numbers, exactly
  (``0.10`` equals ``0.1`` and ``1E+3`` equals ``1000``; ``-0`` equals ``0``);
- ``fee_currency`` only when either fee is non-zero (a zero fee has no currency to book);
- ``symbol``, ``side``, ``ts`` (the stored ``2024-06-07T08:00:00.000000Z`` form),
  ``liquidity`` and ``exchange_order_id`` as text, where a missing value (None) differs
  from any given one.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

TRADE_VALUE_FIELDS = (
    "symbol",
    "side",
    "qty",
    "price",
    "ts",
    "fee",
    "fee_currency",
    "liquidity",
    "exchange_order_id",
)
DECIMAL_FIELDS = frozenset({"qty", "price", "fee"})

# The name of each field in a trades file (docs/ledger.md, the csv columns).
FILE_FIELD_NAMES = {"qty": "amount", "ts": "timestamp", "exchange_order_id": "order_id"}

TradeValues = Mapping[str, str | None]


def same_decimal(a: str | None, b: str | None) -> bool:
    """Whether two stored decimal texts are the same number (exact; text that is not a
    number is compared as text)."""
    if a is None or b is None:
        return a is b
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return a == b


def _zero(fee: str | None) -> bool:
    return fee is None or same_decimal(fee, "0")


def differing_fields(new: TradeValues, stored: TradeValues) -> tuple[str, ...]:
    """The fields of :data:`TRADE_VALUE_FIELDS` in which two records of one trade differ,
    in that order; empty when they are the same fill."""
    differ: list[str] = []
    for name in TRADE_VALUE_FIELDS:
        a, b = new.get(name), stored.get(name)
        if name in DECIMAL_FIELDS:
            same = same_decimal(a, b)
        elif name == "fee_currency":
            same = a == b or (_zero(new.get("fee")) and _zero(stored.get("fee")))
        else:
            same = a == b
        if not same:
            differ.append(name)
    return tuple(differ)
