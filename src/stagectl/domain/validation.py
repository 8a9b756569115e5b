"""Purged walk-forward, combinatorial purged CV and PBO (seed 001 §3; docs/research.md).

Conventions (López de Prado, *Advances in Financial Machine Learning*, ch. 7 and 12;
Bailey, Borwein, López de Prado and Zhu, "The Probability of Backtest Overfitting"):

- Samples are the positions 0..n-1 of a sorted time index; sample ``i`` is stamped
  ``t[i]`` and its label looks ahead ``label_horizon`` (the seed's purge gap, 5 days by
  default): the label window is ``[t[i], t[i] + h)``.
- A contiguous test block spans ``[t[a], t[b]]``; its labels reach ``t[b] + h``.
- Purge removes every training sample whose label window overlaps the test block's
  label span, i.e. ``t[a] - h < t[i] < t[b] + h``. So a training sample before the test
  is at least ``h`` before its first stamp, and one after it at least ``h`` after its last.
- Embargo removes the training samples right after the purged zone:
  ``t[b] + h <= t[i] < t[b] + h + embargo``.
- Every fold returns integer positions (numpy int64, ascending); ``index_ranges``
  compresses them into half-open ``(start, stop)`` runs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from stagectl.errors import InputError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
WindowMode = Literal["rolling", "expanding"]

DEFAULT_TRAIN = pd.Timedelta(days=120)
DEFAULT_PURGE = pd.Timedelta(days=5)
DEFAULT_EMBARGO = pd.Timedelta(days=0)
DEFAULT_TEST = pd.Timedelta(days=30)


@dataclass(frozen=True)
class Fold:
    """One train/test split as sample positions (ascending int64 arrays)."""

    fold: int
    train: IntArray
    test: IntArray
    test_groups: tuple[int, ...] = ()

    def train_ranges(self) -> list[tuple[int, int]]:
        return index_ranges(self.train)

    def test_ranges(self) -> list[tuple[int, int]]:
        return index_ranges(self.test)


def index_ranges(positions: npt.ArrayLike) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` runs of consecutive positions: [0,1,2,5,6] -> [(0,3),(5,7)]."""
    values = np.asarray(positions, dtype=np.int64)
    if values.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(values) != 1)
    starts = np.concatenate(([0], breaks + 1))
    stops = np.concatenate((breaks + 1, [values.size]))
    return [(int(values[s]), int(values[e - 1]) + 1) for s, e in zip(starts, stops, strict=True)]


def _times_ns(index: pd.DatetimeIndex) -> npt.NDArray[np.int64]:
    times = pd.DatetimeIndex(index)
    if times.size and not (times.is_monotonic_increasing and times.is_unique):
        raise InputError("the time index must be sorted and unique", where="index")
    return np.asarray(times.as_unit("ns").asi8, dtype=np.int64)


def purge_train(
    index: pd.DatetimeIndex,
    train: npt.ArrayLike,
    test: npt.ArrayLike,
    *,
    label_horizon: pd.Timedelta = DEFAULT_PURGE,
    embargo: pd.Timedelta = DEFAULT_EMBARGO,
) -> IntArray:
    """Drop from ``train`` the samples purged or embargoed by each contiguous test block.

    For a block ``[t[a], t[b]]`` with horizon ``h`` and embargo ``e`` a training sample
    survives only when ``t[i] <= t[a] - h`` or ``t[i] >= t[b] + h + e``.
    """
    times = _times_ns(index)
    train_pos = np.asarray(train, dtype=np.int64)
    keep = np.ones(train_pos.size, dtype=bool)
    h, e = int(pd.Timedelta(label_horizon).value), int(pd.Timedelta(embargo).value)
    train_times = times[train_pos]
    for start, stop in index_ranges(np.sort(np.asarray(test, dtype=np.int64))):
        first, last = times[start], times[stop - 1]
        keep &= (train_times <= first - h) | (train_times >= last + h + e)
    return train_pos[keep]


MAX_WALK_FORWARD_FOLDS = 1_000
"""Each fold selects and backtests: more would run for hours (30-day tests on 2 years: 24)."""


