"""The runbook's weekly checklist (seed 003 §3): weight drift, model health, the report.

Conventions (docs/paper-gate.md, "Weekly review", states each one):

- Weights are sleeve capital shares: ``actual_i = value_i / sum(value) * 100`` with
  ``value_i`` the sleeve's equity (its margin plus unrealized PnL), not its position
  notional, so a flat sleeve keeps its weight. ``drift_i = actual_i - target_i`` in
  percentage points; the tolerance is in percentage points too (54 % +- 5 means
  49-59 %). A sleeve with ``|drift| > tolerance`` makes the whole book REBALANCE to
  the targets, else SKIP.
- 7-day Sharpe: ``sqrt(8760) * mean / std(ddof=1)`` of hourly returns.
- Drawdown deepening: see :func:`drawdown_deepening_days`.
- Cost drift: ``|realized - assumed| / assumed * 100`` with trading costs (fee +
  slippage) in bps of traded notional.
- Funding: the mean funding rate paid per settlement (signed by the position: a
  long pays a positive rate), annualized as ``mean * settlements_per_year * 100``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np

from stagectl.errors import InputError

HealthStatus = Literal["OK", "WARNING", "NO_DATA"]
SETTLEMENTS_PER_YEAR = 3 * 365  # 8-hour funding settlements
HOURS_PER_YEAR = 8760.0


@dataclass(frozen=True)
class SleeveDrift:
    """One sleeve's weight against its target; values in the equity's currency."""

    symbol: str
    value: float
    actual_weight_pct: float
    target_weight_pct: float
    drift_pct_points: float
    target_value: float
    delta_value: float


@dataclass(frozen=True)
class RebalanceOrder:
    """The runbook's execution: a limit order, then market after the timeout."""

    symbol: str
    side: Literal["buy", "sell"]
    notional: float
    order_type: str
    timeout_s: float
    fallback: str
    estimated_cost: float


@dataclass(frozen=True)
class WeightDriftDecision:
    decision: Literal["REBALANCE", "SKIP"]
    tolerance_pct_points: float
    total_value: float
    sleeves: tuple[SleeveDrift, ...]
    orders: tuple[RebalanceOrder, ...]
    estimated_cost: float
    cost_bps_assumed: float


def weight_drift(
    values: Mapping[str, float],
    targets_pct: Mapping[str, float],
    *,
    tolerance_pct: float,
    limit_timeout_s: float,
    cost_bps: float,
) -> WeightDriftDecision:
    """Compare sleeve capital shares with the targets; plan the rebalance when needed.

    ``delta_i = target_i / 100 * total - value_i`` (positive: add capital to the
    sleeve, i.e. buy). The estimated cost of an order is ``|delta| * cost_bps / 1e4``
    (the backtest's fee + slippage): the cost to log before the fills say better.
    """
    _check_weights(values, targets_pct)
    total = float(sum(values.values()))
    sleeves = []
    for symbol in sorted(targets_pct):
        value = float(values[symbol])
        target = float(targets_pct[symbol])
        actual = value / total * 100.0
        target_value = target / 100.0 * total
        sleeves.append(
            SleeveDrift(
                symbol=symbol,
                value=value,
                actual_weight_pct=actual,
                target_weight_pct=target,
                drift_pct_points=actual - target,
                target_value=target_value,
                delta_value=target_value - value,
            )
        )
    breached = any(abs(s.drift_pct_points) > tolerance_pct for s in sleeves)
    orders = tuple(
        RebalanceOrder(
            symbol=s.symbol,
            side="buy" if s.delta_value > 0 else "sell",
            notional=abs(s.delta_value),
            order_type="limit",
            timeout_s=limit_timeout_s,
            fallback="market",
            estimated_cost=abs(s.delta_value) * cost_bps / 1e4,
        )
        for s in sleeves
        if breached and s.delta_value != 0
    )
    return WeightDriftDecision(
        decision="REBALANCE" if breached else "SKIP",
        tolerance_pct_points=tolerance_pct,
        total_value=total,
        sleeves=tuple(sleeves),
        orders=orders,
        estimated_cost=sum(o.estimated_cost for o in orders),
        cost_bps_assumed=cost_bps,
    )


def _check_weights(values: Mapping[str, float], targets_pct: Mapping[str, float]) -> None:
    missing = sorted(set(targets_pct) - set(values))
    if missing:
        raise InputError(f"no sleeve value for {', '.join(missing)}", where="sleeves")
    unknown = sorted(set(values) - set(targets_pct))
    if unknown:
        raise InputError(f"sleeves without a target weight: {', '.join(unknown)}", where="sleeves")
    if abs(sum(targets_pct.values()) - 100.0) > 1e-6:
        raise InputError("target weights must sum to 100 %", where="weekly.target_weights_pct")
    if any(not math.isfinite(v) or v < 0 for v in values.values()) or sum(values.values()) <= 0:
        raise InputError("sleeve values must be finite, >= 0 and not all 0", where="sleeves")


