"""The full cost model of seed 001 (#4): slippage, fees, funding, latency, safety margin.

All costs are in basis points of notional and positive when they cost us money.
Slippage, fee and latency are per execution (one side of a trade); funding is per
holding period. A round trip is two executions: pass ``legs=2`` to
:func:`total_cost_bps`. Every formula accepts floats or numpy arrays (broadcast).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stagectl.domain.types import Liquidity

FloatOrArray = float | npt.NDArray[np.float64]

IMPACT_COEFFICIENT_BPS = 5.0
DEFAULT_SAFETY_MARGIN_BPS = 3.0
FUNDING_INTERVAL_HOURS = 8.0

DENIAL_EDGE_BELOW_MARGIN = "EDGE_BELOW_COST_MARGIN"
DENIAL_INVALID_INPUT = "INVALID_COST_INPUT"


@dataclass(frozen=True)
class VenueFees:
    """A venue's fee schedule for one account tier, in bps of notional."""

    maker_bps: float
    taker_bps: float

    def fee_bps(self, liquidity: Liquidity) -> float:
        """The fee for adding (maker) or taking (taker) liquidity."""
        if liquidity == "maker":
            return self.maker_bps
        if liquidity == "taker":
            return self.taker_bps
        raise ValueError(f"liquidity must be 'maker' or 'taker', not {liquidity!r}")


def _default_venues() -> dict[str, VenueFees]:
    # Regular (non-VIP) tiers as published by the venues; override per account tier.
    return {
        "binance_usdm": VenueFees(maker_bps=2.0, taker_bps=5.0),
        "bybit_linear": VenueFees(maker_bps=2.0, taker_bps=5.5),
        "okx_swap": VenueFees(maker_bps=2.0, taker_bps=5.0),
    }


@dataclass(frozen=True)
class FeeSchedule:
    """Fees by venue; build one with ``FeeSchedule.with_overrides`` for a different tier."""

    venues: Mapping[str, VenueFees] = field(default_factory=_default_venues)

    def fee_bps(self, venue: str, liquidity: Liquidity) -> float:
        """The fee in bps for ``venue``; an unknown venue raises ValueError naming it."""
        try:
            fees = self.venues[venue]
        except KeyError:
            known = ", ".join(sorted(self.venues))
            raise ValueError(f"unknown venue {venue!r} (known: {known})") from None
        return fees.fee_bps(liquidity)

    def with_overrides(self, overrides: Mapping[str, VenueFees]) -> FeeSchedule:
        """A copy where the given venues are replaced or added."""
        return FeeSchedule(venues={**self.venues, **overrides})


DEFAULT_FEES = FeeSchedule()


def slippage_bps(
    spread_bps: FloatOrArray,
    participation: FloatOrArray,
    impact_coefficient_bps: float = IMPACT_COEFFICIENT_BPS,
) -> FloatOrArray:
    """Slippage = spread_bps / 2 + sqrt(participation) * impact_coefficient_bps.

    ``participation`` is our size as a fraction of the traded volume over the
    execution horizon (0.04 = 4 %); it must be >= 0 (negative raises ValueError).
    """
    participation_arr = np.asarray(participation, dtype=np.float64)
    if np.any(participation_arr < 0):
        raise ValueError("participation must be >= 0")
    result = np.asarray(spread_bps, dtype=np.float64) / 2.0 + (
        np.sqrt(participation_arr) * impact_coefficient_bps
    )
    return _same_kind(result, spread_bps, participation)


def funding_cost_bps(
    funding_rate_bps: FloatOrArray, hours_held: FloatOrArray, side: int = 1
) -> FloatOrArray:
    """Funding = side * funding_rate_bps * hours_held / 8.

    ``funding_rate_bps`` is the rate per 8h settlement; positive rates mean longs
    pay shorts, so ``side=+1`` (long) pays a positive rate and ``side=-1`` receives it
    (a negative cost).
    """
    if side not in (1, -1):
        raise ValueError("side must be +1 (long) or -1 (short)")
    rate = np.asarray(funding_rate_bps, dtype=np.float64)
    result = side * rate * np.asarray(hours_held, dtype=np.float64) / FUNDING_INTERVAL_HOURS
    return _same_kind(result, funding_rate_bps, hours_held)


def latency_penalty_bps(latency_ms: FloatOrArray) -> FloatOrArray:
    """Latency penalty = (latency_ms / 10) * 0.1 bps, i.e. 1 bp per 100 ms."""
    result = np.asarray(latency_ms, dtype=np.float64) / 10.0 * 0.1
    return _same_kind(result, latency_ms)


