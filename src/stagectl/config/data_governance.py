"""config/data.yaml: the data governance rules of seed 001 (docs/data.md, "Data governance")."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from stagectl.config._base import ConfigModel, DayCount, Days, Minutes, NonNegative

PositiveZ = Annotated[float, Field(gt=0, le=1_000)]


class GapsConfig(ConfigModel):
    max_fill_gap_min: Minutes = 60.0


class OutliersConfig(ConfigModel):
    robust_z: PositiveZ = 10.0
    clip: bool = True


class CrossCheckConfig(ConfigModel):
    perp_spot_tolerance_bps: NonNegative = 100.0
    mark_last_tolerance_bps: NonNegative = 100.0


class UniverseConfig(ConfigModel):
    min_avg_daily_volume_usd: NonNegative = 10_000_000.0
    min_history_days: Days = 90.0
    volume_window_days: DayCount = 30


class DelistingConfig(ConfigModel):
    grace_days: Days = 7.0


class DataGovernanceConfig(ConfigModel):
    gaps: GapsConfig = GapsConfig()
    outliers: OutliersConfig = OutliersConfig()
    cross_check: CrossCheckConfig = CrossCheckConfig()
    universe: UniverseConfig = UniverseConfig()
    delisting: DelistingConfig = DelistingConfig()
