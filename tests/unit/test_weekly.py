"""The weekly checklist's maths (seed 003 §3), hand-computed."""

from __future__ import annotations

import math
from datetime import date

import pytest

from stagectl.domain.weekly import (
    CostBreakdown,
    FillCost,
    WeeklyFigures,
    cost_breakdown,
    cost_drift_check,
    drawdown_check,
    drawdown_deepening_days,
    funding_annualized_pct,
    funding_check,
    report_lines,
    sharpe_7d_check,
    slippage_bps,
    weight_drift,
)
from stagectl.errors import InputError

TARGETS = {"ETHUSDT": 54.0, "SOLUSDT": 46.0}


def drift(values: dict[str, float]):  # type: ignore[no-untyped-def]
    return weight_drift(values, TARGETS, tolerance_pct=5.0, limit_timeout_s=10.0, cost_bps=8.0)


def test_weights_within_five_percentage_points_skip() -> None:
    decision = drift({"ETHUSDT": 5800.0, "SOLUSDT": 4200.0})  # 58 / 42: drift +4 / -4
    assert decision.decision == "SKIP"
    assert [s.drift_pct_points for s in decision.sleeves] == pytest.approx([4.0, -4.0])
    assert decision.orders == ()
    assert decision.estimated_cost == 0.0


def test_a_sleeve_past_five_points_rebalances_with_limit_then_market_orders() -> None:
    decision = drift({"ETHUSDT": 6000.0, "SOLUSDT": 4000.0})  # 60 / 40: drift +6 / -6
    assert decision.decision == "REBALANCE"
    eth, sol = decision.orders
    assert (eth.symbol, eth.side, eth.notional) == ("ETHUSDT", "sell", pytest.approx(600.0))
    assert (sol.symbol, sol.side, sol.notional) == ("SOLUSDT", "buy", pytest.approx(600.0))
    assert (eth.order_type, eth.timeout_s, eth.fallback) == ("limit", 10.0, "market")
    # 600 x 8 bps = 0.48 per order
    assert decision.estimated_cost == pytest.approx(0.96)


def test_exactly_five_points_is_within_tolerance() -> None:
    assert drift({"ETHUSDT": 59.0, "SOLUSDT": 41.0}).decision == "SKIP"


def test_a_missing_sleeve_value_is_an_input_error() -> None:
    with pytest.raises(InputError, match="SOLUSDT"):
        drift({"ETHUSDT": 1.0})


def test_sharpe_7d_uses_sqrt_8760_on_hourly_returns() -> None:
    returns = [0.01, -0.01, 0.02, 0.0]  # mean 0.005, std (ddof=1) sqrt(0.00025 / 3 * 4)...
    mean = sum(returns) / 4
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / 3)
    check = sharpe_7d_check(returns, -1.0)
    assert check.value == pytest.approx(mean / std * math.sqrt(8760))
    assert check.status == "OK"
    assert sharpe_7d_check([-0.02, -0.01, -0.015], -1.0).status == "WARNING"
    assert sharpe_7d_check([0.01], -1.0).status == "NO_DATA"


@pytest.mark.parametrize(
    ("equity", "days"),
    [
        ([100, 99, 98, 97], 3),  # new low at every check since the peak
        ([100, 98, 99, 97], 3),  # a bounce, then a new low: still deepening
        ([100, 97, 98], 0),  # above the trough: narrowing
        ([100, 101, 102], 0),  # at the peak
        ([100, 90, 101, 100], 1),  # a new episode from the new peak 101
        ([100], 0),
    ],
)
def test_drawdown_deepening_days(equity: list[float], days: int) -> None:
    assert drawdown_deepening_days(equity) == days


def test_drawdown_deepening_for_more_than_seven_days_warns() -> None:
    falling = [100.0 - i for i in range(9)]  # 8 checks of new lows
    assert drawdown_check(falling, 7).status == "WARNING"
    assert drawdown_check(falling[:8], 7).status == "OK"  # 7 days


def test_cost_drift_is_relative_to_the_assumed_cost() -> None:
    assert cost_drift_check(10.0, 8.0, 30.0).value == pytest.approx(25.0)
    assert cost_drift_check(10.0, 8.0, 30.0).status == "OK"
    assert cost_drift_check(10.4, 8.0, 30.0).status == "WARNING"  # 30 %, not < 30
    assert cost_drift_check(5.0, 8.0, 30.0).status == "WARNING"  # 37.5 % below
    assert cost_drift_check(None, 8.0, 30.0).status == "NO_DATA"


def test_funding_rate_annualizes_three_settlements_a_day() -> None:
    assert funding_annualized_pct(0.0001) == pytest.approx(10.95)
    assert funding_check(0.00002, 3.0).status == "OK"  # 2.19 %
    assert funding_check(0.00003, 3.0).status == "WARNING"  # 3.285 %
    assert funding_check(None, 3.0).status == "NO_DATA"


def test_slippage_is_adverse_positive_for_both_sides() -> None:
    assert slippage_bps("buy", 100.03, 100.0) == pytest.approx(3.0)
    assert slippage_bps("sell", 99.97, 100.0) == pytest.approx(3.0)
    assert slippage_bps("sell", 100.01, 100.0) == pytest.approx(-1.0)


def test_costs_are_bps_of_traded_notional() -> None:
    fills = [
        FillCost("ETHUSDT", 1000.0, 0.5, 2.0),
        FillCost("SOLUSDT", 3000.0, 1.5, 4.0),
        FillCost("SOLUSDT", 1000.0, 0.5, None),  # no reference price: no slippage
    ]
    costs = cost_breakdown(fills, funding_paid=1.0)
    assert costs.fee_bps == pytest.approx(2.5 / 5000 * 1e4)  # 5 bps
    assert costs.slippage_bps == pytest.approx((2.0 * 1000 + 4.0 * 3000) / 4000)  # 3.5
    assert costs.funding_bps == pytest.approx(2.0)
    assert costs.total_bps == pytest.approx(10.5)
    assert costs.trading_bps == pytest.approx(8.5)
    assert cost_breakdown([], 1.0) == CostBreakdown(None, None, None)


def test_report_lines_fill_the_runbook_template() -> None:
    figures = WeeklyFigures(
        week_start=date(2024, 6, 3),
        week_end=date(2024, 6, 9),
        pnl_pct=1.234,
        ytd_pct=-5.0,
        sharpe_20d=0.5,
        mdd_pct=3.456,
        trades={"ETHUSDT": 2, "SOLUSDT": 1},
        turnover_pct=12.34,
        costs=CostBreakdown(5.0, 2.0, 1.0),
        drift=drift({"ETHUSDT": 6000.0, "SOLUSDT": 4000.0}),
        kill_switch="NO_ACTION",
    )
    assert report_lines(figures) == [
        "=== Alt Ensemble Weekly Report ===",
        "Week: 2024-06-03 → 2024-06-09",
        "PnL: +1.23% (YTD: -5.00%)",
        "Sharpe (20D): 0.50",
        "MDD: 3.46%",
        "Trades: 3 (ETH: 2, SOL: 1)",
        "Turnover: 12.3%",
        "Costs: fee 5.00 + slip 2.00 + funding 1.00 = total 8.00 bps/trade",
        "Weight Drift: ETH +6.0% / SOL -6.0% (rebalanced: Y)",
        "Kill Switch: NO_ACTION",
    ]
