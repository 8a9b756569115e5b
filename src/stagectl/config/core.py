"""config/core.yaml: Stage6 Market Intel, Stress Lab and Portfolio Governor (seed 000).

Weights, baselines, smoothing and scores are fractions; thresholds carry their
unit in their name. Only types, signs and bounds are validated here: whether the values
are the approved ones, and the invariants between them (min <= baseline <= max,
baselines summing to 1), are checks of ``stagectl verify-thresholds``
(``stagectl.domain.thresholds``), so a wrong value is reported as a failed check
rather than refused as a broken file.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from stagectl.config._base import (
    ConfigModel,
    Count,
    Fraction,
    Items,
    Minutes,
    NonNegative,
    Number,
    Symbol,
)


class AuditPaths(ConfigModel):
    """Where Market Intel writes its audit manifest and logs (relative to the home)."""

    manifest_path: str
    log_dir: str


class MarketIntelConfig(ConfigModel):
    mandatory_symbols: Items[Symbol]
    default_weight: NonNegative
    output_dir: str
    audit: AuditPaths

    @field_validator("mandatory_symbols")
    @classmethod
    def _unique(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(symbols)) != len(symbols):
            raise ValueError("a symbol is listed twice")
        return symbols


class StressThresholds(ConfigModel):
    """Breach levels. Each is breached when the observed value exceeds it, except
    ``sentiment_min`` (a sentiment index in [0, 1]), breached when it falls below."""

    liquidity_drop_pct: NonNegative
    spread_bps: NonNegative
    volatility_change_pct: NonNegative
    sentiment_min: Fraction
    funding_bps: NonNegative
    latency_ms: NonNegative
    blackout_min: Minutes
    dispersion_bps: NonNegative


LOWER_IS_BREACH = frozenset({"sentiment_min"})
"""Thresholds breached from below; a looser override of one of them is lower."""


class StressThresholdOverrides(ConfigModel):
    """A scenario's replacements for some base thresholds (absent: the base applies)."""

    liquidity_drop_pct: NonNegative | None = None
    spread_bps: NonNegative | None = None
    volatility_change_pct: NonNegative | None = None
    sentiment_min: Fraction | None = None
    funding_bps: NonNegative | None = None
    latency_ms: NonNegative | None = None
    blackout_min: Minutes | None = None
    dispersion_bps: NonNegative | None = None

    def present(self) -> dict[str, float]:
        """The overrides actually set, by threshold name."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class StressScenario(ConfigModel):
    description: str = ""
    overrides: StressThresholdOverrides = StressThresholdOverrides()


class StressLabConfig(ConfigModel):
    thresholds: StressThresholds
    scenarios: dict[str, StressScenario]
    verify_before_publish: bool
    signed_section: Annotated[str, Field(min_length=1)]


class ScoringWeights(ConfigModel):
    alpha: Number
    cost: Number
    slo: Number
    risk: Number


class StrategyLimits(ConfigModel):
    """One strategy's weight limits (fractions of the portfolio) and signal settings."""

    baseline: Fraction
    min: Fraction
    max: Fraction
    max_signals: Count
    multiplier: NonNegative


class PortfolioGovernorConfig(ConfigModel):
    rebalance_interval_min: Annotated[Minutes, Field(gt=0)]
    smoothing: Fraction
    default_baseline: Fraction
    min_weight: Fraction
    max_weight: Fraction
    min_score: NonNegative
    base_cost_bps: NonNegative
    scoring_weights: ScoringWeights
    strategies: dict[str, StrategyLimits]


class CoreConfig(ConfigModel):
    market_intel: MarketIntelConfig
    stress_lab: StressLabConfig
    portfolio_governor: PortfolioGovernorConfig
