"""config/maker.yaml: the SOL market maker (seed 004; regime buckets from seed 001 §2).

Volatility thresholds are in bps of the internal EMA volatility; the regime
analysis buckets 5-minute PnL windows by trend, volatility and session, and by
TREND / RANGE / PANIC / ILLIQUID from ADX, volatility, volume and spread.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from stagectl.config._base import (
    ConfigModel,
    Count,
    Lookback,
    Minutes,
    NonNegative,
    Number,
    Pct,
    Positive,
    Seconds,
    Symbol,
    UtcTime,
)

PositiveSeconds = Annotated[Seconds, Field(gt=0)]
PositiveMinutes = Annotated[Minutes, Field(gt=0)]


class GuardConfig(ConfigModel):
    price_band_bps: Positive
    crossed_book_protection: bool
    max_position_units: Positive
    max_inventory_notional_usd: Positive
    kill_on_crossed_book: bool
    kill_on_inventory_breach: bool
    backoff_s_on_block: Seconds


class CancelDiscipline(ConfigModel):
    window_s: PositiveSeconds
    max_cancels_per_window: Annotated[Count, Field(gt=0)]


class HedgerConfig(ConfigModel):
    trigger_units: Positive
    target_units: NonNegative
    max_clip_units: Positive

    @model_validator(mode="after")
    def _target_below_trigger(self) -> HedgerConfig:
        if self.target_units >= self.trigger_units:
            raise ValueError("target_units must be below trigger_units")
        return self


class VolatilityConfig(ConfigModel):
    ema_half_life_s: PositiveSeconds
    ema_half_life_alt_s: PositiveSeconds
    external_window_min: PositiveMinutes
    low_vol_pause_bps: NonNegative
    low_vol_resume_bps: NonNegative
    regime_switch_bps: NonNegative
    high_vol_pause_bps: NonNegative

    @model_validator(mode="after")
    def _ordered(self) -> VolatilityConfig:
        levels = (
            self.low_vol_pause_bps,
            self.low_vol_resume_bps,
            self.regime_switch_bps,
            self.high_vol_pause_bps,
        )
        if list(levels) != sorted(levels):
            raise ValueError(
                "expected low_vol_pause_bps <= low_vol_resume_bps <= regime_switch_bps"
                " <= high_vol_pause_bps"
            )
        return self


class TrendGuard(ConfigModel):
    down_return_bps: Annotated[Number, Field(lt=0)]
    window_min: PositiveMinutes
    cooldown_s: Seconds


class RegimeAnalysis(ConfigModel):
    trend_threshold_pct: NonNegative
    low_vol_sigma_per_min: NonNegative
    high_vol_percentile: Pct
    window_s: Annotated[Seconds, Field(ge=1)]
    ny_session_start_utc: UtcTime
    ny_session_end_utc: UtcTime
    adx_period: Lookback
    trend_adx_min: NonNegative
    range_adx_max: NonNegative
    range_vol_min_pct: NonNegative
    range_vol_max_pct: NonNegative
    panic_vol_min_pct: NonNegative
    illiquid_volume_ratio_max_pct: Pct
    illiquid_spread_min_bps: NonNegative
    volume_median_window_bars: Lookback


class MakerConfig(ConfigModel):
    symbol: Symbol
    spread_bps: Positive
    guard: GuardConfig
    cancel_discipline: CancelDiscipline
    hedger: HedgerConfig
    volatility: VolatilityConfig
    trend_guard: TrendGuard
    regime_analysis: RegimeAnalysis
