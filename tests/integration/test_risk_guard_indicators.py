"""The live guard's indicators from what the run did: its fills, orders and start.

A hand-built 30-day run: 10,000 USD at the first bar's open (2025-01-01 00:00),
one snapshot per bar stamped at the bar's close, ETH 54 % / SOL 46 %. In the
last day ETH's order A fills in two parts and SOL's order B in one; ETH's
target halves at 700 h (a circuit breaker) without any order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from stagectl.config.home import Home
from stagectl.domain.types import Event, Fill, Order, OrderStatus, OrderType, Side
from stagectl.services.guard.live import LiveGuardRequest, LiveGuardResult
from stagectl.services.guard.live import run as guard
from stagectl.state import journal, ledger, orders
from stagectl.state.db import StateDB, open_state
from stagectl.state.equity import EquitySnapshot, record_snapshots
from stagectl.state.runs import Run, start_run

T0 = datetime(2025, 1, 1, tzinfo=UTC)
BARS = 30 * 24
HALVED_AT = 700
RUN = "paper-1"


def _hour(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def _snapshot(h: int) -> EquitySnapshot:
    """The close of bar ``h - 1``: flat 5,400 / 4,600 until ETH gains 250 at the end."""
    eth = 5_650.0 if h == BARS else 5_400.0
    target = 0.5 if h >= HALVED_AT else 1.0
    return EquitySnapshot(
        RUN,
        _hour(h),
        eth + 4_600.0,
        sleeves={
            "ETHUSDT": {"equity": eth, "position": target, "state": 1},
            "SOLUSDT": {"equity": 4_600.0, "position": -1.0, "state": -1},
        },
    )


def _order(db: StateDB, client_id: str, symbol: str, side: Side, price: str, at: float) -> None:
    orders.upsert_order(
        db,
        Order(
            client_order_id=client_id,
            symbol=symbol,
            side=side,
            type=OrderType.MARKET,
            qty=Decimal("1"),
            created_at=_hour(at),
            status=OrderStatus.FILLED,
            account=f"paper:{RUN}",
            run_id=RUN,
            price=Decimal(price),
        ),
    )


def _fill(
    trade: str, client_id: str, symbol: str, side: Side, qty: str, price: str, at: float
) -> Fill:
    return Fill(
        trade,
        _hour(at) + timedelta(seconds=5),
        symbol,
        side,
        Decimal(qty),
        Decimal(price),
        account=f"paper:{RUN}",
        source="paper",
        run_id=RUN,
        client_order_id=client_id,
    )


def _seed(state: Path, *, started: bool = True) -> None:
    with open_state(state) as db:
        start_run(db, Run(RUN, "run-live", "paper", T0))
        if started:
            payload = {"initial_equity": "10000.0", "start": T0.isoformat()}
            journal.record_event(db, Event(T0, "RUN_STARTED", run_id=RUN, payload=payload))
        record_snapshots(db, [_snapshot(h) for h in range(1, BARS + 1)])
        _order(db, "C", "ETHUSDT", Side.BUY, "2000", 650)
        _order(db, "A", "ETHUSDT", Side.BUY, "2000", 710)
        _order(db, "B", "SOLUSDT", Side.SELL, "100", 715)
        ledger.insert_fills(
            db,
            [
                _fill("c1", "C", "ETHUSDT", Side.BUY, "0.1", "2000", 650),
                _fill("a1", "A", "ETHUSDT", Side.BUY, "1", "2001", 710),  # 5 bps
                _fill("a2", "A", "ETHUSDT", Side.BUY, "0.5", "2004", 710),  # 20 bps
                _fill("b1", "B", "SOLUSDT", Side.SELL, "10", "99.9", 715),  # 10 bps
            ],
        )


def _at(home: Home, h: float) -> LiveGuardResult:
    return guard(LiveGuardRequest(now=_hour(h), dry_run=True), home=home, env={})


@pytest.fixture
def seeded(tmp_path: Path) -> Home:
    home = Home(root=tmp_path)
    _seed(home.state_path)
    return home


def test_slippage_is_the_mean_over_the_fills_not_over_the_hours(seeded: Home) -> None:
    indicators = _at(seeded, BARS).decision["indicators"]
    # (5 + 20 + 10) / 3; the mean of the hours' means would be (12.5 + 10) / 2
    assert indicators["realized_slippage_bps"] == pytest.approx(35.0 / 3.0)