def walk_forward_splits(
    index: pd.DatetimeIndex,
    *,
    train: pd.Timedelta = DEFAULT_TRAIN,
    purge: pd.Timedelta = DEFAULT_PURGE,
    embargo: pd.Timedelta = DEFAULT_EMBARGO,
    test: pd.Timedelta = DEFAULT_TEST,
    mode: WindowMode = "rolling",
    step: pd.Timedelta | None = None,
) -> list[Fold]:
    """Purged walk-forward folds: ``[train][purge gap][test]``, moved forward by ``step``.

    Fold k's test window is ``[T0 + train + purge + k*step, ... + test)`` with ``T0 = t[0]``
    and ``step = test`` unless given. The training window is ``[test_start - purge - train,
    test_start - purge)`` when rolling and ``[T0, test_start - purge)`` when expanding; then
    :func:`purge_train` removes samples whose label (horizon = ``purge``) reaches the test.
    Only complete test windows are used: the data must reach ``test_end - bar`` where
    ``bar`` is the median spacing of the index. A fold with an empty train or test is skipped.
    More than MAX_WALK_FORWARD_FOLDS folds is an InputError.
    """
    if mode not in ("rolling", "expanding"):
        raise InputError(f"mode must be rolling or expanding, not {mode!r}", where="mode")
    step = test if step is None else step
    for name, value in (("train", train), ("test", test), ("step", step)):
        if pd.Timedelta(value) <= pd.Timedelta(0):
            raise InputError(f"{name} must be a positive duration", where=name)
    for name, value in (("purge", purge), ("embargo", embargo)):
        if pd.Timedelta(value) < pd.Timedelta(0):
            raise InputError(f"{name} must not be negative", where=name)
    times = _times_ns(index)
    if times.size < 2:
        return []
    bar = int(np.median(np.diff(times)))
    t0, t_last = int(times[0]), int(times[-1])
    tr, pg, ts, sp = (int(pd.Timedelta(v).value) for v in (train, purge, test, step))
    test_start = t0 + tr + pg
    wanted = (t_last + bar - test_start - ts) // sp + 1
    if wanted > MAX_WALK_FORWARD_FOLDS:
        raise InputError(
            f"{wanted:,} test windows fit the data, at most {MAX_WALK_FORWARD_FOLDS:,} are "
            "run: give a longer --test",
            where="--test",
        )
    folds: list[Fold] = []
    while test_start + ts <= t_last + bar:
        train_start = t0 if mode == "expanding" else test_start - pg - tr
        train_lo, train_hi = np.searchsorted(times, [train_start, test_start - pg], side="left")
        test_lo, test_hi = np.searchsorted(times, [test_start, test_start + ts], side="left")
        test_pos = np.arange(test_lo, test_hi, dtype=np.int64)
        train_pos = purge_train(
            index,
            np.arange(train_lo, train_hi, dtype=np.int64),
            test_pos,
            label_horizon=purge,
            embargo=embargo,
        )
        if train_pos.size and test_pos.size:
            folds.append(Fold(fold=len(folds), train=train_pos, test=test_pos))
        test_start += sp
    return folds


def group_bounds(n_samples: int, n_groups: int) -> list[tuple[int, int]]:
    """Split positions 0..n-1 into ``n_groups`` contiguous groups of near-equal size."""
    if n_groups < 2 or n_groups > n_samples:
        raise InputError(
            f"need 2 <= groups <= samples, got {n_groups} groups for {n_samples} samples",
            where="n_groups",
        )
    edges = np.linspace(0, n_samples, n_groups + 1).round().astype(np.int64)
    return [(int(edges[g]), int(edges[g + 1])) for g in range(n_groups)]


def cpcv_splits(
    index: pd.DatetimeIndex,
    *,
    n_groups: int,
    n_test_groups: int,
    label_horizon: pd.Timedelta = DEFAULT_PURGE,
    embargo: pd.Timedelta = DEFAULT_EMBARGO,
) -> list[Fold]:
    """Combinatorial purged CV: all C(N, K) choices of K test groups out of N.

    The groups are contiguous and near-equal (:func:`group_bounds`); splits come in
    ``itertools.combinations`` order; the training set is every other group's samples
    minus :func:`purge_train` around each contiguous test block.
    """
    if not 1 <= n_test_groups < n_groups:
        raise InputError(
            f"need 1 <= test groups < groups, got {n_test_groups} of {n_groups}",
            where="n_test_groups",
        )
    times = _times_ns(index)
    bounds = group_bounds(times.size, n_groups)
    folds: list[Fold] = []
    for combo in itertools.combinations(range(n_groups), n_test_groups):
        test_pos = np.concatenate([np.arange(*bounds[g], dtype=np.int64) for g in combo])
        others = [np.arange(*bounds[g], dtype=np.int64) for g in range(n_groups) if g not in combo]
        train_pos = purge_train(
            index, np.concatenate(others), test_pos, label_horizon=label_horizon, embargo=embargo
        )
        folds.append(Fold(fold=len(folds), train=train_pos, test=test_pos, test_groups=combo))
    return folds


def cpcv_paths(n_groups: int, n_test_groups: int) -> list[list[int]]:
    """The phi = K/N * C(N, K) backtest paths of CPCV (López de Prado, AFML §12.4).

    Group g is a test group in exactly C(N-1, K-1) = phi splits. Path j takes, for every
    group g, the j-th of those splits (in ``cpcv_splits`` order), so ``paths[j][g]`` is the
    split whose model predicts group g on path j. Each path covers the whole sample once,
    with every segment predicted out of sample.
    """
    if not 1 <= n_test_groups < n_groups:
        raise InputError("need 1 <= test groups < groups", where="n_test_groups")
    n_paths = math.comb(n_groups - 1, n_test_groups - 1)
    seen = [0] * n_groups
    paths = [[-1] * n_groups for _ in range(n_paths)]
    combos = itertools.combinations(range(n_groups), n_test_groups)
    for split, combo in enumerate(combos):
        for g in combo:
            paths[seen[g]][g] = split
            seen[g] += 1
    return paths


