"""The seed 001 per-execution cost in the backtest (``backtest --cost-model full``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.domain.backtest import SleeveSpec, run_backtest
from stagectl.domain.costs import execution_cost_parts, prior_bar_spread_bps
from stagectl.domain.pretrade_costs import CostSettings
from stagectl.services.strategy import costs as trade_costs
from stagectl.services.strategy.costs import (
    SleeveMarket,
    cost_summary,
    full_cost_backtest,
)

SETTINGS = CostSettings(
    taker_fee_bps=5.0,
    impact_coefficient_bps=5.0,
    latency_penalty_bps_per_10ms=0.1,
    safety_margin_bps=3.0,
)
INDEX = pd.date_range("2025-01-01", periods=4, freq="1h", tz="UTC")


def _one_sleeve() -> list[SleeveSpec]:
    # target [1, 1, 0, 0] with signal_delay 1 -> held [0, 1, 1, 0]: buy at open 1, sell at 3
    return [
        SleeveSpec(
            symbol="ETHUSDT",
            open=pd.Series([100.0, 100.0, 110.0, 110.0], index=INDEX),
            target=pd.Series([1.0, 1.0, 0.0, 0.0], index=INDEX),
            weight=1.0,
        )
    ]


# Hand computation, equity 10,000:
#   bar 1 buys 10,000 of notional: half spread 4/2 = 2 bps, participation 10,000 / 1e6 = 1 %
#     -> impact sqrt(0.01) x 5 = 0.5 bps, fee 5 bps: 7.5 bps = 7.50; equity 9,992.50
#   bar 2 holds through +10 %: equity 10,991.75
#   bar 3 sells 10,991.75: half spread 8/2 = 4 bps, participation 10,991.75 / 274,793.75 = 4 %
#     -> impact 1 bp, fee 5 bps: 10 bps = 10.99175; equity 10,980.75825
MARKET = SleeveMarket(
    spread_bps=np.array([2.0, 4.0, 6.0, 8.0]),
    prior_dollar_volume=np.array([np.nan, 1e6, 4e6, 274_793.75]),
)


def test_full_cost_charges_half_spread_plus_sqrt_participation_impact_plus_fee() -> None:
    run = full_cost_backtest(_one_sleeve(), [MARKET], SETTINGS, initial_equity=10_000.0)
    result = run.result
    assert result.equity.iloc[-1] == pytest.approx(10_980.75825, rel=1e-9)
    assert result.costs["fee"].sum() == pytest.approx(5e-4 * (10_000 + 10_991.75), rel=1e-9)
    assert result.costs["slippage"].sum() == pytest.approx(2.5 + 5.495875, rel=1e-9)
    assert run.parts[0].participation[[1, 3]] == pytest.approx([0.01, 0.04], rel=1e-8)
    assert run.residual < 1e-9


def test_cost_summary_reports_per_execution_bps_and_the_split() -> None:
    run = full_cost_backtest(_one_sleeve(), [MARKET], SETTINGS, initial_equity=10_000.0)
    summary = cost_summary(run.result, 1.0, run)
    notional = 10_000 + 10_991.75
    assert summary["model"] == "full"
    assert summary["executions"] == 2
    assert summary["mean_cost_bps_per_execution"] == pytest.approx((7.5 + 10.0) / 2)
    assert summary["avg_cost_bps_per_execution"] == pytest.approx((7.5 + 10.99175) / notional * 1e4)
    assert summary["avg_fee_bps"] == pytest.approx(5.0)
    assert summary["avg_half_spread_bps"] == pytest.approx((2 * 10_000 + 4 * 10_991.75) / notional)
    assert summary["avg_impact_bps"] == pytest.approx((0.5 * 10_000 + 1.0 * 10_991.75) / notional)
    assert summary["avg_half_spread_bps"] + summary["avg_impact_bps"] == pytest.approx(
        summary["avg_slippage_bps"]
    )


def test_the_cost_multiplier_scales_every_part_of_the_full_cost() -> None:
    run = full_cost_backtest(
        _one_sleeve(), [MARKET], SETTINGS, initial_equity=10_000.0, cost_multiplier=2.0
    )
    # bar 1: (5 fee + 2 half spread + 0.5 impact) x 2 = 15 bps of 10,000
    assert run.result.costs[["fee", "slippage"]].iloc[1].sum() == pytest.approx(15.0)


def test_execution_cost_parts_conventions_for_no_trade_and_unknown_volume() -> None:
    parts = execution_cost_parts(
        [0.0, 500.0, 500.0, 400.0],
        [3.0, 3.0, 3.0, 6.0],
        [1e6, np.nan, 0.0, 10_000.0],
        fee_bps=4.0,
    )
    assert parts.participation.tolist() == [0.0, 1.0, 1.0, 0.04]
    assert parts.impact_bps[3] == pytest.approx(1.0)
    assert parts.slippage_bps.tolist() == pytest.approx([1.5, 6.5, 6.5, 4.0])
    assert parts.fee_bps.tolist() == [4.0] * 4


def test_the_services_spread_helpers_are_the_domain_formula() -> None:
    assert trade_costs.prior_bar_spread_bps is prior_bar_spread_bps


@settings(max_examples=30, deadline=None)
@given(
    fee_bps=st.floats(0.0, 20.0),
    slippage_bps=st.floats(0.0, 20.0),
    flips=st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0]), min_size=4, max_size=4),
)
def test_constant_per_bar_costs_equal_the_scalar_costs(
    fee_bps: float, slippage_bps: float, flips: list[float]
) -> None:
    sleeve = SleeveSpec(
        "ETHUSDT",
        pd.Series([100.0, 101.0, 99.0, 103.0], index=INDEX),
        pd.Series(flips, index=INDEX),
        0.7,
    )
    scalar = run_backtest([sleeve], fee_bps=fee_bps, slippage_bps=slippage_bps)
    per_bar = run_backtest([sleeve], cost_bps=[(np.full(4, fee_bps), np.full(4, slippage_bps))])
    assert np.allclose(per_bar.equity, scalar.equity, rtol=1e-12)
    assert np.allclose(per_bar.costs, scalar.costs, rtol=1e-12, atol=1e-12)
