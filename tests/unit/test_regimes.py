"""Regime buckets, seed 001 hard gates, volatility threshold switches and bucket statistics."""

from __future__ import annotations

import math
from datetime import time

import numpy as np
import pandas as pd
import pytest

from stagectl.domain.regimes import (
    REGIME_LABELS,
    RegimeRules,
    bucket_stats,
    classify_regimes,
    inventory_correlation,
    regime_codes,
    regime_inputs,
    session_bucket,
    threshold_events,
    threshold_states,
    trend_bucket,
    volatility_bucket,
)
from tests.conftest import SHARED_DATA


def test_trend_bucket_uses_strict_point_one_percent_bounds() -> None:
    got = trend_bucket([0.0011, 0.001, -0.001, -0.0011, float("nan")])
    assert got.tolist() == ["up", "flat", "flat", "down", "flat"]


def test_volatility_bucket_low_at_threshold_and_percentile_split_of_the_rest() -> None:
    sigmas = [0.0005, 0.0006, 0.0007, 0.0008, 0.0009, 0.0010, float("nan")]
    got = volatility_bucket(sigmas, low_max=0.0006, high_percentile=50)
    # rest = 0.0007..0.0010, median 0.00085
    assert got.tolist() == ["low", "low", "mid", "mid", "high", "high", "unknown"]


def test_session_bucket_ny_hours_and_wrap_past_midnight() -> None:
    idx = pd.to_datetime(
        ["2025-11-12 13:29", "2025-11-12 13:30", "2025-11-12 19:59", "2025-11-12 20:00"], utc=True
    )
    assert session_bucket(idx).tolist() == ["overnight", "ny", "ny", "overnight"]
    wrapped = session_bucket(idx, ny_start_utc=time(20, 0), ny_end_utc=time(13, 30))
    assert wrapped.tolist() == ["ny", "overnight", "overnight", "ny"]


def test_regime_rules_and_precedence() -> None:
    adx = [30, 15, 30, 30, 15, 22, 15, np.nan]
    vol = [2, 2, 6, 6, 5, 2, 0.5, 2]
    ret = [0.01, 0, -0.02, -0.02, 0, 0, 0, 0]
    volume_ratio = [1, 1, 2, 1, 0.2, 1, 1, 1]
    spread = [5, 5, 5, 5, 5, 60, 5, 5]
    got = classify_regimes(adx, vol, ret, volume_ratio, spread)
    assert got.tolist() == [
        "TREND",  # ADX 30
        "RANGE",  # ADX 15, vol 2 %
        "PANIC",  # vol 6 %, falling, 2x volume: beats TREND
        "TREND",  # vol 6 %, falling, but normal volume
        "ILLIQUID",  # volume 20 % of median
        "ILLIQUID",  # spread 60 bps
        "NEUTRAL",  # ADX 15 but vol below 1 %
        "NEUTRAL",  # warm-up
    ]


