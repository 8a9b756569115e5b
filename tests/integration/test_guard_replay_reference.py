"""The incremental ``risk-guard --replay`` against the per-action algorithm it replaced
(tests/replay_reference.py) on the bundled 2.4 years of hourly data, with the packaged
risk guard and strategy, hourly and daily evaluation: the same guard actions, the same
triggers (time, rule, sleeve, action, severity; values to 1e-9), the same guarded and
unguarded equity curves (to 1e-9) and the same decisions at every evaluation."""

from __future__ import annotations

import pytest

from stagectl.config.risk_guard import RiskGuardConfig
from stagectl.domain.backtest import SleeveSpec
from stagectl.domain.guard_replay import CostModel, replay
from tests.replay_fingerprint import bundled as bundled_guard
from tests.replay_reference import assert_same_replay, reference_replay


@pytest.fixture(scope="module")
def bundled() -> tuple[list[SleeveSpec], RiskGuardConfig, CostModel]:
    return bundled_guard()


@pytest.mark.parametrize("evaluation", ["hourly", "daily"])
def test_the_bundled_replay_equals_the_per_action_reference(
    bundled: tuple[list[SleeveSpec], RiskGuardConfig, CostModel], evaluation: str
) -> None:
    sleeves, config, costs = bundled
    new = replay(sleeves, config, costs=costs, evaluation=evaluation)
    old = reference_replay(sleeves, config, costs=costs, evaluation=evaluation)
    assert_same_replay(new, old)
    # every kind of action happened, so every branch of the state machine was compared
    assert {a.kind for a in new.actions} >= {
        "FLATTEN_ALL",
        "RESTART",
        "DISABLE_SLEEVE",
        "ENABLE_SLEEVE",
    }
    assert len(new.triggers) > 100
