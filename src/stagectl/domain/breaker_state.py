"""Circuit breakers one bar at a time: the state ``apply_breakers`` carries to the next bar.

``BreakerTracker`` is fed, in time order, each bar's return (stamped as the ``returns`` of
``apply_breakers``) and each closed trade (pnl at its close time). For the bar stamped t
it gives what ``apply_breakers`` gives at t over any history that ends at t: the
multipliers in force for bar t (known before t) and the firings at t. Its state is what
the next bar needs, so a bar costs the same on day 1 and on day 365:

- daily drawdown stop: the trading day, the day's growth product, stopped or not;
- loss streak: the count of consecutive losses;
- volatility defense: the last ``volatility_window_bars`` returns with their running
  moments, the last ``volatility_lookback_bars`` realized vols (in arrival order and
  sorted), and whether defense held at the last bar.

Memory is bounded by the two windows. A bar costs O(1) plus one insertion into and one
removal from a sorted list of ``volatility_lookback_bars`` floats (a memmove of at most
720 floats with the defaults), and a rare recomputation of the 24-return window.

Feeding order: bars strictly increasing in time; trades non-decreasing in close time; a
trade closing at c after every bar stamped at or before c and before any bar stamped after
c (in ``apply_breakers`` a trade acts from the bars stamped after its close). Anything
else raises ``InputError``. ``replay_breakers`` feeds whole series in that order.

Equality with ``apply_breakers`` is exact (bit for bit, compared with ``==``), not to a
tolerance, because every float is computed by the same operations in the same order:

- realized vol: pandas' rolling std is not a function of the window alone. It is an
  online Welford update with Kahan compensation whose rounding carries over from earlier
  windows, recomputed from the window's values when an update keeps fewer than about 3
  significant digits (pandas >= 3.0 ``roll_var``). ``domain.rolling.RollingStd``
  replays those operations. A two-pass std of the window would differ in the last bits
  and could flip ``vol > threshold`` at a tie (flat or repeating returns). pandas 2.x
  (still allowed by pyproject) updates differently (no recomputation, a count of equal
  values instead), so there the vols differ in their last digits and a tie can flip.
- threshold: the window's order statistics are exact and are interpolated with pandas'
  formula (``domain.rolling.TrailingQuantile``), not numpy's.
- daily growth: the same left-to-right product ``groupby(day).cumprod()`` forms, of the
  same scaled returns ``(r x streak) x volatility``.
- the streak count is an integer; the combined multiplier is (daily x streak) x
  volatility, the order of ``components.prod(axis=1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from stagectl.domain.breakers import (
    DAILY_DRAWDOWN,
    LOSS_STREAK,
    VOLATILITY,
    BreakerResult,
    BreakerSettings,
    Firing,
    reset_offset,
)
from stagectl.domain.rolling import RollingStd, TrailingQuantile
from stagectl.errors import InputError

_NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True, slots=True)
class BarBreakers:
    """The multipliers in force for one bar (known before it) and the firings at its close."""

    multiplier: float
    daily_drawdown: float
    loss_streak: float
    volatility: float
    firings: tuple[Firing, ...]


class _VolatilityDefense:
    """Defense while realized vol > its trailing percentile; it acts from the next bar."""

    __slots__ = ("_defended", "_percentile", "_settings", "_std", "multiplier")

    def __init__(self, settings: BreakerSettings) -> None:
        self._settings = settings
        self._std = RollingStd(settings.volatility_window_bars)
        self._percentile = TrailingQuantile(
            settings.volatility_lookback_bars, settings.volatility_percentile / 100.0
        )
        self._defended = False
        self.multiplier = 1.0

    def close_bar(self, time: pd.Timestamp, bar_return: float) -> Firing | None:
        realized = self._std.push(bar_return)
        threshold = self._percentile.value()
        self._percentile.push(realized)
        defended = realized > threshold
        entered = defended and not self._defended
        self._defended = defended
        self.multiplier = self._settings.defense_multiplier if defended else 1.0
        return Firing(time, VOLATILITY, realized, threshold) if entered else None


class _LossStreak:
    """Consecutive losses (pnl < 0 adds one, pnl > 0 resets, break-even keeps the count)."""

    __slots__ = ("_count", "_settings", "_trades", "multiplier")

    def __init__(self, settings: BreakerSettings) -> None:
        self._settings = settings
        self._count = 0
        self._trades = 0
        self.multiplier = 1.0

    def close_trade(self, time: pd.Timestamp, pnl: float) -> Firing | None:
        before = self._count
        if pnl < 0:
            self._count += 1
        elif pnl > 0:
            self._count = 0
        first = self._trades == 0
        self._trades += 1
        limit = self._settings.streak_losses
        self.multiplier = self._settings.streak_size_multiplier if self._count >= limit else 1.0
        if self._count == limit and (first or before < self._count):
            return Firing(time, LOSS_STREAK, float(self._count), float(limit))
        return None


class _DailyStop:
    """The day's growth prod(1 + r) - 1 since the reset; <= -stop stops the rest of the day."""

    __slots__ = ("_day", "_growth", "_offset_ns", "_stopped", "limit")

    def __init__(self, settings: BreakerSettings) -> None:
        self.limit = -settings.daily_drawdown_stop_pct / 100.0
        self._offset_ns = reset_offset(settings.daily_reset_utc).value
        self._day: int | None = None
        self._growth = 1.0
        self._stopped = False

    def open_bar(self, stamp_ns: int) -> float:
        """0 if the day of the bar stamped ``stamp_ns`` was already stopped, else 1."""
        day = (stamp_ns - self._offset_ns) // _NS_PER_DAY
        if day != self._day:
            self._day, self._growth, self._stopped = day, 1.0, False
        return 0.0 if self._stopped else 1.0

    def close_bar(self, time: pd.Timestamp, scaled_return: float) -> Firing | None:
        factor = 1.0 + scaled_return
        if factor != factor:
            return None
        self._growth *= factor
        growth = self._growth - 1.0
        if self._stopped or not growth <= self.limit:
            return None
        self._stopped = True
        return Firing(time, DAILY_DRAWDOWN, growth, self.limit)


