"""The 30-day paper gate's criteria (seed 003 §5.2), hand-computed."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from stagectl.config.risk_guard import PaperGate
from stagectl.domain.paper_gate import (
    FireCounts,
    GuardFire,
    PaperGateInputs,
    count_fires,
    evaluate_paper_gate,
    max_drawdown_pct,
    window_daily_returns,
)

GATE = PaperGate(
    days=30,
    sharpe_30d_min=-0.3,
    sharpe_annualization_periods=252,
    max_mdd_pct=12,
    assumed_slippage_bps=3,
    slippage_ratio_max=1.3,
    assumed_funding_rate_pct=0.01,
    funding_ratio_max=1.5,
    signal_consistency_min_pct=98,
    max_warnings=1,
    max_critical=0,
)
GOOD = PaperGateInputs(
    days=30,
    history_days=30.0,
    daily_returns=[0.01, -0.005, 0.002],
    window_equity=[100.0, 101.0, 95.0, 99.0],
    slippage_bps=3.9,
    mean_paid_funding_rate=0.00015,
    signals_compared=100,
    signals_matched=98,
    fires=FireCounts(warning_days=1, critical_days=0, decisions=30),
)


def by_id(inputs: PaperGateInputs) -> dict[str, object]:
    verdict = evaluate_paper_gate(inputs, GATE)
    return {c.id: c for c in (verdict.history, *verdict.criteria)}


def test_every_criterion_at_its_limit_passes() -> None:
    verdict = evaluate_paper_gate(GOOD, GATE)
    assert verdict.passed
    items = by_id(GOOD)
    assert items["slippage_ratio"].value == pytest.approx(1.3)  # 3.9 / 3
    assert items["funding_ratio"].value == pytest.approx(1.5)  # 0.015 % / 0.01 %
    assert items["signal_consistency_pct"].value == pytest.approx(98.0)
    assert items["max_mdd_pct"].value == pytest.approx(6 / 101 * 100)
    r = [0.01, -0.005, 0.002]
    mean = sum(r) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert items["sharpe_30d"].value == pytest.approx(mean / std * math.sqrt(252))


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({"daily_returns": [-0.01, -0.02, 0.001]}, "sharpe_30d"),
        ({"window_equity": [100.0, 88.0]}, "max_mdd_pct"),  # exactly 12 %: not < 12
        ({"slippage_bps": 3.91}, "slippage_ratio"),
        ({"mean_paid_funding_rate": 0.000151}, "funding_ratio"),
        ({"signals_matched": 97}, "signal_consistency_pct"),
        ({"fires": FireCounts(2, 0, 30)}, "kill_switch_fires"),
        ({"fires": FireCounts(0, 1, 30)}, "kill_switch_fires"),
        ({"history_days": 29.5}, "history_days"),
    ],
)
def test_one_breach_fails_the_gate(change: dict[str, object], failed: str) -> None:
    inputs = replace(GOOD, **change)  # type: ignore[arg-type]
    verdict = evaluate_paper_gate(inputs, GATE)
    assert not verdict.passed
    assert [c.id for c in (verdict.history, *verdict.criteria) if not c.passed] == [failed]


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({"daily_returns": [0.01]}, "sharpe_30d"),
        ({"window_equity": []}, "max_mdd_pct"),
        ({"slippage_bps": None}, "slippage_ratio"),
        ({"mean_paid_funding_rate": None}, "funding_ratio"),
        ({"signals_compared": 0, "signals_matched": 0}, "signal_consistency_pct"),
        ({"fires": FireCounts(0, 0, 0)}, "kill_switch_fires"),
        ({"fires": None}, "kill_switch_fires"),
    ],
)
def test_missing_data_fails_with_no_data(change: dict[str, object], failed: str) -> None:
    item = by_id(replace(GOOD, **change))[failed]  # type: ignore[arg-type]
    assert not item.passed
    assert item.value is None
    assert item.reason.startswith("no data")


def test_short_history_says_how_many_days_exist() -> None:
    item = by_id(replace(GOOD, history_days=12.5))["history_days"]
    assert "12.50 days" in item.reason


def test_fires_count_days_not_decisions_and_critical_wins_the_day() -> None:
    def at(day: int, hour: int) -> datetime:
        return datetime(2024, 6, day, hour, tzinfo=UTC)

    fires = count_fires(
        [
            GuardFire(at(1, 8), "WARNING", "MEDIUM"),
            GuardFire(at(1, 9), "WARNING", "MEDIUM"),  # same day: one fire
            GuardFire(at(2, 8), "NO_ACTION", "LOW"),  # near a threshold: not a fire
            GuardFire(at(3, 8), "REDUCE_RISK_50", "HIGH"),
            GuardFire(at(4, 8), "WARNING", "MEDIUM"),
            GuardFire(at(4, 9), "FLATTEN_ALL", "CRITICAL"),
        ]
    )
    assert fires == FireCounts(warning_days=2, critical_days=1, decisions=6)


def test_daily_returns_use_the_last_equity_of_each_utc_day() -> None:
    index = pd.DatetimeIndex(
        ["2024-06-01 00:00", "2024-06-01 23:00", "2024-06-02 12:00", "2024-06-03 01:00"], tz="UTC"
    )
    equity = pd.Series([100.0, 110.0, 99.0, 108.9], index=index)
    assert window_daily_returns(equity).tolist() == pytest.approx([0.10, -0.10, 0.10])


def test_a_snapshot_at_midnight_closes_the_day_before() -> None:
    """Snapshots are stamped at their bar's close: 06-02 00:00 is 06-01's last close."""
    index = pd.DatetimeIndex(
        [
            "2024-06-01 00:00",  # the window's opening equity
            "2024-06-01 12:00",
            "2024-06-02 00:00",
            "2024-06-02 12:00",
            "2024-06-03 00:00",
        ],
        tz="UTC",
    )
    equity = pd.Series([100.0, 104.0, 110.0, 99.0, 121.0], index=index)
    assert window_daily_returns(equity).tolist() == pytest.approx([0.10, 0.10])


def test_an_opening_equity_alone_has_no_daily_return() -> None:
    equity = pd.Series([100.0], index=pd.DatetimeIndex(["2024-06-01"], tz="UTC"))
    assert window_daily_returns(equity).size == 0


def test_max_drawdown_uses_the_running_peak() -> None:
    assert max_drawdown_pct([100.0, 120.0, 90.0, 130.0]) == pytest.approx(25.0)
    assert max_drawdown_pct([]) is None