@dataclass(frozen=True)
class HealthCheck:
    """One model-health item: its value, the limit, and OK, WARNING or NO_DATA."""

    name: str
    value: float | None
    limit: float
    status: HealthStatus
    detail: str


def sharpe_hourly(returns: Sequence[float] | np.ndarray) -> float | None:
    """``sqrt(8760) * mean / std(ddof=1)``; None below 2 returns or with std 0."""
    values = np.asarray(returns, dtype=float)
    if values.size < 2:
        return None
    std = float(values.std(ddof=1))
    if std == 0 or not math.isfinite(std):
        return None
    return float(values.mean()) / std * math.sqrt(HOURS_PER_YEAR)


def sharpe_7d_check(hourly_returns: Sequence[float] | np.ndarray, minimum: float) -> HealthCheck:
    """OK when the 7-day Sharpe is above ``minimum`` (-1.0); NO_DATA without it."""
    value = sharpe_hourly(hourly_returns)
    if value is None:
        return HealthCheck(
            "sharpe_7d", None, minimum, "NO_DATA", "fewer than 2 hourly returns or no variance"
        )
    status: HealthStatus = "OK" if value > minimum else "WARNING"
    return HealthCheck("sharpe_7d", value, minimum, status, f"must be > {minimum:g}")


def drawdown_deepening_days(daily_equity: Sequence[float] | np.ndarray) -> int:
    """Days the current drawdown has been deepening, 0 when it is not.

    ``daily_equity`` is the equity at each daily check (the last snapshot of
    each UTC day), oldest first. The drawdown ``dd_d = 1 - equity_d / peak_d``
    uses the running peak. The current episode began at the last check at the
    peak (``dd = 0``). When the latest check sets a new low of the episode
    (``dd_last > max(dd)`` over the episode's earlier checks), the drawdown is
    deepening and the result is the number of checks since the episode began;
    when the latest check is above the episode's trough (the drawdown narrowed)
    or at the peak, the result is 0. Example: equity 100, 99, 98, 97 -> 3;
    100, 98, 99, 97 -> 3; 100, 97, 98 -> 0.
    """
    equity = np.asarray(daily_equity, dtype=float)
    if equity.size < 2:
        return 0
    drawdown = 1.0 - equity / np.maximum.accumulate(equity)
    at_peak = np.flatnonzero(drawdown <= 0.0)
    start = int(at_peak[-1]) if at_peak.size else 0
    last = equity.size - 1
    if start == last:
        return 0
    earlier = drawdown[start:last]
    return last - start if drawdown[last] > float(earlier.max()) else 0


def drawdown_check(daily_equity: Sequence[float] | np.ndarray, max_days: int) -> HealthCheck:
    """WARNING when the drawdown has been deepening for more than ``max_days`` days."""
    if len(daily_equity) < 2:
        return HealthCheck("drawdown_deepening_days", None, max_days, "NO_DATA", "under 2 days")
    days = drawdown_deepening_days(daily_equity)
    status: HealthStatus = "OK" if days <= max_days else "WARNING"
    return HealthCheck(
        "drawdown_deepening_days", float(days), max_days, status, f"must be <= {max_days}"
    )


def cost_drift_pct(realized_bps: float, assumed_bps: float) -> float:
    """``|realized - assumed| / assumed * 100``."""
    if assumed_bps <= 0:
        raise InputError("the assumed cost must be > 0 bps", where="costs")
    return abs(realized_bps - assumed_bps) / assumed_bps * 100.0


def cost_drift_check(realized_bps: float | None, assumed_bps: float, max_pct: float) -> HealthCheck:
    """OK when realized trading costs are within ``max_pct`` % of the assumption."""
    if realized_bps is None:
        return HealthCheck("cost_drift_pct", None, max_pct, "NO_DATA", "no fills in the week")
    drift = cost_drift_pct(realized_bps, assumed_bps)
    status: HealthStatus = "OK" if drift < max_pct else "WARNING"
    detail = (
        f"realized {realized_bps:.2f} bps vs assumed {assumed_bps:.2f} bps; must be < {max_pct:g} %"
    )
    return HealthCheck("cost_drift_pct", drift, max_pct, status, detail)


def funding_annualized_pct(mean_rate_per_settlement: float) -> float:
    """``mean_rate * 3 * 365 * 100``: a rate per 8-hour settlement as % per year."""
    return mean_rate_per_settlement * SETTLEMENTS_PER_YEAR * 100.0