class BreakerTracker:
    """The three breakers of ``apply_breakers``, fed one bar or one closed trade at a time.

    ``add_bar(t, r)`` returns the multipliers in force for the bar stamped t, from the
    bars before it and the trades closed before t, then takes its return r: the daily
    stop sees ``(r x streak) x volatility``; the volatility defense watches r (or
    ``volatility_return``). ``close_trade(c, pnl)`` updates the streak for bars after c.
    """

    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self.settings = settings or BreakerSettings()
        if not 0.0 <= self.settings.volatility_percentile <= 100.0:
            raise InputError("must be within 0..100", where="volatility_percentile")
        self._daily = _DailyStop(self.settings)
        self._streak = _LossStreak(self.settings)
        self._volatility = _VolatilityDefense(self.settings)
        self._last_bar_ns: int | None = None
        self._last_close_ns: int | None = None

    def add_bar(
        self, time: datetime, bar_return: float, volatility_return: float | None = None
    ) -> BarBreakers:
        """The multipliers for the bar stamped ``time`` and the firings its return causes."""
        stamp = pd.Timestamp(time)
        stamp_ns = stamp.value
        if self._last_bar_ns is not None and stamp_ns <= self._last_bar_ns:
            raise InputError(f"bar {stamp} is not after the last bar", where="returns")
        if self._last_close_ns is not None and stamp_ns <= self._last_close_ns:
            raise InputError(
                f"bar {stamp} comes after a trade closed at or after it; feed a trade "
                "after the bars stamped at or before its close",
                where="returns",
            )
        self._last_bar_ns = stamp_ns
        daily = self._daily.open_bar(stamp_ns)
        streak = self._streak.multiplier
        volatility = self._volatility.multiplier
        watched = bar_return if volatility_return is None else volatility_return
        fired = (
            self._daily.close_bar(stamp, bar_return * streak * volatility),
            self._volatility.close_bar(stamp, watched),
        )
        firings = tuple(f for f in fired if f is not None)
        return BarBreakers(daily * streak * volatility, daily, streak, volatility, firings)

    def close_trade(self, time: datetime, pnl: float) -> Firing | None:
        """Count a trade closed at ``time``; the firing if it completes a loss streak."""
        stamp = pd.Timestamp(time)
        stamp_ns = stamp.value
        if self._last_close_ns is not None and stamp_ns < self._last_close_ns:
            raise InputError("trades must be sorted by close time", where="trade_pnl")
        if self._last_bar_ns is not None and stamp_ns < self._last_bar_ns:
            raise InputError(
                f"trade closed at {stamp} comes after a later bar; feed it before the "
                "bars stamped after its close",
                where="trade_pnl",
            )
        self._last_close_ns = stamp_ns
        return self._streak.close_trade(stamp, pnl)


def replay_breakers(
    returns: pd.Series,
    *,
    trade_pnl: pd.Series | None = None,
    volatility_returns: pd.Series | None = None,
    settings: BreakerSettings | None = None,
) -> BreakerResult:
    """``apply_breakers`` computed by a ``BreakerTracker`` fed bar by bar (same arguments).

    Before the bar stamped t the trades closed before t are fed; the trades closed after
    the last bar are fed at the end. Firings are sorted by (time, breaker), stably.
    """
    tracker = BreakerTracker(settings)
    index = pd.DatetimeIndex(returns.index)
    trades = trade_pnl if trade_pnl is not None else pd.Series(dtype=float)
    closes = list(pd.DatetimeIndex(trades.index))
    pnls = trades.to_numpy(dtype=float).tolist()
    bar_returns = returns.to_numpy(dtype=float).tolist()
    watched = (
        bar_returns
        if volatility_returns is None
        else volatility_returns.reindex(index).to_numpy(dtype=float).tolist()
    )
    columns: dict[str, list[float]] = {DAILY_DRAWDOWN: [], LOSS_STREAK: [], VOLATILITY: []}
    multipliers: list[float] = []
    firings: list[Firing] = []
    fed = 0
    for stamp, bar_return, vol_return in zip(index, bar_returns, watched, strict=True):
        while fed < len(closes) and closes[fed].value < stamp.value:
            firings += _fired(tracker.close_trade(closes[fed], pnls[fed]))
            fed += 1
        bar = tracker.add_bar(stamp, bar_return, vol_return)
        columns[DAILY_DRAWDOWN].append(bar.daily_drawdown)
        columns[LOSS_STREAK].append(bar.loss_streak)
        columns[VOLATILITY].append(bar.volatility)
        multipliers.append(bar.multiplier)
        firings += bar.firings
    for close, pnl in zip(closes[fed:], pnls[fed:], strict=True):
        firings += _fired(tracker.close_trade(close, pnl))
    return BreakerResult(
        multiplier=pd.Series(multipliers, index=index, dtype=float, name="size_multiplier"),
        components=pd.DataFrame(columns, index=index, dtype=float),
        firings=sorted(firings, key=lambda f: (f.time, f.breaker)),
    )


def _fired(firing: Firing | None) -> list[Firing]:
    return [] if firing is None else [firing]