@dataclass(frozen=True)
class CostBreakdown:
    """The components of :func:`cost_breakdown`, each in bps."""

    slippage_bps: float
    fee_bps: float
    funding_bps: float
    latency_bps: float

    @property
    def total_bps(self) -> float:
        return self.slippage_bps + self.fee_bps + self.funding_bps + self.latency_bps


def total_cost_bps(
    *,
    spread_bps: FloatOrArray,
    participation: FloatOrArray,
    fee_bps: FloatOrArray,
    funding_rate_bps: FloatOrArray = 0.0,
    hours_held: FloatOrArray = 0.0,
    latency_ms: FloatOrArray = 0.0,
    side: int = 1,
    legs: int = 1,
    impact_coefficient_bps: float = IMPACT_COEFFICIENT_BPS,
) -> FloatOrArray:
    """Total = legs * (slippage + fee + latency penalty) + funding over the holding period."""
    per_leg = (
        np.asarray(slippage_bps(spread_bps, participation, impact_coefficient_bps))
        + np.asarray(fee_bps, dtype=np.float64)
        + np.asarray(latency_penalty_bps(latency_ms))
    )
    result = legs * per_leg + np.asarray(funding_cost_bps(funding_rate_bps, hours_held, side))
    return _same_kind(
        result, spread_bps, participation, fee_bps, funding_rate_bps, hours_held, latency_ms
    )


def cost_breakdown(
    *,
    spread_bps: float,
    participation: float,
    fee_bps: float,
    funding_rate_bps: float = 0.0,
    hours_held: float = 0.0,
    latency_ms: float = 0.0,
    side: int = 1,
    legs: int = 1,
    impact_coefficient_bps: float = IMPACT_COEFFICIENT_BPS,
) -> CostBreakdown:
    """The same costs as :func:`total_cost_bps` for one trade, component by component."""
    return CostBreakdown(
        slippage_bps=legs * float(slippage_bps(spread_bps, participation, impact_coefficient_bps)),
        fee_bps=legs * fee_bps,
        funding_bps=float(funding_cost_bps(funding_rate_bps, hours_held, side)),
        latency_bps=legs * float(latency_penalty_bps(latency_ms)),
    )


@dataclass(frozen=True)
class TradeDecision:
    """Whether a trade clears its costs; a refusal carries a coded reason."""

    allowed: bool
    net_edge_bps: float
    reason_code: str | None = None
    reason: str | None = None


def trade_allowed(
    expected_edge_bps: float,
    total_costs_bps: float,
    safety_margin_bps: float = DEFAULT_SAFETY_MARGIN_BPS,
) -> TradeDecision:
    """Allow a trade only when expected_edge - total_costs >= safety_margin (seed 001 #4)."""
    values = (expected_edge_bps, total_costs_bps, safety_margin_bps)
    if not all(math.isfinite(v) for v in values):
        return TradeDecision(
            allowed=False,
            net_edge_bps=math.nan,
            reason_code=DENIAL_INVALID_INPUT,
            reason="edge, costs and margin must be finite numbers",
        )
    net_edge = expected_edge_bps - total_costs_bps
    if net_edge < safety_margin_bps:
        return TradeDecision(
            allowed=False,
            net_edge_bps=net_edge,
            reason_code=DENIAL_EDGE_BELOW_MARGIN,
            reason=(
                f"edge {expected_edge_bps:.2f} bps - costs {total_costs_bps:.2f} bps = "
                f"{net_edge:.2f} bps is below the safety margin {safety_margin_bps:.2f} bps"
            ),
        )
    return TradeDecision(allowed=True, net_edge_bps=net_edge)


def trades_allowed(
    expected_edge_bps: npt.ArrayLike,
    total_costs_bps: npt.ArrayLike,
    safety_margin_bps: float = DEFAULT_SAFETY_MARGIN_BPS,
) -> npt.NDArray[np.bool_]:
    """Vectorised :func:`trade_allowed`: True where edge - costs >= margin (NaN is False)."""
    net = np.asarray(expected_edge_bps, dtype=np.float64) - np.asarray(
        total_costs_bps, dtype=np.float64
    )
    with np.errstate(invalid="ignore"):
        return np.asarray(net >= safety_margin_bps, dtype=np.bool_)


def _same_kind(result: npt.ArrayLike, *inputs: npt.ArrayLike) -> FloatOrArray:
    """A float when every input was a scalar, else the float64 array."""
    if all(np.ndim(value) == 0 for value in inputs):
        return float(np.asarray(result))
    return np.asarray(result, dtype=np.float64)


