"""Rolling sums and the rolling Sharpe over arrays, from running (cumulative) sums.

A pandas rolling window costs a fixed 0.1-0.3 ms a call plus a pass over the whole
series, whatever part of it changed; the replay recomputes the bars after each guard
action and the minute-bar guard pass has millions of bars. Here a window's sum is the
difference of two cumulative sums, and the cumulative sums over bars ``[start, end)`` are
seeded with the one at ``start - 1``: numpy accumulates in order, so a range computed after
an earlier one gives, bit for bit, the doubles of one pass over all the bars.

Against pandas (whose kernels add and remove values with Kahan compensation) a window sum
carries the rounding of the additions inside it: at most half an ulp of the running sum
for each nonzero value added, so a flow that is zero on most bars (turnover, trades,
funding, fills) loses next to nothing (3e-11 of a 24-hour turnover in % on the bundled
data), and the Sharpe of hourly or minute returns agrees to about 1e-11 (tests bind both
to 1e-9). A window of values that are mathematically equal stays equal here, where
pandas' sums may differ in the last bit.

Two cases differ by more than rounding, and there pandas' own figures are taken (one
rolling call over the series from its origin up to the last such window):

- a window whose values are all equal, such as a flat book's zero returns. Exact sums
  give a std of 0, so a Sharpe of NaN; pandas' running std keeps the residue of the values
  that left the window (about 6e-11 after volatile returns) while its mean is exact, so its
  Sharpe is 0.0 (``domain/rolling.py`` documents why) - unless the series never held
  another value, when pandas' std is exactly 0 too and no call is needed;
- a window whose squared deviations are tiny beside the running sum of squares (returns
  far smaller than the series' earlier ones), whose difference would lose its digits.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

FloatArray = np.ndarray
IntArray = np.ndarray

SHARPE_TERMS = 4
"""The Sharpe's running sums, in order: the values (NaN as 0), their squares, the count of
finite values, and the count of changes (a value unlike the one before it)."""

DIGITS_KEPT = 1e4
"""A window's squared deviations below the running sum of squares / this are taken from
pandas: their difference would keep fewer than about twelve of its sixteen digits
(rolling Sharpes of hourly and minute returns stay far from it: the running sum of
squares is about bars / window times a window's, 40-100 over years of bars)."""


def seeded_cumsum(terms: FloatArray, before: FloatArray | None) -> FloatArray:
    """The running sums of ``terms`` (one row per series, one column per bar) continuing
    ``before`` (each series' sum at the bar before the first column; None: the series
    start here)."""
    if before is None:
        return np.cumsum(terms, axis=-1)
    seeded = np.concatenate((np.asarray(before)[..., None], terms), axis=-1)
    return np.cumsum(seeded, axis=-1)[..., 1:]


def sharpe_terms(values: FloatArray, previous: float, out: FloatArray | None = None) -> FloatArray:
    """The (4, bars) terms of :data:`SHARPE_TERMS` for ``values`` (in ``out`` when given);
    ``previous`` is the value of the bar before the first (NaN at the series' origin).
    +-inf counts as NaN, as in pandas' rolling windows."""
    finite = np.isfinite(values)
    terms = np.empty((SHARPE_TERMS, len(values))) if out is None else out
    clean = terms[0]
    np.copyto(clean, values)
    clean[~finite] = 0.0
    np.multiply(clean, clean, out=terms[1])
    terms[2] = finite
    np.not_equal(values[1:], values[:-1], out=terms[3, 1:])
    terms[3, :1] = values[:1] != previous
    return terms


def window_difference(sums: FloatArray, end: IntArray, low: IntArray, origin: int) -> FloatArray:
    """``sums[..., end] - sums[..., low]``, the sums over bars ``(low, end]``, where ``low``
    may be ``origin - 1`` (the window starts at the origin: nothing to subtract)."""
    inside = low >= origin
    base = np.where(inside, sums[..., np.maximum(low, origin)], 0.0)
    return np.asarray(sums[..., end] - base)


def trailing(sums: FloatArray, start: int, end: int, back: int, origin: int) -> FloatArray:
    """The sums over the ``back`` bars ending at each bar of ``[start, end)``,
    ``sums[..., t] - sums[..., t - back]``, or over the bars from ``origin`` where the
    window reaches before it (:func:`window_difference` with ``low = t - back``, by
    slices)."""
    cut = min(max(start, origin + back), end)
    out = np.empty((*sums.shape[:-1], end - start))
    out[..., : cut - start] = sums[..., start:cut]
    np.subtract(sums[..., cut:end], sums[..., cut - back : end - back], out=out[..., cut - start :])
    return out


def sharpe_of_sums(
    values: FloatArray,
    sums: FloatArray,
    *,
    window: int,
    periods_per_year: float,
    start: int,
    end: int,
    origin: int = 0,
    out: FloatArray | None = None,
) -> FloatArray:
    """``performance.rolling_sharpe`` at rows ``[start, end)`` of a series starting at row
    ``origin``: ``sqrt(periods_per_year) * mean / std(ddof=1)`` of the ``window`` values
    ending at each row, NaN until ``window`` finite values exist or where the std is 0
    (into ``out`` when given).

    ``values`` (by row) and ``sums`` (the running :data:`SHARPE_TERMS` from ``origin``,
    one row per term) are filled up to ``end``. A window of equal values has that value
    as its mean (as pandas) and pandas' std (module docstring): one pandas call for all
    such rows, after the rows are computed block by block (cache-sized temporaries).
    """
    ratio = np.empty(max(end - start, 0)) if out is None else out
    if window < 2 or end <= start:
        ratio[:] = np.nan
        return ratio
    first = min(origin + int(not np.isfinite(values[origin])), len(values) - 1)
    exact = [
        lo
        - start
        + _sharpe_block(
            values,
            sums,
            window,
            lo,
            min(lo + BLOCK, end),
            origin,
            first,
            ratio[lo - start : min(lo + BLOCK, end) - start],
        )
        for lo in range(start, end, BLOCK)
    ]
    rows = np.concatenate(exact)
    if len(rows):
        # pandas' own figures where sums cannot give them (see _sharpe_block)
        series = pd.Series(values[origin : start + int(rows[-1]) + 1])
        rolling = series.rolling(window, min_periods=window)
        at = rows + start - origin
        mean = rolling.mean().to_numpy()[at]
        std = rolling.std(ddof=1).to_numpy()[at]
        defined = std > 0
        patched = np.divide(mean, std, out=mean, where=defined)
        patched[~defined] = np.nan
        ratio[rows] = patched
    ratio *= math.sqrt(periods_per_year)
    return ratio


BLOCK = 1 << 15
"""Rows :func:`sharpe_of_sums` computes at a time."""


def _sharpe_block(
    values: FloatArray,
    sums: FloatArray,
    window: int,
    start: int,
    end: int,
    origin: int,
    first: int,
    out: FloatArray,
) -> IntArray:
    """``mean / std`` at rows ``[start, end)`` into ``out`` (NaN where undefined); the
    rows (from ``start``) whose figures pandas must give instead."""
    sums3 = trailing(sums[:3], start, end, window, origin)  # in place below: one buffer
    total, squares, count = sums3
    valid = count == window
    mean = total / window
    deviation = np.subtract(squares, np.multiply(total, mean, out=total), out=squares)
    changes = sums[3]
    constant = valid & (trailing(changes, start, end, window - 1, origin) == 0)
    always = constant & (changes[start:end] == changes[first])
    # pandas' own figures where sums cannot give them: a window of one repeated value
    # (unless the series never held another), or one whose squared deviations are so
    # small beside the running sum of squares that their difference lost its digits
    kept = np.multiply(deviation, DIGITS_KEPT, out=count)
    lost = valid & ~constant & (kept < sums[1, start:end])
    exact = (constant & ~always) | lost
    std = np.divide(deviation, window - 1, out=deviation)
    np.sqrt(np.maximum(std, 0.0, out=std), out=std)
    std[always] = 0.0
    defined = valid & (std > 0)
    np.divide(mean, std, out=out, where=defined)
    out[~defined] = np.nan
    return np.flatnonzero(exact)


def rolling_sharpe_values(values: FloatArray, window: int, periods_per_year: float) -> FloatArray:
    """:func:`sharpe_of_sums` over a whole array (its origin is row 0)."""
    values = np.asarray(values, dtype=float)
    sums = seeded_cumsum(sharpe_terms(values, np.nan), None)
    return sharpe_of_sums(
        values, sums, window=window, periods_per_year=periods_per_year, start=0, end=len(values)
    )
