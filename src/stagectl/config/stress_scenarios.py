"""config/stress_scenarios.yaml: the Stress Lab's hypothetical and historical scenarios.

Not governed: thresholds and the blackout overrides live in ``core.yaml``
(``stress_lab``), which ``verify-thresholds`` audits. docs/stress-lab.md describes
every field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator

from stagectl.config._base import ConfigModel, Hours, Items, NonNegative, Number, Symbol
from stagectl.config.limits import MAX_MAGNITUDE

if TYPE_CHECKING:
    from stagectl.config.home import ConfigSource, Home

STRESS_SCENARIOS_FILE = "stress_scenarios.yaml"

MetricName = Literal[
    "liquidity_drop_pct",
    "spread_bps",
    "volatility_change_pct",
    "sentiment",
    "funding_bps",
    "latency_ms",
    "blackout_min",
    "dispersion_bps",
]
ScenarioName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
PriceMovePct = Annotated[float, Field(ge=-100.0, le=MAX_MAGNITUDE)]


class ShockSpec(ConfigModel):
    """set: the metric becomes ``value``; add: metric + value; mul: metric * value."""

    metric: MetricName
    op: Literal["set", "add", "mul"]
    value: Number


class HypotheticalScenario(ConfigModel):
    description: Annotated[str, Field(min_length=1)]
    shocks: Annotated[Items[ShockSpec], Field(min_length=1)]
    price_move_pct: PriceMovePct = 0.0
    price_moves_pct: dict[Symbol, PriceMovePct] = Field(default_factory=dict)


class HistoricalScenarios(ConfigModel):
    """Worst moves searched in the data, per symbol, window length and direction."""

    windows_hours: Annotated[Items[Annotated[float, Field(gt=0, le=24 * 90)]], Field(max_length=6)]
    directions: Items[Literal["down", "up"]]

    @field_validator("windows_hours", "directions")
    @classmethod
    def _unique(cls, values: tuple[object, ...]) -> tuple[object, ...]:
        if len(set(values)) != len(values):
            raise ValueError("a value is listed twice")
        return values


class PortfolioSettings(ConfigModel):
    leverage: Annotated[float, Field(gt=0, le=125)]
    taker_fee_bps: NonNegative
    liquidation_horizon_hours: Annotated[Hours, Field(gt=0)]


class StressScenariosConfig(ConfigModel):
    hypothetical: dict[ScenarioName, HypotheticalScenario]
    historical: HistoricalScenarios
    portfolio: PortfolioSettings


def load_stress_scenarios(
    home: Home, explicit: Path | None = None
) -> tuple[StressScenariosConfig, ConfigSource]:
    """config/stress_scenarios.yaml (home, else packaged); ConfigError names file:line."""
    from stagectl.config.loader import load_config

    source = home.config_file(STRESS_SCENARIOS_FILE, explicit)
    return load_config(source, StressScenariosConfig), source
