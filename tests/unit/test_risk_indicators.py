"""The twelve risk indicators on small hand-computed series, and against the pandas
definition they replaced on generated runs, whole and range by range."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain import risk_indicators, window_sums
from stagectl.domain.risk_indicators import (
    GuardArrays,
    GuardInputs,
    IndicatorTape,
    compute_indicators,
    drawdown_pct,
    value_days_ago,
)
from tests.replay_reference import compute_indicators as pandas_indicators

SLEEVES = ("ETHUSDT", "SOLUSDT")


def make_inputs(equity: list[float] | np.ndarray, **overrides: Any) -> GuardInputs:
    n = len(equity)
    index = pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC")
    zeros = pd.DataFrame(0.0, index=index, columns=list(SLEEVES))
    nothing = pd.Series(0.0, index=index)
    fields: dict[str, Any] = {
        "equity": pd.Series(equity, index=index, dtype=float),
        "sleeve_pnl": zeros,
        "sleeve_equity": pd.DataFrame(100.0, index=index, columns=list(SLEEVES)),
        "position_state": zeros,
        "turnover": nothing,
        "trades": zeros,
        "funding_paid": nothing,
        "slippage_bps_sum": nothing,
        "slippage_fills": nothing,
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            value = pd.DataFrame(value, index=index)
        elif isinstance(value, list | np.ndarray):
            value = pd.Series(value, index=index, dtype=float)
        fields[key] = value
    return GuardInputs(**fields)


def test_daily_pnl_compares_with_the_equity_24_hours_earlier() -> None:
    equity = [100.0] * 24 + [106.0]
    frame = compute_indicators(make_inputs(equity)).portfolio
    assert math.isnan(frame["daily_pnl_pct"].iloc[23])
    assert frame["daily_pnl_pct"].iloc[24] == pytest.approx(6.0)


def test_rolling_sharpe_is_sqrt_8760_mean_over_std_of_480_hourly_returns() -> None:
    returns = np.tile([0.001, -0.0005, 0.0002], 170)[:500]
    equity = 100.0 * np.cumprod(np.concatenate(([1.0], 1.0 + returns)))
    frame = compute_indicators(make_inputs(equity)).portfolio
    last = returns[-480:]
    expected = math.sqrt(8760) * last.mean() / last.std(ddof=1)
    assert frame["rolling_sharpe_20d"].iloc[-1] == pytest.approx(expected)
    assert math.isnan(frame["rolling_sharpe_20d"].iloc[479])


def test_running_mdd_is_peak_minus_equity_over_peak() -> None:
    frame = compute_indicators(make_inputs([100.0, 110.0, 99.0, 105.0])).portfolio
    assert frame["running_mdd_pct"].tolist() == pytest.approx([0.0, 0.0, 10.0, 100 * 5 / 110])


def test_return_30d_uses_the_last_equity_at_or_before_30_days_ago() -> None:
    equity = np.full(30 * 24 + 1, 100.0)
    equity[-1] = 88.0
    frame = compute_indicators(make_inputs(equity)).portfolio
    assert frame["return_30d_pct"].iloc[-1] == pytest.approx(-12.0)
    assert math.isnan(frame["return_30d_pct"].iloc[-2])


def test_daily_turnover_sums_the_traded_notional_over_equity_of_the_last_24_hours() -> None:
    # 540 and 460 USD traded at 1h on 10,000 USD, 100 USD at 3h, 250 USD at 25h
    turnover = [0.0] * 26
    turnover[1], turnover[3], turnover[25] = 0.1, 0.01, 0.025
    frame = compute_indicators(make_inputs([10_000.0] * 26, turnover=turnover)).portfolio
    values = frame["daily_turnover_pct"]
    assert values.iloc[0] == 0.0
    assert values.iloc[3] == pytest.approx(11.0)
    assert values.iloc[24] == pytest.approx(11.0)  # window (0h, 24h]
    assert values.iloc[25] == pytest.approx(3.5)  # window (1h, 25h]: 1 % + 2.5 %


def test_realized_slippage_averages_the_fills_of_the_last_24_hours() -> None:
    total, fills = [0.0] * 30, [0.0] * 30
    total[2], total[3], total[27] = 4.0, 6.0, 1.0
    fills[2], fills[3], fills[27] = 1.0, 1.0, 1.0
    inputs = make_inputs([100.0] * 30, slippage_bps_sum=total, slippage_fills=fills)
    values = compute_indicators(inputs).portfolio["realized_slippage_bps"]
    assert math.isnan(values.iloc[1])
    assert values.iloc[3] == pytest.approx(5.0)
    assert values.iloc[26] == pytest.approx(6.0)  # window (2h, 26h]: the fill at 3 only
    assert values.iloc[27] == pytest.approx(1.0)  # window (3h, 27h]: the fill at 27 only


def test_realized_slippage_weighs_each_fill_the_same_whatever_its_bar() -> None:
    # three fills of 1, 2 and 3 bps at 2h, one of 10 bps at 5h: (1 + 2 + 3 + 10) / 4,
    # where a mean of the bars' means would give (2 + 10) / 2 = 6
    total, fills = [0.0] * 6, [0.0] * 6
    total[2], fills[2] = 6.0, 3.0
    total[5], fills[5] = 10.0, 1.0
    inputs = make_inputs([100.0] * 6, slippage_bps_sum=total, slippage_fills=fills)
    values = compute_indicators(inputs).portfolio["realized_slippage_bps"]
    assert values.iloc[4] == pytest.approx(2.0)
    assert values.iloc[5] == pytest.approx(4.0)


def test_funding_drag_is_a_day_of_funding_over_equity_in_bps() -> None:
    funding = [0.0] * 30
    funding[0], funding[8], funding[16], funding[24] = 1.0, 1.0, 1.0, 1.0
    frame = compute_indicators(make_inputs([10_000.0] * 30, funding_paid=funding)).portfolio
    assert frame["funding_drag_bps_per_day"].iloc[23] == pytest.approx(3.0)
    assert frame["funding_drag_bps_per_day"].iloc[24] == pytest.approx(3.0)  # 0h left the window


def test_signal_mismatch_is_passed_through_and_unknown_is_nan() -> None:
    inputs = make_inputs([100.0] * 3, signal_mismatch_pct=[1.0, 6.0, np.nan])
    assert compute_indicators(inputs).portfolio["signal_mismatch_pct"].tolist()[:2] == [1.0, 6.0]
    unknown = compute_indicators(make_inputs([100.0] * 3)).portfolio["signal_mismatch_pct"]
    assert unknown.isna().all()


def test_sleeve_mdd_contribution_and_state() -> None:
    n = 30 * 24 + 2
    sleeve_equity = {"ETHUSDT": np.full(n, 54.0), "SOLUSDT": np.full(n, 46.0)}
    sleeve_equity["SOLUSDT"][-1] = 36.8  # 20 % below its peak
    pnl = {"ETHUSDT": np.zeros(n), "SOLUSDT": np.zeros(n)}
    pnl["SOLUSDT"][-1] = -9.2
    flips = np.zeros(n)
    flips[-8:] = [1, -1, 1, -1, 1, -1, 1, 0]
    inputs = make_inputs(
        np.full(n, 100.0),
        sleeve_equity=sleeve_equity,
        sleeve_pnl=pnl,
        position_state={"ETHUSDT": flips, "SOLUSDT": np.full(n, 2.0)},
    )
    frames = compute_indicators(inputs).sleeves
    assert frames["SOLUSDT"]["sleeve_mdd_pct"].iloc[-1] == pytest.approx(20.0)
    assert frames["SOLUSDT"]["sleeve_contribution_30d_pct"].iloc[-1] == pytest.approx(-9.2)
    assert frames["SOLUSDT"]["position_state"].iloc[-1] == 2.0


def test_trades_24h_counts_the_sleeves_trades_of_the_last_24_hours() -> None:
    trades = np.zeros(30)
    trades[[2, 10, 11, 29]] = [2.0, 1.0, 1.0, 1.0]  # two orders filled at 2h
    inputs = make_inputs(np.full(30, 100.0), trades={"ETHUSDT": trades, "SOLUSDT": np.zeros(30)})
    frames = compute_indicators(inputs).sleeves
    assert frames["ETHUSDT"]["trades_24h"].iloc[25] == 4.0  # window (1h, 25h]
    assert frames["ETHUSDT"]["trades_24h"].iloc[26] == 2.0  # 2h left the window
    assert frames["ETHUSDT"]["trades_24h"].iloc[29] == 3.0
    assert (frames["SOLUSDT"]["trades_24h"] == 0.0).all()


def test_the_30_day_indicators_are_defined_30_days_after_the_first_point() -> None:
    # the first point is the run's initial equity at its first bar's open
    n = 30 * 24 + 1
    equity = np.full(n, 10_000.0)
    equity[-1] = 10_300.0
    sleeve_equity = {"ETHUSDT": np.full(n, 5_400.0), "SOLUSDT": np.full(n, 4_600.0)}
    sleeve_equity["ETHUSDT"][-1] = 5_700.0
    inputs = make_inputs(
        equity,
        sleeve_equity=sleeve_equity,
        sleeve_pnl={s: np.diff(v, prepend=np.nan) for s, v in sleeve_equity.items()},
    )
    frames = compute_indicators(inputs)
    assert frames.portfolio["return_30d_pct"].iloc[-1] == pytest.approx(3.0)
    assert math.isnan(frames.portfolio["return_30d_pct"].iloc[-2])
    contribution = frames.sleeves["ETHUSDT"]["sleeve_contribution_30d_pct"]
    assert contribution.iloc[-1] == pytest.approx(300.0 / 10_000.0 * 100.0)
    assert frames.sleeves["SOLUSDT"]["sleeve_contribution_30d_pct"].iloc[-1] == 0.0


def test_a_restart_starts_a_new_epoch_for_every_indicator() -> None:
    equity = [100.0, 80.0, 80.0, 90.0]
    index = pd.date_range("2025-01-01", periods=4, freq="h", tz="UTC")
    inputs = make_inputs(equity, drawdown_resets=(index[2],))
    mdd = compute_indicators(inputs).portfolio["running_mdd_pct"]
    assert mdd.tolist() == pytest.approx([0.0, 20.0, 0.0, 0.0])


def test_a_sleeve_reset_restarts_only_that_sleeves_drawdown() -> None:
    index = pd.date_range("2025-01-01", periods=4, freq="h", tz="UTC")
    series = pd.Series([100.0, 80.0, 80.0, 76.0], index=index)
    assert drawdown_pct(series, (index[2],)).tolist() == pytest.approx([0.0, 20.0, 0.0, 5.0])
    assert drawdown_pct(series).tolist() == pytest.approx([0.0, 20.0, 20.0, 24.0])


def test_value_days_ago_is_nan_before_the_start() -> None:
    index = pd.date_range("2025-01-01", periods=3, freq="D", tz="UTC")
    series = pd.Series([1.0, 2.0, 3.0], index=index)
    result = value_days_ago(series, 1)
    assert math.isnan(result[0])
    assert result[1:].tolist() == [1.0, 2.0]


def random_inputs(seed: int, hours: int, **extra: Any) -> GuardInputs:
    """An hourly run: noisy equity with flat stretches (a flattened book) and ties at the
    peak, sleeve equities with missing values, sparse flows."""
    rng = np.random.default_rng(seed)
    equity = 10_000.0 * np.cumprod(1.0 + rng.normal(0.0002, 0.004, hours))
    for _ in range(int(rng.integers(0, 3))):
        start = int(rng.integers(0, hours))
        equity[start : start + int(rng.integers(1, 700))] = equity[start]
    sleeve_equity = 100.0 * np.cumprod(1.0 + rng.normal(0.0, 0.006, (hours, 2)), axis=0)
    sleeve_equity[rng.random((hours, 2)) < 0.03] = np.nan
    traded = rng.random(hours) < 0.2

    def sparse(values: np.ndarray) -> list[float]:
        return [float(v) for v in np.where(traded, values, 0.0)]

    return make_inputs(
        equity,
        sleeve_equity={s: sleeve_equity[:, j] for j, s in enumerate(SLEEVES)},
        sleeve_pnl={s: np.diff(sleeve_equity[:, j], prepend=np.nan) for j, s in enumerate(SLEEVES)},
        position_state={s: rng.choice([-1.0, 0.0, 1.0], hours) for s in SLEEVES},
        turnover=sparse(rng.random(hours) * 0.1),
        trades={s: np.where(traded, rng.integers(0, 2, hours), 0).astype(float) for s in SLEEVES},
        funding_paid=[
            float(v) for v in np.where(rng.random(hours) < 0.1, rng.normal(0.5, 2, hours), 0)
        ],
        slippage_bps_sum=sparse(rng.normal(2.0, 3.0, hours)),
        slippage_fills=sparse(rng.integers(1, 4, hours).astype(float)),
        **extra,
    )


def resets_of(inputs: GuardInputs, fractions: list[float]) -> tuple[pd.Timestamp, ...]:
    index = inputs.equity.index
    return tuple(sorted({index[int(f * (len(index) - 1))] for f in fractions}))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    hours=st.integers(1, 1600),
    restarts=st.lists(st.floats(0.0, 1.0), max_size=3),
    reenables=st.lists(st.floats(0.0, 1.0), max_size=3),
)
def test_the_indicators_equal_pandas_rolling_windows(
    seed: int, hours: int, restarts: list[float], reenables: list[float]
) -> None:
    """compute_indicators (running sums, pandas' Sharpe) against the pandas definition it
    replaced (tests/replay_reference.py): to 1e-9, NaN where it is NaN."""
    plain = random_inputs(seed, hours)
    inputs = replace(
        plain,
        drawdown_resets=resets_of(plain, restarts),
        sleeve_resets={"SOLUSDT": resets_of(plain, reenables)},
    )
    ours, theirs = compute_indicators(inputs), pandas_indicators(inputs)
    for sleeve in (None, *SLEEVES):
        frame = theirs.portfolio if sleeve is None else theirs.sleeves[sleeve]
        for name in frame.columns:
            expected = frame[name].to_numpy()
            got = ours.series(name, sleeve).to_numpy()
            assert np.array_equal(np.isnan(got), np.isnan(expected)), (name, sleeve)
            assert np.allclose(got, expected, rtol=0, atol=1e-9, equal_nan=True), (name, sleeve)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    hours=st.integers(1, 1600),
    epochs=st.lists(st.floats(0.0, 1.0), max_size=3),
    reenables=st.lists(st.floats(0.0, 1.0), max_size=3),
    cuts=st.lists(st.floats(0.0, 1.0), max_size=8),
)
def test_indicators_computed_range_by_range_equal_one_pass_to_the_last_bit(
    seed: int, hours: int, epochs: list[float], reenables: list[float], cuts: list[float]
) -> None:
    """What --replay does: the ranges of an epoch, each carrying in the bars before it."""
    inputs = GuardArrays.of(random_inputs(seed, hours))
    times = pd.date_range("2025-01-01", periods=hours, freq="h", tz="UTC").as_unit("ns").asi8
    starts = sorted({0, *(int(f * hours) for f in epochs)})
    resets = {"SOLUSDT": sorted({int(f * hours) for f in reenables})}
    bounds = sorted({*starts, hours, *(int(c * hours) for c in cuts)})
    whole, ranged = IndicatorTape(times, SLEEVES), IndicatorTape(times, SLEEVES)
    for start, end in itertools.pairwise([*starts, hours]):
        whole.compute(inputs, start, end, epoch=start, sleeve_resets=resets)
    for start, end in itertools.pairwise(bounds):
        epoch = max(e for e in starts if e <= start)
        ranged.compute(inputs, start, end, epoch=epoch, sleeve_resets=resets)
    assert np.array_equal(ranged.values, whole.values, equal_nan=True)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    hours=st.integers(1, 1600),
    block=st.integers(1, 300),
    epochs=st.lists(st.floats(0.0, 1.0), max_size=3),
)
def test_indicators_computed_block_by_block_equal_one_block_to_the_last_bit(
    seed: int, hours: int, block: int, epochs: list[float]
) -> None:
    """A range is computed in cache-sized blocks (minute bars: temporaries reused rather
    than hundreds of MB of fresh ones): the doubles of one block over the range."""
    inputs = GuardArrays.of(random_inputs(seed, hours))
    times = pd.date_range("2025-01-01", periods=hours, freq="h", tz="UTC").as_unit("ns").asi8
    starts = sorted({0, *(int(f * hours) for f in epochs)})
    resets = {"ETHUSDT": [hours // 3]}
    whole, blocks = IndicatorTape(times, SLEEVES), IndicatorTape(times, SLEEVES)
    for start, end in itertools.pairwise([*starts, hours]):
        whole.compute(inputs, start, end, epoch=start, sleeve_resets=resets)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(risk_indicators, "BLOCK", block)
        patch.setattr(window_sums, "BLOCK", block)
        for start, end in itertools.pairwise([*starts, hours]):
            blocks.compute(inputs, start, end, epoch=start, sleeve_resets=resets)
    assert np.array_equal(blocks.values, whole.values, equal_nan=True)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hours=st.integers(1, 1600))
def test_the_sharpe_from_running_sums_equals_the_pandas_one(seed: int, hours: int) -> None:
    """The tape's Sharpe (the replay's) against compute_indicators' (pandas' kernels)."""
    plain = random_inputs(seed, hours)
    tape = IndicatorTape(pd.DatetimeIndex(plain.equity.index).as_unit("ns").asi8, SLEEVES)
    tape.compute(GuardArrays.of(plain), 0, hours, epoch=0)
    pandas = compute_indicators(plain).portfolio["rolling_sharpe_20d"].to_numpy()
    sums = tape.series("rolling_sharpe_20d", None)
    assert np.array_equal(np.isnan(sums), np.isnan(pandas))
    assert np.allclose(sums, pandas, rtol=0, atol=1e-9, equal_nan=True)
