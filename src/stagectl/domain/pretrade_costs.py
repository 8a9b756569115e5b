"""The seed 001 (#4) cost of one execution before it is sent (docs/research.md, "Cost models").

Per execution, in bps of the traded notional, from what is known before the trade at
the open of bar k:

- half the spread: the Corwin-Schultz estimate of bars k-2 and k-1
  (``domain.costs.prior_bar_spread_bps``, negative estimates set to 0), floored at
  ``spread_floor_bps`` (market intel's floor, 1 bp);
- impact: sqrt(participation) x ``impact_coefficient_bps`` (5), participation = traded
  notional / the dollar volume (volume x close) of bar k-1;
- the venue's taker fee (``risk_presets.yaml`` ``costs.fees_bps``);
- the latency penalty: latency_ms / 10 x ``latency_penalty_bps_per_10ms`` (0.1).

The safety-margin rule (edge - costs >= ``safety_margin_bps``) needs an expected edge;
:func:`pre_trade_cost` applies it only when one is given. Shared by run-live's
pre-trade check and ``backtest --cost-model full`` (``services.strategy.costs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stagectl.config.risk_presets import RiskPresetsConfig
from stagectl.domain.costs import SPREAD_FLOOR_BPS, cost_breakdown, trade_allowed
from stagectl.domain.costs import execution_cost_bps as domain_execution_cost_bps


@dataclass(frozen=True)
class CostSettings:
    """The cost model of risk_presets.yaml for one venue."""

    taker_fee_bps: float
    impact_coefficient_bps: float
    latency_penalty_bps_per_10ms: float
    safety_margin_bps: float
    spread_floor_bps: float = SPREAD_FLOOR_BPS
    venue: str = "default"

    @classmethod
    def from_config(cls, config: RiskPresetsConfig, exchange: str) -> CostSettings:
        """Venue ``binance`` for Binance ids (and paper, which models Binance USD-M)."""
        fees = config.costs.fees_bps
        venue = next((v for v in fees if v != "default" and exchange.startswith(v)), "default")
        return cls(
            taker_fee_bps=fees[venue].taker,
            impact_coefficient_bps=config.costs.impact_coefficient_bps,
            latency_penalty_bps_per_10ms=config.costs.latency_penalty_bps_per_10ms,
            safety_margin_bps=config.costs.safety_margin_bps,
            venue=venue,
        )


def execution_cost_bps(
    settings: CostSettings,
    spread_bps: npt.ArrayLike,
    participation: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """Half spread + impact + taker fee per execution (vectorised, no latency)."""
    return domain_execution_cost_bps(
        spread_bps,
        participation,
        fee_bps=settings.taker_fee_bps,
        impact_coefficient_bps=settings.impact_coefficient_bps,
    )


def pre_trade_cost(
    settings: CostSettings,
    *,
    spread_bps: float,
    notional_usd: float,
    bar_dollar_volume: float,
    latency_ms: float,
    expected_edge_bps: float | None = None,
) -> dict[str, Any]:
    """The estimate of one order, and the safety-margin decision when an edge is given.

    ``allowed`` is None without an edge estimate: the cost is recorded, nothing blocked.
    """
    participation = notional_usd / bar_dollar_volume if bar_dollar_volume > 0 else 1.0
    parts = cost_breakdown(
        spread_bps=spread_bps,
        participation=participation,
        fee_bps=settings.taker_fee_bps,
        impact_coefficient_bps=settings.impact_coefficient_bps,
    )
    latency_bps = latency_ms / 10.0 * settings.latency_penalty_bps_per_10ms
    total = parts.slippage_bps + parts.fee_bps + latency_bps
    out: dict[str, Any] = {
        "costs_bps": round(total, 6),
        "spread_bps": round(spread_bps, 6),
        "half_spread_bps": round(spread_bps / 2.0, 6),
        "impact_bps": round(parts.slippage_bps - spread_bps / 2.0, 6),
        "participation": participation,
        "fee_bps": parts.fee_bps,
        "latency_ms": latency_ms,
        "latency_bps": round(latency_bps, 6),
        "venue": settings.venue,
        "expected_edge_bps": expected_edge_bps,
        "allowed": None,
        "reason_code": None,
    }
    if expected_edge_bps is not None:
        decision = trade_allowed(expected_edge_bps, total, settings.safety_margin_bps)
        out["allowed"], out["reason_code"] = decision.allowed, decision.reason_code
    return out