def aggregate_fold_metrics(
    rows: Sequence[Mapping[str, float | None]],
) -> dict[str, dict[str, float | int | None]]:
    """Mean, std (ddof=1), min, max, median and count of each metric across folds.

    None and non-finite values are left out; ``count`` says how many folds were used;
    std needs two values.
    """
    names = sorted({name for row in rows for name in row})
    out: dict[str, dict[str, float | int | None]] = {}
    for name in names:
        raw = [row.get(name) for row in rows]
        values = np.array([v for v in raw if v is not None and math.isfinite(v)], dtype=float)
        has = values.size > 0
        out[name] = {
            "mean": float(values.mean()) if has else None,
            "std": float(values.std(ddof=1)) if values.size > 1 else None,
            "min": float(values.min()) if has else None,
            "max": float(values.max()) if has else None,
            "median": float(np.median(values)) if has else None,
            "count": int(values.size),
        }
    return out


@dataclass(frozen=True)
class PboResult:
    """CSCV outcome; ``pbo`` is None when it cannot be computed honestly (``reason``)."""

    pbo: float | None
    n_configurations: int
    n_partitions: int
    n_splits: int
    logits: tuple[float, ...]
    median_ties: int
    reason: str | None = None


def _sharpe_columns(total: FloatArray, total_sq: FloatArray, count: FloatArray) -> FloatArray:
    """Per-period Sharpe mean/std (ddof=1) per row and column; std 0 gives 0, +inf or -inf."""
    mean = total / count
    var = np.maximum(total_sq - count * mean**2, 0.0) / np.maximum(count - 1.0, 1.0)
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(std > 0, mean / np.where(std > 0, std, 1.0), np.sign(mean) * np.inf)
    return np.asarray(ratio, dtype=np.float64)


def probability_of_backtest_overfitting(
    performance: npt.ArrayLike, n_partitions: int = 16
) -> PboResult:
    """PBO by combinatorially symmetric cross-validation (Bailey et al. 2014).

    ``performance`` is a T x C matrix: per-period returns of C configurations. Rows are
    cut into S contiguous partitions; each of the C(S, S/2) choices of S/2 partitions is
    the in-sample set J, the rest the out-of-sample set. n* = argmax of in-sample Sharpe
    (first on ties); its out-of-sample rank is ``1 + #worse + #tied / 2`` among the C
    configurations, ``omega = rank / (C + 1)`` and ``logit = ln(omega / (1 - omega))``.
    PBO = the fraction of splits with ``logit <= 0`` (n* not above the out-of-sample
    median), as Bailey et al. and the R ``pbo`` package count it; ``median_ties`` says how
    many of those sit exactly at the median (logit 0, possible for odd C).
    With fewer than 2 configurations there is no selection, so PBO is None.
    """
    matrix = np.asarray(performance, dtype=np.float64)
    if matrix.ndim != 2:
        raise InputError("performance must be a T x C matrix", where="performance")
    n_periods, n_configs = matrix.shape
    if n_configs < 2:
        return PboResult(
            None, n_configs, n_partitions, 0, (), 0,
            reason="PBO needs at least 2 configurations: with one there is no selection "
            "to overfit, so it cannot be computed honestly",
        )  # fmt: skip
    if n_partitions < 2 or n_partitions % 2 or n_periods < 2 * n_partitions:
        raise InputError(
            f"partitions must be even, >= 2 and hold 2 periods each; got {n_partitions} "
            f"for {n_periods} periods",
            where="n_partitions",
        )
    if not np.all(np.isfinite(matrix)):
        raise InputError("performance must be finite", where="performance")
    edges = np.linspace(0, n_periods, n_partitions + 1).round().astype(np.int64)
    part_sum = np.add.reduceat(matrix, edges[:-1], axis=0)
    part_sq = np.add.reduceat(matrix**2, edges[:-1], axis=0)
    part_n = np.diff(edges).astype(np.float64)[:, None]
    combos = list(itertools.combinations(range(n_partitions), n_partitions // 2))
    in_sample = np.zeros((len(combos), n_partitions))
    for row, combo in enumerate(combos):
        in_sample[row, list(combo)] = 1.0
    out_sample = 1.0 - in_sample
    is_sharpe = _sharpe_columns(in_sample @ part_sum, in_sample @ part_sq, in_sample @ part_n)
    oos_sharpe = _sharpe_columns(out_sample @ part_sum, out_sample @ part_sq, out_sample @ part_n)
    best = np.argmax(is_sharpe, axis=1)
    chosen = oos_sharpe[np.arange(len(combos)), best][:, None]
    worse = (oos_sharpe < chosen).sum(axis=1)
    tied = (oos_sharpe == chosen).sum(axis=1) - 1
    omega = (1.0 + worse + tied / 2.0) / (n_configs + 1.0)
    logits = np.log(omega / (1.0 - omega))
    return PboResult(
        pbo=float(np.mean(logits <= 0)),
        n_configurations=n_configs,
        n_partitions=n_partitions,
        n_splits=len(combos),
        logits=tuple(float(x) for x in logits),
        median_ties=int(np.sum(logits == 0)),
    )
