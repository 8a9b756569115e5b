"""The seed 001 (#4) cost of one execution, shared by ``backtest --cost-model full`` and
run-live's pre-trade check (docs/research.md, "Cost models").

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
:func:`pre_trade_cost` applies it only when one is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from stagectl.config.risk_presets import RiskPresetsConfig
from stagectl.domain.costs import (
    SPREAD_FLOOR_BPS,
    cost_breakdown,
    pair_spread_bps,
    prior_bar_spread_bps,
    trade_allowed,
)
from stagectl.domain.costs import execution_cost_bps as domain_execution_cost_bps

__all__ = [
    "SPREAD_FLOOR_BPS",
    "CostSettings",
    "execution_cost_bps",
    "pair_spread_bps",
    "pre_trade_cost",
    "prior_bar_spread_bps",
]


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


# --- ``backtest --cost-model full`` -------------------------------------------------

FULL_COST_MAX_PASSES = 6
FULL_COST_TOLERANCE = 1e-9
BACKTEST_VENUE = "binance"  # the candle files are Binance USD-M perps
PARTICIPATION_CONVENTION = (
    "participation = traded notional / dollar volume (volume x close) of the bar before "
    "the trade; traded notional = |position change| x sleeve weight x portfolio equity at "
    "the open, so impact grows with the equity (fixed point over passes of the backtest)"
)


@dataclass(frozen=True)
class SleeveMarket:
    """Per bar of the backtest window, what the full model knows at the open."""

    spread_bps: npt.NDArray[np.float64]
    prior_dollar_volume: npt.NDArray[np.float64]


@dataclass(frozen=True)
class FullCostRun:
    """The full-cost backtest, its per-bar cost parts per sleeve and the fixed point."""

    result: Any  # domain.backtest.BacktestResult
    parts: list[Any]  # domain.costs.ExecutionCostParts per sleeve
    notional: npt.NDArray[np.float64]  # (bars, sleeves) traded notional, currency
    passes: int
    residual: float  # max relative change of the traded notional in the last pass


def sleeve_markets(
    sleeves: list[Any], timeframe: str, data_dir: Any, floor_bps: float = SPREAD_FLOOR_BPS
) -> list[SleeveMarket]:
    """Spread (Corwin-Schultz of the two prior bars) and prior-bar dollar volume per sleeve.

    Computed on each symbol's own candles, so the first window bar uses the bars before
    the window; bars without a predecessor get the floor spread and no dollar volume.
    """
    import pandas as pd

    from stagectl.data.loaders import read_candles

    markets = []
    for sleeve in sleeves:
        frame = read_candles(sleeve.symbol, timeframe, data_dir=data_dir).frame
        spread = pd.Series(
            prior_bar_spread_bps(frame["high"].to_numpy(), frame["low"].to_numpy(), floor_bps),
            index=frame.index,
        )
        volume = (frame["volume"] * frame["close"]).shift(1)
        window = sleeve.open.index
        markets.append(
            SleeveMarket(
                spread_bps=np.asarray(spread.reindex(window).fillna(floor_bps), dtype=np.float64),
                prior_dollar_volume=np.asarray(volume.reindex(window), dtype=np.float64),
            )
        )
    return markets


def traded_notional(result: Any) -> npt.NDArray[np.float64]:
    """(bars, sleeves): |position change| x the sleeve's capital marked at the open."""
    weights = np.array([result.weights[s] for s in result.positions.columns])
    equity_before = np.concatenate(([result.initial_equity], result.equity.to_numpy()[:-1]))
    mark = (
        equity_before[:, None] * weights[None, :]
        + result.sleeve_gross_pnl.to_numpy()
        - result.sleeve_funding.to_numpy()
    )
    return np.asarray(mark * result.sleeve_turnover.to_numpy(), dtype=np.float64)


