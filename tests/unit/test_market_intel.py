"""Market Intel metrics against hand-computed values."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from stagectl.domain.market_intel import (
    AGGREGATE_SYMBOL,
    MarketIntelWindows,
    MissingSymbolError,
    SymbolMarketData,
    aggregate_snapshots,
    annualised_volatility,
    compute_market_intel,
    compute_snapshot,
    corwin_schultz_spread_bps,
    corwin_schultz_spreads,
    efficiency_ratio,
    longest_gap_min,
    sentiment_index,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
BASELINE_BARS = 720
WINDOW_BARS = 24
NOW = START + timedelta(hours=BASELINE_BARS + WINDOW_BARS)
R = 0.01  # log return of the baseline's alternating closes


def make_candles(
    *, baseline_volume: float = 10.0, window_volume: float = 4.0, window_r: float = 2 * R
) -> pd.DataFrame:
    """720 baseline + 24 window hourly bars; closes alternate 100 and 100*e^r (log returns
    +r, -r, ...); high = low = close so the spread estimate is at its floor."""
    n = BASELINE_BARS + WINDOW_BARS
    index = pd.date_range(START, periods=n, freq="1h", tz="UTC", name="timestamp")
    r = np.where(np.arange(n) < BASELINE_BARS, R, window_r)
    close = np.where(np.arange(n) % 2 == 0, 100.0, 100.0 * np.exp(r))
    volume = np.where(np.arange(n) < BASELINE_BARS, baseline_volume, window_volume)
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": volume},
        index=index,
    )


def test_corwin_schultz_two_identical_bars_equal_the_bar_range() -> None:
    # H=101, L=99 twice: beta = 2 ln(101/99)^2, gamma = ln(101/99)^2, so
    # alpha = (2 + sqrt2) r - (sqrt2 + 1) r = r = ln(101/99) and
    # S = 2 (101/99 - 1) / (1 + 101/99) = 2 * 2 / 200 = 0.02 = 200 bps.
    spreads = corwin_schultz_spreads([101.0, 101.0], [99.0, 99.0])
    assert spreads == pytest.approx([0.02], rel=1e-12)
    assert corwin_schultz_spread_bps([101.0, 101.0], [99.0, 99.0]) == pytest.approx(200.0)


def test_corwin_schultz_negative_estimate_is_set_to_zero_then_floored() -> None:
    # H/L 101/99 then 102/100: beta = 4.000267e-4 + 3.921440e-4 = 7.921707e-4,
    # gamma = ln(102/99)^2 = 8.911994e-4, alpha = -0.0041221 -> S = -41.22 bps < 0.
    raw = corwin_schultz_spreads([101.0, 102.0], [99.0, 100.0])
    assert raw[0] * 1e4 == pytest.approx(-41.2211, abs=1e-3)
    assert corwin_schultz_spread_bps([101.0, 102.0], [99.0, 100.0], floor_bps=1.0) == 1.0
    assert corwin_schultz_spread_bps([101.0, 102.0], [99.0, 100.0], floor_bps=0.0) == 0.0


def test_annualised_volatility_uses_ddof_1_and_8760_hours() -> None:
    # mean 0.005; squared deviations 25e-6 + 225e-6 + 225e-6 + 25e-6 = 500e-6; /3 -> std
    # 0.0129099; * sqrt(8760) = 1.208305.
    returns = np.array([0.01, -0.01, 0.02, 0.0])
    assert annualised_volatility(returns, 60.0) == pytest.approx(1.2083046, rel=1e-6)


def test_sentiment_is_the_dollar_volume_weighted_share_of_up_bars() -> None:
    # up (w 100), up (w 100), down (w 200): 200 / 400; a flat bar counts one half.
    assert sentiment_index([1, 1, 2], [2, 2, 1], [100, 100, 200]) == pytest.approx(0.5)
    assert sentiment_index([1, 1], [1, 0.5], [100, 100]) == pytest.approx(0.25)
    assert sentiment_index([1], [2], [0.0]) == 0.5


def test_efficiency_ratio_is_net_move_over_path_length() -> None:
    prices = [100.0, 100.0 * math.e**0.02, 100.0 * math.e**0.01, 100.0 * math.e**0.03]
    # net 0.03, path 0.02 + 0.01 + 0.02 = 0.05
    assert efficiency_ratio(prices) == pytest.approx(0.6)
    assert efficiency_ratio([5.0, 5.0]) == 0.0


def test_longest_gap_counts_uncovered_minutes_including_edges() -> None:
    hour = 3_600_000_000_000
    opens = np.array([1, 2, 5], dtype=np.int64) * hour
    # window [0h, 7h]: uncovered 0-1h, 3-5h (120 min) and 6-7h
    assert longest_gap_min(opens, hour, 0, 7 * hour) == 120.0


def test_snapshot_liquidity_drop_and_volatility_change_by_hand() -> None:
    snap = compute_snapshot("BTCUSDT", SymbolMarketData(make_candles()), NOW)
    assert snap.bars == WINDOW_BARS
    # dollar volume per bar: baseline median of 100*10 and 100e^r*10 -> mean of both.
    base = (1000.0 + 1000.0 * math.exp(R)) / 2
    window = (400.0 + 400.0 * math.exp(2 * R)) / 2
    assert snap.liquidity_baseline_usd == pytest.approx(base)
    assert snap.liquidity_usd == pytest.approx(window)
    assert snap.liquidity_drop_pct == pytest.approx((1 - window / base) * 100)
    # n alternating returns +-r (n odd) have std(ddof=1) = r sqrt((n+1)/n):
    # window n=23 with 2R, baseline n=719 with R.
    ratio = 2 * math.sqrt(24 / 23) / math.sqrt(720 / 719)
    assert snap.volatility_change_pct == pytest.approx((ratio - 1) * 100, rel=1e-9)
    assert snap.spread_bps == 1.0  # high == low: every estimate <= 0, floor applies
    assert snap.latency_ms == 0.0
    assert snap.blackout_min == 0.0
    assert snap.fresh
    assert snap.dispersion_bps is None
    assert snap.funding_latest_bps is None


def test_snapshot_latency_blackout_and_staleness() -> None:
    candles = make_candles().drop(
        [pd.Timestamp(NOW - timedelta(hours=10)), pd.Timestamp(NOW - timedelta(hours=9))]
    )
    now = NOW + timedelta(minutes=100)
    snap = compute_snapshot("BTCUSDT", SymbolMarketData(candles), now)
    assert snap.latency_ms == 100 * 60_000.0
    assert snap.blackout_min == 120.0  # two missing bars beat the 100-minute tail
    assert not snap.fresh  # older than the 90-minute staleness limit
    assert snap.weight == 0.0


def test_snapshot_funding_and_perp_spot_dispersion() -> None:
    perp = make_candles()
    spot = perp * np.exp(-0.001)  # every spot price 10 bps under the perp
    stamps = pd.date_range(START, NOW, freq="8h", tz="UTC")
    funding = pd.Series(
        np.where(stamps >= pd.Timestamp(NOW - timedelta(hours=24)), 2e-4, 1e-4), index=stamps
    )
    funding.iloc[-1] = 5e-4
    snap = compute_snapshot("ETHUSDT", SymbolMarketData(perp, funding, spot), NOW)
    assert snap.dispersion_bps == pytest.approx(10.0)
    assert snap.funding_latest_bps == pytest.approx(5.0)
    # settlements in (now-24h, now]: two at 2 bps and the last at 5 bps
    assert snap.funding_mean_bps == pytest.approx(3.0)


def test_aggregate_pools_sentiment_and_takes_the_worst_metric() -> None:
    base = compute_snapshot("A", SymbolMarketData(make_candles()), NOW)
    a = replace(base, symbol="A", sentiment=0.5, dollar_volume_usd=400.0, spread_bps=10.0)
    b = replace(base, symbol="B", sentiment=0.75, dollar_volume_usd=400.0, spread_bps=30.0)
    c = replace(base, symbol="C", sentiment=0.25, dollar_volume_usd=200.0, spread_bps=20.0)
    agg = aggregate_snapshots([a, b, c])
    # pooled up-weight: 200 + 300 + 50 = 550 of 1000
    assert agg.sentiment == pytest.approx(0.55)
    assert agg.spread_bps == 30.0
    assert agg.symbol == AGGREGATE_SYMBOL
    assert agg.weight == 1.15
    stale = aggregate_snapshots([a, replace(b, fresh=False)], MarketIntelWindows())
    assert stale.weight == 0.0


def test_missing_mandatory_symbol_is_named() -> None:
    data = {"BTCUSDT": SymbolMarketData(make_candles())}
    with pytest.raises(MissingSymbolError, match="SOLUSDT") as caught:
        compute_market_intel(data, NOW, required_symbols=["BTCUSDT", "SOLUSDT"])
    assert caught.value.symbols == ("SOLUSDT",)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        compute_snapshot("X", SymbolMarketData(make_candles()), NOW.replace(tzinfo=None))
