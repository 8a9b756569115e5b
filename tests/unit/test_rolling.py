"""Rolling statistics one value at a time (domain.rolling) equal pandas' bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain.rolling import RollingMean, RollingStd, TrailingQuantile

VALUES = st.lists(
    st.one_of(
        st.floats(-1.0, 1.0),
        st.floats(-1e9, 1e9),  # a level far above the spread: pandas recomputes the window
        st.sampled_from([0.0, 0.25, 1e8, math.nan, math.inf, -math.inf]),
    ),
    max_size=150,
)


def same_floats(got: list[float], expected: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(got, dtype=float), expected, equal_nan=True))


@settings(max_examples=300, deadline=None)
@given(VALUES, st.integers(0, 8))
def test_rolling_std_is_pandas_rolling_std(values: list[float], window: int) -> None:
    expected = pd.Series(values, dtype=float).rolling(window).std(ddof=1).to_numpy()
    rolling = RollingStd(window)
    assert same_floats([rolling.push(v) for v in values], expected)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.integers(0, 8))
def test_rolling_mean_is_pandas_rolling_mean(values: list[float], window: int) -> None:
    expected = pd.Series(values, dtype=float).rolling(max(window, 1)).mean().to_numpy()
    rolling = RollingMean(max(window, 1))
    assert same_floats([rolling.push(v) for v in values], expected)


RUNS = st.lists(
    st.tuples(st.sampled_from([0.0, -0.0, 0.003, -0.002, 1e-9, math.nan]), st.integers(1, 30)),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-0.01, 0.01), max_size=60), RUNS, st.integers(2, 24))
def test_rolling_mean_and_std_equal_pandas_through_flat_stretches(
    noise: list[float], runs: list[tuple[float, int]], window: int
) -> None:
    # a volatile start, then runs of equal values: pandas' add-and-remove leaves float noise
    # in the running moments, and its cleaning rules decide what a flat window gives
    values = noise + [value for value, count in runs for _ in range(count)]
    series = pd.Series(values, dtype=float)
    mean, std = RollingMean(window), RollingStd(window)
    assert same_floats([mean.push(v) for v in values], series.rolling(window).mean().to_numpy())
    assert same_floats([std.push(v) for v in values], series.rolling(window).std().to_numpy())


def test_a_copy_of_a_rolling_mean_or_std_moves_on_its_own() -> None:
    values = [0.1, -0.2, 0.3, 0.0, 0.0, 0.5]
    mean, std = RollingMean(3), RollingStd(3)
    for v in values[:4]:
        mean.push(v)
        std.push(v)
    mean_twin, std_twin = mean.copy(), std.copy()
    assert mean_twin.push(1.0) != mean.push(0.0)
    assert std_twin.push(1.0) != std.push(0.0)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.integers(0, 12), st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1)))
def test_trailing_quantile_is_pandas_rolling_quantile_of_the_values_before(
    values: list[float], lookback: int, quantile: float
) -> None:
    series = pd.Series(values, dtype=float)
    expected = series.shift(1).rolling(lookback, min_periods=lookback).quantile(quantile)
    trailing = TrailingQuantile(lookback, quantile)
    got = []
    for value in values:
        got.append(trailing.value())
        trailing.push(value)
    assert same_floats(got, expected.to_numpy())


def test_rolling_std_forgets_a_huge_value_once_it_leaves_the_window() -> None:
    # a 1e9 outlier then a flat 0.001/0.002 pattern: the running moments lose their digits
    # as it leaves; pandas (and RollingStd) recompute the window instead of carrying the loss
    values = [1e9, *([0.001, 0.002] * 10)]
    rolling = RollingStd(4)
    stds = [rolling.push(v) for v in values]
    assert stds[-1] == pd.Series(values).rolling(4).std().iloc[-1]
    assert math.isclose(stds[-1], np.std([0.001, 0.002] * 2, ddof=1), rel_tol=1e-12)
