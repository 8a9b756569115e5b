"""The circuit breakers bar by bar (domain.breaker_state) equal apply_breakers exactly."""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagectl.domain.breaker_state import BreakerTracker, replay_breakers
from stagectl.domain.breakers import (
    DAILY_DRAWDOWN,
    LOSS_STREAK,
    VOLATILITY,
    BreakerResult,
    BreakerSettings,
    Firing,
    apply_breakers,
)
from stagectl.errors import InputError

START = pd.Timestamp("2024-03-01 18:00", tz="UTC")
SPECIALS = [math.nan, math.inf, -math.inf, -1.0]
"""A missing bar, overflowing returns, a total loss."""


def hourly(values: list[float], start: str = "2024-03-01 00:00") -> pd.Series:
    index = pd.date_range(start, periods=len(values), freq="h", tz="UTC")
    return pd.Series(values, index=index, dtype=float)


def index_of(series: pd.Series) -> list[pd.Timestamp]:
    return list(pd.DatetimeIndex(series.index))


def assert_same(expected: BreakerResult, got: BreakerResult) -> None:
    pd.testing.assert_series_equal(got.multiplier, expected.multiplier, check_exact=True)
    pd.testing.assert_frame_equal(got.components, expected.components, check_exact=True)
    assert got.firings == expected.firings


@st.composite
def breaker_settings(draw: st.DrawFn) -> BreakerSettings:
    """Small windows so the volatility breaker warms up and fires within a short series."""
    return BreakerSettings(
        daily_drawdown_stop_pct=draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])),
        daily_reset_utc=f"{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from([0, 30])):02d}",
        streak_losses=draw(st.integers(1, 4)),
        streak_size_multiplier=draw(st.sampled_from([0.25, 0.5, 1.0])),
        volatility_percentile=draw(
            st.one_of(st.sampled_from([0.0, 50.0, 95.0, 100.0]), st.floats(0.0, 100.0))
        ),
        volatility_window_bars=draw(st.integers(2, 6)),
        volatility_lookback_bars=draw(st.integers(1, 15)),
        defense_multiplier=draw(st.sampled_from([0.0, 0.5])),
    )


@st.composite
def bar_returns(draw: st.DrawFn, size: int) -> list[float]:
    """Mostly small returns, some repeated (ties in vols and percentiles), a few specials."""
    values = draw(
        st.lists(
            st.one_of(
                st.floats(-0.06, 0.06),
                st.sampled_from([0.0, 0.01, -0.01, -0.025]),
            ),
            min_size=size,
            max_size=size,
        )
    )
    if size:
        for position, special in draw(
            st.lists(st.tuples(st.integers(0, size - 1), st.sampled_from(SPECIALS)), max_size=3)
        ):
            values[position] = special
    return values


@st.composite
def runs(draw: st.DrawFn) -> tuple[pd.Series, pd.Series, BreakerSettings]:
    """Bars 15 min to 10 h apart (several trading days), trades closing anywhere from
    before the first bar to after the last, many on a bar's stamp or at the same time."""
    size = draw(st.integers(0, 120))
    gaps = draw(st.lists(st.sampled_from([15, 60, 60, 60, 180, 600]), min_size=size, max_size=size))
    index = pd.DatetimeIndex(START + pd.to_timedelta(np.cumsum(gaps, dtype=np.int64), unit="min"))
    returns = pd.Series(draw(bar_returns(size)), index=index, dtype=float)
    span_min = int(sum(gaps)) + 600
    on_bars = st.integers(0, size - 1).map(lambda k: index[k]) if size else st.nothing()
    anywhere = st.integers(-600, span_min).map(lambda m: START + pd.Timedelta(minutes=m))
    closes = sorted(draw(st.lists(st.one_of(on_bars, anywhere), max_size=60)))
    pnls = draw(
        st.lists(
            st.one_of(st.sampled_from([-1.0, -1.0, 0.0, 2.0]), st.floats(-5, 5), st.just(math.nan)),
            min_size=len(closes),
            max_size=len(closes),
        )
    )
    trades = pd.Series(pnls, index=pd.DatetimeIndex(closes, tz="UTC"), dtype=float)
    return returns, trades, draw(breaker_settings())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_bar_by_bar_equals_apply_breakers_at_every_bar_and_firing(
    run: tuple[pd.Series, pd.Series, BreakerSettings],
) -> None:
    returns, trades, breaker_settings = run
    expected = apply_breakers(returns, trade_pnl=trades, settings=breaker_settings)
    assert_same(expected, replay_breakers(returns, trade_pnl=trades, settings=breaker_settings))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs(), st.data())
