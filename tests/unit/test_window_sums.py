"""Rolling sums and the rolling Sharpe from running sums: equal to pandas' rolling windows
(``performance.rolling_sharpe``) to 1e-9 with the same NaN, including a flat book's
windows, and the same doubles whether computed in one pass or range by range."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain import window_sums
from stagectl.domain.performance import rolling_sharpe
from stagectl.domain.window_sums import (
    SHARPE_TERMS,
    rolling_sharpe_values,
    seeded_cumsum,
    sharpe_of_sums,
    sharpe_terms,
    trailing,
    window_difference,
)

TOLERANCE = 1e-9


def returns_with_flats(seed: int, bars: int, flats: int) -> np.ndarray:
    """Hourly-like returns with ``flats`` stretches of exact zeros (a flattened book) and
    of one repeated value; the first return NaN, as an equity's pct_change starts."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0002, 0.004, bars)
    for _ in range(flats):
        start = int(rng.integers(0, bars))
        length = int(rng.integers(1, bars // 2 + 1))
        values[start : start + length] = 0.0 if rng.random() < 0.8 else 0.001
    values[0] = np.nan
    return values


def pandas_sharpe(values: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    series = pd.Series(values)
    return rolling_sharpe(
        series, window, periods_per_day=1, periods_per_year=periods_per_year
    ).to_numpy()


def assert_close_with_the_same_nan(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    scale = np.maximum(1.0, np.abs(theirs))
    assert np.nanmax(np.abs(ours - theirs) / scale, initial=0.0) <= TOLERANCE


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bars=st.integers(2, 3000),
    window=st.sampled_from([2, 3, 24, 480]),
    flats=st.integers(0, 3),
)
def test_the_sharpe_from_running_sums_is_pandas_rolling_sharpe(
    seed: int, bars: int, window: int, flats: int
) -> None:
    values = returns_with_flats(seed, bars, flats)
    ours = rolling_sharpe_values(values, window, 8760.0)
    assert_close_with_the_same_nan(ours, pandas_sharpe(values, window, 8760.0))


def test_a_flat_book_keeps_pandas_sharpe_of_zero_after_volatile_returns() -> None:
    # pandas' running std keeps a residue once only zeros are left in the window: its
    # Sharpe is 0.0 there, where exact sums would say NaN (the book of
    # test_risk_stream.py's flat-book test); a series flat from its start has a std of
    # exactly 0 in pandas too, so NaN
    rng = np.random.default_rng(0)
    volatile = 10_000.0 * np.cumprod(1.0 + rng.normal(0.0, 0.003, 600))
    equity = np.concatenate([volatile, np.full(500, volatile[-1])])
    values = np.concatenate(([np.nan], equity[1:] / equity[:-1] - 1.0))
    ours = rolling_sharpe_values(values, 480, 8760.0)
    theirs = pandas_sharpe(values, 480, 8760.0)
    assert ours[-1] == theirs[-1] == 0.0
    assert np.array_equal(ours[-20:], theirs[-20:])  # the all-zero windows
    assert_close_with_the_same_nan(ours, theirs)
    flat = rolling_sharpe_values(np.concatenate(([np.nan], np.zeros(600))), 480, 8760.0)
    assert np.isnan(flat).all()


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bars=st.integers(2, 2000),
    cuts=st.lists(st.floats(0.0, 1.0), max_size=8),
    flats=st.integers(0, 2),
)
def test_the_sharpe_range_by_range_is_the_one_pass_to_the_last_bit(
    seed: int, bars: int, cuts: list[float], flats: int
) -> None:
    values = returns_with_flats(seed, bars, flats)
    sums = np.zeros((SHARPE_TERMS, bars))
    parts = []
    for start, end in itertools.pairwise(sorted({0, bars, *(int(c * bars) for c in cuts)})):
        previous = values[start - 1] if start else math.nan
        carried = sums[:, start - 1] if start else None
        sums[:, start:end] = seeded_cumsum(sharpe_terms(values[start:end], previous), carried)
        parts.append(
            sharpe_of_sums(values, sums, window=48, periods_per_year=8760.0, start=start, end=end)
        )
    whole = rolling_sharpe_values(values, 48, 8760.0)
    assert np.array_equal(np.concatenate(parts), whole, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60),
    back=st.integers(1, 10),
    origin=st.integers(0, 20),
    start=st.integers(0, 60),
)
def test_trailing_sums_are_the_window_differences(
    values: list[float], back: int, origin: int, start: int
) -> None:
    bars = len(values)
    origin, start = min(origin, bars - 1), min(max(start, origin), bars)
    series = np.zeros(bars)
    series[origin:] = np.cumsum(values[origin:])
    rows = np.arange(start, bars)
    low = np.maximum(rows - back, origin - 1)
    expected = window_difference(series, rows, low, origin)
    assert np.array_equal(trailing(series, start, bars, back, origin), expected)
    naive = [sum(values[max(t - back + 1, origin) : t + 1]) for t in rows]
    assert np.allclose(expected, naive, rtol=0, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bars=st.integers(2, 1500),
    block=st.integers(1, 97),
    flats=st.integers(0, 3),
)
def test_the_sharpe_block_by_block_is_the_whole_one_to_the_last_bit(
    seed: int, bars: int, block: int, flats: int
) -> None:
    """Minute bars are computed in cache-sized blocks, the rows pandas must give (flat
    windows) patched once at the end: the same doubles as one block."""
    values = returns_with_flats(seed, bars, flats)
    whole = rolling_sharpe_values(values, 24, 8760.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(window_sums, "BLOCK", block)
        blocks = rolling_sharpe_values(values, 24, 8760.0)
    assert np.array_equal(blocks, whole, equal_nan=True)
    assert_close_with_the_same_nan(blocks, pandas_sharpe(values, 24, 8760.0))
