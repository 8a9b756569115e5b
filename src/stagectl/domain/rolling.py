"""Rolling statistics one value at a time, equal bit for bit to pandas' rolling windows.

A live loop that keeps a rolling statistic up to date bar by bar must give the value the
vectorised pandas call gives on the whole series, or the live run and its backtest part
at a tie. These classes hold only the window (a deque of its values) and replay the float
operations of pandas' Cython kernels (``pandas/_libs/window/aggregations.pyx``, pandas
>= 3.0) in the same order, so each value is the same double, not a close one.

A value enters the window on ``push``; +-inf counts as NaN, as pandas replaces it before
any rolling kernel.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Sequence

_ILL_CONDITIONED = sys.float_info.epsilon * 1e3
"""pandas' ``InvCondTol``: an update leaving m2 below old m2 x this lost too many digits."""


class RollingStd:
    """``Series.rolling(window).std(ddof=1)`` one value at a time (pandas >= 3.0).

    Welford's running mean and sum of squared deviations m2, each update with a Kahan
    compensation (one for values entering, one for values leaving the window). When an
    update leaves m2 < old m2 x 1e3 eps, mean and m2 are recomputed from the window's
    values. std = sqrt(m2 / (n - 1)) once the window holds ``window`` non-NaN values,
    else NaN; a negative m2 (rounding) gives 0; +-inf counts as NaN (pandas replaces it
    before rolling). A window under 2 bars never has a std.
    """

    __slots__ = ("_added", "_count", "_m2", "_mean", "_removed", "_unstable", "_values", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self._values: deque[float] = deque()
        self._reset()

    def copy(self) -> RollingStd:
        twin = RollingStd(self.window)
        twin._values = self._values.copy()
        twin._count, twin._mean, twin._m2 = self._count, self._mean, self._m2
        twin._added, twin._removed, twin._unstable = self._added, self._removed, self._unstable
        return twin

    def _reset(self) -> None:
        self._count = 0.0
        self._mean = 0.0
        self._m2 = 0.0
        self._added = 0.0
        self._removed = 0.0
        self._unstable = False

    def push(self, value: float) -> float:
        """Slide the window over ``value``; the std of the window ending with it."""
        if self.window < 2:
            return math.nan
        value = math.nan if math.isinf(value) else value
        if len(self._values) == self.window:
            self._remove(self._values.popleft())
        self._values.append(value)
        self._add(value)
        if self._unstable:
            self._reset()
            for kept in self._values:
                self._add(kept)
            self._unstable = False
        return self._std()

    def _add(self, value: float) -> None:
        if value != value:
            return
        before = self._m2
        self._count += 1.0
        prev_mean = self._mean - self._added
        y = value - self._added
        t = y - self._mean
        self._added = t + self._mean - y
        self._mean = self._mean + t / self._count
        self._m2 = self._m2 + (value - prev_mean) * (value - self._mean)
        if before * _ILL_CONDITIONED > self._m2:
            self._unstable = True

    def _remove(self, value: float) -> None:
        if value != value:
            return
        before = self._m2
        self._count -= 1.0
        if not self._count:
            self._mean = self._m2 = 0.0
            self._unstable = False
            return
        prev_mean = self._mean - self._removed
        y = value - self._removed
        t = y - self._mean
        self._removed = t + self._mean - y
        self._mean = self._mean - t / self._count
        self._m2 = self._m2 - (value - prev_mean) * (value - self._mean)
        if before * _ILL_CONDITIONED > self._m2:
            self._unstable = True

    def _std(self) -> float:
        if self._count < self.window:
            return math.nan
        variance = self._m2 / (self._count - 1.0)
        return 0.0 if variance < 0.0 else math.sqrt(variance)


class RollingMean:
    """``Series.rolling(window).mean()`` one value at a time (pandas >= 3.0).

    A running sum with a Kahan compensation for values entering and another for values
    leaving; mean = sum / n once the window holds ``window`` non-NaN values, else NaN.
    As pandas cleans the float noise of add-and-remove: when the last n values added are
    all equal (n the window's count) the mean is that value; a window with no negative
    value (sign bit, so -0.0 is one) never has a negative mean, nor an all-negative one a
    positive mean (both become 0). +-inf counts as NaN.
    """

    __slots__ = (
        "_added",
        "_count",
        "_last",
        "_negatives",
        "_removed",
        "_same",
        "_sum",
        "_values",
        "window",
    )

    def __init__(self, window: int) -> None:
        self.window = window
        self._values: deque[float] = deque()
        self._count = self._negatives = self._same = 0
        self._sum = self._added = self._removed = 0.0
        self._last = math.nan

    def copy(self) -> RollingMean:
        twin = RollingMean(self.window)
        twin._values = self._values.copy()
        twin._count, twin._negatives, twin._same = self._count, self._negatives, self._same
        twin._sum, twin._added, twin._removed = self._sum, self._added, self._removed
        twin._last = self._last
        return twin

    def push(self, value: float) -> float:
        """Slide the window over ``value``; the mean of the window ending with it."""
        if self.window < 1:
            return math.nan
        value = math.nan if math.isinf(value) else value
        if len(self._values) == self.window:
            self._remove(self._values.popleft())
        self._values.append(value)
        self._add(value)
        return self._mean()

    def _add(self, value: float) -> None:
        if value != value:
            return
        self._count += 1
        y = value - self._added
        t = self._sum + y
        self._added = t - self._sum - y
        self._sum = t
        self._negatives += math.copysign(1.0, value) < 0
        self._same = self._same + 1 if value == self._last else 1
        self._last = value

    def _remove(self, value: float) -> None:
        if value != value:
            return
        self._count -= 1
        y = -value - self._removed
        t = self._sum + y
        self._removed = t - self._sum - y
        self._sum = t
        self._negatives -= math.copysign(1.0, value) < 0

    def _mean(self) -> float:
        if self._count < self.window or self._count == 0:
            return math.nan
        mean = self._sum / self._count
        if self._same >= self._count:
            return self._last
        if self._negatives == 0 and mean < 0:
            return 0.0
        if self._negatives == self._count and mean > 0:
            return 0.0
        return mean


def sorted_quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0-1) of values sorted ascending (at least one), by linear
    interpolation as pandas and numpy's default: position p = q (n - 1), and v[p] when p is
    whole, else v[i] + (v[i+1] - v[i]) (p - i) with i = int(p)."""
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    if position == low:
        return ordered[low]
    below, above = ordered[low], ordered[low + 1]
    return below + (above - below) * (position - low)


class TrailingQuantile:
    """``x.shift(1).rolling(lookback, min_periods=lookback).quantile(q)`` one value at a time.

    The q-quantile of the ``lookback`` values before the current one, defined once there
    are ``lookback`` of them and none is NaN (+-inf counts as NaN). Linear interpolation
    as pandas' ``roll_quantile`` (:func:`sorted_quantile`).
    """

    __slots__ = ("_sorted", "_window", "lookback", "quantile")

    def __init__(self, lookback: int, quantile: float) -> None:
        self.lookback = lookback
        self.quantile = quantile
        self._window: deque[float] = deque()
        self._sorted: list[float] = []

    def value(self) -> float:
        """The quantile of the window as it stands (before the current value)."""
        if self.lookback < 1 or len(self._sorted) < self.lookback:
            return math.nan
        return sorted_quantile(self._sorted, self.quantile)

    def push(self, value: float) -> None:
        """Slide the window over ``value`` (it counts from the next bar on)."""
        if self.lookback < 1:
            return
        value = math.nan if math.isinf(value) else value
        if len(self._window) == self.lookback:
            leaving = self._window.popleft()
            if leaving == leaving:
                del self._sorted[bisect_left(self._sorted, leaving)]
        self._window.append(value)
        if value == value:
            insort(self._sorted, value)
