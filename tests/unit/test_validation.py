"""Purged walk-forward, CPCV, fold aggregation and PBO (seed 001 §3)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain.validation import (
    aggregate_fold_metrics,
    cpcv_paths,
    cpcv_splits,
    group_bounds,
    index_ranges,
    probability_of_backtest_overfitting,
    purge_train,
    walk_forward_splits,
)
from stagectl.errors import InputError

DAY = pd.Timedelta(days=1)


def daily_index(days: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=days, freq="D", tz="UTC")


def test_index_ranges_compress_consecutive_positions() -> None:
    assert index_ranges([0, 1, 2, 5, 6, 9]) == [(0, 3), (5, 7), (9, 10)]
    assert index_ranges([]) == []


def test_walk_forward_default_layout_is_train_purge_test_on_daily_bars() -> None:
    # 215 days: fold 0 trains days 0-119, skips 120-124, tests 125-154; fold 1 shifts by 30;
    # fold 2 would test 185-214 (complete, the data ends on day 214); fold 3 needs day 244.
    folds = walk_forward_splits(daily_index(215))
    assert [(f.train_ranges(), f.test_ranges()) for f in folds] == [
        ([(0, 120)], [(125, 155)]),
        ([(30, 150)], [(155, 185)]),
        ([(60, 180)], [(185, 215)]),
    ]


def test_walk_forward_expanding_keeps_the_first_training_day() -> None:
    folds = walk_forward_splits(daily_index(215), mode="expanding")
    assert [f.train_ranges() for f in folds] == [[(0, 120)], [(0, 150)], [(0, 180)]]


def test_walk_forward_on_hourly_bars_uses_full_test_windows_only() -> None:
    index = pd.date_range("2024-01-01", periods=155 * 24, freq="h", tz="UTC")
    folds = walk_forward_splits(index)
    assert len(folds) == 1
    assert folds[0].test_ranges() == [(125 * 24, 155 * 24)]
    assert walk_forward_splits(index[:-1]) == []


def test_walk_forward_rejects_bad_arguments() -> None:
    with pytest.raises(InputError, match="rolling or expanding"):
        walk_forward_splits(daily_index(300), mode="sliding")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="positive"):
        walk_forward_splits(daily_index(300), test=pd.Timedelta(0))
    with pytest.raises(InputError, match="sorted"):
        walk_forward_splits(daily_index(300)[::-1])


def test_purge_removes_label_overlap_on_both_sides_and_embargo_after() -> None:
    index = daily_index(30)
    train = [i for i in range(30) if not 10 <= i < 15]
    kept = purge_train(index, train, range(10, 15), label_horizon=3 * DAY, embargo=2 * DAY)
    # before: t <= day 10 - 3 = 7; after: t >= day 14 + 3 + 2 = 19
    assert index_ranges(kept) == [(0, 8), (19, 30)]


def test_group_bounds_are_contiguous_and_near_equal() -> None:
    assert group_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    with pytest.raises(InputError):
        group_bounds(3, 4)


def test_cpcv_has_all_combinations_and_purges_around_each_test_block() -> None:
    folds = cpcv_splits(daily_index(60), n_groups=6, n_test_groups=2, label_horizon=2 * DAY)
    assert len(folds) == math.comb(6, 2)
    assert folds[0].test_groups == (0, 1)
    assert folds[0].test_ranges() == [(0, 20)]
    assert folds[0].train_ranges() == [(21, 60)]  # last test day 19 + 2
    split = next(f for f in folds if f.test_groups == (1, 3))
    assert split.test_ranges() == [(10, 20), (30, 40)]
    assert split.train_ranges() == [(0, 9), (21, 29), (41, 60)]


def test_cpcv_paths_cover_every_group_once_with_each_split_used_k_times() -> None:
    paths = cpcv_paths(6, 2)
    assert len(paths) == 5  # phi = 2/6 * C(6, 2) = 5
    combos = [f.test_groups for f in cpcv_splits(daily_index(60), n_groups=6, n_test_groups=2)]
    for path in paths:
        assert all(g in combos[split] for g, split in enumerate(path))
    uses = np.bincount(np.ravel(paths), minlength=len(combos))
    assert uses.tolist() == [2] * len(combos)
    assert cpcv_paths(4, 1) == [[0, 1, 2, 3]]


@settings(max_examples=60, deadline=None)
@given(
    days=st.integers(min_value=40, max_value=400),
    train_d=st.integers(min_value=1, max_value=150),
    purge_d=st.integers(min_value=0, max_value=10),
    embargo_d=st.integers(min_value=0, max_value=10),
    test_d=st.integers(min_value=1, max_value=40),
    expanding=st.booleans(),
)
def test_walk_forward_never_trains_within_purge_of_a_test_sample(
    days: int, train_d: int, purge_d: int, embargo_d: int, test_d: int, expanding: bool
) -> None:
    index = pd.date_range("2024-01-01", periods=days * 6, freq="4h", tz="UTC")
    folds = walk_forward_splits(
        index,
        train=train_d * DAY,
        purge=purge_d * DAY,
        embargo=embargo_d * DAY,
        test=test_d * DAY,
        mode="expanding" if expanding else "rolling",
    )
    for fold in folds:
        assert_no_leakage(index, fold.train, fold.test, purge_d * DAY, embargo_d * DAY)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=20, max_value=300),
    n_groups=st.integers(min_value=2, max_value=8),
    data=st.data(),
    purge_h=st.integers(min_value=0, max_value=30),
    embargo_h=st.integers(min_value=0, max_value=30),
)
def test_cpcv_never_trains_within_purge_or_embargo_of_a_test_sample(
    n: int, n_groups: int, data: st.DataObject, purge_h: int, embargo_h: int
) -> None:
    k = data.draw(st.integers(min_value=1, max_value=n_groups - 1))
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    purge, embargo = pd.Timedelta(hours=purge_h), pd.Timedelta(hours=embargo_h)
    folds = cpcv_splits(
        index, n_groups=n_groups, n_test_groups=k, label_horizon=purge, embargo=embargo
    )
    assert len(folds) == math.comb(n_groups, k)
    for fold in folds:
        assert np.intersect1d(fold.train, fold.test).size == 0
        assert_no_leakage(index, fold.train, fold.test, purge, embargo)


def assert_no_leakage(
    index: pd.DatetimeIndex,
    train: np.ndarray,
    test: np.ndarray,
    purge: pd.Timedelta,
    embargo: pd.Timedelta,
) -> None:
    """Brute force: every train sample is >= purge before, or >= purge + embargo after,
    every test sample (checked pairwise, not through the implementation's blocks)."""
    if train.size == 0 or test.size == 0:
        return
    ns = index.as_unit("ns").asi8
    train_t = ns[train][:, None]
    test_t = ns[test][None, :]
    gap = train_t - test_t
    ok = (gap <= -purge.value) | (gap >= purge.value + embargo.value)
    assert ok.all()


def test_aggregate_fold_metrics_hand_computed() -> None:
    rows: list[dict[str, float | None]] = [
        {"sharpe": 1.0, "mdd": 0.1}, {"sharpe": 2.0, "mdd": None}, {"sharpe": 4.0}
    ]  # fmt: skip
    out = aggregate_fold_metrics(rows)
    # mean 7/3; deviations -4/3, -1/3, 5/3 -> var (16+1+25)/9/2 = 7/3
    assert out["sharpe"]["mean"] == pytest.approx(7 / 3)
    assert out["sharpe"]["std"] == pytest.approx(math.sqrt(7 / 3))
    assert (out["sharpe"]["min"], out["sharpe"]["max"], out["sharpe"]["median"]) == (1.0, 4.0, 2.0)
    assert out["mdd"] == {
        "mean": 0.1, "std": None, "min": 0.1, "max": 0.1, "median": 0.1, "count": 1
    }  # fmt: skip


def test_pbo_is_not_computed_for_a_single_configuration() -> None:
    result = probability_of_backtest_overfitting(np.zeros((40, 1)))
    assert result.pbo is None
    assert result.reason is not None and "2 configurations" in result.reason


def test_pbo_hand_computed_with_two_configurations_and_two_partitions() -> None:
    # Partitions of 2 periods. Config A: +0.01, +0.03 then -0.01, -0.03; B the reverse.
    # Split J={0}: A best in sample (Sharpe 2/sqrt(2) vs -), B wins out of sample -> A rank 1
    # of 2: omega 1/3, logit ln(1/2) < 0. Split J={1}: symmetric. PBO = 1.
    perf = np.array([[0.01, -0.01], [0.03, -0.03], [-0.01, 0.01], [-0.03, 0.03]])
    result = probability_of_backtest_overfitting(perf, n_partitions=2)
    assert result.n_splits == 2
    assert result.pbo == 1.0
    assert result.logits == pytest.approx((math.log(0.5), math.log(0.5)))


def test_pbo_is_zero_when_one_configuration_dominates_everywhere() -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 0.01, size=(320, 5))
    noise[:, 2] += 0.02
    result = probability_of_backtest_overfitting(noise, n_partitions=8)
    assert result.n_splits == math.comb(8, 4)
    assert result.pbo == 0.0


