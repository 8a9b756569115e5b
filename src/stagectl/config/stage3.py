"""config/stage3.yaml: the 24-hour multi-asset micro test (seed 002).

Symbols are Binance USD-M ids (the seed's BTC-USD is BTCUSDT). ``max_size`` is in
base-asset units. Time in force per order type: ``orders.allowed`` may be sent,
``orders.gated`` is refused by preflight.

The file is also a run profile: ``stagectl run-live -c config/stage3.yaml`` trades the
strategy that ``run.strategy`` names (the four Stage 3 symbols), for ``duration_h`` and
with the protective stop-limits ``run.stop_limits`` asks for, under this file's policy.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from stagectl.config._base import (
    ConfigModel,
    Hours,
    Items,
    Minutes,
    NonNegative,
    Pct,
    Positive,
    Seconds,
    Symbol,
)

# The YAML names of domain.types.OrderType and TimeInForce (config sits below domain, so it
# spells the keys it accepts here).
OrderTypeKey = Literal["LIMIT", "STOP_LIMIT", "MARKET"]
TimeInForceKey = Literal["GTC", "IOC", "FOK", "GTD"]


class SymbolLimits(ConfigModel):
    max_size: Positive
    max_notional_usd: Positive


class RiskParams(ConfigModel):
    max_impact_bps: NonNegative
    stop_distance_pct: Positive
    sizing_mode: Literal["conservative", "balanced", "aggressive"]
    leverage_limit: Positive


class OrderPolicy(ConfigModel):
    allowed: dict[OrderTypeKey, Items[TimeInForceKey]]
    gated: dict[OrderTypeKey, Items[TimeInForceKey]]

    @model_validator(mode="after")
    def _gated_is_not_allowed(self) -> OrderPolicy:
        for order_type, tifs in self.gated.items():
            clash = set(tifs) & set(self.allowed.get(order_type, ()))
            if clash:
                raise ValueError(f"{order_type} {sorted(clash)} is both allowed and gated")
        return self


class Alerts(ConfigModel):
    margin_warning_pct: NonNegative
    margin_critical_pct: NonNegative
    margin_expected_max_pct: NonNegative
    mark_stale_s: Annotated[Seconds, Field(gt=0)]
    reconciliation_drift_usd: NonNegative

    @model_validator(mode="after")
    def _warning_below_critical(self) -> Alerts:
        if self.margin_warning_pct >= self.margin_critical_pct:
            raise ValueError("margin_warning_pct must be below margin_critical_pct")
        return self


class Artifacts(ConfigModel):
    dir: str
    snapshot_interval_min: Annotated[Minutes, Field(gt=0)]
    save_interval_min: Annotated[Minutes, Field(gt=0)]
    files: Items[Annotated[str, Field(pattern=r"^[\w.-]+\.json$")]]


class StopLimitTests(ConfigModel):
    stop_offset_pct: Positive
    sizes: dict[Symbol, Positive]


class RollbackStep(ConfigModel):
    at_min: Minutes
    step: Literal["reduce_only", "close_all_positions", "disable_trading", "save_artifacts"]
    description: str


class RunProfile(ConfigModel):
    """What ``run-live -c`` this file runs: the strategy file (a name looked up beside
    this file, then in the home's ``config/``, then the packaged defaults) and whether
    every position gets its protective stop-limit (``--stop-limits``)."""

    strategy: Annotated[str, Field(pattern=r"^[\w.-]+\.ya?ml$")]
    stop_limits: bool


class HealthThresholds(ConfigModel):
    """``stagectl health``'s thresholds (docs/operations.md, "Health"); a value above its
    ``warn_*`` is WARN, above its ``max_*``/``fail_*`` FAIL (exit 1)."""

    warn_bar_age_min: Annotated[Minutes, Field(gt=0)] = 90.0
    max_bar_age_min: Annotated[Minutes, Field(gt=0)] = 150.0
    warn_snapshot_age_min: Annotated[Minutes, Field(gt=0)] = 90.0
    max_snapshot_age_min: Annotated[Minutes, Field(gt=0)] = 150.0
    gap_lookback_bars: Annotated[int, Field(ge=2, le=10_000)] = 48
    warn_missing_bars: Annotated[int, Field(ge=1, le=10_000)] = 1
    max_missing_bars: Annotated[int, Field(ge=1, le=10_000)] = 3
    latency_bars: Annotated[int, Field(ge=1, le=100_000)] = 100
    warn_latency_p99_ms: Positive = 5_000.0
    max_latency_p99_ms: Positive = 30_000.0
    order_window_h: Annotated[Hours, Field(gt=0)] = 24.0
    warn_rejection_rate_pct: Pct = 5.0
    max_rejection_rate_pct: Pct = 20.0
    warn_error_rate_pct: Pct = 5.0
    max_error_rate_pct: Pct = 20.0
    warn_clock_skew_s: Positive = 0.5
    max_clock_skew_s: Positive = 1.0


class ExecutionRouter(ConfigModel):
    """The execution router of run-live (seed 001 #8; docs/run-live.md, "Working a parent
    order"): on by default; ``router: false`` sends every order as decided."""

    router: bool = True
    twap_bars: Annotated[int, Field(ge=2, le=100)] = 4
    pov_share: Annotated[float, Field(gt=0, le=1)] = 0.10
    iceberg_clip_usd: Positive = 10_000.0
    min_slice_usd: NonNegative = 1_000.0


class Stage3Config(ConfigModel):
    duration_h: Annotated[Hours, Field(gt=0)]
    symbols: dict[Symbol, SymbolLimits]
    risk: RiskParams
    orders: OrderPolicy
    alerts: Alerts
    reconciliation_tolerance_usd: NonNegative
    acceptance_rate_min_pct: Pct
    artifacts: Artifacts
    stop_limit_tests: StopLimitTests
    rollback: Items[RollbackStep]
    run: RunProfile | None = None
    health: HealthThresholds = HealthThresholds()
    execution: ExecutionRouter = ExecutionRouter()

    @model_validator(mode="after")
    def _tests_within_limits(self) -> Stage3Config:
        for symbol, size in self.stop_limit_tests.sizes.items():
            limits = self.symbols.get(symbol)
            if limits is None:
                raise ValueError(f"stop_limit_tests.sizes: {symbol} is not in symbols")
            if size > limits.max_size:
                raise ValueError(f"stop_limit_tests.sizes.{symbol}: {size} > max_size")
        return self
