"""Funding carry and perp-spot basis per symbol (seed 001's hourly funding/basis scan).

Conventions (docs/research.md, "Funding and basis scan"):

- A funding rate is a fraction per 8h settlement, paid by longs to shorts when
  positive. Annualised: ``rate x 3 x 365``. The *carry* over a window is the mean rate
  of its settlements, annualised: what a short perp hedged by long spot collects a
  year at that pace (a long perp pays it).
- Windows: the last 3 settlements (24h), 21 (7 days) and 90 (30 days).
- The carry *turns* when the 24h carry has the opposite sign to the 7-day carry: the
  position that was collecting now pays (seed 001: "adjust positions if carry turns").
- Basis: ``(perp close - spot close) / spot close`` in bps at the last bar both
  markets have, and its mean over the last 7 days of common bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

SETTLEMENTS_PER_YEAR = 3 * 365
CARRY_WINDOWS: tuple[tuple[str, int], ...] = (("24h", 3), ("7d", 21), ("30d", 90))
BASIS_WINDOW = timedelta(days=7)
Turn = Literal["to_negative", "to_positive"]


@dataclass(frozen=True)
class Basis:
    """The perp's premium over spot at the last common bar and its 7-day mean, in bps."""

    as_of: datetime
    bps: float
    mean_7d_bps: float


@dataclass(frozen=True)
class CarryScan:
    """One symbol's funding carry (annualised fractions per window) and basis."""

    symbol: str
    as_of: datetime
    last_rate: float
    carry: dict[str, float | None]
    basis: Basis | None
    turn: Turn | None

    @property
    def last_annualised(self) -> float:
        return self.last_rate * SETTLEMENTS_PER_YEAR

    @property
    def note(self) -> str:
        """What the flag means for a carry position, or an empty string."""
        if self.turn == "to_negative":
            return "carry turned negative: shorts now pay funding"
        if self.turn == "to_positive":
            return "carry turned positive: longs now pay funding"
        return ""


def scan_carry(
    symbol: str,
    funding: pd.Series[float],
    *,
    perp_close: pd.Series[float] | None = None,
    spot_close: pd.Series[float] | None = None,
    now: datetime | None = None,
) -> CarryScan:
    """The scan of one symbol from data at or before ``now`` (default: all of it).
    ValueError when no settlement is that old."""
    rates = funding if now is None else funding.loc[: pd.Timestamp(now)]
    if rates.empty:
        raise ValueError(f"{symbol}: no funding settlement at or before {now}")
    values = rates.to_numpy(dtype=np.float64)
    carry = {
        name: float(values[-n:].mean()) * SETTLEMENTS_PER_YEAR if len(values) >= n else None
        for name, n in CARRY_WINDOWS
    }
    return CarryScan(
        symbol=symbol,
        as_of=pd.Timestamp(rates.index[-1]).to_pydatetime(),
        last_rate=float(values[-1]),
        carry=carry,
        basis=_basis(perp_close, spot_close, now),
        turn=_turn(carry["24h"], carry["7d"]),
    )


def _turn(recent: float | None, week: float | None) -> Turn | None:
    if recent is None or week is None or recent * week >= 0:
        return None
    return "to_negative" if recent < 0 else "to_positive"


def _basis(
    perp: pd.Series[float] | None, spot: pd.Series[float] | None, now: datetime | None
) -> Basis | None:
    if perp is None or spot is None:
        return None
    both = pd.concat([perp.rename("perp"), spot.rename("spot")], axis=1, join="inner")
    if now is not None:
        both = both.loc[: pd.Timestamp(now)]
    if both.empty:
        return None
    premium = (both["perp"] - both["spot"]) / both["spot"] * 10_000
    last = pd.Timestamp(both.index[-1])
    week = premium.loc[last - pd.Timedelta(BASIS_WINDOW) :]
    return Basis(
        as_of=last.to_pydatetime(), bps=float(premium.iloc[-1]), mean_7d_bps=float(week.mean())
    )
