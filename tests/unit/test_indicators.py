"""Indicators: Wilder ADX against the textbook loop on real SOL 1m data; volatility measures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stagectl.domain.indicators import (
    adx,
    adx_reference_loop,
    ema_volatility_bps,
    external_volatility_bps,
    realized_volatility,
    wilder_smooth,
)
from tests.conftest import SHARED_DATA

SOL_1M = SHARED_DATA / "binance_perp_SOLUSDT_1m_ohlcv_2023-07.csv.gz"


@pytest.fixture(scope="module")
def sol_1m() -> pd.DataFrame:
    if not SOL_1M.exists():
        pytest.skip("shared SOL 1m data not available")
    return pd.read_csv(SOL_1M, index_col="timestamp", parse_dates=True)


def test_vectorised_adx_equals_textbook_loop_on_real_sol_minutes(sol_1m: pd.DataFrame) -> None:
    bars = sol_1m.iloc[:20_000]
    fast = adx(bars["high"], bars["low"], bars["close"], 14)["adx"].to_numpy()
    slow = np.array(
        adx_reference_loop(bars["high"].tolist(), bars["low"].tolist(), bars["close"].tolist())
    )
    assert np.array_equal(np.isnan(fast), np.isnan(slow))
    assert np.nanmax(np.abs(fast - slow)) < 1e-9
    assert np.isnan(fast[26]) and not np.isnan(fast[27])  # first ADX at bar 2 * 14 - 1


def test_wilder_smoothing_is_seeded_with_the_simple_mean() -> None:
    x = pd.Series([9.0, 1.0, 2.0, 3.0, 7.0])
    s = wilder_smooth(x, 3, 1)
    assert math.isnan(s[2])
    assert s[3] == pytest.approx(2.0)
    assert s[4] == pytest.approx(2.0 + (7.0 - 2.0) / 3)


def test_adx_hand_computed_uptrend_has_only_plus_di() -> None:
    high = [10, 11, 12, 13, 14, 15, 16]
    low = [9, 10, 11, 12, 13, 14, 15]
    close = [9.5, 10.5, 11.5, 12.5, 13.5, 14.5, 15.5]
    out = adx(high, low, close, 3)
    # every bar: TR = 1.5 (high - previous close), +DM = 1, -DM = 0
    assert out["plus_di"].iloc[3] == pytest.approx(100 / 1.5)
    assert out["minus_di"].iloc[3] == 0
    assert out["adx"].iloc[5] == pytest.approx(100.0)
    assert math.isnan(out["adx"].iloc[4])


def test_realized_volatility_is_sample_std_of_log_returns() -> None:
    prices = [100.0, 101.0, 100.0, 102.0]
    r = np.diff(np.log(prices))
    assert realized_volatility(prices, 3).iloc[3] == pytest.approx(np.std(r, ddof=1))
    assert external_volatility_bps(prices, 3).iloc[3] == pytest.approx(np.std(r, ddof=1) * 1e4)


def test_ema_volatility_weights_halve_every_half_life() -> None:
    idx = pd.to_datetime(
        ["2025-01-01 00:00:00", "2025-01-01 00:01:00", "2025-01-01 00:01:35"], utc=True
    )
    prices = pd.Series([100.0, 100.1, 100.0], index=idx)
    r1, r2 = math.log(100.1 / 100.0), math.log(100.0 / 100.1)
    x1, x2 = r1**2 * 60 / 60, r2**2 * 60 / 35  # variance per minute
    expected = math.sqrt((0.5 * x1 + x2) / 1.5) * 1e4  # 35 s apart: weight 1/2
    vol = ema_volatility_bps(prices, half_life_s=35)
    assert math.isnan(vol.iloc[0])
    assert vol.iloc[1] == pytest.approx(math.sqrt(x1) * 1e4)
    assert vol.iloc[2] == pytest.approx(expected)


def test_ema_volatility_on_regular_minutes_tracks_external_volatility(sol_1m: pd.DataFrame) -> None:
    close = sol_1m["close"].iloc[:5000]
    ema = ema_volatility_bps(close, half_life_s=45 * 60)
    ext = external_volatility_bps(close, 60)
    ratio = (ema / ext).iloc[200:].median()
    assert 0.7 < ratio < 1.3


def test_ema_volatility_refuses_unordered_times() -> None:
    idx = pd.to_datetime(["2025-01-01 00:01", "2025-01-01 00:00"], utc=True)
    with pytest.raises(ValueError, match="increasing"):
        ema_volatility_bps(pd.Series([1.0, 2.0], index=idx), 35)
