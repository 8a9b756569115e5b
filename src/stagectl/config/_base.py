"""The base of every config model and the bounded types its fields share.

Strict mode keeps a quoted ``"45"`` or a ``true`` from passing as a number; a YAML
list is accepted where the model keeps an immutable tuple (``Items``).

Every number a config holds is finite (``.inf`` and ``.nan`` are refused) and bounded
on both sides (``stagectl.config.limits``): a field takes one of the types below, or
its own tighter range, so an absurd value is a config error (exit 2) instead of a
crash, an overflow or a run that never ends. Durations carry their unit in the type
and are at most 10 years in any unit.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from stagectl.config.limits import (
    MAX_COUNT,
    MAX_DURATION_DAYS,
    MAX_DURATION_H,
    MAX_DURATION_MIN,
    MAX_DURATION_S,
    MAX_LOOKBACK_BARS,
    MAX_MAGNITUDE,
    MAX_PERIODS_PER_YEAR,
)

T = TypeVar("T")

Items = Annotated[tuple[T, ...], Field(strict=False)]
"""A YAML list kept as a tuple; its items are still validated strictly."""

UtcTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
"""A wall-clock time in UTC, ``HH:MM``."""

Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{2,20}$")]
"""An exchange symbol id such as ``ETHUSDT``."""

Severity = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]

Number = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
"""Any finite number up to a trillion in magnitude (a Sharpe bar, a rule's value)."""

NonNegative = Annotated[float, Field(ge=0, le=MAX_MAGNITUDE)]
Positive = Annotated[float, Field(gt=0, le=MAX_MAGNITUDE)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Pct = Annotated[float, Field(ge=0, le=100)]
"""A percentage in [0, 100]."""

Seconds = Annotated[float, Field(ge=0, le=MAX_DURATION_S)]
Minutes = Annotated[float, Field(ge=0, le=MAX_DURATION_MIN)]
Hours = Annotated[float, Field(ge=0, le=MAX_DURATION_H)]
Days = Annotated[float, Field(ge=0, le=MAX_DURATION_DAYS)]
"""Durations, each at most 10 years; add ``Field(gt=0)`` where zero makes no sense."""

DayCount = Annotated[int, Field(gt=0, le=MAX_DURATION_DAYS)]
"""A whole number of days (a window, days in a row), 1 to 10 years' worth."""

Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
"""A count (signals, warnings, sleeves), 0 to a million."""

Integer = Annotated[int, Field(ge=-MAX_COUNT, le=MAX_COUNT)]
"""A small signed integer (a discrete state such as a position's -1, 0, 1)."""

Lookback = Annotated[int, Field(gt=0, le=MAX_LOOKBACK_BARS)]
"""A lookback or indicator period in bars, 1 to 100,000."""

Bars = Annotated[int, Field(ge=0, le=MAX_LOOKBACK_BARS)]
"""A delay or debounce in bars, 0 to 100,000."""

PeriodsPerYear = Annotated[int, Field(gt=0, le=MAX_PERIODS_PER_YEAR)]
"""Annualisation periods (252 daily, 8760 hourly), at most one a minute."""


class ConfigModel(BaseModel):
    """Frozen, strict, refusing keys it does not know and non-finite numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)
