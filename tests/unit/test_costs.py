"""Seed 001 full cost model: formulas and the safety-margin rule."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from stagectl.domain.costs import (
    DEFAULT_FEES,
    DENIAL_EDGE_BELOW_MARGIN,
    DENIAL_INVALID_INPUT,
    VenueFees,
    cost_breakdown,
    funding_cost_bps,
    latency_penalty_bps,
    slippage_bps,
    total_cost_bps,
    trade_allowed,
    trades_allowed,
)


def test_slippage_is_half_spread_plus_square_root_impact() -> None:
    # 10/2 + sqrt(0.04) * 5 = 5 + 1 = 6
    assert slippage_bps(10.0, 0.04) == pytest.approx(6.0)
    assert slippage_bps(np.array([10.0, 0.0]), np.array([0.04, 1.0])) == pytest.approx([6.0, 5.0])
    with pytest.raises(ValueError, match="participation"):
        slippage_bps(10.0, -0.1)


def test_funding_cost_scales_by_eight_hour_periods_and_side() -> None:
    assert funding_cost_bps(1.0, 24.0) == pytest.approx(3.0)
    assert funding_cost_bps(1.0, 24.0, side=-1) == pytest.approx(-3.0)


def test_latency_penalty_is_one_bp_per_hundred_ms() -> None:
    assert latency_penalty_bps(150.0) == pytest.approx(1.5)


def test_fees_by_venue_and_liquidity_with_overrides() -> None:
    assert DEFAULT_FEES.fee_bps("binance_usdm", "maker") == 2.0
    assert DEFAULT_FEES.fee_bps("binance_usdm", "taker") == 5.0
    vip = DEFAULT_FEES.with_overrides({"binance_usdm": VenueFees(maker_bps=1.6, taker_bps=4.0)})
    assert vip.fee_bps("binance_usdm", "taker") == 4.0
    with pytest.raises(ValueError, match="unknown venue 'kraken'"):
        DEFAULT_FEES.fee_bps("kraken", "taker")


def test_total_cost_by_hand() -> None:
    # per leg: slippage 6 + fee 5 + latency 1.5 = 12.5; two legs 25; funding 1 bp * 16/8 = 2
    kwargs: dict[str, Any] = {
        "spread_bps": 10.0,
        "participation": 0.04,
        "fee_bps": 5.0,
        "funding_rate_bps": 1.0,
        "hours_held": 16.0,
        "latency_ms": 150.0,
        "legs": 2,
    }
    assert total_cost_bps(**kwargs) == pytest.approx(27.0)
    breakdown = cost_breakdown(**kwargs)
    assert breakdown.slippage_bps == pytest.approx(12.0)
    assert breakdown.total_bps == pytest.approx(27.0)
    vector = total_cost_bps(spread_bps=np.array([10.0, 20.0]), participation=0.0, fee_bps=5.0)
    assert vector == pytest.approx([10.0, 15.0])


def test_trade_needs_edge_minus_costs_at_least_the_margin() -> None:
    assert trade_allowed(20.0, 16.0).allowed  # 4 >= 3
    assert trade_allowed(19.0, 16.0).allowed  # exactly the margin
    denied = trade_allowed(18.0, 16.0)
    assert not denied.allowed
    assert denied.reason_code == DENIAL_EDGE_BELOW_MARGIN
    assert denied.net_edge_bps == pytest.approx(2.0)
    assert trade_allowed(math.nan, 1.0).reason_code == DENIAL_INVALID_INPUT
    mask = trades_allowed([20.0, 18.0, math.nan], [16.0, 16.0, 1.0])
    assert mask.tolist() == [True, False, False]
