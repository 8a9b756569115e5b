"""Gaps in a bar series, and windowed indicators that restart after each gap.

Candles joined from several files, or one file with a hole in it, are a sequence of
*segments*: runs of bars with no more than :data:`MAX_MISSING_BARS` bars missing between
neighbours. A windowed indicator (Wilder's ADX, a rolling volatility, a rolling median of
volume, an EMA) computed over the whole sequence would bridge a gap: the first bar after 21
months would be read as the next minute. :func:`per_segment` runs the indicator on each
segment alone and puts the pieces back in order, so after a gap every indicator warms up
again from scratch, exactly as on that segment read by itself.

A short hole (at most :data:`MAX_MISSING_BARS` bars, a few minutes of 1-minute data) is
bridged as before: exchanges drop the odd bar, and restarting a 1,440-bar window for one
missing minute would throw away a day of data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

MAX_MISSING_BARS = 5
"""More bars than this missing between two neighbours is a gap: indicators restart after it."""

_Part = TypeVar("_Part", pd.DataFrame, pd.Series)


@dataclass(frozen=True)
class Gap:
    """Bars missing between ``last_before`` and ``first_after`` (bar open times)."""

    last_before: pd.Timestamp
    first_after: pd.Timestamp
    missing_bars: int


def find_gaps(
    index: pd.DatetimeIndex, interval: pd.Timedelta, max_missing_bars: int = MAX_MISSING_BARS
) -> list[Gap]:
    """The gaps of a sorted, unique bar index: neighbours more than ``max_missing_bars``
    bars of ``interval`` apart (missing bars = ``round(step / interval) - 1``)."""
    if len(index) < 2:
        return []
    if interval <= pd.Timedelta(0):
        raise ValueError("interval must be positive")
    steps = np.diff(index.as_unit("ns").asi8)
    missing = np.rint(steps / interval.value).astype(np.int64) - 1
    return [
        Gap(index[k], index[k + 1], int(missing[k]))
        for k in np.flatnonzero(missing > max_missing_bars).tolist()
    ]


def segment_starts(index: pd.DatetimeIndex, gaps: list[Gap]) -> np.ndarray:
    """The position of each segment's first bar: 0, then the first bar after each gap."""
    after = pd.DatetimeIndex([gap.first_after for gap in gaps])
    positions = index.get_indexer(after) if len(after) else np.array([], dtype=np.int64)
    return np.concatenate(([0], positions)).astype(np.int64)


def segment_labels(length: int, starts: np.ndarray) -> np.ndarray:
    """Each bar's segment number (0, 1, ...) from :func:`segment_starts`."""
    labels = np.zeros(length, dtype=np.int64)
    inner = starts[1:]
    if len(inner):
        np.add.at(labels, inner, 1)
    return np.cumsum(labels)


def per_segment(data: _Part, starts: np.ndarray, compute: Callable[[_Part], _Part]) -> _Part:
    """``compute`` on each segment alone, concatenated in order.

    One segment is one call on the whole input (the result is identical to not segmenting).
    ``compute`` must return a result of its input's length on its input's index."""
    if len(starts) <= 1:
        return compute(data)
    ends = [*starts[1:].tolist(), len(data)]
    parts = [compute(data.iloc[a:b]) for a, b in zip(starts.tolist(), ends, strict=True)]
    joined: _Part = pd.concat(parts)
    return joined
