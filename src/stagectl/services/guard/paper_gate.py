"""The 30-day paper gate (seed 003 §5): may this paper run go to real money?

``run`` reads the most recent paper run (or ``run_id``) from the state
database over the window ``[now - days, now)``: equity snapshots (Sharpe, MDD,
history), fills with their orders' prices (slippage), funding payments, the
``signal_check`` events (consistency) and the recorded guard decisions
(kill-switch fires). Every criterion must PASS; a criterion without data fails.
An empty or missing state database is an InputError (exit 2).

Entry: ``run(PaperGateRequest, *, home) -> PaperGateResult``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError

KIND = "paper-gate"
SIGNED_SECTIONS = ["criteria", "verdict", "window"]


@dataclass(frozen=True)
class PaperGateRequest:
    """``--now`` (the window's end, aware UTC), ``-c``, ``--days`` (None: the config's)
    and ``--run``."""

    now: datetime
    config: Path | None = None
    days: int | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class PaperGateResult:
    run_id: str
    now: datetime
    days: int
    verdict: Any  # domain.paper_gate.PaperGateVerdict
    evidence: dict[str, Any]
    source: ConfigSource

    @property
    def passed(self) -> bool:
        return bool(self.verdict.passed)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_CHECK_FAILED

    @property
    def inputs(self) -> list[Path]:
        return [self.source.path]

    def rows(self) -> list[Any]:
        """The history check first, then the six criteria."""
        return [self.verdict.history, *self.verdict.criteria]

    def body(self) -> dict[str, Any]:
        start = self.now - timedelta(days=self.days)
        return {
            "window": {
                "run_id": self.run_id,
                "start": _iso(start),
                "end": _iso(self.now),
                "days": self.days,
            },
            "criteria": [asdict(c) for c in self.rows()],
            "verdict": {
                "passed": self.passed,
                "failed": [c.id for c in self.rows() if not c.passed],
            },
            "evidence": self.evidence,
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run(request: PaperGateRequest, *, home: Home) -> PaperGateResult:
    """Evaluate the gate over the ``days`` (default: the config's 30) before ``now``."""
    from stagectl.config.loader import load_risk_guard
    from stagectl.services.guard.evidence import open_existing_state

    now, days, run_id = request.now, request.days, request.run_id
    if now.tzinfo is None:
        raise InputError("now must carry a time zone (UTC)", where="--now")
    guard, source = load_risk_guard(home, request.config)
    window_days = guard.paper_gate.days if days is None else days
    if window_days < 1:
        raise InputError(f"must be at least 1, got {window_days}", where="--days")
    db = open_existing_state(home)
    try:
        run, inputs, evidence = _gather(db, window_days, now, run_id)
    finally:
        db.close()
    from stagectl.domain.paper_gate import evaluate_paper_gate

    verdict = evaluate_paper_gate(inputs, guard.paper_gate)
    return PaperGateResult(run, now, window_days, verdict, evidence, source)


def _gather(
    db: Any, days: int, now: datetime, run_id: str | None
) -> tuple[str, Any, dict[str, Any]]:
    import pandas as pd

    from stagectl.domain import paper_gate as gate
    from stagectl.domain.weekly import FillCost, cost_breakdown, slippage_bps
    from stagectl.services.guard import evidence

    start = now - timedelta(days=days)
    run, snaps = evidence.run_snapshots(db, run_id=run_id, now=now, mode="paper")
    window = [s for s in snaps if s.ts >= start]
    equity = pd.Series(
        [s.equity for s in window], index=pd.DatetimeIndex([s.ts for s in window]), dtype=float
    )
    fills = evidence.run_fills(db, run, start, now)
    priced = []
    for fill in fills:
        reference = evidence.reference_price(db, fill)
        priced.append(
            FillCost(
                fill.symbol,
                float(abs(fill.qty) * fill.price),
                float(fill.fee),
                None
                if reference is None
                else slippage_bps(fill.side, float(fill.price), reference),
            )
        )
    funding = evidence.run_funding(db, run, start, now)
    compared, matched = evidence.signal_checks(db, run, start, now)
    decisions = evidence.decisions_between(db, run, start, now)
    fires = gate.count_fires([gate.GuardFire(d.ts, d.action, d.severity) for d in decisions])
    inputs = gate.PaperGateInputs(
        days=days,
        history_days=gate.history_days(pd.DatetimeIndex(equity.index)),
        daily_returns=list(gate.window_daily_returns(equity)),
        window_equity=list(equity.to_numpy()),
        slippage_bps=cost_breakdown(priced, 0.0).slippage_bps,
        mean_paid_funding_rate=evidence.mean_paid_rate(funding),
        signals_compared=compared,
        signals_matched=matched,
        fires=fires,
    )
    facts = {
        "equity_snapshots": len(window),
        "history_days": inputs.history_days,
        "daily_returns": len(inputs.daily_returns),
        "fills": len(fills),
        "fills_with_reference_price": sum(1 for p in priced if p.slippage_bps is not None),
        "funding_settlements": len(funding),
        "signals_compared": compared,
        "signals_matched": matched,
        "guard_decisions": fires.decisions,
        "warning_days": fires.warning_days,
        "critical_days": fires.critical_days,
    }
    return run, inputs, facts
