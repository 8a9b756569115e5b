"""The seed-002 order policy: TIF, trading state, hard caps, leverage, impact, stops."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from stagectl.domain import order_policy as op
from stagectl.domain.guards import Denial
from stagectl.domain.order_policy import (
    MarketContext,
    PolicyLimits,
    SymbolCap,
    apply_policy,
    stop_limit_for,
)
from stagectl.domain.types import Order, TradingState
from tests.orders import CREATED, new_order

BIG = D(10) ** 12
ETH_CAP = {"ETHUSDT": SymbolCap(D("0.1"), D(300))}


def market(
    price: str = "2000",
    position: str = "0",
    equity: D = BIG,
    volume: D = BIG,
    other: str = "0",
    state: TradingState = TradingState.ACTIVE,
) -> MarketContext:
    return MarketContext(D(price), volume, D(position), equity, D(other), state)


def order(
    side: str = "buy",
    qty: str = "1",
    kind: str = "MARKET",
    *,
    time_in_force: str | None = None,
    limit_price: D | None = None,
    stop_price: D | None = None,
    reduce_only: bool = False,
) -> Order:
    """An order for the policy; a MARKET one has no time in force unless given one."""
    return new_order(
        "ETHUSDT",
        side,
        kind.lower(),
        D(qty),
        "sc-policy",
        limit_price,
        time_in_force=time_in_force,
        stop_price=stop_price,
        reduce_only=reduce_only,
    )


def test_gtd_limit_is_denied_as_gated_with_a_coded_reason() -> None:
    result, events = apply_policy(
        order(kind="LIMIT", time_in_force="GTD", limit_price=D(1990)), market(), PolicyLimits()
    )
    assert isinstance(result, Denial)
    assert result.code == op.TIF_GATED
    assert "GTC, IOC" in result.reason
    assert [e.event_type for e in events] == [op.ORDER_DENIED]


def test_gtc_and_ioc_limits_and_gtc_stop_limits_are_allowed_fok_is_not() -> None:
    for tif in ("GTC", "IOC"):
        result, _ = apply_policy(
            order(kind="LIMIT", time_in_force=tif, limit_price=D(1990)), market(), PolicyLimits()
        )
        assert isinstance(result, Order)
    stop = order(
        "sell", kind="STOP_LIMIT", time_in_force="GTC", limit_price=D(1958), stop_price=D(1960)
    )
    assert isinstance(apply_policy(stop, market(position="1"), PolicyLimits())[0], Order)
    fok, _ = apply_policy(
        order(kind="LIMIT", time_in_force="FOK", limit_price=D(1990)), market(), PolicyLimits()
    )
    assert isinstance(fok, Denial) and fok.code == op.TIF_NOT_ALLOWED


def test_market_order_with_a_time_in_force_is_refused() -> None:
    result, _ = apply_policy(order(time_in_force="GTC"), market(), PolicyLimits())
    assert isinstance(result, Denial) and result.code == op.TIF_NOT_ALLOWED


def test_halted_denies_every_order_even_a_reducing_one() -> None:
    result, _ = apply_policy(
        order("sell"), market(position="1", state=TradingState.HALTED), PolicyLimits()
    )
    assert isinstance(result, Denial) and result.code == op.TRADING_HALTED


def test_reduce_only_state_denies_increase_and_cuts_a_flip_to_the_position() -> None:
    limits = PolicyLimits()
    grow, _ = apply_policy(
        order("buy"), market(position="1", state=TradingState.REDUCE_ONLY), limits
    )
    assert isinstance(grow, Denial) and grow.code == op.REDUCE_ONLY
    flip, events = apply_policy(
        order("sell", "3"), market(position="1", state=TradingState.REDUCE_ONLY), limits
    )
    assert isinstance(flip, Order) and flip.qty == D(1)
    assert [(e.event_type, e.code, e.original_qty, e.adjusted_qty) for e in events] == [
        (op.SIZED_DOWN, op.REDUCE_ONLY, D(3), D(1))
    ]


def test_reduce_only_order_on_a_flat_book_is_denied() -> None:
    result, _ = apply_policy(order("sell", reduce_only=True), market(), PolicyLimits())
    assert isinstance(result, Denial) and result.code == op.REDUCE_ONLY


def test_position_cap_sizes_down_to_max_size_then_max_notional() -> None:
    limits = PolicyLimits(symbol_caps=ETH_CAP)
    # at 2000 the notional cap is 300 / 2000 = 0.15 units, so max_size 0.1 binds
    result, events = apply_policy(order("buy", "1"), market("2000"), limits)
    assert isinstance(result, Order) and result.qty == D("0.1")
    assert events[0].code == op.POSITION_LIMIT and events[0].original_qty == D(1)
    # at 4000 the notional cap binds: 300 / 4000 = 0.075
    result, _ = apply_policy(order("buy", "1"), market("4000"), limits)
    assert isinstance(result, Order) and result.qty == D("0.075")


def test_flip_is_capped_on_the_far_side_and_a_full_book_is_denied() -> None:
    limits = PolicyLimits(symbol_caps=ETH_CAP)
    flip, _ = apply_policy(order("sell", "1"), market("2000", position="0.05"), limits)
    assert isinstance(flip, Order) and flip.qty == D("0.15")
    full, events = apply_policy(order("buy", "0.01"), market("2000", position="0.1"), limits)
    assert isinstance(full, Denial) and full.code == op.POSITION_LIMIT
    assert events[0].event_type == op.ORDER_DENIED


def test_reducing_a_position_beyond_its_cap_is_always_allowed() -> None:
    limits = PolicyLimits(symbol_caps=ETH_CAP, leverage_limit=D("0.0001"))
    result, events = apply_policy(order("sell", "0.05"), market("2000", position="0.2"), limits)
    assert isinstance(result, Order) and result.qty == D("0.05") and not events


def test_leverage_limit_counts_the_other_symbols() -> None:
    # equity 1000 at 1x, 600 already in other symbols: 400 / 100 = 4 units of headroom
    result, events = apply_policy(
        order("buy", "10"), market("100", equity=D(1000), other="600"), PolicyLimits()
    )
    assert isinstance(result, Order) and result.qty == D(4)
    assert events[0].code == op.LEVERAGE_LIMIT
    none_left, _ = apply_policy(
        order("buy", "1"), market("100", equity=D(1000), other="1000"), PolicyLimits()
    )
    assert isinstance(none_left, Denial) and none_left.code == op.LEVERAGE_LIMIT


def test_impact_above_50_bps_sizes_down_to_the_largest_size_within_it() -> None:
    # 4000 units at 100 = 400 000 USD on a 1000 USD bar: sqrt(400) * 5 = 100 bps.
    # Largest within 50 bps: 1000 * (50 / 5)^2 / 100 = 1000 units (sqrt(100) * 5 = 50 bps).
    result, events = apply_policy(
        order("buy", "4000"), market("100", volume=D(1000)), PolicyLimits()
    )
    assert isinstance(result, Order) and result.qty == D(1000)
    (event,) = events
    assert (event.event_type, event.code) == (op.SIZED_DOWN, op.MAX_IMPACT)
    assert (event.original_qty, event.adjusted_qty) == (D(4000), D(1000))
    assert event.details["impact_bps_before"] == 100.0
    assert event.details["impact_bps_after"] == 50.0


def test_impact_at_the_limit_passes_unchanged() -> None:
    result, events = apply_policy(
        order("buy", "1000"), market("100", volume=D(1000)), PolicyLimits()
    )
    assert isinstance(result, Order) and result.qty == D(1000) and not events


def test_no_volume_is_denied_and_dust_rounds_to_a_denial() -> None:
    dry, _ = apply_policy(order(), market(volume=D(0)), PolicyLimits())
    assert isinstance(dry, Denial) and dry.code == op.NO_LIQUIDITY
    dust, _ = apply_policy(order(qty="0.0000004"), market(), PolicyLimits())
    assert isinstance(dust, Denial) and dust.code == op.BELOW_MIN_QTY


def test_stop_limit_is_two_percent_from_entry_reduce_only_gtc() -> None:
    ids = {"client_order_id": "sc-stop", "created_at": CREATED}
    long_stop = stop_limit_for("ETHUSDT", D(1), D(2000), PolicyLimits(), **ids)
    assert (long_stop.side, long_stop.stop_price, long_stop.price) == (
        "sell",
        D("1960.00000000"),
        D("1958.04000000"),
    )
    assert long_stop.reduce_only and long_stop.time_in_force == "GTC"
    short_stop = stop_limit_for("ETHUSDT", D("-0.5"), D(2000), PolicyLimits(), **ids)
    assert (short_stop.side, short_stop.qty, short_stop.stop_price, short_stop.price) == (
        "buy",
        D("0.5"),
        D("2040.00000000"),
        D("2042.04000000"),
    )


@given(
    position=st.decimals(min_value=-1, max_value=1, places=3),
    qty=st.decimals(min_value="0.001", max_value=5, places=3),
    side=st.sampled_from(["buy", "sell"]),
)
def test_an_increasing_order_never_leaves_the_position_beyond_its_cap(
    position: D, qty: D, side: str
) -> None:
    limits = PolicyLimits(symbol_caps=ETH_CAP)
    result, _ = apply_policy(order(side, str(qty)), market("2000", position=str(position)), limits)
    if isinstance(result, Order):
        assert result.qty <= qty
        after = position + (result.qty if side == "buy" else -result.qty)
        assert abs(after) <= max(abs(position), D("0.1"))
