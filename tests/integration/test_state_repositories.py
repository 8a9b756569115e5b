"""The repositories: runs, orders, equity, journal, trading flags, reports, directives."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from stagectl.config.state_url import StateLocation
from stagectl.domain.directives import DirectiveState, OnTimeout
from stagectl.domain.orders import client_order_id
from stagectl.domain.types import (
    Event,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TradingState,
)
from stagectl.errors import InternalError
from stagectl.state.db import StateDB, open_state
from stagectl.state.directives import (
    GuardDecision,
    RiskDirective,
    active_directives,
    get_directive,
    guard_decisions,
    open_directives,
    record_directive,
    record_guard_decision,
    revoke_directive,
    update_directive,
)
from stagectl.state.equity import EquitySnapshot, record_snapshots, snapshots
from stagectl.state.flags import get_trading_state, set_trading_state, trading_state_history
from stagectl.state.journal import Incident, events, incidents, record_event, record_incident
from stagectl.state.orders import get_order, open_orders, upsert_order, venue_order_outcomes
from stagectl.state.reports import list_reports, record_report
from stagectl.state.runs import Run, finish_run, get_run, list_runs, start_run

T0 = datetime(2024, 6, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
def db(state_url: StateLocation) -> StateDB:
    """The repositories on both backends (SQLite, and PostgreSQL: tests/pg.py)."""
    state = open_state(state_url)
    start_run(state, Run("r1", "run-live", "paper", started_at=T0, config_path="config/core.yaml"))
    return state


def _order(**changes: object) -> Order:
    values: dict[str, object] = {
        "client_order_id": client_order_id("r1", "ETHUSDT", T0, "entry"),
        "account": "paper",
        "symbol": "ETHUSDT",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "qty": Decimal("0.50"),
        "price": Decimal("3500.1"),
        "time_in_force": TimeInForce.GTC,
        "status": OrderStatus.NEW,
        "created_at": T0,
        "updated_at": T0,
        "run_id": "r1",
    }
    values.update(changes)
    return Order(**values)  # type: ignore[arg-type]


def test_a_run_is_started_finished_and_listed(db: StateDB) -> None:
    finish_run(db, "r1", status="completed", ended_at=T0 + timedelta(hours=1))
    run = get_run(db, "r1")
    assert run is not None
    assert (run.status, run.ended_at, run.mode) == ("completed", T0 + timedelta(hours=1), "paper")
    assert [r.run_id for r in list_runs(db, kind="run-live")] == ["r1"]
    with pytest.raises(KeyError):
        finish_run(db, "nope", status="failed", ended_at=T0)


def test_an_order_is_recorded_once_and_then_moves_along(db: StateDB) -> None:
    assert upsert_order(db, _order()) is True
    later = T0 + timedelta(seconds=5)
    filled = _order(
        status="filled", exchange_order_id="X1", filled_qty=Decimal("0.50"), updated_at=later
    )
    assert upsert_order(db, filled) is False
    stored = get_order(db, filled.client_order_id)
    assert stored is not None
    assert (stored.status, stored.exchange_order_id, stored.filled_qty) == (
        "filled",
        "X1",
        Decimal("0.50"),
    )
    assert (stored.created_at, stored.updated_at) == (T0, later)
    assert open_orders(db, run_id="r1") == []


def test_a_client_order_id_cannot_be_reused_for_a_different_order(db: StateDB) -> None:
    upsert_order(db, _order())
    with pytest.raises(InternalError, match="qty"):
        upsert_order(db, _order(qty=Decimal("5")))
    stored = get_order(db, _order().client_order_id)
    assert stored is not None and stored.qty == Decimal("0.50")


def test_open_orders_are_the_unfinished_ones(db: StateDB) -> None:
    upsert_order(db, _order())
    other = _order(client_order_id=client_order_id("r1", "SOLUSDT", T0, "entry"), symbol="SOLUSDT")
    upsert_order(db, other)
    assert [o.symbol for o in open_orders(db)] == ["ETHUSDT", "SOLUSDT"]
    assert [o.symbol for o in open_orders(db, symbol="SOLUSDT")] == ["SOLUSDT"]


def test_a_venues_outcomes_count_its_latest_sent_orders(db: StateDB) -> None:
    statuses = [OrderStatus.REJECTED, OrderStatus.FILLED, OrderStatus.CANCELED]
    statuses += [OrderStatus.DENIED, OrderStatus.NEW, OrderStatus.NOT_SENT, OrderStatus.REJECTED]
    for i, status in enumerate(statuses):
        when = T0 + timedelta(minutes=i)
        cid = client_order_id("r1", "ETHUSDT", when, f"leg{i}")
        upsert_order(
            db,
            _order(
                client_order_id=cid,
                account="binanceusdm",
                status=status,
                created_at=when,
                updated_at=when,
            ),
        )
    upsert_order(db, _order(status=OrderStatus.REJECTED))  # another account
    assert venue_order_outcomes(db, "binanceusdm") == (4, 2)
    assert venue_order_outcomes(db, "binanceusdm", window=2) == (2, 1)  # the latest two
    assert venue_order_outcomes(db, "bybit") == (0, 0)


def test_equity_snapshots_replace_the_same_bar(db: StateDB) -> None:
    first = EquitySnapshot("r1", T0, 10_000.0, sleeves={"ETHUSDT": {"weight": 0.54}})
    record_snapshots(db, [first, EquitySnapshot("r1", T0 + timedelta(hours=1), 10_050.0)])
    redone = EquitySnapshot("r1", T0, 10_010.0, fees=1.25, sleeves={"ETHUSDT": {"weight": 0.5}})
    record_snapshots(db, [redone])
    stored = snapshots(db, "r1")
    assert [s.equity for s in stored] == [10_010.0, 10_050.0]
    assert stored[0] == redone
    assert snapshots(db, "r1", start=T0 + timedelta(minutes=1))[0].equity == 10_050.0


def test_events_keep_the_standard_event_schema(db: StateDB) -> None:
    event = Event(
        ts=T0,
        event_type="signal",
        run_id="r1",
        symbol="ETHUSDT",
        features_hash="abc123",
        engine_votes={"tsmom": {"side": "buy", "prob": 0.61, "reliability": 0.8}},
        consensus_score=0.42,
        action="buy",
        size_usd=1250.0,
        price=3500.1,
        expected_edge_bps=6.5,
        regime="TREND",
        costs_bps=8.0,
        payload={"lookbacks": [72, 168]},
    )
    record_event(db, event)
    record_event(db, Event(ts=T0, event_type="SIZED_DOWN", severity="LOW", symbol="SOLUSDT"))
    assert events(db, run_id="r1") == [event]
    assert [e.event_type for e in events(db)] == ["signal", "SIZED_DOWN"]
    with pytest.raises(ValueError, match="severity"):
        record_event(db, Event(ts=T0, event_type="x", severity="SEVERE"))


def test_an_incident_links_its_guard_decision(db: StateDB) -> None:
    decision_id = record_guard_decision(
        db,
        GuardDecision(
            ts=T0,
            action="FLATTEN_ALL",
            severity="CRITICAL",
            dry_run=False,
            rule_results=[{"rule": "mdd", "value": 0.131, "threshold": 0.12, "breached": True}],
            run_id="r1",
        ),
    )
    incident = Incident(
        ts=T0,
        rule="mdd",
        severity="CRITICAL",
        action="FLATTEN_ALL",
        message="running drawdown 13.1% above 12%",
        indicator_value=0.131,
        run_id="r1",
        guard_decision_id=decision_id,
        market_state={"ETHUSDT": {"mark": 3400.0}},
        fills=[{"trade_id": "1"}],
    )
    incident_id = record_incident(db, incident)
    assert incidents(db) == [replace(incident, id=incident_id)]
    assert guard_decisions(db)[0].rule_results[0]["breached"] is True


def test_trading_state_defaults_to_active_and_keeps_its_history_per_mode(db: StateDB) -> None:
    assert get_trading_state(db, "live").state is TradingState.ACTIVE
    set_trading_state(
        db, "live", TradingState.REDUCE_ONLY, reason="emergency-close", source="cli", now=T0
    )
    later = T0 + timedelta(minutes=1)
    change = set_trading_state(
        db, "live", TradingState.HALTED, reason="flat verified", source="cli", now=later
    )
    assert (change.from_state, change.to_state) == (TradingState.REDUCE_ONLY, TradingState.HALTED)
    flag = get_trading_state(db, "live")
    assert (flag.state, flag.reason, flag.updated_at) == (
        TradingState.HALTED,
        "flat verified",
        later,
    )
    assert get_trading_state(db, "paper").state is TradingState.ACTIVE
    history = trading_state_history(db)
    assert [(h.mode, h.from_state, h.to_state) for h in history] == [
        ("live", TradingState.REDUCE_ONLY, TradingState.HALTED),
        ("live", TradingState.ACTIVE, TradingState.REDUCE_ONLY),
    ]
    assert trading_state_history(db, modes=("paper",)) == []


def test_record_report_returns_an_id_and_keeps_generated_at_verbatim(db: StateDB) -> None:
    report_id = record_report(
        db,
        kind="verify-thresholds",
        path="reports/thresholds.json",
        sha256="ab" * 32,
        key_id="k1",
        signed=True,
        generated_at="2024-06-07T08:00:00Z",
    )
    (stored,) = list_reports(db)
    assert (stored.id, stored.signed, stored.generated_at) == (
        report_id,
        True,
        "2024-06-07T08:00:00Z",
    )


def test_directives_are_active_until_they_expire_or_are_revoked(db: StateDB) -> None:
    reduce_id = record_directive(
        db,
        RiskDirective(T0, "REDUCE_RISK_50", 0.5, expires_at=T0 + timedelta(hours=24), mode="paper"),
    )
    disable_id = record_directive(
        db,
        RiskDirective(T0, "DISABLE_SLEEVE", 0.0, sleeve="SOLUSDT", expires_at=None, mode="paper"),
    )
    assert [d.id for d in active_directives(db, mode="paper", now=T0)] == [reduce_id, disable_id]
    later = T0 + timedelta(hours=24)
    assert [d.id for d in active_directives(db, mode="paper", now=later)] == [disable_id]
    assert revoke_directive(db, disable_id, now=T0, reason="restart checklist passed") is True
    assert revoke_directive(db, disable_id, now=T0, reason="again") is False
    soon = T0 + timedelta(hours=1)
    assert [d.id for d in active_directives(db, mode="paper", now=soon)] == [reduce_id]


def test_a_reviewed_directive_keeps_its_new_multiplier_and_review_time(db: StateDB) -> None:
    directive_id = record_directive(db, RiskDirective(T0, "REDUCE_RISK_50", 0.5, mode="paper"))
    stored = get_directive(db, directive_id)
    assert stored is not None and stored.reviewed_at is None
    reviewed = T0 + timedelta(hours=24)
    update_directive(db, replace(stored, multiplier=0.75, reviewed_at=reviewed))
    after = get_directive(db, directive_id)
    assert after is not None
    assert (after.multiplier, after.reviewed_at) == (0.75, reviewed)
    assert [d.multiplier for d in active_directives(db, mode="paper", now=reviewed)] == [0.75]


def test_a_directive_binds_only_its_mode_and_one_without_a_mode_binds_both(db: StateDB) -> None:
    live_id = record_directive(db, RiskDirective(T0, "FLATTEN_ALL", 0.0, mode="live"))
    both_id = record_directive(db, RiskDirective(T0, "REDUCE_RISK_50", 0.5))
    assert [d.id for d in active_directives(db, mode="live", now=T0)] == [live_id, both_id]
    assert [d.id for d in active_directives(db, mode="paper", now=T0)] == [both_id]


def test_a_paper_directive_binds_only_the_run_it_judged_a_live_one_every_run(
    db: StateDB,
) -> None:
    paper_id = record_directive(
        db, RiskDirective(T0, "REDUCE_RISK_50", 0.5, mode="paper", run_id="replay-a")
    )
    live_id = record_directive(
        db, RiskDirective(T0, "REDUCE_RISK_50", 0.5, mode="live", run_id="live-a")
    )
    assert [d.id for d in active_directives(db, mode="paper", now=T0, run_id="replay-a")] == [
        paper_id
    ]
    assert active_directives(db, mode="paper", now=T0, run_id="replay-b") == []
    assert [d.id for d in active_directives(db, mode="live", now=T0, run_id="live-b")] == [live_id]


def test_a_pending_directive_is_open_but_binds_nothing_until_confirmed_or_timed_out(
    db: StateDB,
) -> None:
    deadline = T0 + timedelta(minutes=30)
    pending = RiskDirective(
        T0,
        "FLATTEN_ALL",
        0.0,
        mode="live",
        state=DirectiveState.PENDING,
        confirm_by=deadline,
        on_timeout=OnTimeout.EXECUTE,
        rule="daily_pnl_pct",
        indicator_value=-6.2,
    )
    directive_id = record_directive(db, pending)
    assert [d.id for d in open_directives(db, mode=None, now=T0)] == [directive_id]
    assert active_directives(db, mode="live", now=T0) == []
    assert [d.id for d in active_directives(db, mode="live", now=deadline)] == [directive_id]
    stored = get_directive(db, directive_id)
    assert stored is not None
    assert (stored.rule, stored.indicator_value, stored.confirm_by) == (
        "daily_pnl_pct",
        -6.2,
        deadline,
    )
    assert stored.effective_state(deadline) == DirectiveState.ACTIVE