def _first_match_by_select(
    adx: np.ndarray, vol: np.ndarray, ret: np.ndarray, ratio: np.ndarray, spread: np.ndarray
) -> np.ndarray:
    """The gates as np.select over the labels (the implementation before the codes)."""
    rules = RegimeRules()
    with np.errstate(invalid="ignore"):
        conditions = [
            (ratio < rules.illiquid_volume_ratio_max_pct / 100.0)
            | (spread > rules.illiquid_spread_min_bps),
            (vol > rules.panic_vol_min_pct) & (ret < 0) & (ratio >= rules.panic_volume_ratio_min),
            adx > rules.trend_adx_min,
            (adx < rules.range_adx_max)
            & (vol >= rules.range_vol_min_pct)
            & (vol <= rules.range_vol_max_pct),
        ]
    return np.select(conditions, ["ILLIQUID", "PANIC", "TREND", "RANGE"], "NEUTRAL")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_regime_codes_index_the_labels_of_the_first_matching_gate(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5000
    adx = rng.uniform(10, 35, n)
    vol = rng.uniform(0, 8, n)
    ret = rng.normal(0, 0.01, n)
    ratio = rng.uniform(0, 3, n)
    spread = rng.uniform(0, 80, n)
    for values in (adx, vol, ret, ratio, spread):
        values[rng.random(n) < 0.05] = np.nan
    # values on the thresholds themselves
    adx[:50], vol[50:100], ratio[100:150] = 25.0, 4.0, 1.5
    codes = regime_codes(adx, vol, ret, ratio, spread)
    labels = np.asarray(REGIME_LABELS)[codes]
    assert labels.tolist() == _first_match_by_select(adx, vol, ret, ratio, spread).tolist()
    assert classify_regimes(adx, vol, ret, ratio, spread).tolist() == labels.tolist()
    no_spread = _first_match_by_select(adx, vol, ret, ratio, np.full(n, np.nan))
    assert classify_regimes(adx, vol, ret, ratio).tolist() == no_spread.tolist()
    assert len(set(labels.tolist())) == 5


def test_regime_rules_are_configurable() -> None:
    rules = RegimeRules(trend_adx_min=40)
    assert classify_regimes([30], [2], [0], [1], rules=rules).tolist() == ["NEUTRAL"]


def test_regime_inputs_on_real_sol_candles() -> None:
    path = SHARED_DATA / "binance_perp_SOLUSDT_1m_ohlcv_2023-07.csv.gz"
    if not path.exists():
        pytest.skip("shared SOL 1m data not available")
    candles = pd.read_csv(path, index_col="timestamp", parse_dates=True).iloc[:6000]
    inputs = regime_inputs(
        candles, vol_window_bars=60, bars_per_day=1440, volume_median_window_bars=60
    )
    labels = classify_regimes(
        inputs["adx"], inputs["volatility_pct"], inputs["trend_return"], inputs["volume_ratio"]
    )
    assert set(labels[200:]) <= {"TREND", "RANGE", "PANIC", "ILLIQUID", "NEUTRAL"}
    assert (labels[:27] == "NEUTRAL").all()  # ADX(14) needs 27 bars
    assert (labels[200:] == "TREND").any() and (labels[200:] == "RANGE").any()
    assert inputs["volatility_pct"].iloc[60:].between(0, 50).all()


def test_low_vol_pause_has_hysteresis_between_pause_and_resume() -> None:
    idx = pd.date_range("2025-11-13", periods=8, freq="s", tz="UTC")
    vol = pd.Series([6.0, 4.4, 5.0, 5.4, 5.5, 5.0, 4.5, 4.49], index=idx)
    states = threshold_states(vol)
    assert states["low_vol_pause"].tolist() == [False, True, True, True, False, False, False, True]
    assert states["defensive"].tolist() == [True] + [False] * 7


def test_high_vol_pause_and_events_list_each_switch() -> None:
    idx = pd.date_range("2025-11-13", periods=5, freq="min", tz="UTC")
    vol = pd.Series([10.0, 30.0, 30.1, np.nan, 12.0], index=idx)
    states = threshold_states(vol)
    assert states["high_vol_pause"].tolist() == [False, False, True, True, False]
    events = threshold_events(states, vol)
    high = events[events["signal"] == "high_vol_pause"]
    assert high["on"].tolist() == [True, False]
    assert high["ts"].tolist() == [idx[2], idx[4]]
    assert events[events["signal"] == "defensive"]["ts"].tolist() == [idx[0]]


def _threshold_states_by_pandas_ffill(v: pd.Series) -> pd.DataFrame:
    """The switches as first written: each a pandas forward fill of a bool-or-NaN Series."""
    decision = pd.Series(np.nan, index=v.index, dtype=float)
    decision[v >= 5.5] = 0.0
    decision[v < 4.5] = 1.0
    return pd.DataFrame(
        {
            "low_vol_pause": decision.ffill().fillna(0.0).astype(bool),
            "defensive": (v >= 6.0).where(v.notna()).ffill().fillna(0.0).astype(bool),
            "high_vol_pause": (v > 30.0).where(v.notna()).ffill().fillna(0.0).astype(bool),
        },
        index=v.index,
    )


@pytest.mark.parametrize("n", [0, 1, 3, 2_000])
def test_threshold_states_equal_the_pandas_forward_fill(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.gamma(2.0, 4.0, n)
    values[rng.random(n) < 0.3] = np.nan
    values[: min(n, 2)] = np.nan  # NaN first: every state starts off
    vol = pd.Series(values, index=pd.date_range("2025-11-13", periods=n, freq="min", tz="UTC"))
    pd.testing.assert_frame_equal(threshold_states(vol), _threshold_states_by_pandas_ffill(vol))


def test_threshold_states_reject_resume_below_pause() -> None:
    with pytest.raises(ValueError):
        threshold_states(pd.Series([1.0]), low_vol_pause_bps=5, low_vol_resume_bps=4)


def test_bucket_stats_count_mean_total_and_win_rate() -> None:
    stats = bucket_stats([16, -13, 0, 4, -2], ["up", "down", "down", "up", "flat"])
    rows = stats.to_dict(orient="index")
    assert rows["up"] == {"count": 2, "mean_pnl": 10.0, "total_pnl": 20.0, "win_rate": 1.0}
    assert rows["down"] == {"count": 2, "mean_pnl": -6.5, "total_pnl": -13.0, "win_rate": 0.0}
    assert list(stats.index) == ["down", "flat", "up"]


def test_inventory_correlation_sign_and_degenerate_cases() -> None:
    assert inventory_correlation([1, 2, 3, 4], [-2, -4, -6, -8]) == pytest.approx(-1.0)
    assert math.isnan(inventory_correlation([1, 2], [1, 2]))
    assert math.isnan(inventory_correlation([1, 2, 3], [0, 0, 0]))
