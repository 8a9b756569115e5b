"""A weekly REBALANCE executed by run-live on the paper broker (seed 003 §3.1).

Early February 2026 both sleeves are short the whole window, so a rebalance re-sizes both.
The paper run stops after 24 bars; the weekly review (tolerance 0 pp, so any drift is a
REBALANCE; the packaged 5 pp gives SKIP) is recorded as of the last snapshot; the resumed
run executes it at its next bar, 2026-02-02 00:00. There, SOL's sell limit at the decision
price is marketable at the open (filled as taker at the limit) and ETH's is not: it is
cancelled and its whole quantity goes at market.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from stagectl.config.home import Home, defaults_dir
from stagectl.domain.types import OrderType, Side
from stagectl.exchange.paper import PaperBroker
from stagectl.services.guard import weekly
from stagectl.services.live import run as service
from stagectl.state import rebalance as plans
from stagectl.state.db import open_state
from stagectl.state.equity import last_snapshot_ts, snapshots
from stagectl.state.journal import events
from stagectl.state.ledger import fills
from stagectl.state.orders import decided_at, run_orders

START, END = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, 23, tzinfo=UTC)
BEFORE_REVIEW = 24
REBALANCE_BAR = START + timedelta(hours=BEFORE_REVIEW)
HOUR = timedelta(hours=1)


def _home(root: Path, tolerance_pct: float | None = 0.0) -> Home:
    (root / "config").mkdir(parents=True)
    if tolerance_pct is not None:
        packaged = (defaults_dir() / "risk_guard_alt_ensemble.yaml").read_text()
        tight = packaged.replace("tolerance_pct: 5 ", f"tolerance_pct: {tolerance_pct:g} ")
        assert tight != packaged
        (root / "config" / "risk_guard_alt_ensemble.yaml").write_text(tight)
    return Home(root=root)


def _request() -> service.RunLiveRequest:
    # full size (no stage3 caps), no breakers, no in-loop guard: the rebalance alone moves
    return service.RunLiveRequest(
        start=START, end=END, position_limits=False, breakers=False, guard=False
    )


def _first_day(home: Home, broker_factory: Any = None) -> str:
    """Run the first 24 bars, then the weekly review as of the last snapshot."""
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= BEFORE_REVIEW

    first = service.run(_request(), home=home, should_stop=stop, broker_factory=broker_factory)
    assert (first.status, first.bars) == ("aborted", BEFORE_REVIEW)
    with open_state(home.state_path) as db:
        as_of = last_snapshot_ts(db, first.run_id)
    assert as_of == REBALANCE_BAR
    weekly.run(weekly.WeeklyReviewRequest(now=as_of, run_id=first.run_id), home=home)
    return first.run_id


def _outcome(home: Home, run_id: str) -> dict[str, Any]:
    with open_state(home.state_path) as db:
        return {
            "equity": [(s.ts, s.equity) for s in snapshots(db, run_id)],
            "orders": [
                (o.client_order_id, o.type, o.qty, o.status, o.filled_qty)
                for o in run_orders(db, run_id)
            ],
            "fills": [(f.trade_id, f.qty, f.price, f.fee) for f in fills(db, run_id=run_id)],
            "kinds": Counter(e.event_type for e in events(db, run_id=run_id)),
        }


@pytest.fixture(scope="module")
def rebalanced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, str]:
    home = _home(tmp_path_factory.mktemp("rebalance") / "home")
    run_id = _first_day(home)
    resumed = service.run(service.RunLiveRequest(), home=home)
    assert resumed.run_id == run_id and resumed.status == "completed"
    return home, run_id


def test_the_recorded_rebalance_is_executed_at_the_next_bar_with_limits_then_market(
    rebalanced: tuple[Home, str],
) -> None:
    home, run_id = rebalanced
    with open_state(home.state_path) as db:
        (plan,) = plans.plans(db, run_id=run_id)
        bar_orders = decided_at(db, run_id, REBALANCE_BAR)
        kinds = [e.event_type for e in events(db, run_id=run_id, start=REBALANCE_BAR)]
    assert (plan.decision, plan.state, plan.as_of, plan.bar_ts) == (
        "REBALANCE",
        "executed",
        REBALANCE_BAR,
        REBALANCE_BAR,
    )
    sleeves = (plan.execution or {})["sleeves"]
    assert {s: row["how"] for s, row in sleeves.items()} == {
        "ETHUSDT": "limit",
        "SOLUSDT": "limit",
    }
    limits = {o.symbol: o for o in bar_orders if o.type == OrderType.LIMIT}
    markets = [o for o in bar_orders if o.type == OrderType.MARKET]
    for symbol, order in limits.items():
        # a sell limit at the decision price (the close of the bar before), GTC
        assert order.price == Decimal(sleeves[symbol]["decision_price"])
        assert (order.side, order.time_in_force, order.client_order_id) == (
            Side.SELL,
            "GTC",
            sleeves[symbol]["client_order_id"],
        )
    assert (limits["SOLUSDT"].status, limits["SOLUSDT"].filled_qty) == (
        "filled",
        limits["SOLUSDT"].qty,
    )
    assert (limits["ETHUSDT"].status, limits["ETHUSDT"].filled_qty) == ("canceled", 0)
    (fallback,) = markets
    assert fallback.client_order_id == sleeves["ETHUSDT"]["fallback_client_order_id"]
    assert (fallback.symbol, fallback.side, fallback.qty, fallback.status) == (
        "ETHUSDT",
        Side.SELL,
        limits["ETHUSDT"].qty,
        "filled",
    )
    assert kinds.count("REBALANCE_STARTED") == kinds.count("REBALANCE_FALLBACK") == 1
    assert kinds.count("REBALANCE_COST") == 1 and "ORDER_REMAINDER" not in kinds


def test_the_real_cost_is_logged_against_the_pre_trade_estimate(
    rebalanced: tuple[Home, str],
) -> None:
    home, run_id = rebalanced
    with open_state(home.state_path) as db:
        (plan,) = plans.plans(db, run_id=run_id)
        (cost_event,) = events(db, run_id=run_id, event_type="REBALANCE_COST")
        estimates = {
            (e.payload or {})["client_order_id"]: e.costs_bps
            for e in events(db, run_id=run_id, event_type="PRE_TRADE_COST", start=REBALANCE_BAR)
        }
        bar_fills = fills(db, run_id=run_id, start=REBALANCE_BAR, end=REBALANCE_BAR + HOUR)
    assert cost_event.ts == REBALANCE_BAR + HOUR
    cost = plan.cost or {}
    assert cost_event.payload is not None and cost_event.payload["cost_usd"] == cost["cost_usd"]
    sleeves = (plan.execution or {})["sleeves"]
    total = Decimal(0)
    for symbol, row in cost["sleeves"].items():
        decided = sleeves[symbol]
        ids = {decided["client_order_id"], decided["fallback_client_order_id"]}
        own = [f for f in bar_fills if f.client_order_id in ids]
        decision = Decimal(decided["decision_price"])
        fees = sum((f.fee for f in own), Decimal(0))
        # sells: a fill below the decision price is slippage paid
        slippage = sum(((decision - f.price) * f.qty for f in own), Decimal(0))
        notional = sum((f.qty * f.price for f in own), Decimal(0))
        assert Decimal(row["cost_usd"]) == fees + slippage
        assert row["cost_bps"] == pytest.approx(float((fees + slippage) / notional) * 1e4, abs=1e-5)
        assert row["estimate_bps"] == estimates[decided["client_order_id"]]
        total += fees + slippage
    # SOL filled at its limit (taker fee 5 bps, no slippage); ETH at market: 5 + 3 bps and
    # the open one tick below the decision price
    assert cost["sleeves"]["SOLUSDT"]["cost_bps"] == pytest.approx(5.0, abs=1e-4)
    assert cost["sleeves"]["ETHUSDT"]["cost_bps"] > 8.0
    assert Decimal(cost["cost_usd"]) == total
    assert cost["review_estimate_usd"] == plan.plan["estimated_cost"]


def test_the_rebalance_moves_capital_so_the_sleeves_hold_their_weights(
    rebalanced: tuple[Home, str],
) -> None:
    home, run_id = rebalanced
    with open_state(home.state_path) as db:
        (plan,) = plans.plans(db, run_id=run_id)
        rows = {s.ts: s for s in snapshots(db, run_id)}
    execution = plan.execution or {}
    before = rows[REBALANCE_BAR].sleeves
    after = {s: row["capital_after_usd"] for s, row in execution["sleeves"].items()}
    assert sum(execution["transfers_usd"].values()) == pytest.approx(0.0, abs=1e-5)
    total = sum(before[s]["equity"] for s in after)
    assert after == pytest.approx({"ETHUSDT": 0.54 * total, "SOLUSDT": 0.46 * total})
    # from then on each snapshot's capital is its equity plus the transfer
    for snapshot in [v for ts, v in rows.items() if ts > REBALANCE_BAR]:
        for symbol, moved in execution["transfers_usd"].items():
            sleeve = snapshot.sleeves[symbol]
            assert sleeve["capital"] == pytest.approx(sleeve["equity"] + moved, abs=1e-6)
    # the weekly review measures the drift on capital, not on the standalone equity
    closed = rows[REBALANCE_BAR + HOUR].sleeves
    review = weekly.run(
        weekly.WeeklyReviewRequest(now=REBALANCE_BAR + HOUR, run_id=run_id, dry_run=True),
        home=home,
    )
    capital = {s: closed[s]["capital"] for s in after}
    expected = {
        s: capital[s] / sum(capital.values()) * 100 - w
        for s, w in (("ETHUSDT", 54), ("SOLUSDT", 46))
    }
    drifts = {s.symbol: s.drift_pct_points for s in review.figures.drift.sleeves}
    assert drifts == pytest.approx(expected)
    equity_share = closed["ETHUSDT"]["equity"] / sum(closed[s]["equity"] for s in after) * 100
    assert abs(drifts["ETHUSDT"]) < abs(equity_share - 54)


class CountingPaper(PaperBroker):
    """Counts every order placed, across the processes of one test."""

    placed: ClassVar[Counter[str]] = Counter()

    def place(self, request: Any) -> Any:
        type(self).placed[request.client_order_id] += 1
        return super().place(request)


class CrashingPaper(CountingPaper):
    """Dies in the limits' timeout (``open``) or right after the fallback market order was
    accepted (``fallback``) of the bar that executes the rebalance."""

    crash = "open"
    in_timeout = False

    def process_open(self, symbol: str, bar: Any) -> Any:
        if self.crash == "open":
            raise KeyboardInterrupt("simulated crash in the limit timeout")
        self.in_timeout = True
        return super().process_open(symbol, bar)

    def place(self, request: Any) -> Any:
        placed = super().place(request)
        if self.crash == "fallback" and self.in_timeout and request.type == OrderType.MARKET:
            raise KeyboardInterrupt("simulated crash after the fallback was accepted")
        return placed


@pytest.mark.parametrize("crash", ["open", "fallback"])
def test_a_restart_in_the_middle_of_a_rebalance_sends_nothing_twice(
    tmp_path: Path, rebalanced: tuple[Home, str], crash: str
) -> None:
    home = _home(tmp_path / "crash")
    CountingPaper.placed = Counter()
    run_id = _first_day(home, CountingPaper)
    CrashingPaper.crash = crash
    with pytest.raises(KeyboardInterrupt):
        service.run(service.RunLiveRequest(), home=home, broker_factory=CrashingPaper)
    resumed = service.run(service.RunLiveRequest(), home=home, broker_factory=CountingPaper)
    assert resumed.run_id == run_id and resumed.status == "completed"
    assert max(CountingPaper.placed.values()) == 1
    got, straight = _outcome(home, run_id), _outcome(*rebalanced)
    assert got["equity"] == straight["equity"]
    assert [o[1:] for o in got["orders"]] == [o[1:] for o in straight["orders"]]
    assert [f[1:] for f in got["fills"]] == [f[1:] for f in straight["fills"]]
    for kind in ("REBALANCE_PLANNED", "REBALANCE_STARTED", "REBALANCE_FALLBACK", "REBALANCE_COST"):
        assert got["kinds"][kind] == 1, kind
    assert got["kinds"]["ORDER_REJECTED"] == 0
    with open_state(home.state_path) as db:
        (plan,) = plans.plans(db, run_id=run_id)
    assert plan.state == "executed"


def test_a_skip_is_logged_and_the_run_trades_as_if_no_review_had_run(tmp_path: Path) -> None:
    reviewed = _home(tmp_path / "skip", tolerance_pct=None)  # the packaged 5 pp
    run_id = _first_day(reviewed)
    service.run(service.RunLiveRequest(), home=reviewed)
    plain = _home(tmp_path / "plain", tolerance_pct=None)
    plain_id = service.run(_request(), home=plain).run_id
    with open_state(reviewed.state_path) as db:
        (plan,) = plans.plans(db, run_id=run_id)
        (skip,) = events(db, run_id=run_id, event_type="REBALANCE_SKIP")
    assert (plan.decision, plan.state) == ("SKIP", "skipped")
    assert skip.ts == REBALANCE_BAR and skip.payload is not None
    assert json.dumps(skip.payload["drift_pct_points"])
    got, expected = _outcome(reviewed, run_id), _outcome(plain, plain_id)
    assert got["equity"] == expected["equity"]
    assert [o[1:] for o in got["orders"]] == [o[1:] for o in expected["orders"]]
    assert not any(
        kind.startswith("REBALANCE_") and kind != "REBALANCE_SKIP" for kind in got["kinds"]
    )


def _plan(run_id: str, as_of: datetime, weights: dict[str, float]) -> plans.RebalancePlan:
    return plans.RebalancePlan(
        run_id=run_id,
        mode="paper",
        as_of=as_of,
        decision="REBALANCE",
        state="pending",
        limit_timeout_s=10.0,
        plan={"target_weights_pct": weights, "estimated_cost": 1.0},
        recorded_at=as_of,
    )


def test_a_stale_plan_expires_and_one_for_other_weights_is_refused(tmp_path: Path) -> None:
    home = _home(tmp_path / "closed", tolerance_pct=None)
    calls = {"n": 0}

    def one_more(limit: int) -> Any:
        def stop() -> bool:
            calls["n"] += 1
            return calls["n"] >= limit

        return stop

    run_id = service.run(_request(), home=home, should_stop=one_more(BEFORE_REVIEW)).run_id
    with open_state(home.state_path) as db:
        plans.record_plan(
            db, _plan(run_id, REBALANCE_BAR - timedelta(days=7), {"ETHUSDT": 54.0, "SOLUSDT": 46.0})
        )
    service.run(service.RunLiveRequest(), home=home, should_stop=one_more(BEFORE_REVIEW + 1))
    with open_state(home.state_path) as db:
        plans.record_plan(
            db, _plan(run_id, REBALANCE_BAR + HOUR, {"ETHUSDT": 60.0, "SOLUSDT": 40.0})
        )
    service.run(service.RunLiveRequest(), home=home, should_stop=one_more(BEFORE_REVIEW + 2))
    with open_state(home.state_path) as db:
        stale, other = plans.plans(db, run_id=run_id)
        kinds = [
            e.event_type for e in events(db, run_id=run_id) if e.event_type.startswith("REBALANCE")
        ]
        limits = [o for o in run_orders(db, run_id) if o.type == OrderType.LIMIT]
    assert (stale.state, stale.closed_at) == ("expired", REBALANCE_BAR)
    assert (other.state, other.closed_at) == ("refused", REBALANCE_BAR + HOUR)
    assert other.reason is not None and "weight_pct" in other.reason
    assert kinds == ["REBALANCE_EXPIRED", "REBALANCE_REFUSED"] and limits == []
