"""How Python values are stored in the state database, in one place.

- Timestamps: aware datetimes, stored as UTC ISO-8601 text of fixed width
  (``2024-06-07T08:00:00.000000Z``), so text order is time order and an index
  on ``ts`` serves range queries. Naive datetimes are refused: a time without
  a zone is a bug waiting for a daylight-saving change.
- Ledger money: :class:`~decimal.Decimal`, stored as ``str(value)``, which
  keeps sign, digits and exponent exactly; NaN and infinities are refused.
- JSON columns: compact, sorted keys, NaN refused; Decimals and datetimes are
  written as strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


def ts_text(value: datetime) -> str:
    """``2024-06-07T08:00:00.000000Z``: UTC, microseconds, always 27 characters."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp {value!r} has no time zone; stagectl stores UTC times")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:26] + "Z"


def opt_ts_text(value: datetime | None) -> str | None:
    return None if value is None else ts_text(value)


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def opt_parse_ts(text: str | None) -> datetime | None:
    return None if text is None else parse_ts(text)


def decimal_text(value: Decimal) -> str:
    if not isinstance(value, Decimal):
        raise TypeError(f"ledger amounts must be Decimal, got {type(value).__name__} {value!r}")
    if not value.is_finite():
        raise ValueError(f"ledger amounts must be finite, got {value}")
    return str(value)


def opt_decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def parse_decimal(text: str) -> Decimal:
    return Decimal(text)


def opt_parse_decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return ts_text(value)
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def json_text(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default
    )


def opt_json_text(value: Any) -> str | None:
    return None if value is None else json_text(value)


def parse_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def filters(
    equal: Mapping[str, object | None], start: datetime | None, end: datetime | None
) -> tuple[str, list[Any]]:
    """``AND column = ?`` for each value given and ``start <= ts < end``, with the
    parameters: the WHERE tail every repository's time-ordered query shares."""
    sql = ""
    params: list[Any] = []
    for column, value in equal.items():
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    if start is not None:
        sql += " AND ts >= ?"
        params.append(ts_text(start))
    if end is not None:
        sql += " AND ts < ?"
        params.append(ts_text(end))
    return sql, params
