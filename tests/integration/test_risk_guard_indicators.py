"""The live guard's indicators from what the run did: its fills, orders and start.

A hand-built 30-day run: 10,000 USD at the first bar's open (2025-01-01 00:00),
one snapshot per bar stamped at the bar's close, ETH 54 % / SOL 46 %. In the
last day ETH's order A fills in two parts and SOL's order B in one; ETH's
target halves at 700 h (a circuit breaker) without any order. Then a real
30-day paper replay through run-live.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stagectl.config.home import Home
from stagectl.domain.types import Event, Fill, Order, OrderStatus, OrderType, Side
from stagectl.services.guard.live import LiveGuardRequest, LiveGuardResult
from stagectl.services.guard.live import run as guard
from stagectl.services.live import run as run_live
from stagectl.state import journal, ledger, orders
from stagectl.state.db import StateDB, open_state
from stagectl.state.equity import EquitySnapshot, record_snapshots, snapshots
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


def test_turnover_is_the_traded_notional_of_the_last_24_hours_over_equity(seeded: Home) -> None:
    indicators = _at(seeded, BARS).decision["indicators"]
    # (1 x 2001 + 0.5 x 2004 + 10 x 99.9) / 10,000 x 100; the fill at 650 h is older
    assert indicators["daily_turnover_pct"] == pytest.approx((2001 + 1002 + 999) / 100)


def test_trades_count_each_filled_order_once_per_sleeve(seeded: Home) -> None:
    indicators = _at(seeded, BARS).decision["indicators"]
    assert indicators["trades_24h:ETHUSDT"] == 1.0  # order A, filled in two parts
    assert indicators["trades_24h:SOLUSDT"] == 1.0


def test_slippage_is_the_mean_over_the_fills_not_over_the_hours(seeded: Home) -> None:
    indicators = _at(seeded, BARS).decision["indicators"]
    # (5 + 20 + 10) / 3; the mean of the hours' means would be (12.5 + 10) / 2
    assert indicators["realized_slippage_bps"] == pytest.approx(35.0 / 3.0)


def test_a_breaker_halving_without_a_fill_adds_no_turnover_and_no_trade(seeded: Home) -> None:
    # the window (681 h, 705 h] holds the halving of ETH's target at 700 h and no fill
    indicators = _at(seeded, 705).decision["indicators"]
    assert indicators["daily_turnover_pct"] == 0.0
    assert indicators["trades_24h:ETHUSDT"] == 0.0
    assert indicators["realized_slippage_bps"] is None


def test_the_initial_equity_makes_the_30_day_figures_defined_on_day_30(seeded: Home) -> None:
    result = _at(seeded, BARS)
    indicators = result.decision["indicators"]
    assert indicators["return_30d_pct"] == pytest.approx(2.5)  # 10,250 / 10,000 - 1
    # ETH: (5,650 - 0.54 x 10,000) / 10,000; SOL unchanged from 0.46 x 10,000
    assert indicators["sleeve_contribution_30d_pct:ETHUSDT"] == pytest.approx(2.5)
    assert indicators["sleeve_contribution_30d_pct:SOLUSDT"] == pytest.approx(0.0)
    assert result.data["run_start"] == T0
    assert result.data["initial_equity"] == 10_000.0
    assert (result.data["hours"], result.data["missing_hours"]) == (BARS + 1, 0)


def test_a_run_without_a_recorded_start_has_no_30_day_figures_on_day_30(tmp_path: Path) -> None:
    home = Home(root=tmp_path)
    _seed(home.state_path, started=False)
    result = _at(home, BARS)
    assert result.decision["indicators"]["return_30d_pct"] is None
    assert result.data["run_start"] is None


@pytest.fixture(scope="module")
def paper_month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, str]:
    root = tmp_path_factory.mktemp("guard-paper") / "home"
    root.mkdir()
    home = Home(root=root)
    request = run_live.RunLiveRequest(
        start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 3, 30, 23, tzinfo=UTC)
    )
    result = run_live.run(request, home=home)
    assert result.status == "completed" and result.bars == 720
    return home, result.run_id


def _expected(db: StateDB, run_id: str, end: datetime) -> dict[str, Any]:
    """The last day's figures straight from the state's fills, orders and snapshots."""
    rows = snapshots(db, run_id)
    recent = [f for f in ledger.fills(db, run_id=run_id) if end - timedelta(hours=24) < f.ts <= end]

    def equity_at(ts: datetime) -> float:
        return [s.equity for s in rows if s.ts <= ts][-1]

    slips = []
    for fill in recent:
        order = orders.get_order(db, fill.client_order_id or "")
        assert order is not None and order.price is not None
        signal = float(order.price)
        slips.append(fill.side.sign * (float(fill.price) - signal) / signal * 1e4)
    return {
        "rows": rows,
        "turnover": sum(float(f.qty * f.price) / equity_at(f.ts) for f in recent) * 100,
        "slippage": sum(slips) / len(slips) if slips else math.nan,
        "trades": {
            s: len({f.client_order_id for f in recent if f.symbol == s})
            for s in ("ETHUSDT", "SOLUSDT")
        },
    }


def test_a_thirty_day_paper_run_has_its_30_day_figures_at_its_end(
    paper_month: tuple[Home, str],
) -> None:
    home, run_id = paper_month
    with open_state(home.state_path) as db:
        rows = snapshots(db, run_id)
    end = rows[-1].ts
    assert end - (rows[0].ts - timedelta(hours=1)) == timedelta(days=30)
    indicators = guard(LiveGuardRequest(now=end, dry_run=True), home=home, env={}).decision[
        "indicators"
    ]
    assert indicators["return_30d_pct"] == pytest.approx((rows[-1].equity / 10_000.0 - 1) * 100)
    for sleeve, weight in (("ETHUSDT", 0.54), ("SOLUSDT", 0.46)):
        pnl = rows[-1].sleeves[sleeve]["equity"] - weight * 10_000.0
        assert indicators[f"sleeve_contribution_30d_pct:{sleeve}"] == pytest.approx(pnl / 100.0)


def test_a_paper_runs_turnover_trades_and_slippage_come_from_its_fills(
    paper_month: tuple[Home, str],
) -> None:
    home, run_id = paper_month
    with open_state(home.state_path) as db:
        stamps = [f.ts for f in ledger.fills(db, run_id=run_id)]
        # the busiest day: the 24 h ending at the fill with the most fills before it
        end = max(stamps, key=lambda t: sum(t - timedelta(hours=24) < s <= t for s in stamps))
        expected = _expected(db, run_id, end)
    assert sum(expected["trades"].values()) > 2
    indicators = guard(LiveGuardRequest(now=end, dry_run=True), home=home, env={}).decision[
        "indicators"
    ]
    assert indicators["daily_turnover_pct"] == pytest.approx(expected["turnover"])
    assert indicators["realized_slippage_bps"] == pytest.approx(expected["slippage"])
    for sleeve, count in expected["trades"].items():
        assert indicators[f"trades_24h:{sleeve}"] == count
