"""governor: Market Intel -> Portfolio Governor weights, recorded in the state database.

The previous weights are the current ones (the latest applied decision in state;
the baselines when none). ``now`` is the Market Intel as-of time, and the
rebalance interval (20 min, seed 000) is measured in that clock: on the bundled
sample "now" is the data's end unless ``--now`` is given. Every run records one
decision (``apply``, ``propose`` or ``refuse``) with its inputs, in one transaction.

``--apply`` needs core.yaml's compliance sign-off (``services.stage6.compliance``,
seed 000: a change takes effect only after the config is updated and the compliance
report is signed): without one it is refused (exit 1) before anything is recorded;
an applied decision cites the sign-off. A proposal is a dry look and needs none.

Entry: ``run(GovernorRequest, *, home) -> GovernorResult``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import Home
from stagectl.config.loader import file_sha256
from stagectl.config.state_url import state_exists
from stagectl.errors import ConfigError, InputError
from stagectl.services.stage6 import market_intel

if TYPE_CHECKING:
    from stagectl.config.core import CoreConfig
    from stagectl.domain.governor import GovernorDecision, GovernorParams


@dataclass(frozen=True)
class GovernorRequest:
    """Market Intel's inputs (``-c``, ``--data``, ``--now``) and ``--apply``."""

    config: Path | None = None
    data_dir: Path | None = None
    now: datetime | None = None
    apply: bool = False


@dataclass(frozen=True)
class GovernorResult:
    decision: GovernorDecision
    intel: market_intel.MarketIntelResult
    action: str
    allowed: bool
    next_due_at: datetime
    last_rebalance_at: datetime | None
    previous_source: str
    decision_id: int
    inputs_sha256: str

    @property
    def refused(self) -> bool:
        return self.action == "refuse"

    def body(self) -> dict[str, Any]:
        return {
            "as_of": _iso(self.intel.now),
            "action": self.action,
            "decision_id": self.decision_id,
            "rebalance": {
                "allowed": self.allowed,
                "interval_min": self.intel.core.portfolio_governor.rebalance_interval_min,
                "last_rebalance_at": _iso(self.last_rebalance_at),
                "next_due_at": _iso(self.next_due_at),
            },
            "previous_source": self.previous_source,
            "inputs_sha256": self.inputs_sha256,
            "config": {
                "path": str(self.intel.config.path),
                "sha256": file_sha256(self.intel.config.path),
            },
            "compliance": self.intel.compliance.record(),
            **market_intel.finite(self.decision.to_dict()),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _params_from(core: CoreConfig) -> GovernorParams:
    """G's GovernorParams with every value from core.yaml; SLO and risk scales are the
    Stress Lab thresholds; half-spreads per signal keep G's per-strategy defaults."""
    from stagectl.domain.governor import STRATEGIES, GovernorParams, StrategyLimits

    pg, limits = core.portfolio_governor, core.stress_lab.thresholds
    seed = GovernorParams().strategies
    unknown = sorted(set(pg.strategies) - set(STRATEGIES))
    if unknown:
        raise ConfigError(
            f"portfolio_governor.strategies: no scoring model for {', '.join(unknown)} "
            f"(known: {', '.join(STRATEGIES)})"
        )
    strategies = {
        name: StrategyLimits(
            baseline=s.baseline,
            min_weight=s.min,
            max_weight=s.max,
            max_signals=s.max_signals,
            multiplier=s.multiplier,
            spread_crossings=seed[name].spread_crossings,
        )
        for name, s in pg.strategies.items()
    }
    w = pg.scoring_weights
    return GovernorParams(
        strategies=strategies,
        rebalance_interval_min=pg.rebalance_interval_min,
        smoothing=pg.smoothing,
        default_baseline=pg.default_baseline,
        min_weight=pg.min_weight,
        max_weight=pg.max_weight,
        min_score=pg.min_score,
        base_cost_bps=pg.base_cost_bps,
        alpha_weight=w.alpha,
        cost_weight=w.cost,
        slo_weight=w.slo,
        risk_weight=w.risk,
        latency_limit_ms=limits.latency_ms,
        blackout_limit_min=limits.blackout_min,
        liquidity_drop_limit_pct=limits.liquidity_drop_pct,
        volatility_change_limit_pct=limits.volatility_change_pct,
        dispersion_limit_bps=limits.dispersion_bps,
    )


def run(request: GovernorRequest, *, home: Home) -> GovernorResult:
    """Score, smooth, clamp and renormalise; record the decision; apply it when asked,
    core.yaml is signed off and the rebalance interval has passed."""
    from stagectl.domain.governor import GovernorInputs, InfeasibleBoundsError, decide
    from stagectl.reports import canonical_json
    from stagectl.state import governor as repo
    from stagectl.state.db import open_state

    if not state_exists(home.state_path):
        raise InputError(
            f"no state database at {home.state_path}; run 'stagectl init' first "
            "(the governor records every decision there)"
        )
    intel = market_intel.run(
        market_intel.MarketIntelRequest(request.config, request.data_dir, request.now), home=home
    )
    if request.apply:
        intel.compliance.require("governor --apply")
    params = _params_from(intel.core)
    inputs = GovernorInputs.from_market_intel(intel.report)
    with open_state(home.state_path) as db, db.transaction():
        last = repo.last_applied(db)
        try:
            decision = decide(inputs, params, last.weights if last is not None else None)
        except InfeasibleBoundsError as error:
            raise ConfigError(
                f"portfolio_governor: {error}", where=str(intel.config.path)
            ) from None
        allowed, next_due = _interval(last.ts if last is not None else None, intel.now, params)
        action = ("apply" if allowed else "refuse") if request.apply else "propose"
        inputs_doc = market_intel.finite(decision.to_dict()["inputs"])
        inputs_sha256 = hashlib.sha256(canonical_json(inputs_doc)).hexdigest()
        payload = {
            **market_intel.finite(decision.to_dict()),
            "config_sha256": file_sha256(intel.config.path),
            "compliance": intel.compliance.record(),
            "data_source": intel.market.source,
            "allowed": allowed,
            "last_rebalance_at": _iso(last.ts if last is not None else None),
            "next_due_at": _iso(next_due),
            "recorded_at": _iso(datetime.now(UTC)),
        }
        decision_id = repo.record_decision(
            db,
            ts=intel.now,
            action=action,
            inputs_sha256=inputs_sha256,
            message=_message(action, next_due),
            payload=payload,
        )
    return GovernorResult(
        decision=decision,
        intel=intel,
        action=action,
        allowed=allowed,
        next_due_at=next_due,
        last_rebalance_at=last.ts if last is not None else None,
        previous_source="state" if last is not None else "baselines",
        decision_id=decision_id,
        inputs_sha256=inputs_sha256,
    )


def _interval(
    last: datetime | None, now: datetime, params: GovernorParams
) -> tuple[bool, datetime]:
    from stagectl.domain.governor import rebalance_allowed

    return rebalance_allowed(last, now, params.rebalance_interval_min)


def _message(action: str, next_due: datetime) -> str:
    if action == "apply":
        return "weights applied"
    if action == "refuse":
        return f"rebalance refused: the next one is due at {_iso(next_due)}"
    return f"weights proposed (not applied); the next rebalance is due at {_iso(next_due)}"
