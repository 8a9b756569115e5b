"""Pre-trade guards: price band, crossed book, inventory limits, cancel-rate discipline."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from stagectl.domain import guards
from stagectl.domain.guards import (
    CancelRateLimiter,
    check_crossed_book,
    check_inventory,
    check_price_band,
    check_quote_crosses,
)


def test_price_inside_band_passes_and_band_edge_is_allowed() -> None:
    assert check_price_band(D("100.4"), D("100"), D(50)) is None
    assert check_price_band(D("100.5"), D("100"), D(50)) is None


def test_price_outside_band_is_denied_with_distance() -> None:
    denial = check_price_band(D("99.4"), D("100"), D(50))
    assert denial is not None
    assert denial.code == guards.PRICE_BAND
    assert "60.00 bps" in denial.reason


def test_missing_mid_is_denied() -> None:
    denial = check_price_band(D("1"), D("0"), D(50))
    assert denial is not None and denial.code == guards.NO_MARKET_DATA


def test_crossed_and_locked_books_are_denied() -> None:
    assert check_crossed_book(D("100"), D("100.01")) is None
    for bid, ask in [(D("100.02"), D("100.01")), (D("100"), D("100"))]:
        denial = check_crossed_book(bid, ask)
        assert denial is not None and denial.code == guards.CROSSED_BOOK


def test_quote_that_would_take_liquidity_is_denied() -> None:
    bid, ask = D("99.9"), D("100.1")
    assert check_quote_crosses("buy", D("100.0"), bid, ask) is None
    assert check_quote_crosses("buy", D("100.1"), bid, ask).code == guards.QUOTE_CROSSES_BOOK  # type: ignore[union-attr]
    assert check_quote_crosses("sell", D("99.9"), bid, ask).code == guards.QUOTE_CROSSES_BOOK  # type: ignore[union-attr]


def test_inventory_units_limit() -> None:
    limits = {"max_position_units": D("0.01"), "max_inventory_notional": D(1000)}
    assert check_inventory(D("0.005"), "buy", D("0.005"), D(150), **limits) is None
    denial = check_inventory(D("0.005"), "buy", D("0.006"), D(150), **limits)
    assert denial is not None and denial.code == guards.INVENTORY_UNITS


def test_inventory_notional_limit() -> None:
    limits = {"max_position_units": D(100), "max_inventory_notional": D(1000)}
    denial = check_inventory(D(-6), "sell", D(1), D(150), **limits)
    assert denial is not None and denial.code == guards.INVENTORY_NOTIONAL


def test_reducing_order_is_allowed_beyond_the_limits() -> None:
    limits = {"max_position_units": D("0.01"), "max_inventory_notional": D(1)}
    assert check_inventory(D("0.5"), "sell", D("0.1"), D(150), **limits) is None
    assert check_inventory(D("-0.5"), "buy", D("0.2"), D(150), **limits) is None


def test_cancel_limiter_throttles_within_window_and_recovers() -> None:
    limiter = CancelRateLimiter(max_cancels=3, window_s=60)
    for t in (0.0, 10.0, 20.0):
        assert limiter.allow(t) is None
        limiter.record(t)
    denial = limiter.allow(30.0)
    assert denial is not None and denial.code == guards.CANCEL_RATE
    assert "next allowed in 30.000 s" in denial.reason
    assert limiter.allow(59.999) is not None
    assert limiter.allow(60.0) is None  # the cancel at 0 leaves the window (t - 60, t]
    assert limiter.count(60.0) == 2


def test_cancel_limiter_refuses_time_going_backwards() -> None:
    limiter = CancelRateLimiter(max_cancels=1)
    limiter.record(5.0)
    with pytest.raises(ValueError, match="backwards"):
        limiter.allow(4.0)


def test_zero_cancel_budget_denies_everything() -> None:
    assert CancelRateLimiter(max_cancels=0).allow(0.0) is not None
