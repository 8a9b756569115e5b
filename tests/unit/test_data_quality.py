"""Market-data governance: grid snapping, gap fill/drop, robust outlier flags (hand-computed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain.data_quality import (
    QualityPolicy,
    govern_candles,
    govern_funding,
    robust_z,
    timeframe_seconds,
)
from stagectl.errors import InputError

T0 = pd.Timestamp("2024-01-01T00:00:00Z")


def bars(times: list[pd.Timestamp], closes: list[float] | None = None) -> pd.DataFrame:
    closes = closes if closes is not None else [100.0 + i for i in range(len(times))]
    return pd.DataFrame(
        {
            "open": closes,
            "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes],
            "close": closes,
            "volume": [5.0] * len(times),
        },
        index=pd.DatetimeIndex(times, name="timestamp").as_unit("ns"),
    )


def minutes(*ranges: tuple[int, int]) -> list[pd.Timestamp]:
    return [T0 + pd.Timedelta(minutes=m) for start, stop in ranges for m in range(start, stop)]


def test_timeframe_seconds_reads_minutes_hours_days() -> None:
    assert timeframe_seconds("1m") == 60
    assert timeframe_seconds("5m") == 300
    assert timeframe_seconds("1h") == 3600
    assert timeframe_seconds("8h") == 28800
    assert timeframe_seconds("1d") == 86400


@pytest.mark.parametrize("bad", ["", "h", "0h", "1y", "1.5h", "-1m"])
def test_timeframe_seconds_rejects_unknown_spellings(bad: str) -> None:
    with pytest.raises(InputError):
        timeframe_seconds(bad)


def test_a_gap_shorter_than_one_hour_on_1m_bars_is_forward_filled_with_zero_volume() -> None:
    # bars 00:00-00:04 present, 00:05-00:34 missing (30 bars = 30 min), 00:35-00:39 present
    frame = bars(minutes((0, 5), (35, 40)))
    governed, report = govern_candles(frame, 60)
    assert report.filled_bars == 30
    assert report.dropped_bars == 0
    assert len(governed) == 40
    filled = governed[governed["filled"]]
    assert filled.index[0] == T0 + pd.Timedelta(minutes=5)
    assert filled.index[-1] == T0 + pd.Timedelta(minutes=34)
    # the previous close (bar 00:04 has close 104) everywhere, volume 0
    for column in ("open", "high", "low", "close"):
        assert (filled[column] == 104.0).all()
    assert (filled["volume"] == 0.0).all()
    pd.testing.assert_frame_equal(
        governed.loc[~governed["filled"], list(frame.columns)], frame, check_freq=False
    )
    assert not report.clean


def test_a_gap_of_exactly_one_hour_on_1m_bars_is_dropped_and_reported() -> None:
    # 00:00-00:09 present, 00:10-01:09 missing (60 bars = 60 min, not < 60), 01:10-01:14 present
    frame = bars(minutes((0, 10), (70, 75)))
    governed, report = govern_candles(frame, 60)
    assert report.filled_bars == 0
    assert len(governed) == 15
    (gap,) = report.dropped_gaps
    assert gap.first_missing == T0 + pd.Timedelta(minutes=10)
    assert gap.last_missing == T0 + pd.Timedelta(minutes=69)
    assert gap.missing_bars == 60
    assert report.dropped_bars == 60


def test_5m_bars_fill_eleven_missing_bars_but_drop_twelve() -> None:
    step = pd.Timedelta(minutes=5)
    times = [T0 + i * step for i in (0, 1, 13, 14, 27)]  # holes of 11 and 12 bars
    governed, report = govern_candles(bars(times), 300)
    assert [g.missing_bars for g in report.gaps] == [11, 12]
    assert [g.filled for g in report.gaps] == [True, False]
    assert report.filled_bars == 11
    assert len(governed) == 5 + 11


def test_no_gap_is_ever_filled_on_1h_bars() -> None:
    times = [T0 + pd.Timedelta(hours=h) for h in (0, 1, 3, 4)]
    governed, report = govern_candles(bars(times), 3600)
    assert report.filled_bars == 0
    assert report.dropped_bars == 1
    assert len(governed) == 4


def test_the_fill_threshold_is_configurable() -> None:
    frame = bars(minutes((0, 10), (70, 75)))
    _, report = govern_candles(frame, 60, QualityPolicy(max_fill_gap_min=61))
    assert report.filled_bars == 60


def test_robust_z_matches_the_hand_computed_median_and_mad() -> None:
    returns = np.array([0.01, -0.01, 0.02, -0.02, 0.0, 0.5])
    # median = (0 + 0.01) / 2 = 0.005; |r - median| = .005 .015 .015 .025 .005 .495 -> MAD = 0.015
    scores, mad = robust_z(returns)
    assert mad == pytest.approx(0.015)
    assert scores[5] == pytest.approx(0.495 / (1.4826 * 0.015))  # 22.258
    assert scores[2] == pytest.approx(0.015 / (1.4826 * 0.015))  # 0.6745


def test_an_outlier_return_is_flagged_and_its_bar_left_unchanged() -> None:
    log_returns = [0.01, -0.01, 0.02, -0.02, 0.0, 0.5]
    closes = list(100.0 * np.exp(np.concatenate([[0.0], np.cumsum(log_returns)])))
    times = [T0 + pd.Timedelta(hours=h) for h in range(7)]
    frame = bars(times, closes)
    governed, report = govern_candles(frame, 3600)
    (outlier,) = report.outliers
    assert outlier.timestamp == times[6]
    assert outlier.log_return == pytest.approx(0.5)
    assert outlier.robust_z == pytest.approx(22.258, abs=1e-3)
    assert governed["outlier"].tolist() == [False] * 6 + [True]
    assert governed["close"].iloc[6] == closes[6]
    assert report.mad_log_return == pytest.approx(0.015)


def test_the_outlier_threshold_is_configurable() -> None:
    log_returns = [0.01, -0.01, 0.02, -0.02, 0.0, 0.5]
    closes = list(100.0 * np.exp(np.concatenate([[0.0], np.cumsum(log_returns)])))
    times = [T0 + pd.Timedelta(hours=h) for h in range(7)]
    _, report = govern_candles(bars(times, closes), 3600, QualityPolicy(outlier_z=25.0))
    assert report.outliers == ()


def test_a_return_across_a_dropped_gap_is_not_scored() -> None:
    times = [T0 + pd.Timedelta(hours=h) for h in (0, 1, 2, 3, 4, 10)]
    closes = [100.0, 101.0, 100.0, 101.0, 100.5, 200.0]
    _, report = govern_candles(bars(times, closes), 3600)
    assert report.outliers == ()


def test_constant_prices_have_no_defined_score_and_flag_nothing() -> None:
    times = [T0 + pd.Timedelta(hours=h) for h in range(5)]
    _, report = govern_candles(bars(times, [100.0] * 5), 3600)
    assert report.outliers == ()
    assert report.mad_log_return == 0.0


def test_off_grid_timestamps_are_snapped_to_the_nearest_bar_with_a_report() -> None:
    times = [
        pd.Timestamp("2024-01-01T00:00:00.016Z"),
        pd.Timestamp("2024-01-01T01:00:00Z"),
        pd.Timestamp("2024-01-01T01:59:59Z"),
        pd.Timestamp("2024-01-01T03:00:30Z"),
    ]
    governed, report = govern_candles(bars(times), 3600)
    assert list(governed.index) == [T0 + pd.Timedelta(hours=h) for h in range(4)]
    assert report.off_grid_rows == 3
    assert report.off_grid_max_offset_s == 30.0
    assert report.snap_collisions == 0
    assert report.gaps == ()


def test_a_timestamp_exactly_half_a_bar_off_the_grid_is_refused_as_ambiguous() -> None:
    times = [T0, T0 + pd.Timedelta(minutes=90)]
    with pytest.raises(InputError, match="exactly half a bar") as raised:
        govern_candles(bars(times), 3600, source="f.csv")
    assert raised.value.where == "f.csv"
    assert "2024-01-01T01:30:00" in raised.value.message


def test_two_different_rows_snapping_onto_one_bar_are_refused_as_ambiguous() -> None:
    times = [T0, T0 + pd.Timedelta(minutes=20)]
    with pytest.raises(InputError, match="different values snap onto the bar 2024-01-01T00"):
        govern_candles(bars(times, [10.0, 11.0]), 3600)


def test_identical_rows_snapping_onto_one_bar_are_kept_once_and_counted() -> None:
    times = [T0, T0 + pd.Timedelta(seconds=2), T0 + pd.Timedelta(hours=1)]
    governed, report = govern_candles(bars(times, [10.0, 10.0, 12.0]), 3600)
    assert list(governed.index) == [T0, T0 + pd.Timedelta(hours=1)]
    assert report.snap_collisions == 1
    assert report.off_grid_rows == 1


def test_an_outlier_return_is_clipped_to_the_threshold_and_reported() -> None:
    closes = [100.0 + 0.1 * ((i * 7) % 5) for i in range(40)]
    closes[20] = closes[19] * 1.5
    closes[21:] = [c * 1.5 for c in closes[21:]]
    frame = bars([T0 + pd.Timedelta(hours=h) for h in range(40)], closes)
    governed, report = govern_candles(frame, 3600, QualityPolicy(outlier_z=10.0))
    (outlier,) = [o for o in report.outliers if o.timestamp == T0 + pd.Timedelta(hours=20)]
    assert outlier.log_return == pytest.approx(math.log(1.5))
    returns = governed["log_return"].to_numpy()
    finite = np.log(np.asarray(closes[1:]) / np.asarray(closes[:-1]))
    median = float(np.median(finite))
    mad = float(np.median(np.abs(finite - median)))
    edge = median + 10.0 * 1.4826 * mad
    assert outlier.clipped_to == pytest.approx(edge)
    assert returns[20] == pytest.approx(edge)
    assert governed["close"].iloc[20] == closes[20]  # prices are never changed
    assert report.to_dict()["clipped"] == len(report.outliers)


def test_clipping_can_be_turned_off_and_the_flag_stays() -> None:
    closes = [100.0 + 0.1 * ((i * 7) % 5) for i in range(40)]
    closes[20] = closes[19] * 1.5
    frame = bars([T0 + pd.Timedelta(hours=h) for h in range(40)], closes)
    governed, report = govern_candles(frame, 3600, QualityPolicy(clip_outliers=False))
    assert governed["outlier"].iloc[20]
    assert governed["log_return"].iloc[20] == pytest.approx(math.log(closes[20] / closes[19]))
    assert all(o.clipped_to is None for o in report.outliers)


def test_clean_bars_give_a_clean_report() -> None:
    frame = bars(minutes((0, 30)))
    governed, report = govern_candles(frame, 60)
    assert report.clean
    assert report.rows_in == report.rows_out == 30
    assert not governed["filled"].any()


def test_funding_gaps_are_reported_and_never_filled() -> None:
    times = [T0 + pd.Timedelta(hours=8 * k) for k in (0, 1, 4)]
    series = pd.Series([1e-4, 2e-4, 3e-4], index=pd.DatetimeIndex(times), name="funding_rate")
    governed, report = govern_funding(series)
    assert len(governed) == 3
    (gap,) = report.gaps
    assert gap.missing_bars == 2
    assert gap.first_missing == T0 + pd.Timedelta(hours=16)
    assert gap.last_missing == T0 + pd.Timedelta(hours=24)
    assert not gap.filled


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=400), min_size=2, max_size=120))
def test_governance_keeps_every_original_bar_and_only_adds_filled_ones(
    present: set[int],
) -> None:
    times = [T0 + pd.Timedelta(minutes=m) for m in sorted(present)]
    frame = bars(times)
    governed, report = govern_candles(frame, 60)
    assert report.rows_out == report.rows_in + report.filled_bars
    original = governed.loc[~governed["filled"], list(frame.columns)]
    pd.testing.assert_frame_equal(original, frame, check_freq=False)
    span = sorted(present)[-1] - sorted(present)[0] + 1
    assert report.rows_in + report.filled_bars + report.dropped_bars == span
    assert governed.index.is_monotonic_increasing and governed.index.is_unique
    assert all(math.isfinite(v) for v in governed["close"])
