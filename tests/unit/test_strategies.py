from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain.strategies import (
    debounce,
    ema_of_log_returns,
    held_positions,
    tsmom_ema,
    tsmom_multi_ema,
)
from stagectl.errors import InputError

INDEX = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
# log returns: nan, ln 1.1, ln 0.9, 0, ln 1.1
CLOSE = pd.Series([100.0, 110.0, 99.0, 99.0, 108.9], index=INDEX)


def test_ema_of_log_returns_follows_the_adjust_false_recursion() -> None:
    up, down = math.log(1.1), math.log(0.9)
    m1 = up
    m2 = 2 / 3 * down + 1 / 3 * m1
    m3 = 2 / 3 * 0.0 + 1 / 3 * m2
    m4 = 2 / 3 * up + 1 / 3 * m3
    ema = ema_of_log_returns(CLOSE, 2)
    assert math.isnan(ema.iloc[0])
    assert ema.iloc[1:].tolist() == pytest.approx([m1, m2, m3, m4])
    # m2 = -0.0385, m3 = -0.0128, m4 = +0.0593


def test_tsmom_ema_is_flat_until_lookback_returns_exist_then_takes_the_sign() -> None:
    assert tsmom_ema(CLOSE, 2).tolist() == [0.0, 0.0, -1.0, -1.0, 1.0]


def test_tsmom_ema_with_lookback_longer_than_the_series_stays_flat() -> None:
    assert tsmom_ema(CLOSE, 10).tolist() == [0.0] * 5


def test_tsmom_multi_ema_is_flat_when_lookbacks_disagree_with_zero_weight() -> None:
    # lookback 1 signs: 0, +1, -1, 0, +1; lookback 2 signs: 0, 0, -1, -1, +1
    assert tsmom_multi_ema(CLOSE, [1, 2], 0.0).tolist() == [0.0, 0.0, -1.0, 0.0, 1.0]


def test_tsmom_multi_ema_scales_the_mean_sign_when_lookbacks_disagree() -> None:
    assert tsmom_multi_ema(CLOSE, [1, 2], 0.5).tolist() == [0.0, 0.25, -1.0, -0.25, 1.0]


def test_tsmom_multi_ema_rejects_a_disagree_weight_outside_unit_interval() -> None:
    with pytest.raises(InputError):
        tsmom_multi_ema(CLOSE, [1, 2], 1.5)


def test_tsmom_rejects_non_positive_prices() -> None:
    with pytest.raises(InputError):
        tsmom_ema(pd.Series([1.0, 0.0, 2.0]), 1)


def test_debounce_takes_a_position_after_two_equal_bars() -> None:
    raw = pd.Series([1, 1, 0, 1, 1, -1, -1, -1, 0], dtype=float)
    # run lengths:  1, 2, 1, 1, 2,  1,  2,  3, 1
    assert debounce(raw, 2).tolist() == [0, 1, 1, 1, 1, 1, -1, -1, -1]
    assert debounce(raw, 3).tolist() == [0, 0, 0, 0, 0, 0, 0, -1, -1]


def test_debounce_a_missing_value_confirms_nothing() -> None:
    raw = pd.Series([1, np.nan, np.nan, -1, -1, np.nan], dtype=float)
    assert debounce(raw, 2).tolist() == [0, 0, 0, 0, -1, -1]
    assert debounce(raw, 1).tolist() == [1, 1, 1, -1, -1, -1]


def test_debounce_with_one_bar_returns_the_raw_signal() -> None:
    raw = pd.Series([1, -1, 0, 1], dtype=float)
    assert debounce(raw, 1).tolist() == raw.tolist()


def test_held_positions_trade_the_target_at_the_open_after_the_delay() -> None:
    target = pd.Series([1.0, -1.0, 0.0, 1.0])
    assert held_positions(target, 1).tolist() == [0.0, 1.0, -1.0, 0.0]
    assert held_positions(target, 2).tolist() == [0.0, 0.0, 1.0, -1.0]


def test_held_positions_refuse_a_look_ahead_delay() -> None:
    with pytest.raises(InputError):
        held_positions(pd.Series([1.0]), 0)


prices = st.lists(st.floats(0.5, 2.0), min_size=2, max_size=120).map(
    lambda ratios: pd.Series(100.0 * np.cumprod(ratios))
)


@settings(max_examples=60, deadline=None)
@given(prices, st.lists(st.integers(1, 30), min_size=1, max_size=4))
def test_multi_ema_positions_are_in_minus_one_zero_one_with_zero_disagree_weight(
    close: pd.Series, lookbacks: list[int]
) -> None:
    assert set(tsmom_multi_ema(close, lookbacks, 0.0).unique()) <= {-1.0, 0.0, 1.0}


@settings(max_examples=60, deadline=None)
@given(prices, st.lists(st.integers(1, 30), min_size=1, max_size=4), st.floats(-1.0, 1.0))
def test_multi_ema_positions_stay_in_unit_interval(
    close: pd.Series, lookbacks: list[int], weight: float
) -> None:
    target = tsmom_multi_ema(close, lookbacks, weight)
    assert (target.abs() <= 1.0).all()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from([-1.0, 0.0, 1.0]), max_size=60), st.integers(1, 5))
def test_debounce_changes_only_after_the_raw_signal_held_for_the_required_bars(
    raw_values: list[float], bars: int
) -> None:
    raw = pd.Series(raw_values, dtype=float)
    out = debounce(raw, bars).to_numpy()
    previous = np.concatenate(([0.0], out[:-1]))
    for t in np.flatnonzero(out != previous):
        assert t + 1 >= bars
        assert (raw.to_numpy()[t + 1 - bars : t + 1] == out[t]).all()
