"""The weekly review (seed 003 §3): weight drift, model health and the weekly report.

``run`` reads one run's equity snapshots, fills, funding payments and the
recorded guard decisions from the state database (services/guard/evidence.py
names each source) over the week ``[now - 7 days, now]``, ``now`` being ``--now``
or the run's own clock (its last bar for a replayed or finished run, the wall
clock for one trading in real time). It decides REBALANCE or SKIP and the
model-health verdict; it sends no order: unless ``dry_run``, the decision is recorded
for the run (``rebalance_plan``) and the run's trading loop executes a REBALANCE at
its next bar (a limit order per sleeve, market after ``limit_timeout_s``).
``exit_code`` is 0 for SKIP with healthy checks, 1 for REBALANCE or any WARNING.

Entry: ``run(WeeklyReviewRequest, *, home, wall_clock) -> WeeklyReview``
(``risk-guard --weekly``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.domain.run_clock import AsOf
from stagectl.domain.types import Mode
from stagectl.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError

WEEK = timedelta(days=7)
SHARPE_20D = timedelta(days=20)
KIND = "weekly-review"


@dataclass(frozen=True)
class WeeklyReviewRequest:
    """``--now`` (the week's end, aware UTC; None: the run's own clock), ``-c``, ``--data``
    (the market funding; None: the bundled sample), ``--run`` and ``--live/--paper``."""

    now: datetime | None = None
    config: Path | None = None
    data_dir: Path | None = None
    run_id: str | None = None
    mode: Mode = "paper"
    dry_run: bool = False
    """Review only: record no rebalance decision for the trading loop."""


@dataclass(frozen=True)
class WeeklyReview:
    """The week's figures, the drift decision, the health checks and the report."""

    run_id: str
    now: datetime
    as_of: AsOf
    figures: Any  # domain.weekly.WeeklyFigures
    health: tuple[Any, ...]  # domain.weekly.HealthCheck
    near_threshold_decisions: int
    guard_decisions: int
    market_funding_annualized_pct: dict[str, float | None] = field(default_factory=dict)
    sources: tuple[ConfigSource, ...] = ()
    plan: dict[str, Any] | None = None
    """The decision as recorded for the trading loop (None: a dry run)."""

    @property
    def warnings(self) -> list[str]:
        return [h.name for h in self.health if h.status == "WARNING"]

    @property
    def exit_code(self) -> int:
        rebalance = self.figures.drift.decision == "REBALANCE"
        return EXIT_CHECK_FAILED if rebalance or self.warnings else EXIT_OK

    @property
    def inputs(self) -> list[Path]:
        return [s.path for s in self.sources]

    def report_lines(self) -> list[str]:
        from stagectl.domain.weekly import report_lines

        lines = report_lines(self.figures)
        lines.append(
            "Model Health: "
            + ", ".join(f"{h.name} {_show(h.value)} {h.status}" for h in self.health)
        )
        lines.append(f"Near thresholds (LOW): {self.near_threshold_decisions} guard decision(s)")
        drift = self.figures.drift
        if drift.decision == "REBALANCE":
            for order in drift.orders:
                lines.append(
                    f"Rebalance: {order.side} {order.symbol} {order.notional:.2f} notional, "
                    f"limit {order.timeout_s:g} s then market, est. cost {order.estimated_cost:.2f}"
                )
        else:
            lines.append(
                f"Rebalance: SKIP (every sleeve within ±{drift.tolerance_pct_points:g} pp)"
            )
        if self.plan is not None:
            plan = self.plan
            lines.append(f"Recorded for run-live: {plan['decision']} as plan {plan['id']}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        figures = self.figures
        costs = figures.costs
        return {
            "run_id": self.run_id,
            "now": _iso(self.now),
            "as_of": self.as_of.to_dict(),
            "week_start": figures.week_start.isoformat(),
            "week_end": figures.week_end.isoformat(),
            "pnl_pct": figures.pnl_pct,
            "ytd_pct": figures.ytd_pct,
            "sharpe_20d": figures.sharpe_20d,
            "mdd_pct": figures.mdd_pct,
            "trades": dict(figures.trades),
            "turnover_pct": figures.turnover_pct,
            "costs_bps_per_trade": {
                "fee": costs.fee_bps,
                "slippage": costs.slippage_bps,
                "funding": costs.funding_bps,
                "total": costs.total_bps,
            },
            "weight_drift": {
                "decision": figures.drift.decision,
                "tolerance_pct_points": figures.drift.tolerance_pct_points,
                "total_value": figures.drift.total_value,
                "sleeves": [asdict(s) for s in figures.drift.sleeves],
                "orders": [asdict(o) for o in figures.drift.orders],
                "estimated_cost": figures.drift.estimated_cost,
                "cost_bps_assumed": figures.drift.cost_bps_assumed,
            },
            "model_health": [asdict(h) for h in self.health],
            "kill_switch": figures.kill_switch,
            "guard_decisions": self.guard_decisions,
            "near_threshold_decisions": self.near_threshold_decisions,
            "market_funding_annualized_pct": dict(self.market_funding_annualized_pct),
            "rebalance_plan": self.plan,
            "verdict": "ACTION" if self.exit_code else "OK",
            "report": self.report_lines(),
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def run(
    request: WeeklyReviewRequest,
    *,
    home: Home,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> WeeklyReview:
    """Review the week before ``request.now``, else before the run's own clock (UTC);
    InputError (exit 2) when data is missing."""
    from stagectl.config.loader import load_risk_guard, load_strategy
    from stagectl.services.guard.evidence import judged_run, open_existing_state

    config_path, run_id, mode = request.config, request.run_id, request.mode
    if request.now is not None and request.now.tzinfo is None:
        raise InputError("now must carry a time zone (UTC)", where="--now")
    guard, guard_source = load_risk_guard(home, config_path)
    strategy_explicit = None
    if config_path is not None and (config_path.parent / guard.strategy_config).is_file():
        strategy_explicit = config_path.parent / guard.strategy_config
    strategy, strategy_source = load_strategy(home, strategy_explicit)
    db = open_existing_state(home)
    try:
        judged = judged_run(db, run_id=run_id, mode=mode, now=request.now, wall=wall_clock())
        review = _review(db, guard, strategy, run=judged.run_id, now=judged.as_of.at)
        if not request.dry_run:
            from stagectl.services.guard.rebalance_plan import record

            review["plan"] = record(
                db,
                run_id=judged.run_id,
                now=judged.as_of.at,
                drift=review["figures"].drift,
                mode=mode,
            )
    finally:
        db.close()
    now = judged.as_of.at
    market = _market_funding(list(guard.weekly.target_weights_pct), now, request.data_dir)
    return WeeklyReview(
        **review,
        as_of=judged.as_of,
        market_funding_annualized_pct=market,
        sources=(guard_source, strategy_source),
    )


def _review(db: Any, guard: Any, strategy: Any, *, run: str, now: datetime) -> dict[str, Any]:
    import pandas as pd

    from stagectl.domain import weekly
    from stagectl.domain.paper_gate import max_drawdown_pct
    from stagectl.domain.risk_rules import ACTION_RANK
    from stagectl.services.guard import evidence

    week_start, until = now - WEEK, now + evidence.EPSILON
    snaps = evidence.snapshots_until(db, run, now)
    equity = pd.Series(
        [s.equity for s in snaps], index=pd.DatetimeIndex([s.ts for s in snaps]), dtype=float
    )
    targets = dict(guard.weekly.target_weights_pct)
    cost_bps = strategy.costs.fee_bps + strategy.costs.slippage_bps
    drift = weekly.weight_drift(
        _sleeve_values(snaps[-1], targets),
        targets,
        tolerance_pct=guard.weekly.tolerance_pct,
        limit_timeout_s=guard.weekly.limit_timeout_s,
        cost_bps=cost_bps,
    )
    week_fills = evidence.run_fills(db, run, week_start, until)
    fill_costs = [
        weekly.FillCost(
            symbol=f.symbol,
            notional=float(abs(f.qty) * f.price),
            fee=float(f.fee),
            slippage_bps=_slippage(evidence.reference_price(db, f), f),
        )
        for f in week_fills
    ]
    week_funding = evidence.run_funding(db, run, week_start, until)
    costs = weekly.cost_breakdown(fill_costs, float(sum(p.paid for p in week_funding)))
    decisions = evidence.decisions_between(db, run, week_start, until)
    health = _health(equity, guard, costs, evidence.mean_paid_rate(week_funding), now, cost_bps)
    worst = max(
        (d.action for d in decisions), key=lambda a: ACTION_RANK.get(a, 0), default="NO_ACTION"
    )
    if (
        any(h.status == "WARNING" for h in health)
        and ACTION_RANK.get(worst, 0) < ACTION_RANK["WARNING"]
    ):
        worst = "WARNING"
    in_week = equity[equity.index >= week_start]
    figures = weekly.WeeklyFigures(
        week_start=week_start.date(),
        week_end=(now - evidence.EPSILON).date(),
        pnl_pct=_return_pct(equity, week_start),
        ytd_pct=_return_pct(equity, datetime(now.year, 1, 1, tzinfo=UTC)),
        sharpe_20d=weekly.sharpe_hourly(_hourly_returns(equity, now - SHARPE_20D)),
        mdd_pct=max_drawdown_pct(equity.tolist()),
        trades=_trade_counts(week_fills, targets),
        turnover_pct=(
            sum(f.notional for f in fill_costs) / float(in_week.mean()) * 100.0
            if len(in_week)
            else None
        ),
        costs=costs,
        drift=drift,
        kill_switch=worst,
    )
    return {
        "run_id": run,
        "now": now,
        "figures": figures,
        "health": tuple(health),
        "near_threshold_decisions": sum(1 for d in decisions if d.severity == "LOW"),
        "guard_decisions": len(decisions),
    }


def _health(
    equity: Any, guard: Any, costs: Any, paid_rate: float | None, now: datetime, cost_bps: float
) -> list[Any]:
    from stagectl.domain import weekly

    health_cfg = guard.weekly.model_health
    daily_close = equity.groupby(equity.index.floor("D")).last()
    return [
        weekly.sharpe_7d_check(_hourly_returns(equity, now - WEEK), health_cfg.sharpe_7d_min),
        weekly.drawdown_check(daily_close.to_numpy(), health_cfg.drawdown_deepening_days),
        weekly.cost_drift_check(costs.trading_bps, cost_bps, health_cfg.cost_drift_max_pct),
        weekly.funding_check(paid_rate, health_cfg.funding_annualized_max_pct),
    ]


def _sleeve_values(snapshot: Any, targets: dict[str, float]) -> dict[str, float]:
    """Sleeve capital from the latest snapshot: ``sleeves_json`` ``{"ETHUSDT": {"equity": x}}``,
    or ``capital`` when rebalances moved capital between the sleeves (run-live writes it)."""
    values: dict[str, float] = {}
    for symbol in targets:
        entry = snapshot.sleeves.get(symbol)
        value = entry.get("capital", entry.get("equity")) if isinstance(entry, dict) else None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InputError(
                f"the latest equity snapshot ({_iso(snapshot.ts)}, run {snapshot.run_id}) has no "
                f"sleeve equity for {symbol}; the weight-drift check needs sleeves_json like "
                '{"ETHUSDT": {"equity": 5400.0}, "SOLUSDT": {"equity": 4600.0}}',
                where="equity_snapshots.sleeves_json",
            )
        values[symbol] = float(value)
    return values


def _slippage(reference: float | None, fill: Any) -> float | None:
    from stagectl.domain.weekly import slippage_bps

    return None if reference is None else slippage_bps(fill.side, float(fill.price), reference)


def _return_pct(equity: Any, since: datetime) -> float | None:
    """Last equity / the last equity at or before ``since`` (else the first) - 1, in %."""
    before = equity[equity.index <= since]
    base = float(before.iloc[-1]) if len(before) else float(equity.iloc[0])
    return (float(equity.iloc[-1]) / base - 1.0) * 100.0 if base > 0 else None


def _hourly_returns(equity: Any, since: datetime) -> Any:
    """Per-snapshot returns after ``since`` (the snapshot at or before it is the base)."""
    returns = equity.pct_change().dropna()
    return returns[returns.index > since].to_numpy()


def _trade_counts(week_fills: list[Any], targets: dict[str, float]) -> dict[str, int]:
    """Orders filled per symbol (fills of one order count once); every sleeve listed."""
    orders: dict[str, set[str]] = {symbol: set() for symbol in targets}
    for f in week_fills:
        orders.setdefault(f.symbol, set()).add(f.client_order_id or f"trade:{f.trade_id}")
    return {symbol: len(ids) for symbol, ids in orders.items()}


def _market_funding(
    symbols: list[str], now: datetime, data_dir: Path | None
) -> dict[str, float | None]:
    """Context: each sleeve's 7-day mean market funding rate, annualized (None: no data)."""
    from stagectl.data import load_funding
    from stagectl.domain.weekly import funding_annualized_pct

    out: dict[str, float | None] = {}
    for symbol in symbols:
        try:
            rates = load_funding(symbol, data_dir=data_dir)
        except (InputError, OSError):
            out[symbol] = None
            continue
        week = rates[(rates.index >= now - WEEK) & (rates.index < now)]
        out[symbol] = funding_annualized_pct(float(week.mean())) if len(week) else None
    return out
