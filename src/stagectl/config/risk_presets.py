"""config/risk_presets.yaml: risk presets, circuit breakers, cost model (seed 001).

Percentages are of equity. The cost model: slippage = spread_bps / 2 +
sqrt(participation) * ``impact_coefficient_bps``; latency penalty =
latency_ms / 10 * ``latency_penalty_bps_per_10ms``; a trade is refused when
expected edge - total costs < ``safety_margin_bps``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from stagectl.config._base import ConfigModel, Count, NonNegative, Number, Positive, UtcTime

PresetName = Literal["conservative", "balanced", "aggressive"]


class RiskPreset(ConfigModel):
    per_trade_risk_pct: Positive
    daily_loss_stop_pct: Positive
    max_leverage: Positive


class PresetLimits(ConfigModel):
    single_coin_cap_pct: Annotated[float, Field(gt=0, le=100)]
    sector_cap_pct: Annotated[float, Field(gt=0, le=100)]
    open_risk_within_daily_stop: bool
    kelly_divisor: Positive


class CircuitBreakers(ConfigModel):
    daily_drawdown_stop_pct: Positive
    daily_reset_utc: UtcTime
    streak_losses: Annotated[Count, Field(gt=0)]
    streak_size_multiplier: Annotated[float, Field(gt=0, le=1)]
    volatility_percentile: Annotated[float, Field(gt=0, le=100)]


class VenueFees(ConfigModel):
    maker: Number
    taker: NonNegative


class CostModel(ConfigModel):
    fees_bps: dict[str, VenueFees]
    impact_coefficient_bps: NonNegative
    latency_penalty_bps_per_10ms: NonNegative
    safety_margin_bps: NonNegative

    @model_validator(mode="after")
    def _has_default_venue(self) -> CostModel:
        if "default" not in self.fees_bps:
            raise ValueError("fees_bps needs a 'default' venue for venues not listed")
        return self


class RiskPresetsConfig(ConfigModel):
    active: PresetName
    presets: dict[PresetName, RiskPreset]
    limits: PresetLimits
    circuit_breakers: CircuitBreakers
    costs: CostModel

    @model_validator(mode="after")
    def _active_exists(self) -> RiskPresetsConfig:
        if self.active not in self.presets:
            raise ValueError(f"active preset {self.active!r} is not defined under presets")
        return self

    @property
    def active_preset(self) -> RiskPreset:
        return self.presets[self.active]
