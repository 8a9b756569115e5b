"""The trading vocabulary every layer speaks (docs/architecture.md, "One vocabulary").

Conventions, stated once:

- Money and quantities are :class:`~decimal.Decimal`; times are timezone-aware UTC
  datetimes.
- A *mode* is where a run trades: ``paper`` (the paper broker, the default everywhere)
  or ``live`` (an exchange, behind ``--live``). Paper and live runs share one state
  database; the trading state and risk directives are kept per mode.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

Mode = Literal["paper", "live"]
MODES: tuple[Mode, ...] = get_args(Mode)


class TradingState(StrEnum):
    """What a mode's book may do: everything, only reduce positions, or nothing new."""

    ACTIVE = "ACTIVE"
    REDUCE_ONLY = "REDUCE_ONLY"
    HALTED = "HALTED"
