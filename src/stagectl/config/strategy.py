"""config/futures_alt_ensemble.yaml: the Alt Ensemble strategy (seed 003 §1).

Two TSMOM sleeves on USDT-margined futures, 1h bars, isolated margin; the signal
is taken on the bar close and traded at the next open (``signal_delay_bars``).
Sleeve weights are percentages of equity and must sum to 100. The same model reads
config/stage3_strategy.yaml, the four sleeves of seed 002's micro test.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from stagectl.config._base import (
    Bars,
    ConfigModel,
    Count,
    Fraction,
    Items,
    Lookback,
    NonNegative,
    Number,
    Pct,
    Positive,
    Symbol,
)

MAX_HOLDOUT_MONTHS = 120
MAX_GUARD_EVERY_MINUTES = 7 * 24 * 60


class ExecutionConfig(ConfigModel):
    signal_on: Literal["bar_close"]
    trade_on: Literal["next_open"]
    signal_delay_bars: Bars
    debounce: bool
    debounce_bars: Bars


class CostsConfig(ConfigModel):
    fee_bps: NonNegative
    slippage_bps: NonNegative
    funding_enabled: bool


class SleeveConfig(ConfigModel):
    """One sleeve: ``tsmom_ema`` takes ``lookback_bars``; ``tsmom_multi_ema`` takes
    ``lookbacks_bars``. ``disagree_weight`` is the position held when the multi-EMA
    votes disagree (0.0: flat)."""

    symbol: Symbol
    signal: Literal["tsmom_ema", "tsmom_multi_ema"]
    lookback_bars: Lookback | None = None
    lookbacks_bars: Items[Lookback] | None = None
    disagree_weight: Fraction
    weight_pct: Pct

    @model_validator(mode="after")
    def _lookbacks_match_signal(self) -> SleeveConfig:
        if self.signal == "tsmom_ema" and (self.lookback_bars is None or self.lookbacks_bars):
            raise ValueError("tsmom_ema takes lookback_bars (one number), not lookbacks_bars")
        if self.signal == "tsmom_multi_ema" and (
            not self.lookbacks_bars or self.lookback_bars is not None
        ):
            raise ValueError("tsmom_multi_ema takes lookbacks_bars (a list), not lookback_bars")
        return self

    @property
    def lookbacks(self) -> tuple[int, ...]:
        """The EMA lookbacks in bars, whichever field holds them."""
        if self.lookbacks_bars:
            return self.lookbacks_bars
        return (self.lookback_bars,) if self.lookback_bars is not None else ()


class AuditAcceptance(ConfigModel):
    wf_mean_oos_sharpe_min: Number
    holdout_months: Annotated[int, Field(gt=0, le=MAX_HOLDOUT_MONTHS)]
    holdout_sharpe_min: Number
    holdout_mdd_max_pct: NonNegative
    cost_multiplier_stress: Annotated[Number, Field(ge=1)]
    cost_stress_sharpe_min: Number
    positive_sleeves_min: Count


class AuditMeasured(ConfigModel):
    wf_mean_oos_sharpe: Number
    holdout_sharpe: Number
    holdout_mdd_pct: Number
    cost_stress_sharpe: Number
    positive_sleeves: Count


class AuditConfig(ConfigModel):
    acceptance: AuditAcceptance
    measured_2026_02_19: AuditMeasured


class LoopGuardConfig(ConfigModel):
    """The risk guard run-live evaluates in-process (seed 003 §6.3's hourly check)."""

    enabled: bool = True
    every_minutes: Annotated[int, Field(gt=0, le=MAX_GUARD_EVERY_MINUTES)] = 60
    """How often: at the first bar close of each such slot (cron's hour by default)."""
    config: str = "risk_guard_alt_ensemble.yaml"
    """The guard config, beside this file or in the home's config/."""


class StrategyConfig(ConfigModel):
    name: str
    market: Literal["futures"]
    timeframe: Literal["1m", "5m", "15m", "1h", "4h", "1d"]
    margin: Literal["isolated", "cross"]
    execution: ExecutionConfig
    costs: CostsConfig
    cash_symbol: Symbol | None = None
    """Held as cash at zero exposure (seed 003: BTCUSDT); None when the sleeves trade every
    symbol of the test (seed 002)."""
    initial_equity_usd: Positive
    sleeves: Items[SleeveConfig]
    audit: AuditConfig | None = None
    """The audit's bars and figures (``audit-strategy``); None for a strategy never audited."""
    guard: LoopGuardConfig = LoopGuardConfig()

    @model_validator(mode="after")
    def _sleeves_are_consistent(self) -> StrategyConfig:
        symbols = [s.symbol for s in self.sleeves]
        if len(set(symbols)) != len(symbols):
            raise ValueError("two sleeves trade the same symbol")
        if self.cash_symbol is not None and self.cash_symbol in symbols:
            raise ValueError(f"cash_symbol {self.cash_symbol} is also a traded sleeve")
        total = sum(s.weight_pct for s in self.sleeves)
        if not math.isclose(total, 100.0, abs_tol=1e-9):
            raise ValueError(f"sleeve weight_pct values sum to {total:g}, not 100")
        return self
