"""Gaps in a bar series and indicators that restart after each one (domain.segments)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagectl.domain.indicators import adx
from stagectl.domain.segments import (
    MAX_MISSING_BARS,
    find_gaps,
    per_segment,
    segment_labels,
    segment_starts,
)

MINUTE = pd.Timedelta("1min")
T0 = pd.Timestamp("2025-05-05T00:00:00Z")


def bars_at(minutes: list[int]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([T0 + m * MINUTE for m in minutes])


def test_up_to_five_missing_bars_are_bridged_six_are_a_gap() -> None:
    # steps: 1 (none missing), 6 (5 missing: bridged), 7 (6 missing: a gap), 1
    index = bars_at([0, 1, 7, 14, 15])
    gaps = find_gaps(index, MINUTE)
    assert MAX_MISSING_BARS == 5
    assert [(g.last_before, g.first_after, g.missing_bars) for g in gaps] == [
        (index[2], index[3], 6)
    ]
    assert segment_starts(index, gaps).tolist() == [0, 3]
    assert segment_labels(len(index), segment_starts(index, gaps)).tolist() == [0, 0, 0, 1, 1]


def test_missing_bars_are_counted_in_the_interval() -> None:
    index = pd.DatetimeIndex([T0, T0 + pd.Timedelta(hours=8)])
    assert find_gaps(index, pd.Timedelta(hours=1))[0].missing_bars == 7
    assert find_gaps(index, pd.Timedelta(hours=4)) == []
    assert find_gaps(index[:1], MINUTE) == []


def test_one_segment_is_the_plain_computation() -> None:
    series = pd.Series([1.0, 2.0, 4.0], index=bars_at([0, 1, 2]))
    got = per_segment(series, np.array([0]), lambda s: s.cumsum())
    pd.testing.assert_series_equal(got, series.cumsum())


def test_adx_restarts_after_a_gap_and_equals_each_segment_alone() -> None:
    rng = np.random.default_rng(7)
    minutes = [*range(60), *range(10_000, 10_060)]
    close = 100 + np.cumsum(rng.normal(0, 0.2, len(minutes)))
    frame = pd.DataFrame(
        {"high": close + 0.1, "low": close - 0.1, "close": close}, index=bars_at(minutes)
    )
    starts = segment_starts(frame.index, find_gaps(frame.index, MINUTE))
    assert starts.tolist() == [0, 60]

    def compute(part: pd.DataFrame) -> pd.DataFrame:
        return adx(part["high"], part["low"], part["close"], 14)

    got = per_segment(frame, starts, compute)
    pd.testing.assert_frame_equal(got.iloc[:60], compute(frame.iloc[:60]))
    pd.testing.assert_frame_equal(got.iloc[60:], compute(frame.iloc[60:]))
    assert got["plus_di"].iloc[60:74].isna().all()  # warming up again
    assert compute(frame)["plus_di"].iloc[60:74].notna().all()  # what bridging did


@given(st.lists(st.integers(1, 20), min_size=1, max_size=60))
def test_segments_cover_every_bar_once_and_no_step_inside_one_is_a_gap(steps: list[int]) -> None:
    index = bars_at(np.cumsum([0, *steps]).tolist())
    starts = segment_starts(index, find_gaps(index, MINUTE))
    labels = segment_labels(len(index), starts)
    assert labels[0] == 0 and np.all(np.diff(labels) >= 0)
    assert np.flatnonzero(np.diff(labels)).tolist() == (starts[1:] - 1).tolist()
    inside = np.diff(labels) == 0
    assert np.all(np.array(steps)[inside] <= MAX_MISSING_BARS + 1)
    assert np.all(np.array(steps)[~inside] > MAX_MISSING_BARS + 1)


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        find_gaps(bars_at([0, 1]), pd.Timedelta(0))
