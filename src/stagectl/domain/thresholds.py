"""The Stage6 threshold audit: core.yaml's governed values against the approved baseline.

One check per governed value (every Stress Lab threshold, every scenario
override, every Portfolio Governor parameter including the scoring weights and
each strategy's limits, the mandatory symbols and the default weight), whose id
is the value's key path (``stress_lab.thresholds.spread_bps``), plus invariants
(``invariant.*``) on the config itself:

- ``invariant.strategy_bounds.<strategy>``: min <= baseline <= max;
- ``invariant.governor_default_bounds``: min_weight <= default_baseline <= max_weight;
- ``invariant.strategy_baselines_sum``: |sum of strategy baselines - 1| <= 1e-9;
- ``invariant.<scenario>_overrides.<threshold>``: a scenario's override is at least
  as loose as the base threshold (>= it; <= it for ``sentiment_min``, which is
  breached from below), so the scenario keeps its emergency margin;
- ``invariant.solusdt_mandatory``: SOLUSDT is a mandatory Market Intel symbol.

Values compare exactly (``45 == 45.0``): an approved value is a decision, not a
measurement, so 1.15 and 1.1500001 differ. Mandatory symbols compare as sets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from stagectl.config.baseline import BaselineConfig, BaselineMarketIntel, BaselineStressLab
from stagectl.config.core import (
    LOWER_IS_BREACH,
    CoreConfig,
    MarketIntelConfig,
    PortfolioGovernorConfig,
    StrategyLimits,
    StressLabConfig,
)

SUM_TOLERANCE = 1e-9
MANDATORY_SYMBOL = "SOLUSDT"
_MISSING = object()

Status = Literal["pass", "fail"]


@dataclass(frozen=True)
class ThresholdCheck:
    """One audited value or invariant; ``expected``/``actual`` are JSON values."""

    id: str
    expected: Any
    actual: Any
    passed: bool
    message: str

    @property
    def status(self) -> Status:
        return "pass" if self.passed else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "expected": self.expected,
            "actual": self.actual,
            "status": self.status,
            "message": self.message,
        }


def audit_thresholds(core: CoreConfig, baseline: BaselineConfig) -> list[ThresholdCheck]:
    """Every value check (in baseline order, then config-only keys), then the invariants."""
    return [*value_checks(core, baseline), *invariant_checks(core)]


def summarize(checks: Iterable[ThresholdCheck]) -> dict[str, int]:
    items = list(checks)
    passed = sum(1 for c in items if c.passed)
    return {"total": len(items), "passed": passed, "failed": len(items) - passed}


def governed_values(
    market_intel: MarketIntelConfig | BaselineMarketIntel,
    stress_lab: StressLabConfig | BaselineStressLab,
    portfolio_governor: PortfolioGovernorConfig,
) -> dict[str, Any]:
    """The governed values of a core config or a baseline, flattened to key paths."""
    tree = {
        "market_intel": {
            "mandatory_symbols": sorted(market_intel.mandatory_symbols),
            "default_weight": market_intel.default_weight,
        },
        "stress_lab": {
            "thresholds": stress_lab.thresholds.model_dump(),
            "scenarios": {
                name: {"overrides": scenario.overrides.present()}
                for name, scenario in stress_lab.scenarios.items()
            },
        },
        "portfolio_governor": portfolio_governor.model_dump(),
    }
    return dict(_flatten("", tree))


def value_checks(core: CoreConfig, baseline: BaselineConfig) -> list[ThresholdCheck]:
    """One check per governed key path present in the baseline or the config."""
    expected = governed_values(
        baseline.market_intel, baseline.stress_lab, baseline.portfolio_governor
    )
    actual = governed_values(core.market_intel, core.stress_lab, core.portfolio_governor)
    paths = [*expected, *(p for p in actual if p not in expected)]
    return [
        _compare(path, expected.get(path, _MISSING), actual.get(path, _MISSING)) for path in paths
    ]


def invariant_checks(core: CoreConfig) -> list[ThresholdCheck]:
    governor = core.portfolio_governor
    checks = [_strategy_bounds(name, s) for name, s in governor.strategies.items()]
    checks.append(
        _bounds(
            "invariant.governor_default_bounds",
            "min_weight <= default_baseline <= max_weight",
            {
                "min_weight": governor.min_weight,
                "default_baseline": governor.default_baseline,
                "max_weight": governor.max_weight,
            },
        )
    )
    checks.append(_baselines_sum([s.baseline for s in governor.strategies.values()]))
    for name, scenario in core.stress_lab.scenarios.items():
        base = core.stress_lab.thresholds.model_dump()
        for key, override in scenario.overrides.present().items():
            checks.append(_override_margin(name, key, override, base[key]))
    checks.append(_symbol_mandatory(core.market_intel.mandatory_symbols))
    return checks


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else str(key), item)
    else:
        yield prefix, value


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def _compare(path: str, expected: Any, actual: Any) -> ThresholdCheck:
    if actual is _MISSING:
        return ThresholdCheck(path, expected, None, False, "missing from the config")
    if expected is _MISSING:
        return ThresholdCheck(
            path, None, actual, False, "not in the approved baseline; approve it or remove it"
        )
    if _same(expected, actual):
        return ThresholdCheck(path, expected, actual, True, "matches the approved baseline")
    message = f"expected {_fmt(expected)} (approved baseline), config has {_fmt(actual)}"
    return ThresholdCheck(path, expected, actual, False, message)


def _strategy_bounds(name: str, limits: StrategyLimits) -> ThresholdCheck:
    values = {"min": limits.min, "baseline": limits.baseline, "max": limits.max}
    return _bounds(f"invariant.strategy_bounds.{name}", "min <= baseline <= max", values)


def _bounds(check_id: str, condition: str, values: dict[str, float]) -> ThresholdCheck:
    low, middle, high = values.values()
    passed = low <= middle <= high
    shown = " <= ".join(f"{k} {_fmt(v)}" for k, v in values.items())
    message = f"{shown} holds" if passed else f"violated: {shown} is false"
    return ThresholdCheck(check_id, condition, values, passed, message)


def _baselines_sum(baselines: list[float]) -> ThresholdCheck:
    total = math.fsum(baselines)
    passed = abs(total - 1.0) <= SUM_TOLERANCE
    message = f"strategy baselines sum to {total:.12g}" + (
        "" if passed else f", not 1.0 (tolerance {SUM_TOLERANCE:g})"
    )
    return ThresholdCheck("invariant.strategy_baselines_sum", 1.0, total, passed, message)


def _override_margin(scenario: str, key: str, override: float, base: float) -> ThresholdCheck:
    lower_is_looser = key in LOWER_IS_BREACH
    op = "<=" if lower_is_looser else ">="
    passed = override <= base if lower_is_looser else override >= base
    verdict = "keeps" if passed else "loses"
    message = (
        f"{scenario} override {_fmt(override)} {op} base {_fmt(base)} is "
        f"{str(passed).lower()}: the scenario {verdict} its emergency margin"
    )
    return ThresholdCheck(
        f"invariant.{scenario}_overrides.{key}", f"{op} {_fmt(base)}", override, passed, message
    )


def _symbol_mandatory(symbols: Iterable[str]) -> ThresholdCheck:
    listed = sorted(symbols)
    passed = MANDATORY_SYMBOL in listed
    message = (
        f"{MANDATORY_SYMBOL} is a mandatory Market Intel symbol"
        if passed
        else f"{MANDATORY_SYMBOL} is missing from market_intel.mandatory_symbols"
    )
    return ThresholdCheck("invariant.solusdt_mandatory", MANDATORY_SYMBOL, listed, passed, message)


def _fmt(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)
