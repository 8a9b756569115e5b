"""Orders that fill in parts, in run-live --live through real ccxt against the loopback
Binance USD-M simulator (its ``inject_partial_fill`` fills only part of an order on arrival).

A run started at 2026-03-02 16:00 buys SOL at 17:00 (ETH's target is 0) and holds that
target for hours, so the SOL order of the next bar is the loop reacting to a fill, not to
a signal. The rebalance test runs from T0 (00:00) and reviews the book at 03:00.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.home import Home, defaults_dir
from stagectl.domain.types import Order, OrderStatus, OrderType, Side
from stagectl.services.guard import weekly
from stagectl.services.live import run as service
from stagectl.state import rebalance as plans
from stagectl.state.db import open_state
from stagectl.state.equity import last_snapshot_ts, snapshots
from stagectl.state.journal import events
from stagectl.state.orders import decided_at
from stagectl.state.parents import run_parents
from tests.exchange_sim import ExchangeSim
from tests.integration.test_run_live_ccxt import (
    HOUR,
    T0,
    SimClock,
    _assert_consistent,
    fresh_account,
    loopback_sim,
    sim_broker,
)


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[ExchangeSim]:
    with loopback_sim() as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: ExchangeSim) -> ExchangeSim:
    return fresh_account(shared_sim)


LATER = 16 * HOUR


def _home(root: Path, *, tolerance_pct: float = 0.0) -> Home:
    (root / "config").mkdir(parents=True)
    packaged = (defaults_dir() / "risk_guard_alt_ensemble.yaml").read_text()
    tight = packaged.replace("tolerance_pct: 5 ", f"tolerance_pct: {tolerance_pct:g} ")
    (root / "config" / "risk_guard_alt_ensemble.yaml").write_text(tight)
    return Home(root=root)


def _stop_after(bars: int) -> Callable[[], bool]:
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > bars

    return stop


def _live(sim: ExchangeSim, home: Home, broker: Any, bars: int | None = None) -> Any:
    request = service.RunLiveRequest(
        live=True, end=T0 + 24 * HOUR, position_limits=False, breakers=False, guard=False
    )
    return service.run(
        request if bars is not None else service.RunLiveRequest(live=True),
        home=home,
        live_broker=broker,
        clock=SimClock(sim),
        should_stop=_stop_after(bars) if bars is not None else lambda: False,
    )


class ExpiresPartialFills:
    """The exchange, except that it expires what an order did not fill on arrival (as
    Binance ends a market order EXPIRED in part when its price protection trips)."""

    def __init__(self, inner: Any, sim: ExchangeSim) -> None:
        self._inner, self._sim = inner, sim

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def place(self, order: Order) -> Order:
        placed = self._inner.place(order)
        if placed.status == OrderStatus.PARTIALLY_FILLED:
            engine = self._sim.engine
            with engine.lock:
                venue = engine.find(order.symbol, {"origClientOrderId": order.client_order_id})
                venue.status = "EXPIRED"
        return placed


def test_a_market_order_left_partly_unfilled_is_resized_at_the_next_bar(
    sim: ExchangeSim, tmp_path: Path
) -> None:
    home = _home(tmp_path / "expired")
    sim.advance(ms=int(LATER.total_seconds() * 1000))
    sim.inject_partial_fill(Decimal("0.4"))
    result = _live(sim, home, ExpiresPartialFills(sim_broker(sim.base_url), sim), bars=3)
    assert result.bars == 3
    with open_state(home.state_path) as db:
        (entry,) = decided_at(db, result.run_id, T0 + LATER + HOUR)
        (resize,) = decided_at(db, result.run_id, T0 + LATER + 2 * HOUR)
        # the router may work an order as a parent whose first slice is the bar's order
        worked = {p.created_at: p for p in run_parents(db, result.run_id)}
        (remainder,) = events(db, run_id=result.run_id, event_type="ORDER_REMAINDER")
        rows = {s.ts: s.sleeves["SOLUSDT"] for s in snapshots(db, result.run_id)}
    assert (entry.symbol, entry.side, entry.status) == ("SOLUSDT", Side.BUY, OrderStatus.EXPIRED)
    unfilled = entry.qty - entry.filled_qty
    assert entry.filled_qty > 0 and unfilled > 0
    assert remainder.payload is not None and (
        remainder.payload["client_order_id"],
        Decimal(remainder.payload["unfilled_qty"]),
    ) == (entry.client_order_id, unfilled)
    assert rows[T0 + LATER + 2 * HOUR]["unfilled"] and not rows[T0 + LATER + 3 * HOUR]["unfilled"]
    # the next bar buys what is missing, at the new equity and price: never the whole again
    assert (resize.symbol, resize.side, resize.type) == ("SOLUSDT", Side.BUY, OrderType.MARKET)
    entered = worked[entry.created_at].qty if entry.created_at in worked else entry.qty
    resized = worked[resize.created_at].qty if resize.created_at in worked else resize.qty
    missing = entered - entry.filled_qty  # the parent's unsent slices were cancelled
    assert abs(resized - missing) / missing < Decimal("0.05")
    _assert_consistent(sim, home, result.run_id)


def test_a_live_rebalance_limit_filled_in_part_sends_only_the_rest_at_market(
    sim: ExchangeSim, tmp_path: Path
) -> None:
    home = _home(tmp_path / "rebalance")
    first = _live(sim, home, sim_broker(sim.base_url), bars=3)
    with open_state(home.state_path) as db:
        as_of = last_snapshot_ts(db, first.run_id)
    assert as_of == T0 + 3 * HOUR
    weekly.run(weekly.WeeklyReviewRequest(now=as_of, run_id=first.run_id, mode="live"), home=home)
    sim.inject_partial_fill(Decimal("0.4"))  # the limit fills 40 % when it arrives
    resumed = _live(sim, home, sim_broker(sim.base_url))
    assert resumed.run_id == first.run_id and resumed.status == "completed"
    with open_state(home.state_path) as db:
        (plan,) = plans.plans(db, run_id=first.run_id)
        limit, market = decided_at(db, first.run_id, as_of)
    assert (plan.state, plan.bar_ts) == ("executed", as_of)
    assert (limit.type, limit.status) == (OrderType.LIMIT, OrderStatus.CANCELED)
    assert limit.filled_qty == (limit.qty * Decimal("0.4") // Decimal("0.001")) * Decimal("0.001")
    assert (market.type, market.status, market.side) == (
        OrderType.MARKET,
        OrderStatus.FILLED,
        limit.side,
    )
    assert market.qty == limit.qty - limit.filled_qty
    cost = (plan.cost or {})["sleeves"]["SOLUSDT"]
    assert (Decimal(cost["limit_filled_qty"]), Decimal(cost["market_filled_qty"])) == (
        limit.filled_qty,
        market.qty,
    )
    exchange = [
        o
        for o in sim.orders
        if o.client_order_id in (limit.client_order_id, market.client_order_id)
    ]
    assert sorted((o.type, o.status) for o in exchange) == [
        ("LIMIT", "CANCELED"),
        ("MARKET", "FILLED"),
    ]
    _assert_consistent(sim, home, first.run_id)
    shutil.rmtree(home.root)