def test_each_bar_gets_the_last_multiplier_of_apply_breakers_on_the_history_so_far(
    run: tuple[pd.Series, pd.Series, BreakerSettings], data: st.DataObject
) -> None:
    # the live loop's old way: apply_breakers over the history known at bar k, last value
    returns, trades, breaker_settings = run
    if returns.empty:
        return
    cuts = set(data.draw(st.lists(st.integers(0, len(returns) - 1), min_size=1, max_size=4)))
    tracker = BreakerTracker(breaker_settings)
    firings: list[Firing] = []
    fed = 0
    for k, (stamp, bar_return) in enumerate(zip(index_of(returns), returns.tolist(), strict=True)):
        while fed < len(trades) and trades.index[fed] < stamp:
            firings += [f for f in [tracker.close_trade(trades.index[fed], trades.iloc[fed])] if f]
            fed += 1
        bar = tracker.add_bar(stamp, bar_return)
        firings += bar.firings
        if k in cuts:
            known = apply_breakers(
                returns.iloc[: k + 1], trade_pnl=trades.iloc[:fed], settings=breaker_settings
            )
            assert bar.multiplier == known.multiplier.iloc[-1]
            assert sorted(firings, key=lambda f: (f.time, f.breaker)) == known.firings


def test_a_trade_closing_on_a_bar_stamp_acts_from_the_next_bar() -> None:
    tracker = BreakerTracker(BreakerSettings(volatility_lookback_bars=1000))
    stamp = pd.Timestamp("2024-03-01 01:00", tz="UTC")
    at_close = tracker.add_bar(stamp, 0.0)
    fired = [tracker.close_trade(stamp, pnl) for pnl in (-1.0, -1.0, -1.0)]
    after = tracker.add_bar(stamp + pd.Timedelta(hours=1), 0.0)
    assert (at_close.loss_streak, after.loss_streak, after.multiplier) == (1.0, 0.5, 0.5)
    assert [f and (f.time, f.breaker, f.value) for f in fired] == [
        None,
        None,
        (stamp, LOSS_STREAK, 3.0),
    ]


def test_a_win_at_the_same_close_time_resets_the_streak_it_follows() -> None:
    closes = pd.DatetimeIndex(["2024-03-01 00:30"] * 4, tz="UTC")
    trades = pd.Series([-1.0, -1.0, -1.0, 2.0], index=closes)
    returns = hourly([0.0, 0.0])
    result = replay_breakers(returns, trade_pnl=trades)
    assert result.components[LOSS_STREAK].tolist() == [1.0, 1.0]
    assert [(f.time, f.breaker) for f in result.firings] == [(closes[0], LOSS_STREAK)]
    assert_same(apply_breakers(returns, trade_pnl=trades), result)


def test_the_daily_stop_resets_at_the_reset_time_not_at_midnight() -> None:
    # reset 07:30: 06:00 and 07:00 belong to the day that began at 07:30 the day before
    stamps = pd.DatetimeIndex(["2024-03-02 06:00", "2024-03-02 07:00", "2024-03-02 07:30"])
    returns = pd.Series([-0.04, 0.01, 0.01], index=stamps.tz_localize("UTC"))
    breaker_settings = BreakerSettings(daily_reset_utc="07:30", volatility_lookback_bars=1000)
    result = replay_breakers(returns, settings=breaker_settings)
    assert result.components[DAILY_DRAWDOWN].tolist() == [1.0, 0.0, 1.0]
    (firing,) = result.firings
    assert (firing.time, firing.breaker) == (returns.index[0], DAILY_DRAWDOWN)
    assert firing.value == pytest.approx(-0.04)
    assert_same(apply_breakers(returns, settings=breaker_settings), result)


