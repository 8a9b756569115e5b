"""The loop's pure decision for one bar: targets, multipliers, caps, policy, stops."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

from stagectl.domain import order_policy as op
from stagectl.domain.decide import (
    DECISION,
    PRE_TRADE_COST,
    SIGNAL,
    DecideInputs,
    SleeveInput,
    StopInputs,
    Targets,
    decide,
    protective_stops,
)
from stagectl.domain.order_policy import PolicyLimits
from stagectl.domain.orders import client_order_id
from stagectl.domain.pretrade_costs import CostSettings
from stagectl.domain.rebalance import Rebalance
from stagectl.domain.sizing import SizingLimits
from stagectl.domain.types import (
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
    TradingState,
)

T = datetime(2026, 4, 1, 10, tzinfo=UTC)
BIG = D(10) ** 12


def sleeve(symbol: str = "ETHUSDT", **changes: object) -> SleeveInput:
    values: dict[str, object] = {
        "symbol": symbol,
        "weight": 0.5,
        "held_target": 1.0,
        "decision_price": D(2000),
        "prev_dollar_volume": BIG,
    }
    values.update(changes)
    return SleeveInput(**values)  # type: ignore[arg-type]


def inputs(*sleeves: SleeveInput, **changes: object) -> DecideInputs:
    values: dict[str, object] = {
        "run_id": "paper-1",
        "account": "paper",
        "bar_ts": T,
        "equity": D(10_000),
        "sleeves": sleeves or (sleeve(),),
        "targets": Targets(),
    }
    values.update(changes)
    return DecideInputs(**values)  # type: ignore[arg-type]


def test_a_new_target_buys_weight_times_target_times_equity_at_the_decision_price() -> None:
    decision = decide(inputs())
    (order,) = decision.orders
    # 0.5 x 1.0 x 10,000 / 2,000 = 2.5 ETH
    assert (order.side, order.type, order.qty, order.price) == (
        Side.BUY,
        OrderType.MARKET,
        D("2.5"),
        D(2000),
    )
    assert order.status == OrderStatus.NEW and not order.reduce_only
    assert order.client_order_id == client_order_id("paper-1", "ETHUSDT", T, "target +1.000000")
    assert decision.targets.last == {"ETHUSDT": 1.0}
    assert [e.event_type for e in decision.events] == [SIGNAL, DECISION]


def test_the_same_decision_twice_gives_the_same_client_order_ids() -> None:
    assert decide(inputs()).orders == decide(inputs()).orders


def test_an_unchanged_target_held_by_the_book_sends_nothing() -> None:
    held = sleeve(position=D("2.5"))
    decision = decide(inputs(held, targets=Targets({"ETHUSDT": 1.0})))
    assert decision.orders == ()


def test_an_unchanged_target_the_book_does_not_hold_is_traded_again() -> None:
    decision = decide(inputs(sleeve(), targets=Targets({"ETHUSDT": 1.0})))
    assert [o.qty for o in decision.orders] == [D("2.5")]


def test_a_sleeve_stopped_out_waits_for_a_new_target() -> None:
    stopped = Targets({"ETHUSDT": 1.0}, frozenset({"ETHUSDT"}))
    assert decide(inputs(sleeve(), targets=stopped)).orders == ()
    flipped = decide(inputs(sleeve(held_target=-1.0), targets=stopped))
    assert [o.side for o in flipped.orders] == [Side.SELL]
    assert flipped.targets.stopped == frozenset()


def test_directive_and_breaker_multipliers_scale_the_target() -> None:
    decision = decide(inputs(directive_multipliers={"ETHUSDT": 0.5}, breaker_multiplier=0.5))
    (order,) = decision.orders
    assert order.qty == D("0.625")  # 2.5 x 0.5 x 0.5
    assert decision.multipliers == {"ETHUSDT": 0.25}
    assert decision.events[0].payload == {
        "held_target": 1.0,
        "multiplier": 0.25,
        "breaker_multiplier": 0.5,
        "target": 0.25,
    }


def test_a_smaller_target_on_the_same_side_is_a_reduce_only_sell() -> None:
    decision = decide(inputs(sleeve(held_target=0.5, position=D("2.5"))))
    (order,) = decision.orders
    assert (order.side, order.qty, order.reduce_only) == (Side.SELL, D("1.25"), True)


def test_halted_trading_records_a_denied_order_and_sends_nothing() -> None:
    decision = decide(inputs(trading_state=TradingState.HALTED))
    (order,) = decision.orders
    assert (order.status, order.reason) == (OrderStatus.DENIED, op.TRADING_HALTED)
    assert decision.to_send == ()
    assert [e.event_type for e in decision.events] == [SIGNAL, op.ORDER_DENIED, DECISION]
    (event,) = [e for e in decision.events if e.event_type == DECISION]
    assert (event.action, event.size_usd) == ("wait", 0.0)
    assert event.payload is not None and event.payload["denied"] == [op.TRADING_HALTED]


def test_the_preset_single_coin_cap_sizes_an_increase_down() -> None:
    caps = SizingLimits(1.0, 3.0, max_leverage=3.0, single_coin_cap_pct=10.0)
    decision = decide(inputs(sizing=caps, sizing_preset="conservative"))
    (order,) = decision.orders
    assert order.qty == D("0.5")  # 10 % of 10,000 at 2,000
    sized = [e for e in decision.events if e.event_type == op.SIZED_DOWN]
    assert [e.action for e in sized] == ["CAP_SINGLE_COIN"]


def test_the_leverage_cap_counts_the_orders_of_sleeves_decided_before() -> None:
    caps = SizingLimits(1.0, 3.0, max_leverage=1.0, single_coin_cap_pct=100.0)
    eth = sleeve(weight=0.8)
    sol = sleeve("SOLUSDT", weight=0.8, decision_price=D(100))
    decision = decide(inputs(eth, sol, sizing=caps, sizing_preset="balanced"))
    eth_order, sol_order = decision.orders
    assert eth_order.qty == D(4)  # 8,000 USD of ETH
    assert sol_order.qty == D(20)  # only 2,000 USD of leverage is left for SOL


def test_an_order_to_send_carries_its_pre_trade_cost() -> None:
    costs = CostSettings(
        taker_fee_bps=5.0,
        impact_coefficient_bps=5.0,
        latency_penalty_bps_per_10ms=0.1,
        safety_margin_bps=3.0,
    )
    decision = decide(inputs(costs=costs, latency_ms=20.0))
    (cost,) = [e for e in decision.events if e.event_type == PRE_TRADE_COST]
    assert cost.size_usd == 5000.0
    assert cost.payload is not None and cost.payload["latency_bps"] == 0.2
    assert cost.payload["client_order_id"] == decision.orders[0].client_order_id


def test_every_sleeve_gets_one_standard_decision_event_with_the_seed_fields() -> None:
    costs = CostSettings(5.0, 5.0, 0.1, 3.0)
    held = sleeve("SOLUSDT", decision_price=D(100), position=D(25), regime="RANGE")
    decision = decide(
        inputs(sleeve(regime="TREND"), held, costs=costs, targets=Targets(last={"SOLUSDT": 1.0}))
    )
    events = {e.symbol: e for e in decision.events if e.event_type == DECISION}
    buy, wait = events["ETHUSDT"], events["SOLUSDT"]
    (cost,) = [e for e in decision.events if e.event_type == PRE_TRADE_COST]
    assert (buy.action, buy.size_usd, buy.price, buy.regime) == ("buy", 5000.0, 2000.0, "TREND")
    assert buy.costs_bps == cost.costs_bps and buy.consensus_score == 1.0
    assert buy.engine_votes == {
        "tsmom": {"side": "buy", "strength": 1.0, "prob": None, "reliability": 1.0}
    }
    assert buy.payload is not None and buy.payload["venue"] == "paper"
    assert buy.payload["client_order_id"] == decision.orders[0].client_order_id
    assert (wait.action, wait.size_usd, wait.costs_bps, wait.regime) == ("wait", 0.0, None, "RANGE")
    assert buy.features_hash and wait.features_hash and buy.features_hash != wait.features_hash
    again = decide(
        inputs(sleeve(regime="TREND"), held, costs=costs, targets=Targets(last={"SOLUSDT": 1.0}))
    )
    assert [e.features_hash for e in again.events if e.event_type == DECISION] == [
        buy.features_hash,
        wait.features_hash,
    ]


def test_each_symbol_uses_its_own_quantity_step() -> None:
    coarse = PolicyLimits(qty_step=D(1))
    decision = decide(inputs(limits={"ETHUSDT": coarse}))
    assert [o.qty for o in decision.orders] == [D(2)]


def _stops(positions: dict[str, Position], open_stops: tuple[Order, ...] = ()) -> StopInputs:
    return StopInputs(
        run_id="paper-1",
        account="paper",
        bar_ts=T,
        close_ts=T,
        equity=D(10_000),
        positions=positions,
        open_stops=open_stops,
        closes={"ETHUSDT": D(2000)},
        dollar_volumes={"ETHUSDT": BIG},
        limits=PolicyLimits(),
    )


def test_a_long_position_gets_one_reduce_only_sell_stop_two_percent_below_its_entry() -> None:
    decision = protective_stops(_stops({"ETHUSDT": Position("ETHUSDT", D(1), D(2000))}))
    (stop,) = decision.place
    assert (stop.side, stop.type, stop.qty, stop.stop_price, stop.reduce_only) == (
        Side.SELL,
        OrderType.STOP_LIMIT,
        D(1),
        D("1960.00000000"),
        True,
    )
    assert decision.cancel == ()


def test_a_stop_of_the_right_size_is_kept_and_a_stale_one_is_canceled_when_flat() -> None:
    held = {"ETHUSDT": Position("ETHUSDT", D(1), D(2000))}
    (stop,) = protective_stops(_stops(held)).place
    kept = protective_stops(_stops(held, (replace(stop, status=OrderStatus.OPEN),)))
    assert (kept.place, kept.cancel) == ((), ())
    flat = protective_stops(_stops({}, (replace(stop, status=OrderStatus.OPEN),)))
    assert [o.client_order_id for o in flat.cancel] == [stop.client_order_id]
    assert flat.place == ()


REBALANCE = Rebalance(plan_id=7, limit_timeout_s=10.0)


def test_a_rebalance_resizes_a_drifted_sleeve_with_a_limit_at_the_decision_price() -> None:
    # held 2 ETH, worth 4,000 at 2,000; the sleeve's size is 0.5 x 1 x 10,000 / 2,000 = 2.5
    held = sleeve(position=D(2))
    decision = decide(inputs(held, targets=Targets({"ETHUSDT": 1.0}), rebalance=REBALANCE))
    (order,) = decision.orders
    assert (order.side, order.type, order.qty, order.price, order.time_in_force) == (
        Side.BUY,
        OrderType.LIMIT,
        D("0.5"),
        D(2000),
        TimeInForce.GTC,
    )
    assert order.client_order_id == client_order_id("paper-1", "ETHUSDT", T, "rebalance 7")
    assert decision.rebalance == {"ETHUSDT": "limit"}


def test_without_a_rebalance_the_same_drifted_sleeve_is_left_alone() -> None:
    held = sleeve(position=D(2))
    assert decide(inputs(held, targets=Targets({"ETHUSDT": 1.0}))).orders == ()


def test_a_rebalance_leaves_a_sleeve_within_one_step_and_a_stopped_one_alone() -> None:
    near = sleeve(position=D("2.4999995"))
    stopped = sleeve("SOLUSDT", decision_price=D(100), position=D(0))
    targets = Targets({"ETHUSDT": 1.0, "SOLUSDT": 1.0}, frozenset({"SOLUSDT"}))
    decision = decide(inputs(near, stopped, targets=targets, rebalance=REBALANCE))
    assert decision.orders == ()
    assert decision.rebalance == {"ETHUSDT": "in line", "SOLUSDT": "stopped"}


def test_a_sleeve_whose_signal_trades_is_resized_by_its_market_order() -> None:
    decision = decide(inputs(sleeve(), rebalance=REBALANCE))
    (order,) = decision.orders
    assert (order.type, order.qty) == (OrderType.MARKET, D("2.5"))
    assert decision.rebalance == {"ETHUSDT": "market"}


def test_a_sleeve_left_short_by_an_unfilled_order_is_resized_at_the_next_bar() -> None:
    short = Targets({"ETHUSDT": 1.0}, unfilled=frozenset({"ETHUSDT"}))
    decision = decide(inputs(sleeve(position=D("1.2")), targets=short))
    (order,) = decision.orders
    assert (order.side, order.type, order.qty) == (Side.BUY, OrderType.MARKET, D("1.3"))
    assert decision.targets.unfilled == frozenset()
    # a stopped-out sleeve still waits for a new target
    both = Targets({"ETHUSDT": 1.0}, frozenset({"ETHUSDT"}), frozenset({"ETHUSDT"}))
    assert decide(inputs(sleeve(position=D(0)), targets=both)).orders == ()
