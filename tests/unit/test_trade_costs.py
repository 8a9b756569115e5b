"""The seed 001 per-execution cost estimate shared by backtest and run-live."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from stagectl.domain.costs import pair_spread_bps, prior_bar_spread_bps
from stagectl.domain.pretrade_costs import CostSettings, pre_trade_cost

SETTINGS = CostSettings(
    taker_fee_bps=5.0,
    impact_coefficient_bps=5.0,
    latency_penalty_bps_per_10ms=0.1,
    safety_margin_bps=3.0,
)


def test_pre_trade_cost_is_half_spread_plus_impact_plus_fee_plus_latency() -> None:
    # 4 % participation: sqrt(0.04) x 5 = 1 bp; half of 6 bps = 3; fee 5; 150 ms = 1.5 bps
    estimate = pre_trade_cost(
        SETTINGS, spread_bps=6.0, notional_usd=400.0, bar_dollar_volume=10_000.0, latency_ms=150
    )
    assert estimate["costs_bps"] == pytest.approx(3.0 + 1.0 + 5.0 + 1.5)
    assert estimate["allowed"] is None and estimate["reason_code"] is None


def test_safety_margin_refuses_only_when_an_edge_is_given() -> None:
    thin = pre_trade_cost(
        SETTINGS,
        spread_bps=6.0,
        notional_usd=400.0,
        bar_dollar_volume=10_000.0,
        latency_ms=0.0,
        expected_edge_bps=11.0,
    )
    assert thin["allowed"] is False and thin["reason_code"] == "EDGE_BELOW_COST_MARGIN"
    wide = pre_trade_cost(
        SETTINGS,
        spread_bps=6.0,
        notional_usd=400.0,
        bar_dollar_volume=10_000.0,
        latency_ms=0.0,
        expected_edge_bps=12.0,
    )
    assert wide["allowed"] is True


def test_prior_bar_spread_uses_the_two_bars_before_and_the_floor() -> None:
    high = np.array([101.0, 102.0, 101.5, 103.0])
    low = np.array([99.0, 100.5, 100.0, 101.0])
    spreads = prior_bar_spread_bps(high, low, floor_bps=1.0)
    assert spreads[0] == spreads[1] == 1.0
    assert spreads[2] == pytest.approx(pair_spread_bps(high[:2], low[:2], 1.0))
    assert spreads[3] == pytest.approx(pair_spread_bps(high[1:3], low[1:3], 1.0))
    assert all(math.isfinite(v) and v >= 1.0 for v in spreads)


def test_venue_fee_comes_from_the_matching_venue_or_default(tmp_path: Path) -> None:
    from stagectl.config.home import Home
    from stagectl.config.loader import load_risk_presets

    config, _ = load_risk_presets(Home(root=tmp_path))
    assert CostSettings.from_config(config, "binanceusdm").venue == "binance"
    assert CostSettings.from_config(config, "okx").venue == "default"