def test_the_volatility_defense_waits_for_a_full_lookback_of_realized_vols() -> None:
    # window 2, lookback 3: vol[t] exists from bar 1, a threshold from bar 1 + 3 = 4, so
    # the spike at bar 3 cannot fire; bar 4's vol (std of 0.05, -0.05) beats all three
    returns = hourly([0.001, -0.001, 0.001, 0.05, -0.05, 0.0])
    breaker_settings = BreakerSettings(volatility_window_bars=2, volatility_lookback_bars=3)
    result = replay_breakers(returns, settings=breaker_settings)
    assert result.components[VOLATILITY].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5]
    (firing,) = result.firings
    assert (firing.time, firing.breaker) == (returns.index[4], VOLATILITY)
    assert firing.value == pytest.approx(np.std([0.05, -0.05], ddof=1))
    assert_same(apply_breakers(returns, settings=breaker_settings), result)


def test_a_missing_return_blanks_the_volatility_window_but_not_the_day() -> None:
    # NaN at bar 1: the day's growth skips it (-2 % then -2 % = -3.96 %: stop at bar 2);
    # no realized vol while the NaN is in the 2-bar window, so no threshold at bar 3
    returns = hourly([-0.02, math.nan, -0.02, 0.5, 0.0])
    breaker_settings = BreakerSettings(volatility_window_bars=2, volatility_lookback_bars=1)
    result = replay_breakers(returns, settings=breaker_settings)
    assert result.components[DAILY_DRAWDOWN].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert [f.breaker for f in result.firings] == [DAILY_DRAWDOWN]
    assert result.firings[0].value == pytest.approx(0.98 * 0.98 - 1)
    assert_same(apply_breakers(returns, settings=breaker_settings), result)


@pytest.mark.parametrize(
    ("feed", "where"),
    [
        ([("bar", "01:00"), ("bar", "01:00")], "returns"),
        ([("bar", "02:00"), ("bar", "01:00")], "returns"),
        ([("trade", "01:00"), ("bar", "01:00")], "returns"),
        ([("bar", "02:00"), ("trade", "01:00")], "trade_pnl"),
        ([("trade", "02:00"), ("trade", "01:00")], "trade_pnl"),
    ],
)
def test_feeding_out_of_time_order_is_refused(feed: list[tuple[str, str]], where: str) -> None:
    tracker = BreakerTracker()
    *before, (kind, last) = [(k, pd.Timestamp(f"2024-03-01 {t}", tz="UTC")) for k, t in feed]
    for earlier_kind, stamp in before:
        _feed(tracker, earlier_kind, stamp)
    with pytest.raises(InputError) as raised:
        _feed(tracker, kind, last)
    assert raised.value.where == where


def _feed(tracker: BreakerTracker, kind: str, stamp: pd.Timestamp) -> Any:
    return tracker.add_bar(stamp, 0.0) if kind == "bar" else tracker.close_trade(stamp, -1.0)


def test_memory_stays_flat_as_the_run_grows() -> None:
    breaker_settings = BreakerSettings(volatility_window_bars=24, volatility_lookback_bars=720)
    tracker = BreakerTracker(breaker_settings)
    rng = np.random.default_rng(5)
    stamps = pd.date_range("2024-01-01", periods=12_000, freq="h", tz="UTC")
    returns = (rng.standard_t(3, len(stamps)) * 0.004).tolist()

    def feed(lo: int, hi: int) -> None:
        for k in range(lo, hi):
            tracker.add_bar(stamps[k], returns[k])
            if k % 7 == 0:
                tracker.close_trade(stamps[k], returns[k])

    tracemalloc.start()
    try:
        feed(0, 2_000)
        warm, _ = tracemalloc.get_traced_memory()
        feed(2_000, 12_000)
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert grown - warm < 16_000  # bytes: 10 000 more bars keep nothing
