"""config/baselines/*.yaml: an approved set of Stage6 governed values (seed 000).

The governed sections mirror config/core.yaml's shape, so the two can be compared
key path by key path; ``approval`` records who approved them, when, and from which
source.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field

from stagectl.config._base import ConfigModel, Items, NonNegative, Symbol
from stagectl.config.core import (
    PortfolioGovernorConfig,
    StressThresholdOverrides,
    StressThresholds,
)


class Participant(ConfigModel):
    role: Annotated[str, Field(min_length=1)]
    name: str | None = None
    note: str | None = None


class Approval(ConfigModel):
    date: dt.date
    source: Annotated[str, Field(min_length=1)]
    participants: Items[Participant]
    effective_when: str
    reviewed_inputs: Items[str] = ()


class BaselineMarketIntel(ConfigModel):
    mandatory_symbols: Items[Symbol]
    default_weight: NonNegative


class BaselineScenario(ConfigModel):
    overrides: StressThresholdOverrides


class BaselineStressLab(ConfigModel):
    thresholds: StressThresholds
    scenarios: dict[str, BaselineScenario]


class BaselineConfig(ConfigModel):
    approval: Approval
    market_intel: BaselineMarketIntel
    stress_lab: BaselineStressLab
    portfolio_governor: PortfolioGovernorConfig