# --- per-bar execution costs from bar data (``backtest --cost-model full``, run-live) ---

SPREAD_FLOOR_BPS = 1.0  # market intel's floor (domain.market_intel.MarketIntelWindows)


def prior_bar_spread_bps(
    high: npt.ArrayLike, low: npt.ArrayLike, floor_bps: float = SPREAD_FLOOR_BPS
) -> npt.NDArray[np.float64]:
    """Per bar k, the spread known at its open, in bps.

    spread[k] = max(CS(k-2, k-1) clipped at 0, floor_bps), CS being the Corwin-Schultz
    estimate of the two bars before k (``market_intel.corwin_schultz_spreads``);
    ``floor_bps`` where no such pair exists (k < 2) or the estimate is NaN.
    """
    from stagectl.domain.market_intel import corwin_schultz_spreads

    pairs = np.clip(corwin_schultz_spreads(high, low), 0.0, None) * 1e4
    out = np.full(np.asarray(high).shape[0], floor_bps, dtype=np.float64)
    out[2:] = np.maximum(np.nan_to_num(pairs[:-1], nan=floor_bps), floor_bps)
    return out


def pair_spread_bps(
    high: npt.ArrayLike, low: npt.ArrayLike, floor_bps: float = SPREAD_FLOOR_BPS
) -> float:
    """max(Corwin-Schultz spread of two consecutive bars in bps, floor_bps); NaN: the floor."""
    from stagectl.domain.market_intel import corwin_schultz_spreads

    value = float(corwin_schultz_spreads(high, low)[0]) * 1e4
    return max(value, floor_bps) if np.isfinite(value) else floor_bps


def execution_cost_bps(
    spread_bps: npt.ArrayLike,
    participation: npt.ArrayLike,
    *,
    fee_bps: float,
    impact_coefficient_bps: float = IMPACT_COEFFICIENT_BPS,
) -> npt.NDArray[np.float64]:
    """Per execution: spread_bps / 2 + sqrt(participation) x impact_coefficient_bps + fee_bps.

    Vectorised; negative participation is treated as 0. No latency or funding.
    """
    participation_arr = np.clip(np.asarray(participation, dtype=np.float64), 0.0, None)
    return np.asarray(
        np.asarray(spread_bps, dtype=np.float64) / 2.0
        + np.sqrt(participation_arr) * impact_coefficient_bps
        + fee_bps,
        dtype=np.float64,
    )


@dataclass(frozen=True)
class ExecutionCostParts:
    """Per-bar cost rates of one sleeve, in bps of the traded notional."""

    fee_bps: npt.NDArray[np.float64]
    half_spread_bps: npt.NDArray[np.float64]
    impact_bps: npt.NDArray[np.float64]
    participation: npt.NDArray[np.float64]

    @property
    def slippage_bps(self) -> npt.NDArray[np.float64]:
        """Half spread + impact: what is not the venue's fee."""
        return np.asarray(self.half_spread_bps + self.impact_bps, dtype=np.float64)


def execution_cost_parts(
    traded_notional: npt.ArrayLike,
    spread_bps: npt.ArrayLike,
    dollar_volume: npt.ArrayLike,
    *,
    fee_bps: float,
    impact_coefficient_bps: float = IMPACT_COEFFICIENT_BPS,
) -> ExecutionCostParts:
    """The seed 001 cost of the execution at each bar, split into fee, half spread, impact.

    participation[k] = traded_notional[k] / dollar_volume[k] (both in the same currency;
    ``dollar_volume`` is the volume x close the caller deems known at the trade). Where
    nothing trades participation is 0; where the dollar volume is missing, zero or
    negative it is 1 (the whole bar: the conservative choice). The rates apply at every
    bar; the cost charged is rate x traded notional, so bars without a trade cost nothing.
    """
    notional = np.abs(np.asarray(traded_notional, dtype=np.float64))
    volume = np.asarray(dollar_volume, dtype=np.float64)
    known = np.isfinite(volume) & (volume > 0)
    participation = np.divide(notional, volume, out=np.ones_like(notional), where=known)
    participation[notional == 0] = 0.0
    spread = np.broadcast_to(np.asarray(spread_bps, dtype=np.float64), notional.shape)
    return ExecutionCostParts(
        fee_bps=np.full(notional.shape, float(fee_bps)),
        half_spread_bps=np.asarray(spread / 2.0, dtype=np.float64),
        impact_bps=np.sqrt(participation) * impact_coefficient_bps,
        participation=participation,
    )
