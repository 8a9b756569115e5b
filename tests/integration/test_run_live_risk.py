"""run-live's circuit breakers, preset caps and pre-trade cost estimate (seed 001 #4-#6)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from stagectl.config.home import Home
from stagectl.config.loader import load_strategy
from stagectl.domain.breakers import BreakerSettings, apply_breakers
from stagectl.services.live import run as service
from stagectl.services.live.breakers import run_history
from stagectl.services.research.breakers import firing_event
from stagectl.state import parents
from stagectl.state.db import open_state
from stagectl.state.equity import snapshots
from stagectl.state.journal import events

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 6, 23, tzinfo=UTC)
PRESETS = Path(__file__).parents[2] / "config" / "risk_presets.yaml"


def _tight_home(root: Path, daily_stop_pct: str) -> Home:
    (root / "config").mkdir(parents=True)
    text = PRESETS.read_text().replace(
        "daily_loss_stop_pct: 1.5", f"daily_loss_stop_pct: {daily_stop_pct}"
    )
    text = text.replace("max_leverage: 1.5", "max_leverage: 0.5")
    (root / "config" / "risk_presets.yaml").write_text(text)
    return Home(root=root)


@pytest.fixture(scope="module")
def tight_run(tmp_path_factory: pytest.TempPathFactory) -> service.RunLiveResult:
    home = _tight_home(tmp_path_factory.mktemp("risk") / "home", "0.2")
    request = service.RunLiveRequest(start=START, end=END, position_limits=False, guard=False)
    return service.run(request, home=home)


@pytest.fixture(scope="module")
def forty_days(tmp_path_factory: pytest.TempPathFactory) -> service.RunLiveResult:
    """960 full-size bars into the April 2025 sell-off: all three breakers fire."""
    home = _tight_home(tmp_path_factory.mktemp("forty") / "home", "1.0")
    request = service.RunLiveRequest(
        start=datetime(2025, 3, 1, tzinfo=UTC),
        end=datetime(2025, 4, 9, 23, tzinfo=UTC),
        position_limits=False,
        guard=False,
    )
    return service.run(request, home=home)


def test_breaker_multiplier_is_apply_breakers_on_the_runs_own_history(
    tight_run: service.RunLiveResult,
) -> None:
    with open_state(tight_run.state_path) as db:
        rows = snapshots(db, tight_run.run_id)
        signals = [
            e
            for e in events(db, run_id=tight_run.run_id, event_type="signal")
            if e.symbol == "ETHUSDT"
        ]
        fired = events(db, run_id=tight_run.run_id, event_type="BREAKER_FIRED")
    config, _ = load_strategy(Home(root=tight_run.state_path.parents[1]))
    start_usd = {s.symbol: s.weight_pct / 100.0 * 10_000.0 for s in config.sleeves}
    settings = BreakerSettings(daily_drawdown_stop_pct=0.2)
    used = {pd.Timestamp(e.ts): e.payload["breaker_multiplier"] for e in signals}  # type: ignore[index]
    for ts, multiplier in used.items():
        known = [r for r in rows if pd.Timestamp(r.ts) <= ts]
        returns, trades = run_history(known, 10_000.0, start_usd)
        if returns.empty:
            assert multiplier == 1.0
            continue
        expected = apply_breakers(returns, trade_pnl=trades, settings=settings).multiplier
        assert multiplier == expected.iloc[-1], ts
    daily = [e for e in fired if e.payload and e.payload["breaker"] == "daily_drawdown"]
    assert daily, "a 0.2 % daily stop must fire on six days of full-size trading"
    for event in daily:
        stamp = pd.Timestamp(event.payload["time"])  # type: ignore[index]
        rest = [m for ts, m in used.items() if ts > stamp and ts.floor("D") == stamp.floor("D")]
        assert all(m == 0.0 for m in rest), stamp


def test_each_breaker_firing_is_recorded_once_with_the_research_payload(
    tight_run: service.RunLiveResult,
) -> None:
    with open_state(tight_run.state_path) as db:
        fired = events(db, run_id=tight_run.run_id, event_type="BREAKER_FIRED")
    keys = [(e.payload["breaker"], e.payload["time"]) for e in fired]  # type: ignore[index]
    assert len(keys) == len(set(keys)) > 0
    assert all(set(e.payload or {}) == {"time", "breaker", "value", "threshold"} for e in fired)


def test_orders_carry_a_pre_trade_cost_without_an_edge(tight_run: service.RunLiveResult) -> None:
    with open_state(tight_run.state_path) as db:
        costs = events(db, run_id=tight_run.run_id, event_type="PRE_TRADE_COST")
        sent = db.conn.execute(
            "SELECT count(*) FROM orders WHERE run_id = ? AND status != 'denied'",
            (tight_run.run_id,),
        ).fetchone()[0]
        # a sliced order's cost is estimated once, for its parent, which is never sent
        routed = parents.run_parents(db, tight_run.run_id)
        slices = sum(p.next_index for p in routed)
    assert len(costs) == sent - slices + len(routed) > 0
    for event in costs:
        payload = event.payload or {}
        assert event.costs_bps == pytest.approx(
            payload["half_spread_bps"] + payload["impact_bps"] + 5.0 + payload["latency_bps"]
        )
        assert payload["half_spread_bps"] >= 0.5 and payload["allowed"] is None
        assert event.expected_edge_bps is None


def test_active_preset_leverage_cap_sizes_orders_down_with_its_code(
    tight_run: service.RunLiveResult,
) -> None:
    with open_state(tight_run.state_path) as db:
        sized = events(db, run_id=tight_run.run_id, event_type="SIZED_DOWN")
        denied = events(db, run_id=tight_run.run_id, event_type="ORDER_DENIED")
    codes = {e.action for e in [*sized, *denied]}
    assert "CAP_LEVERAGE" in codes or "CAP_SINGLE_COIN" in codes


def _breaker_record(result: service.RunLiveResult) -> tuple[dict[Any, Any], list[Any]]:
    with open_state(result.state_path) as db:
        signals = events(db, run_id=result.run_id, event_type="signal")
        fired = events(db, run_id=result.run_id, event_type="BREAKER_FIRED")
    used = {(e.ts, e.symbol): e.payload["breaker_multiplier"] for e in signals}  # type: ignore[index]
    return used, sorted((e.ts, e.payload["breaker"], e.payload["time"]) for e in fired)  # type: ignore[index]


def test_resumed_run_gets_the_multipliers_and_firings_of_an_uninterrupted_one(
    tight_run: service.RunLiveResult, tmp_path: Path
) -> None:
    home = _tight_home(tmp_path / "home", "0.2")
    calls = {"n": 0}

    def stop_after_40() -> bool:
        calls["n"] += 1
        return calls["n"] >= 40

    request = service.RunLiveRequest(start=START, end=END, position_limits=False, guard=False)
    first = service.run(request, home=home, should_stop=stop_after_40)
    assert (first.status, first.bars) == ("aborted", 40)
    second = service.run(service.RunLiveRequest(position_limits=False, guard=False), home=home)
    assert second.resumed and second.status == "completed"
    resumed_used, resumed_fired = _breaker_record(second)
    used, fired = _breaker_record(tight_run)
    assert resumed_used == used
    assert resumed_fired == fired
    assert any(m != 1.0 for m in used.values())


def test_a_forty_day_run_gets_every_multiplier_and_firing_of_apply_breakers(
    forty_days: service.RunLiveResult,
) -> None:
    # past the volatility breaker's 744-bar warm-up, so all three breakers are live
    with open_state(forty_days.state_path) as db:
        rows = snapshots(db, forty_days.run_id)
        signals = events(db, run_id=forty_days.run_id, event_type="signal")
        fired = events(db, run_id=forty_days.run_id, event_type="BREAKER_FIRED")
    config, _ = load_strategy(Home(root=forty_days.state_path.parents[1]))
    start_usd = {s.symbol: s.weight_pct / 100.0 * 10_000.0 for s in config.sleeves}
    used = {pd.Timestamp(e.ts): e.payload["breaker_multiplier"] for e in signals}  # type: ignore[index]
    last_decided = max(used)
    known = [r for r in rows if pd.Timestamp(r.ts) <= last_decided]
    returns, trades = run_history(known, 10_000.0, start_usd)
    expected = apply_breakers(
        returns, trade_pnl=trades, settings=BreakerSettings(daily_drawdown_stop_pct=1.0)
    )
    assert len(used) == forty_days.bars == 960
    for ts, multiplier in used.items():
        before = expected.multiplier[expected.multiplier.index <= ts]
        assert multiplier == (before.iloc[-1] if len(before) else 1.0), ts
    recorded = sorted(tuple(sorted(e.payload.items())) for e in fired if e.payload)
    assert recorded == sorted(tuple(sorted(firing_event(f).items())) for f in expected.firings)
    assert {f.breaker for f in expected.firings} == {"daily_drawdown", "loss_streak", "volatility"}
