"""The weekly rebalance's maths in the loop, and what an order filled in parts leaves."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from stagectl.domain.orders import client_order_id
from stagectl.domain.rebalance import (
    CostLeg,
    Rebalance,
    capital_transfers,
    cost_legs,
    execution_cost,
    execution_record,
    fallback_order,
    left_short,
    plan_due,
    weights_refusal,
)
from stagectl.domain.types import (
    Event,
    Fill,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

T = datetime(2026, 3, 2, 6, tzinfo=UTC)
STEP = D("0.001")


def limit(qty: str = "2", filled: str = "0", status: OrderStatus = OrderStatus.OPEN) -> Order:
    return Order(
        client_order_id=client_order_id("paper-1", "ETHUSDT", T, "rebalance 3"),
        symbol="ETHUSDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        qty=D(qty),
        created_at=T,
        status=status,
        price=D(2000),
        time_in_force=TimeInForce.GTC,
        filled_qty=D(filled),
        account="paper",
        run_id="paper-1",
    )


def fill(cid: str, qty: str, price: str, fee: str, *, maker: bool = False, n: int = 1) -> Fill:
    return Fill(
        trade_id=f"{cid}-{n}",
        ts=T,
        symbol="ETHUSDT",
        side=Side.BUY,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        liquidity=Liquidity.MAKER if maker else Liquidity.TAKER,
        client_order_id=cid,
    )


def test_capital_transfers_bring_each_sleeve_to_its_weight_and_sum_to_zero() -> None:
    # 6,100 + 3,900 = 10,000: ETH should hold 5,400, SOL 4,600
    moved = capital_transfers(
        {"ETHUSDT": 6100.0, "SOLUSDT": 3900.0}, {"ETHUSDT": 0.54, "SOLUSDT": 0.46}
    )
    assert moved == pytest.approx({"ETHUSDT": -700.0, "SOLUSDT": 700.0})
    assert sum(moved.values()) == pytest.approx(0.0, abs=1e-9)


def test_a_plan_is_due_from_its_as_of_time_for_a_week() -> None:
    assert plan_due(T, T - timedelta(hours=1)) == "not yet"
    assert plan_due(T, T) == "due"
    assert plan_due(T, T + timedelta(days=7) - timedelta(hours=1)) == "due"
    assert plan_due(T, T + timedelta(days=7)) == "expired"


def test_a_plan_with_other_sleeves_or_weights_than_the_run_is_refused() -> None:
    run = {"ETHUSDT": 0.54, "SOLUSDT": 0.46}
    assert weights_refusal({"ETHUSDT": 54.0, "SOLUSDT": 46.0}, run) is None
    assert "not the strategy's sleeve weights" in (
        weights_refusal({"ETHUSDT": 60.0, "SOLUSDT": 40.0}, run) or ""
    )
    assert "not the run's" in (weights_refusal({"ETHUSDT": 100.0}, run) or "")


def test_a_cancelled_limit_leaves_its_remainder_to_a_market_order_of_a_fixed_id() -> None:
    cancelled = limit("2", "0.75", OrderStatus.CANCELED)
    market = fallback_order(cancelled, STEP)
    assert market is not None
    assert (market.type, market.side, market.qty, market.price, market.created_at) == (
        OrderType.MARKET,
        Side.BUY,
        D("1.25"),
        D(2000),
        T,
    )
    intent = f"fallback {cancelled.client_order_id}"
    assert market.client_order_id == client_order_id("paper-1", "ETHUSDT", T, intent)
    assert fallback_order(cancelled, STEP) == market  # the same after a restart


def test_no_fallback_for_a_filled_a_refused_or_a_nearly_filled_limit() -> None:
    assert fallback_order(limit("2", "2", OrderStatus.FILLED), STEP) is None
    assert fallback_order(limit("2", "0", OrderStatus.REJECTED), STEP) is None
    assert fallback_order(limit("2", "1.9995", OrderStatus.CANCELED), STEP) is None
    assert fallback_order(limit("2", "0", OrderStatus.OPEN), STEP) is None


def test_left_short_names_ended_orders_whose_remainder_nothing_carries() -> None:
    market = replace(
        limit(),
        client_order_id="sc-market",
        type=OrderType.MARKET,
        status=OrderStatus.EXPIRED,
        filled_qty=D("0.5"),
    )
    carried = limit("2", "0.5", OrderStatus.CANCELED)
    fallback = fallback_order(carried, STEP)
    assert fallback is not None
    dust = replace(market, client_order_id="sc-dust", filled_qty=D("1.9999"))
    stop = replace(market, client_order_id="sc-stop", type=OrderType.STOP_LIMIT)
    done = replace(market, client_order_id="sc-done", status=OrderStatus.FILLED, filled_qty=D(2))
    found = left_short([market, carried, fallback, dust, stop, done], {"ETHUSDT": STEP})
    assert [o.client_order_id for o in found] == ["sc-market"]
    # without its fallback recorded, the cancelled limit's remainder is unaccounted for
    assert [o.client_order_id for o in left_short([carried], {"ETHUSDT": STEP})] == [
        carried.client_order_id
    ]


def test_the_cost_of_a_leg_is_fees_plus_slippage_against_the_decision_price() -> None:
    leg = CostLeg("ETHUSDT", Side.BUY, D(2000), D(2), "sc-limit", "sc-market", estimate_bps=8.0)
    fills = [
        fill("sc-limit", "0.5", "2000", "0.2", maker=True),  # maker 2 bps, no slippage
        fill("sc-market", "1.5", "2001", "1.50075"),  # taker 5 bps, 1 USD worse a unit
        fill("sc-other", "9", "1900", "1"),  # another order: not the rebalance's
    ]
    cost = execution_cost([leg], fills)
    row = cost["sleeves"]["ETHUSDT"]
    # notional 1,000 + 3,001.5 = 4,001.5; fees 1.70075; slippage 1.5 x 1 = 1.5
    assert row["notional_usd"] == "4001.5"
    assert (row["fees_usd"], row["slippage_usd"], row["cost_usd"]) == (
        "1.70075",
        "1.5",
        "3.20075",
    )
    assert row["cost_bps"] == pytest.approx(3.20075 / 4001.5 * 1e4, abs=1e-6)
    # the estimate: 8 bps on the filled 2 ETH at the decision price 2,000
    assert row["estimate_usd"] == pytest.approx(3.2)
    assert row["difference_bps"] == pytest.approx(3.20075 / 4001.5 * 1e4 - 8.0, abs=1e-6)
    assert (row["limit_filled_qty"], row["market_filled_qty"], row["maker_qty"]) == (
        "0.5",
        "1.5",
        "0.5",
    )
    assert cost["cost_usd"] == "3.20075" and cost["estimate_usd"] == pytest.approx(3.2)


def test_a_sell_that_fills_below_the_decision_price_pays_slippage() -> None:
    leg = CostLeg("ETHUSDT", Side.SELL, D(2000), D(1), "sc-l", "sc-m", estimate_bps=None)
    sold = replace(fill("sc-m", "1", "1998", "0"), side=Side.SELL)
    cost = execution_cost([leg], [sold])
    assert cost["slippage_usd"] == "2"
    assert cost["estimate_usd"] is None and cost["estimate_bps"] is None


def test_the_execution_record_names_each_sleeve_and_rebuilds_its_cost_legs() -> None:
    order = replace(limit(), status=OrderStatus.NEW)
    estimate = Event(
        ts=T,
        event_type="PRE_TRADE_COST",
        costs_bps=7.5,
        payload={"client_order_id": order.client_order_id},
    )
    record = execution_record(
        Rebalance(3, 10.0),
        T,
        {"ETHUSDT": "limit", "SOLUSDT": "in line"},
        [order],
        [estimate],
        {"ETHUSDT": D(2000), "SOLUSDT": D(80)},
        {"ETHUSDT": 6100.0, "SOLUSDT": 3900.0},
        {"ETHUSDT": 0.54, "SOLUSDT": 0.46},
    )
    assert record["transfers_usd"] == pytest.approx({"ETHUSDT": -700.0, "SOLUSDT": 700.0})
    assert record["sleeves"]["SOLUSDT"]["capital_after_usd"] == pytest.approx(4600.0)
    (leg,) = cost_legs(record)
    assert leg == CostLeg(
        "ETHUSDT",
        Side.BUY,
        D(2000),
        D(2),
        order.client_order_id,
        client_order_id("paper-1", "ETHUSDT", T, f"fallback {order.client_order_id}"),
        7.5,
    )
