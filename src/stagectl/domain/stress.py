"""Stage6 Stress Lab: scenarios as shocks on Market Intel metrics, threshold checks,
worst historical moves and the impact of a scenario on a portfolio.

A hypothetical scenario is a tuple of :class:`Shock` (set / add / mul on one of the
eight metrics), optional price moves per symbol and threshold overrides (the blackout
scenario of seed 000 overrides latency_ms 180 and blackout_min 55). Pure functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from stagectl.domain.costs import IMPACT_COEFFICIENT_BPS, slippage_bps
from stagectl.domain.market_intel import MarketIntelSnapshot

Direction = Literal["above", "below", "abs_above"]
ShockOp = Literal["set", "add", "mul"]

METRICS = (
    "liquidity_drop_pct",
    "spread_bps",
    "volatility_change_pct",
    "sentiment",
    "funding_bps",
    "latency_ms",
    "blackout_min",
    "dispersion_bps",
)
# metric -> (threshold field, breach direction)
CHECK_RULES: dict[str, tuple[str, Direction]] = {
    "liquidity_drop_pct": ("liquidity_drop_pct", "above"),
    "spread_bps": ("spread_bps", "above"),
    "volatility_change_pct": ("volatility_change_pct", "abs_above"),
    "sentiment": ("sentiment_min", "below"),
    "funding_bps": ("funding_bps", "abs_above"),
    "latency_ms": ("latency_ms", "above"),
    "blackout_min": ("blackout_min", "above"),
    "dispersion_bps": ("dispersion_bps", "above"),
}
BLACKOUT_OVERRIDES: Mapping[str, float] = {"latency_ms": 180.0, "blackout_min": 55.0}


@dataclass(frozen=True)
class StressMetrics:
    """The eight metrics the Stress Lab checks (NaN = not available)."""

    liquidity_drop_pct: float
    spread_bps: float
    volatility_change_pct: float
    sentiment: float
    funding_bps: float
    latency_ms: float
    blackout_min: float
    dispersion_bps: float

    @classmethod
    def from_snapshot(cls, snapshot: MarketIntelSnapshot) -> StressMetrics:
        """Take the metrics from a Market Intel row; funding is the latest settlement."""
        funding = snapshot.funding_latest_bps
        dispersion = snapshot.dispersion_bps
        return cls(
            liquidity_drop_pct=snapshot.liquidity_drop_pct,
            spread_bps=snapshot.spread_bps,
            volatility_change_pct=snapshot.volatility_change_pct,
            sentiment=snapshot.sentiment,
            funding_bps=math.nan if funding is None else funding,
            latency_ms=snapshot.latency_ms,
            blackout_min=snapshot.blackout_min,
            dispersion_bps=math.nan if dispersion is None else dispersion,
        )


@dataclass(frozen=True)
class StressThresholds:
    """Seed 000 Stress Lab thresholds (defaults are the approved values)."""

    liquidity_drop_pct: float = 55.0
    spread_bps: float = 45.0
    volatility_change_pct: float = 80.0
    sentiment_min: float = 0.50
    funding_bps: float = 25.0
    latency_ms: float = 150.0
    blackout_min: float = 40.0
    dispersion_bps: float = 50.0

    def with_overrides(self, overrides: Mapping[str, float] | None) -> StressThresholds:
        """A copy with some limits replaced; an unknown name raises ValueError."""
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown threshold(s) in overrides: {', '.join(unknown)}")
        return replace(self, **{k: float(v) for k, v in overrides.items()})


class MetricCheck(NamedTuple):
    """One metric against its limit; a NaN value counts as breached (not provably safe)."""

    metric: str
    value: float
    limit: float
    direction: Direction
    breached: bool


def _breached(value: float, limit: float, direction: Direction) -> bool:
    if math.isnan(value):
        return True
    if direction == "above":
        return value > limit
    if direction == "below":
        return value < limit
    return abs(value) > limit


def evaluate(
    metrics: StressMetrics,
    thresholds: StressThresholds = StressThresholds(),
    overrides: Mapping[str, float] | None = None,
) -> list[MetricCheck]:
    """Check exactly the eight metrics; the limit itself is not a breach (strict compare)."""
    limits = thresholds.with_overrides(overrides)
    checks = []
    for metric in METRICS:
        limit_name, direction = CHECK_RULES[metric]
        value = float(getattr(metrics, metric))
        limit = float(getattr(limits, limit_name))
        checks.append(
            MetricCheck(metric, value, limit, direction, _breached(value, limit, direction))
        )
    return checks


@dataclass(frozen=True)
class Shock:
    """set: value; add: metric + value; mul: metric * value."""

    metric: str
    op: ShockOp
    value: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r} in shock")
        if self.op not in ("set", "add", "mul"):
            raise ValueError(f"unknown shock operation {self.op!r} (set, add, mul)")


@dataclass(frozen=True)
class Scenario:
    """A named hypothetical scenario."""

    name: str
    shocks: tuple[Shock, ...] = ()
    price_moves_pct: Mapping[str, float] = field(default_factory=dict)
    threshold_overrides: Mapping[str, float] = field(default_factory=dict)
    description: str = ""


_METRIC_BOUNDS: dict[str, tuple[float, float]] = {
    "liquidity_drop_pct": (-math.inf, 100.0),
    "spread_bps": (0.0, math.inf),
    "volatility_change_pct": (-100.0, math.inf),
    "sentiment": (0.0, 1.0),
    "funding_bps": (-math.inf, math.inf),
    "latency_ms": (0.0, math.inf),
    "blackout_min": (0.0, math.inf),
    "dispersion_bps": (0.0, math.inf),
}


def apply_shocks(metrics: StressMetrics, shocks: Sequence[Shock]) -> StressMetrics:
    """Apply shocks in order, keeping each metric in its domain (sentiment in [0, 1],
    liquidity drop <= 100 %, volatility change >= -100 %, sizes >= 0). NaN stays NaN
    except under ``set``."""
    values = {name: float(getattr(metrics, name)) for name in METRICS}
    for shock in shocks:
        current = values[shock.metric]
        if shock.op == "set":
            new = shock.value
        elif shock.op == "add":
            new = current + shock.value
        else:
            new = current * shock.value
        low, high = _METRIC_BOUNDS[shock.metric]
        values[shock.metric] = new if math.isnan(new) else min(max(new, low), high)
    return StressMetrics(**values)


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    stressed: StressMetrics
    checks: tuple[MetricCheck, ...]

    @property
    def breached(self) -> tuple[str, ...]:
        return tuple(c.metric for c in self.checks if c.breached)


def run_scenario(
    metrics: StressMetrics, scenario: Scenario, thresholds: StressThresholds = StressThresholds()
) -> ScenarioResult:
    """Shock the baseline metrics and check them against the (overridden) thresholds."""
    stressed = apply_shocks(metrics, scenario.shocks)
    checks = evaluate(stressed, thresholds, scenario.threshold_overrides)
    return ScenarioResult(scenario.name, stressed, tuple(checks))


def default_scenarios(
    blackout_overrides: Mapping[str, float] = BLACKOUT_OVERRIDES,
) -> tuple[Scenario, ...]:
    """Our standard hypothetical scenarios (the blackout overrides come from config)."""
    return (
        Scenario(
            "liquidity_crunch",
            (Shock("liquidity_drop_pct", "set", 60.0),),
            description="Order-book liquidity falls 60 % below its baseline.",
        ),
        Scenario(
            "spread_blowout", (Shock("spread_bps", "mul", 3.0),), description="Spreads triple."
        ),
        Scenario(
            "volatility_spike",
            (Shock("volatility_change_pct", "add", 150.0),),
            description="Realized volatility rises by another 150 points.",
        ),
        Scenario(
            "funding_squeeze",
            (Shock("funding_bps", "add", 40.0),),
            description="Funding rises 40 bps per 8h.",
        ),
        Scenario(
            "blackout",
            (Shock("latency_ms", "add", 200.0), Shock("blackout_min", "set", 55.0)),
            threshold_overrides=dict(blackout_overrides),
            description="Exchange/data blackout with the emergency-margin overrides.",
        ),
        Scenario(
            "venue_dislocation",
            (Shock("dispersion_bps", "add", 80.0),),
            description="Perp and spot prices diverge by another 80 bps.",
        ),
        Scenario(
            "sentiment_crash",
            (Shock("sentiment", "add", -0.4),),
            description="Breadth collapses: sentiment index falls by 0.4.",
        ),
    )


class WorstMove(NamedTuple):
    """The worst close-to-close move over a window: start and end are bar close times."""

    start: datetime
    end: datetime
    return_pct: float


def worst_moves(
    candles: pd.DataFrame, window_hours: float, *, direction: Literal["down", "up"] = "down"
) -> WorstMove:
    """The most negative (``down``) or positive (``up``) return close[j] -> close[i] where
    bar j is the last bar opened at least ``window_hours`` before bar i (so over data gaps
    the span may be longer than the window). Vectorised with searchsorted."""
    open_ns = np.asarray(pd.DatetimeIndex(candles.index).as_unit("ns").asi8, dtype=np.int64)
    close = candles["close"].to_numpy(dtype=np.float64)
    if open_ns.size < 2:
        raise ValueError("worst_moves needs at least two candles")
    bar_ns = int(np.median(np.diff(open_ns)))
    window_ns = int(window_hours * 3_600_000_000_000)
    start_idx = np.searchsorted(open_ns, open_ns - window_ns, side="right") - 1
    valid = start_idx >= 0
    if not valid.any():
        raise ValueError(f"the candles span less than {window_hours} hours")
    end_idx = np.flatnonzero(valid)
    returns = close[end_idx] / close[start_idx[valid]] - 1.0
    pick = int(np.argmin(returns) if direction == "down" else np.argmax(returns))
    i, j = int(end_idx[pick]), int(start_idx[end_idx[pick]])

    def at(ns: int) -> datetime:
        return pd.Timestamp(ns + bar_ns, unit="ns", tz="UTC").to_pydatetime()

    return WorstMove(at(int(open_ns[j])), at(int(open_ns[i])), float(returns[pick]) * 100.0)


@dataclass(frozen=True)
class ScenarioPosition:
    """A position as the stress analytics value it (floats): qty > 0 long, < 0 short, in
    base units, at its entry and at the mark the scenario moves (``domain.types.Position``
    is the account's position, exact)."""

    symbol: str
    qty: float
    entry_price: float
    mark_price: float


@dataclass(frozen=True)
class PositionImpact:
    symbol: str
    stressed_price: float
    notional_usd: float
    mtm_pnl_usd: float
    participation: float
    liquidation_cost_bps: float
    liquidation_cost_usd: float


@dataclass(frozen=True)
class PortfolioImpact:
    positions: tuple[PositionImpact, ...]
    mtm_pnl_usd: float
    liquidation_cost_usd: float
    gross_notional_usd: float
    equity_after_usd: float
    margin_required_usd: float
    margin_usage_pct: float | None


def portfolio_impact(
    positions: Sequence[ScenarioPosition],
    *,
    price_moves_pct: Mapping[str, float],
    spread_bps: Mapping[str, float],
    liquidity_usd: Mapping[str, float],
    equity_usd: float,
    leverage: float,
    taker_fee_bps: float = 5.0,
    impact_coefficient_bps: float = IMPACT_COEFFICIENT_BPS,
) -> PortfolioImpact:
    """Scenario impact on positions (``equity_usd`` already includes PnL at mark).

    stressed price = mark * (1 + move/100) (no move listed: 0); MTM PnL = qty *
    (stressed - mark); liquidation cost = notional * (spread/2 + sqrt(notional /
    liquidity) * 5 + taker fee) / 1e4 with stressed spread and hourly liquidity;
    margin usage = (gross stressed notional / leverage) / (equity + MTM PnL) * 100,
    None when the stressed equity is <= 0 (the account is wiped out).
    """
    if leverage <= 0:
        raise ValueError("leverage must be > 0")
    rows = []
    for pos in positions:
        price = pos.mark_price * (1.0 + price_moves_pct.get(pos.symbol, 0.0) / 100.0)
        notional = abs(pos.qty) * price
        liquidity = liquidity_usd[pos.symbol]
        participation = notional / liquidity if liquidity > 0 else math.inf
        cost_bps = (
            float(slippage_bps(spread_bps[pos.symbol], participation, impact_coefficient_bps))
            + taker_fee_bps
        )
        rows.append(
            PositionImpact(
                pos.symbol,
                price,
                notional,
                pos.qty * (price - pos.mark_price),
                participation,
                cost_bps,
                notional * cost_bps / 1e4,
            )
        )
    mtm = sum(r.mtm_pnl_usd for r in rows)
    gross = sum(r.notional_usd for r in rows)
    equity_after = equity_usd + mtm
    margin = gross / leverage
    return PortfolioImpact(
        positions=tuple(rows),
        mtm_pnl_usd=mtm,
        liquidation_cost_usd=sum(r.liquidation_cost_usd for r in rows),
        gross_notional_usd=gross,
        equity_after_usd=equity_after,
        margin_required_usd=margin,
        margin_usage_pct=margin / equity_after * 100.0 if equity_after > 0 else None,
    )


def stressed_market(snapshot: MarketIntelSnapshot, scenario: Scenario) -> tuple[float, float]:
    """(stressed spread_bps, stressed hourly liquidity_usd) of one symbol under a scenario:
    liquidity = baseline liquidity * (1 - stressed liquidity drop / 100)."""
    stressed = apply_shocks(StressMetrics.from_snapshot(snapshot), scenario.shocks)
    liquidity = snapshot.liquidity_baseline_usd * (1.0 - stressed.liquidity_drop_pct / 100.0)
    return stressed.spread_bps, max(liquidity, 0.0)
