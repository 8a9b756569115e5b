"""Stress Lab: threshold checks, overrides, shocks, worst moves, portfolio impact."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from stagectl.domain.stress import (
    METRICS,
    Scenario,
    ScenarioPosition,
    Shock,
    StressMetrics,
    StressThresholds,
    apply_shocks,
    default_scenarios,
    evaluate,
    portfolio_impact,
    run_scenario,
    worst_moves,
)

CALM = StressMetrics(
    liquidity_drop_pct=10.0,
    spread_bps=12.0,
    volatility_change_pct=-30.0,
    sentiment=0.6,
    funding_bps=1.0,
    latency_ms=0.0,
    blackout_min=0.0,
    dispersion_bps=5.0,
)


def breached(metrics: StressMetrics, **kwargs: object) -> set[str]:
    return {c.metric for c in evaluate(metrics, **kwargs) if c.breached}  # type: ignore[arg-type]


def test_calm_market_breaches_nothing_and_checks_exactly_eight_metrics() -> None:
    checks = evaluate(CALM)
    assert [c.metric for c in checks] == list(METRICS)
    assert len(checks) == 8
    assert not any(c.breached for c in checks)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("liquidity_drop_pct", 55.1),
        ("spread_bps", 45.5),
        ("volatility_change_pct", 81.0),
        ("volatility_change_pct", -81.0),
        ("sentiment", 0.49),
        ("funding_bps", -26.0),
        ("latency_ms", 151.0),
        ("blackout_min", 41.0),
        ("dispersion_bps", 50.5),
    ],
)
def test_each_metric_breaches_past_its_limit(field: str, value: float) -> None:
    assert breached(replace(CALM, **{field: value})) == {field}


def test_values_at_the_limit_do_not_breach_and_nan_does() -> None:
    at_limit = replace(CALM, spread_bps=45.0, sentiment=0.5, blackout_min=40.0)
    assert breached(at_limit) == set()
    assert breached(replace(CALM, funding_bps=math.nan)) == {"funding_bps"}


def test_blackout_overrides_relax_latency_and_blackout() -> None:
    metrics = replace(CALM, latency_ms=170.0, blackout_min=50.0)
    assert breached(metrics) == {"latency_ms", "blackout_min"}
    overrides = {"latency_ms": 180.0, "blackout_min": 55.0}
    assert breached(metrics, overrides=overrides) == set()
    checks = {c.metric: c for c in evaluate(metrics, overrides=overrides)}
    assert checks["latency_ms"].limit == 180.0
    assert checks["spread_bps"].limit == 45.0
    with pytest.raises(ValueError, match="unknown threshold"):
        StressThresholds().with_overrides({"latency": 1.0})


def test_blackout_scenario_uses_its_overrides() -> None:
    blackout = next(s for s in default_scenarios() if s.name == "blackout")
    result = run_scenario(CALM, blackout)
    assert result.stressed.latency_ms == 200.0
    assert result.stressed.blackout_min == 55.0
    assert result.breached == ("latency_ms",)  # 200 > 180; 55 is not above 55


def test_shocks_apply_in_order_and_stay_in_domain() -> None:
    stressed = apply_shocks(
        CALM,
        [
            Shock("spread_bps", "mul", 3.0),
            Shock("sentiment", "add", -0.9),
            Shock("liquidity_drop_pct", "add", 120.0),
            Shock("volatility_change_pct", "add", 150.0),
        ],
    )
    assert stressed.spread_bps == 36.0
    assert stressed.sentiment == 0.0
    assert stressed.liquidity_drop_pct == 100.0
    assert stressed.volatility_change_pct == 120.0
    with pytest.raises(ValueError, match="unknown metric"):
        Shock("price", "add", 1.0)


def test_worst_moves_on_a_small_series() -> None:
    index = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    candles = pd.DataFrame({"close": [100.0, 110.0, 99.0, 120.0, 90.0, 95.0]}, index=index)
    # 2h returns: 99/100, 120/110, 90/99, 95/120 -> worst 95/120 - 1 = -20.833 %
    start, end, return_pct = worst_moves(candles, 2)
    assert return_pct == pytest.approx((95 / 120 - 1) * 100)
    assert start == datetime(2024, 1, 1, 4, tzinfo=UTC)  # close of the 03:00 bar
    assert end == datetime(2024, 1, 1, 6, tzinfo=UTC)
    assert worst_moves(candles, 2, direction="up").return_pct == pytest.approx(100 / 11)


def test_portfolio_impact_by_hand() -> None:
    positions = [ScenarioPosition("BTCUSDT", 2.0, entry_price=100.0, mark_price=110.0)]
    impact = portfolio_impact(
        positions,
        price_moves_pct={"BTCUSDT": -10.0},
        spread_bps={"BTCUSDT": 20.0},
        liquidity_usd={"BTCUSDT": 19_800.0},
        equity_usd=100.0,
        leverage=2.0,
    )
    row = impact.positions[0]
    assert row.stressed_price == pytest.approx(99.0)
    assert impact.mtm_pnl_usd == pytest.approx(-22.0)  # 2 * (99 - 110)
    assert row.participation == pytest.approx(0.01)  # 198 / 19 800
    assert row.liquidation_cost_bps == pytest.approx(15.5)  # 10 + sqrt(0.01) * 5 + 5
    assert impact.liquidation_cost_usd == pytest.approx(198 * 15.5 / 1e4)
    assert impact.margin_required_usd == pytest.approx(99.0)
    assert impact.margin_usage_pct == pytest.approx(99.0 / 78.0 * 100)


def test_short_position_gains_on_a_drop_and_wipeout_has_no_margin_usage() -> None:
    short = [ScenarioPosition("ETHUSDT", -1.0, entry_price=50.0, mark_price=50.0)]
    common: dict[str, Any] = {
        "spread_bps": {"ETHUSDT": 0.0},
        "liquidity_usd": {"ETHUSDT": 1e9},
        "leverage": 5.0,
    }
    gain = portfolio_impact(short, price_moves_pct={"ETHUSDT": -20.0}, equity_usd=10.0, **common)
    assert gain.mtm_pnl_usd == pytest.approx(10.0)
    loss = portfolio_impact(short, price_moves_pct={"ETHUSDT": 40.0}, equity_usd=10.0, **common)
    assert loss.equity_after_usd == pytest.approx(-10.0)
    assert loss.margin_usage_pct is None


def test_custom_scenario_with_price_moves_keeps_them() -> None:
    crash = Scenario("crash", (Shock("liquidity_drop_pct", "set", 70.0),), {"BTCUSDT": -25.0})
    assert run_scenario(CALM, crash).breached == ("liquidity_drop_pct",)
    assert crash.price_moves_pct["BTCUSDT"] == -25.0