def test_pbo_of_pure_noise_configurations_is_near_one_half() -> None:
    rng = np.random.default_rng(11)
    result = probability_of_backtest_overfitting(rng.normal(0, 0.01, (800, 20)), n_partitions=10)
    assert result.pbo is not None and 0.25 < result.pbo < 0.75


def test_pbo_rejects_odd_partitions() -> None:
    with pytest.raises(InputError, match="even"):
        probability_of_backtest_overfitting(np.zeros((40, 3)), n_partitions=3)


def test_pbo_counts_a_split_exactly_at_the_median_as_overfit() -> None:
    # Three configurations, two partitions of two bars. In each split the in-sample
    # best (A, then B) is the middle of three out of sample: logit 0 twice.
    returns = [
        [0.03, 0.01, -0.01],
        [0.01, 0.00, 0.01],
        [0.01, 0.03, -0.01],
        [0.00, 0.01, 0.01],
    ]
    result = probability_of_backtest_overfitting(returns, n_partitions=2)
    assert result.logits == (0.0, 0.0)
    assert result.median_ties == 2
    assert result.pbo == 1.0


def test_walk_forward_refuses_more_folds_than_it_could_run() -> None:
    index = pd.date_range("2024-01-01", periods=20_000, freq="h", tz="UTC")
    with pytest.raises(InputError, match=r"19,[0-9]{3} test windows fit the data, at most 1,000"):
        walk_forward_splits(index, train=pd.Timedelta(hours=1), test=pd.Timedelta(hours=1))
