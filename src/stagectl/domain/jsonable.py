"""The one JSON spelling of stagectl's values, shared by reports, ``--json`` and alerts.

``to_jsonable`` turns a value into plain JSON types: datetimes as ISO-8601 in UTC with
``Z`` (an aware datetime in another zone is converted; a naive one is written as it is),
dates as ``YYYY-MM-DD``, ``Decimal`` as its exact string, enums by value, paths as text,
pydantic models by their fields, numpy scalars and arrays as numbers and lists, NaN and
infinities as ``null`` (JSON has no spelling for them), dictionary keys as strings, and
anything else as ``str(value)``.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any


def to_jsonable(value: Any) -> Any:
    """``value`` in JSON types (see the module docstring); never raises on a type."""
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="python"))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        utc = value if value.tzinfo is None else value.astimezone(UTC)
        return utc.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalar
        return to_jsonable(value.item())
    if hasattr(value, "tolist"):  # numpy array
        return to_jsonable(value.tolist())
    return str(value)


def utc_minute(value: datetime) -> str:
    """``2026-04-01T00:00Z``: a time to the minute in UTC, as the human messages show it
    (naive means UTC)."""
    moment = value if value.tzinfo is None else value.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M}Z"
