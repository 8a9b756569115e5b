"""The replay state machine on small synthetic series: flatten/restart, reduce/recover,
disable/enable."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stagectl.config.home import defaults_dir
from stagectl.config.loader import load_config
from stagectl.config.risk_guard import RiskGuardConfig, Rule
from stagectl.domain.backtest import SleeveSpec
from stagectl.domain.guard_replay import CostModel, replay
from stagectl.domain.restart import trailing_drawdown_pct

FREE = CostModel(fee_bps=0.0, slippage_bps=0.0, initial_equity=10_000.0)
DAY_H = 24


@pytest.fixture(scope="module")
def base_config() -> RiskGuardConfig:
    return load_config(defaults_dir() / "risk_guard_alt_ensemble.yaml", RiskGuardConfig)


def with_rules(config: RiskGuardConfig, *rules: dict[str, Any]) -> RiskGuardConfig:
    parsed = tuple(Rule.model_validate({"message": "m", "scope": "portfolio", **r}) for r in rules)
    return config.model_copy(update={"rules": parsed})


def index(hours: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=hours, freq="h", tz="UTC")


def wiggle(hours: int, drift: float, seed: int) -> np.ndarray:
    """Per-bar returns: a drift plus a small deterministic noise (so std > 0)."""
    rng = np.random.default_rng(seed)
    return drift + 0.001 * rng.standard_normal(hours)


def prices(returns: np.ndarray) -> np.ndarray:
    return 100.0 * np.cumprod(1.0 + returns)


def long_sleeve(symbol: str, opens: np.ndarray, weight: float, target: Any = 1.0) -> SleeveSpec:
    ix = index(len(opens))
    return SleeveSpec(symbol, pd.Series(opens, index=ix), pd.Series(target, index=ix), weight)


def test_flatten_all_on_drawdown_then_restart_after_recovery(base_config: RiskGuardConfig) -> None:
    calm = wiggle(30 * DAY_H, 0.0002, 1)
    crash = np.full(2 * DAY_H, -0.005)  # about -21 %
    rally = wiggle(100 * DAY_H, 0.0008, 2)
    opens = prices(np.concatenate((calm, crash, rally)))
    config = with_rules(
        base_config,
        {
            "id": "mdd",
            "indicator": "running_mdd_pct",
            "op": ">",
            "value": 12.0,
            "action": "FLATTEN_ALL",
            "severity": "CRITICAL",
        },
    )
    result = replay([long_sleeve("ETHUSDT", opens, 1.0)], config, costs=FREE)
    kinds = [a.kind for a in result.actions]
    assert kinds[:2] == ["FLATTEN_ALL", "RESTART"]
    flatten, restart = result.actions[:2]
    # flatten at the first hour the guarded drawdown passes 12 %
    equity = result.unguarded.equity
    drawdown = (equity.cummax() - equity) / equity.cummax() * 100
    assert flatten.at == drawdown.index[int(np.argmax(drawdown.to_numpy() > 12.0))]
    # flat from the next bar until the restart, which waits for the post-mortem (24 h)
    held = result.guarded.positions["ETHUSDT"]
    assert (held[(held.index > flatten.at) & (held.index <= restart.at)] == 0).all()
    assert restart.at - flatten.at >= pd.Timedelta(hours=24)
    assert result.multipliers.loc[restart.at, "ETHUSDT"] == 1.0
    # the guarded book lost less than the unguarded one over the crash
    assert result.guarded.equity.min() > result.unguarded.equity.min()
    assert result.triggers[0].rule_id == "mdd"


TURNOVER_REDUCE = {
    "id": "turnover",
    "indicator": "daily_turnover_pct",
    "op": ">",
    "value": 30.0,
    "action": "REDUCE_RISK_50",
    "severity": "HIGH",
}


def reduce_replay(config: RiskGuardConfig, flips: list[float]) -> Any:
    """A long sleeve whose entry from flat (100 % turnover) issues the REDUCE_RISK_50,
    with ``flips`` of its target from the start of day 3."""
    hours = 10 * DAY_H
    target = np.ones(hours)
    target[2 * DAY_H : 2 * DAY_H + len(flips)] = flips
    opens = prices(wiggle(hours, 0.0001, 3))
    config = with_rules(config, TURNOVER_REDUCE)
    return replay([long_sleeve("ETHUSDT", opens, 1.0, target)], config, costs=FREE)


def test_reduce_risk_halves_then_recovers_a_step_per_review(base_config: RiskGuardConfig) -> None:
    # one flip on day 3: turnover breaches again, but no further than the entry's 100 %
    # that issued the directive, so the review keeps it; later reviews find it clear
    result = reduce_replay(base_config, [-1])
    kinds = [(a.kind, a.multipliers["ETHUSDT"]) for a in result.actions]
    assert kinds == [("REDUCE_RISK_50", 0.5), ("RECOVER", 0.75), ("RECOVER", 1.0)]
    reduce_at = result.actions[0].at
    recover = result.actions[1:]
    # reviews come every 24 h after the reduction: the ones on days 2 and 3 kept it
    assert recover[0].at - reduce_at == pd.Timedelta(hours=4 * 24)
    assert recover[1].at - recover[0].at == pd.Timedelta(hours=24)
    assert result.multipliers["ETHUSDT"].iloc[-1] == 1.0


def test_reduce_risk_escalates_to_flatten_all_when_its_rule_keeps_worsening(
    base_config: RiskGuardConfig,
) -> None:
    # the signal keeps flapping after the reduction: at the day-3 review turnover is
    # further past 30 % than the 100 % that issued the directive
    result = reduce_replay(base_config, [-1, 1, -1, 1, -1, 1])
    kinds = [(a.kind, a.multipliers["ETHUSDT"]) for a in result.actions]
    assert kinds[:2] == [("REDUCE_RISK_50", 0.5), ("FLATTEN_ALL", 0.0)]
    reduce, flatten = result.actions[:2]
    assert flatten.at - reduce.at == pd.Timedelta(hours=3 * 24)  # at the third review
    assert "escalated" in flatten.reason


def test_disable_sleeve_then_enable_after_seven_days_of_health(
    base_config: RiskGuardConfig,
) -> None:
    eth = prices(wiggle(80 * DAY_H, 0.0002, 4))
    sol_returns = np.concatenate(
        (wiggle(35 * DAY_H, 0.0002, 5), np.full(DAY_H, -0.008), wiggle(44 * DAY_H, 0.001, 6))
    )
    sol = prices(sol_returns)
    config = with_rules(
        base_config,
        {
            "id": "sleeve_mdd",
            "indicator": "sleeve_mdd_pct",
            "op": ">",
            "value": 15.0,
            "action": "DISABLE_SLEEVE",
            "severity": "HIGH",
            "scope": "sleeve",
        },
    )
    sleeves = [long_sleeve("ETHUSDT", eth, 0.54), long_sleeve("SOLUSDT", sol, 0.46)]
    result = replay(sleeves, config, costs=FREE)
    kinds = [(a.kind, a.sleeve) for a in result.actions]
    assert kinds[:2] == [("DISABLE_SLEEVE", "SOLUSDT"), ("ENABLE_SLEEVE", "SOLUSDT")]
    disable, enable = result.actions[:2]
    assert disable.multipliers == {"ETHUSDT": 1.0, "SOLUSDT": 0.0}
    assert enable.at - disable.at >= pd.Timedelta(days=7)
    # measured from its re-enable, the rallying sleeve is not disabled again
    assert len(result.actions) == 2
    assert (result.guarded.positions["ETHUSDT"] == 1.0).iloc[1:].all()


def test_warning_rules_are_triggers_but_change_no_position(base_config: RiskGuardConfig) -> None:
    opens = prices(wiggle(3 * DAY_H, 0.0, 7))
    config = with_rules(
        base_config,
        {
            "id": "always",
            "indicator": "running_mdd_pct",
            "op": ">=",
            "value": 0.0,
            "action": "WARNING",
            "severity": "MEDIUM",
        },
    )
    result = replay([long_sleeve("ETHUSDT", opens, 1.0)], config, costs=FREE, evaluation="daily")
    assert result.actions == ()
    assert [t.rule_id for t in result.triggers] == ["always"]  # one rising edge
    assert result.guarded.equity.equals(result.unguarded.equity)
    assert all(t.hour == 8 for t in result.eval_times)


def test_trailing_drawdown_forgets_peaks_older_than_the_window() -> None:
    ix = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    equity = pd.Series([100.0, 80.0, 80.0, 80.0], index=ix)
    result = trailing_drawdown_pct(equity, pd.Timedelta(days=2))
    assert result.tolist() == pytest.approx([0.0, 20.0, 0.0, 0.0])


def test_unknown_evaluation_mode_is_refused(base_config: RiskGuardConfig) -> None:
    opens = prices(wiggle(48, 0.0, 8))
    with pytest.raises(ValueError, match="hourly or daily"):
        replay([long_sleeve("ETHUSDT", opens, 1.0)], base_config, costs=FREE, evaluation="weekly")
