"""Market Intel, governor and Stress Lab on real Binance 1h data (BTC, ETH, SOL)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stagectl.domain.governor import GovernorInputs, GovernorParams, decide
from stagectl.domain.market_intel import SymbolMarketData, compute_market_intel, compute_snapshot
from stagectl.domain.stress import StressMetrics, evaluate, worst_moves

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
NOW = datetime(2026, 5, 16, tzinfo=UTC)

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="real data not present")


def read(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name, parse_dates=["timestamp"], index_col="timestamp")


@pytest.fixture(scope="module")
def market() -> dict[str, SymbolMarketData]:
    return {
        s: SymbolMarketData(
            candles=read(f"binance_perp_{s}_1h_ohlcv.csv.gz"),
            funding=read(f"binance_perp_{s}_8h_funding.csv.gz")["funding_rate"],
            spot_candles=read(f"binance_spot_{s}_1h_ohlcv.csv.gz"),
        )
        for s in SYMBOLS
    }


def test_market_intel_on_real_data_is_in_sane_ranges(market: dict[str, SymbolMarketData]) -> None:
    report = compute_market_intel(market, NOW, required_symbols=SYMBOLS)
    for snap in report.snapshots:
        assert snap.bars == 24
        assert 1e6 < snap.liquidity_usd < 1e10
        assert -90 < snap.liquidity_drop_pct < 90
        assert 1.0 <= snap.spread_bps < 100
        assert 0.05 < snap.realized_vol_ann < 3.0
        assert -90 < snap.volatility_change_pct < 300
        assert snap.funding_latest_bps is not None and abs(snap.funding_latest_bps) < 25
        assert snap.dispersion_bps is not None and 0 < snap.dispersion_bps < 50
        assert 0.0 <= snap.sentiment <= 1.0
        assert snap.latency_ms == 0.0
        assert snap.blackout_min == 0.0
    assert report.aggregate.weight == 1.15
    decision = decide(GovernorInputs.from_market_intel(report))
    assert sum(decision.final.values()) == pytest.approx(1.0)
    lower, upper = GovernorParams().bounds(tuple(decision.final))
    final = np.array(list(decision.final.values()))
    assert np.all(final >= lower - 1e-12)
    assert np.all(final <= upper + 1e-12)


def test_worst_real_24h_move_breaches_the_volatility_limit(
    market: dict[str, SymbolMarketData],
) -> None:
    candles = market["BTCUSDT"].candles
    start, end, return_pct = worst_moves(candles, 24)
    assert return_pct < -20.0
    assert start.year == 2020 and start.month == 3  # the March 2020 crash
    assert worst_moves(candles, 168).return_pct <= return_pct
    snap = compute_snapshot("BTCUSDT", market["BTCUSDT"], end)
    checks = {c.metric: c for c in evaluate(StressMetrics.from_snapshot(snap))}
    assert checks["volatility_change_pct"].breached