def funding_check(mean_paid_rate: float | None, max_annualized_pct: float) -> HealthCheck:
    """OK when the 7-day mean paid funding rate annualizes below ``max_annualized_pct``."""
    if mean_paid_rate is None:
        return HealthCheck(
            "funding_annualized_pct", None, max_annualized_pct, "NO_DATA", "no funding settlements"
        )
    value = funding_annualized_pct(mean_paid_rate)
    status: HealthStatus = "OK" if value < max_annualized_pct else "WARNING"
    return HealthCheck(
        "funding_annualized_pct",
        value,
        max_annualized_pct,
        status,
        f"must be < {max_annualized_pct:g} %",
    )


@dataclass(frozen=True)
class FillCost:
    """One fill's traded notional, fee and slippage (None without a reference price)."""

    symbol: str
    notional: float
    fee: float
    slippage_bps: float | None


@dataclass(frozen=True)
class CostBreakdown:
    """Costs in bps of traded notional; None when nothing was traded."""

    fee_bps: float | None
    slippage_bps: float | None
    funding_bps: float | None

    @property
    def trading_bps(self) -> float | None:
        """Fee + slippage: what the backtest's fee_bps + slippage_bps assume."""
        if self.fee_bps is None or self.slippage_bps is None:
            return None
        return self.fee_bps + self.slippage_bps

    @property
    def total_bps(self) -> float | None:
        parts = (self.fee_bps, self.slippage_bps, self.funding_bps)
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


def slippage_bps(side: str, fill_price: float, reference_price: float) -> float:
    """``sign * (fill - reference) / reference * 1e4``, sign +1 buy, -1 sell: adverse > 0."""
    if reference_price <= 0:
        raise InputError("the reference price must be > 0", where="orders.price")
    sign = 1.0 if side == "buy" else -1.0
    return sign * (fill_price - reference_price) / reference_price * 1e4


def cost_breakdown(fills: Sequence[FillCost], funding_paid: float) -> CostBreakdown:
    """Costs per traded notional: ``sum(fee) / sum(notional) * 1e4`` and so on.

    Slippage is the notional-weighted mean of the fills that have a reference
    price; funding paid (positive: a cost) is spread over the traded notional.
    """
    notional = sum(f.notional for f in fills)
    if notional <= 0:
        return CostBreakdown(None, None, None)
    priced = [f for f in fills if f.slippage_bps is not None]
    priced_notional = sum(f.notional for f in priced)
    slip = (
        sum(f.notional * (f.slippage_bps or 0.0) for f in priced) / priced_notional
        if priced_notional > 0
        else None
    )
    return CostBreakdown(
        fee_bps=sum(f.fee for f in fills) / notional * 1e4,
        slippage_bps=slip,
        funding_bps=funding_paid / notional * 1e4,
    )


@dataclass(frozen=True)
class WeeklyFigures:
    """What the runbook's weekly report template shows (percentages in %)."""

    week_start: date
    week_end: date
    pnl_pct: float | None
    ytd_pct: float | None
    sharpe_20d: float | None
    mdd_pct: float | None
    trades: Mapping[str, int]
    turnover_pct: float | None
    costs: CostBreakdown
    drift: WeightDriftDecision
    kill_switch: str


def short_symbol(symbol: str) -> str:
    """``ETHUSDT`` -> ``ETH``: the template's sleeve names."""
    for quote in ("USDT", "USDC", "USD", "BUSD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def report_lines(figures: WeeklyFigures) -> list[str]:
    """The runbook's weekly report template (seed 003 §3.3), filled in."""
    trades = ", ".join(f"{short_symbol(s)}: {n}" for s, n in figures.trades.items())
    costs = figures.costs
    drift = " / ".join(
        f"{short_symbol(s.symbol)} {s.drift_pct_points:+.1f}%" for s in figures.drift.sleeves
    )
    rebalanced = "Y" if figures.drift.decision == "REBALANCE" else "N"
    return [
        "=== Alt Ensemble Weekly Report ===",
        f"Week: {figures.week_start.isoformat()} → {figures.week_end.isoformat()}",
        f"PnL: {_num(figures.pnl_pct, '+.2f', '%')} (YTD: {_num(figures.ytd_pct, '+.2f', '%')})",
        f"Sharpe (20D): {_num(figures.sharpe_20d, '.2f')}",
        f"MDD: {_num(figures.mdd_pct, '.2f', '%')}",
        f"Trades: {sum(figures.trades.values())} ({trades})",
        f"Turnover: {_num(figures.turnover_pct, '.1f', '%')}",
        f"Costs: fee {_num(costs.fee_bps, '.2f')} + slip {_num(costs.slippage_bps, '.2f')}"
        f" + funding {_num(costs.funding_bps, '.2f')} = total {_num(costs.total_bps, '.2f')}"
        " bps/trade",
        f"Weight Drift: {drift} (rebalanced: {rebalanced})",
        f"Kill Switch: {figures.kill_switch}",
    ]
