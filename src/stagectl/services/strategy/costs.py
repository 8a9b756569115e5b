"""``backtest --cost-model full``: the seed 001 (#4) cost of every execution of a backtest
(docs/research.md, "Cost models"); the cost of one execution is ``domain.pretrade_costs``.

Each bar's traded notional prices impact, so the model is a fixed point over passes of
the backtest (``full_cost_backtest``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from stagectl.domain.costs import SPREAD_FLOOR_BPS, prior_bar_spread_bps
from stagectl.domain.pretrade_costs import CostSettings

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

    cost = fee + slippage
    per_execution = cost[executed] / notional[executed] * 1e4
    out: dict[str, Any] = {
        "model": "flat" if full is None else "full",
        "executions": int(executed.sum()),
        "traded_notional": total_notional,
        "avg_cost_bps_per_execution": weighted_bps(cost),
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
