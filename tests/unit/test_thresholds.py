"""The Stage6 threshold audit: one check per governed value, and every invariant."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from stagectl.config.baseline import BaselineConfig
from stagectl.config.core import CoreConfig
from stagectl.domain.thresholds import ThresholdCheck, audit_thresholds, summarize
from tests.conftest import REPO_ROOT

CORE = yaml.safe_load((REPO_ROOT / "config" / "core.yaml").read_text(encoding="utf-8"))
BASELINE = BaselineConfig.model_validate(
    yaml.safe_load(
        (REPO_ROOT / "config" / "baselines" / "stage6-2024-06-07.yaml").read_text(encoding="utf-8")
    )
)

Path_ = tuple[str, ...]


def _core(**edits: Any) -> CoreConfig:
    """The shipped core.yaml with ``edits`` applied; keys are dotted paths, None deletes."""
    data = copy.deepcopy(CORE)
    for dotted, value in edits.items():
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return CoreConfig.model_validate(data)


def _failed(checks: list[ThresholdCheck]) -> set[str]:
    return {c.id for c in checks if not c.passed}


def _by_id(checks: list[ThresholdCheck]) -> dict[str, ThresholdCheck]:
    return {c.id: c for c in checks}


def test_the_shipped_config_passes_every_check() -> None:
    checks = audit_thresholds(_core(), BASELINE)
    assert _failed(checks) == set()
    assert summarize(checks) == {"total": 52, "passed": 52, "failed": 0}


def test_there_is_one_check_per_governed_value() -> None:
    ids = [c.id for c in audit_thresholds(_core(), BASELINE)]
    assert len(ids) == len(set(ids))
    values = [i for i in ids if not i.startswith("invariant.")]
    # 8 thresholds, 2 blackout overrides, 7 governor scalars, 4 scoring weights,
    # 4 strategies x 5 limits, mandatory symbols, default weight.
    assert len(values) == 8 + 2 + 7 + 4 + 20 + 2
    assert "stress_lab.thresholds.sentiment_min" in values
    assert "portfolio_governor.strategies.cross_exchange.max_signals" in values
    assert "portfolio_governor.scoring_weights.slo" in values


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stress_lab.thresholds.spread_bps", 46),
        ("stress_lab.thresholds.sentiment_min", 0.45),
        ("stress_lab.thresholds.dispersion_bps", 60),
        ("stress_lab.scenarios.blackout.overrides.latency_ms", 220),
        ("stress_lab.scenarios.blackout.overrides.blackout_min", 75),
        ("portfolio_governor.rebalance_interval_min", 30),
        ("portfolio_governor.smoothing", 0.6),
        ("portfolio_governor.base_cost_bps", 4.5),
        ("portfolio_governor.scoring_weights.slo", 1.1),
        ("portfolio_governor.strategies.vol_target.multiplier", 1.2),
        ("portfolio_governor.strategies.trend.max_signals", 4),
        ("portfolio_governor.strategies.cross_exchange.max", 0.3),
        ("market_intel.default_weight", 1.1500001),
    ],
)
def test_a_changed_value_fails_exactly_its_own_check(key: str, value: Any) -> None:
    checks = audit_thresholds(_core(**{key: value}), BASELINE)
    assert _failed(checks) == {key}
    failed = _by_id(checks)[key]
    assert failed.actual == value
    assert failed.status == "fail"
    assert "approved baseline" in failed.message


def test_mandatory_symbols_compare_as_a_set() -> None:
    reordered = _core(**{"market_intel.mandatory_symbols": ["SOLUSDT", "BTCUSDT", "ETHUSDT"]})
    assert _failed(audit_thresholds(reordered, BASELINE)) == set()
    extra = _core(
        **{"market_intel.mandatory_symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]}
    )
    assert _failed(audit_thresholds(extra, BASELINE)) == {"market_intel.mandatory_symbols"}


def test_a_strategy_missing_from_the_config_fails_each_of_its_limits() -> None:
    checks = audit_thresholds(_core(**{"portfolio_governor.strategies.vol_target": None}), BASELINE)
    missing = {
        f"portfolio_governor.strategies.vol_target.{k}"
        for k in ("baseline", "min", "max", "max_signals", "multiplier")
    }
    assert missing | {"invariant.strategy_baselines_sum"} == _failed(checks)
    assert _by_id(checks)["portfolio_governor.strategies.vol_target.min"].message == (
        "missing from the config"
    )


def test_a_value_not_in_the_baseline_fails() -> None:
    edited = _core(**{"stress_lab.scenarios.blackout.overrides.spread_bps": 60})
    checks = audit_thresholds(edited, BASELINE)
    key = "stress_lab.scenarios.blackout.overrides.spread_bps"
    assert _failed(checks) == {key}
    assert _by_id(checks)[key].expected is None
    assert _by_id(checks)[key].message.startswith("not in the approved baseline")


@pytest.mark.parametrize(
    ("edits", "invariant"),
    [
        ({"portfolio_governor.strategies.trend.min": 0.40}, "invariant.strategy_bounds.trend"),
        (
            {"portfolio_governor.strategies.cross_exchange.max": 0.10},
            "invariant.strategy_bounds.cross_exchange",
        ),
        ({"portfolio_governor.default_baseline": 0.6}, "invariant.governor_default_bounds"),
        ({"portfolio_governor.min_weight": 0.3}, "invariant.governor_default_bounds"),
        (
            {"portfolio_governor.strategies.trend.baseline": 0.39},
            "invariant.strategy_baselines_sum",
        ),
        (
            {"stress_lab.scenarios.blackout.overrides.latency_ms": 140},
            "invariant.blackout_overrides.latency_ms",
        ),
        (
            {"stress_lab.scenarios.blackout.overrides.blackout_min": 39.5},
            "invariant.blackout_overrides.blackout_min",
        ),
        (
            {"stress_lab.scenarios.blackout.overrides.sentiment_min": 0.6},
            "invariant.blackout_overrides.sentiment_min",
        ),
        ({"market_intel.mandatory_symbols": ["BTCUSDT", "ETHUSDT"]}, "invariant.solusdt_mandatory"),
    ],
)
def test_every_invariant_can_fail(edits: dict[str, Any], invariant: str) -> None:
    checks = audit_thresholds(_core(**edits), BASELINE)
    assert invariant in _failed(checks)
    assert not any(
        c.id.startswith("invariant.") and not c.passed for c in checks if c.id != invariant
    )


def test_a_looser_sentiment_override_is_lower_not_higher() -> None:
    edited = _core(**{"stress_lab.scenarios.blackout.overrides.sentiment_min": 0.4})
    check = _by_id(audit_thresholds(edited, BASELINE))["invariant.blackout_overrides.sentiment_min"]
    assert check.passed
    assert check.expected == "<= 0.5"


def test_invariants_hold_on_the_config_even_when_the_baseline_agrees() -> None:
    """A wrong approved baseline does not make a broken config pass."""
    broken = _core(**{"portfolio_governor.strategies.trend.min": 0.40})
    approved = BASELINE.model_copy(update={"portfolio_governor": broken.portfolio_governor})
    assert _failed(audit_thresholds(broken, approved)) == {"invariant.strategy_bounds.trend"}


def test_baselines_summing_to_one_within_tolerance_pass() -> None:
    nudged = _core(**{"portfolio_governor.strategies.trend.baseline": 0.38 + 5e-10})
    check = _by_id(audit_thresholds(nudged, BASELINE))["invariant.strategy_baselines_sum"]
    assert check.passed


fractions = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(low=fractions, middle=fractions, high=fractions)
def test_strategy_bounds_pass_exactly_when_ordered(low: float, middle: float, high: float) -> None:
    edits = {
        "portfolio_governor.strategies.trend.min": low,
        "portfolio_governor.strategies.trend.baseline": middle,
        "portfolio_governor.strategies.trend.max": high,
    }
    check = _by_id(audit_thresholds(_core(**edits), BASELINE))["invariant.strategy_bounds.trend"]
    assert check.passed == (low <= middle <= high)
    assert check.actual == {"min": low, "baseline": middle, "max": high}


def test_check_dicts_carry_the_report_fields() -> None:
    check = audit_thresholds(_core(**{"stress_lab.thresholds.spread_bps": 50}), BASELINE)[3]
    assert check.to_dict() == {
        "id": "stress_lab.thresholds.spread_bps",
        "expected": 45,
        "actual": 50,
        "status": "fail",
        "message": "expected 45 (approved baseline), config has 50",
    }