def full_cost_backtest(
    sleeves: list[Any],
    markets: list[SleeveMarket],
    settings: CostSettings,
    **backtest: Any,
) -> FullCostRun:
    """``run_backtest`` with the seed 001 cost per execution (half spread + impact + fee).

    The impact depends on the traded notional, which depends on the equity, which
    depends on the costs: pass 1 takes the notional of a run charging half spread + fee
    only, each later pass the notional of the previous one, until it moves by less than
    ``FULL_COST_TOLERANCE`` (relative) or ``FULL_COST_MAX_PASSES`` is reached.
    ``backtest`` is passed to ``run_backtest`` (cost_multiplier, initial_equity, ...).
    """
    from stagectl.domain.backtest import run_backtest
    from stagectl.domain.costs import execution_cost_parts

    def priced(notional: npt.NDArray[np.float64]) -> list[Any]:
        return [
            execution_cost_parts(
                notional[:, i],
                market.spread_bps,
                market.prior_dollar_volume,
                fee_bps=settings.taker_fee_bps,
                impact_coefficient_bps=settings.impact_coefficient_bps,
            )
            for i, market in enumerate(markets)
        ]

    bars = len(sleeves[0].open) if sleeves else 0
    notional = np.zeros((bars, len(sleeves)))
    parts = [replace(p, impact_bps=np.zeros_like(p.impact_bps)) for p in priced(notional)]
    result = run_backtest(
        sleeves, cost_bps=[(p.fee_bps, p.slippage_bps) for p in parts], **backtest
    )
    residual, passes = math.inf, 0
    while passes < FULL_COST_MAX_PASSES and residual > FULL_COST_TOLERANCE:
        used = traded_notional(result)
        parts = priced(used)
        result = run_backtest(
            sleeves, cost_bps=[(p.fee_bps, p.slippage_bps) for p in parts], **backtest
        )
        notional = traded_notional(result)
        scale = np.maximum(np.abs(used), 1e-12)
        residual = float(np.max(np.abs(notional - used) / scale, initial=0.0))
        passes += 1
    return FullCostRun(
        result=result, parts=parts, notional=notional, passes=passes, residual=residual
    )


def cost_summary(
    result: Any, cost_multiplier: float, full: FullCostRun | None = None
) -> dict[str, Any]:
    """Costs per execution (one sleeve's position change at one open), in bps of notional.

    ``avg_*_bps`` are notional-weighted (total cost / total traded notional);
    ``mean_cost_bps_per_execution`` is the plain mean over executions. With the full model
    the slippage is split into half spread and impact (both times the multiplier).
    """
    notional = traded_notional(result)
    fee = result.sleeve_fee.to_numpy()
    slippage = result.sleeve_slippage.to_numpy()
    executed = notional > 0
    total_notional = float(notional.sum())

    def weighted_bps(values: npt.NDArray[np.float64]) -> float | None:
        return float(values.sum()) / total_notional * 1e4 if total_notional > 0 else None

    per_execution = (fee + slippage)[executed] / notional[executed] * 1e4
    out: dict[str, Any] = {
        "model": "flat" if full is None else "full",
        "executions": int(executed.sum()),
        "traded_notional": total_notional,
        "avg_cost_bps_per_execution": weighted_bps(fee + slippage),
        "mean_cost_bps_per_execution": (
            float(per_execution.mean()) if per_execution.size else None
        ),
        "avg_fee_bps": weighted_bps(fee),
        "avg_slippage_bps": weighted_bps(slippage),
    }
    if full is not None:
        half = np.column_stack([p.half_spread_bps for p in full.parts])
        impact = np.column_stack([p.impact_bps for p in full.parts])
        participation = np.column_stack([p.participation for p in full.parts])[executed]
        out |= {
            "avg_half_spread_bps": weighted_bps(half * notional * cost_multiplier / 1e4),
            "avg_impact_bps": weighted_bps(impact * notional * cost_multiplier / 1e4),
            "mean_participation": float(participation.mean()) if participation.size else None,
            "max_participation": float(participation.max()) if participation.size else None,
            "passes": full.passes,
            "notional_residual": full.residual,
        }
    return out
