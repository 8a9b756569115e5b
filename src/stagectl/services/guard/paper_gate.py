"""The 30-day paper gate (seed 003 §5): may this paper run go to real money?

Which run (``_choose``): ``--run``, else the latest finished (``completed``) run-live
paper run that covers the window; the runs passed over are listed with the reason
(still running, aborted, covers only 2 days). No finished paper run covering the
window fails the gate (exit 1) naming each run and why; no paper run with snapshots
at all is an InputError (exit 2).

When: ``--now``, else the run's own clock (``domain.run_clock``: its last bar for a
replayed or finished run). The window is ``[as_of - days, as_of]``, both ends in: a
snapshot is stamped at its bar's close, so the one at the window's start is its
opening equity and the one at its end its last close; the run's initial equity (its
``RUN_STARTED`` record) is the first point of its curve, at its first bar's open.

Evidence over the window: equity (history, Sharpe, MDD), fills with their orders'
prices (slippage), funding payments, the ``signal_check`` events (consistency) and
the guard decisions recorded for the run (kill-switch fires; ``guard_decisions.run_id``,
whether the cron guard or run-live's in-loop guard recorded them). Every criterion
must PASS; a criterion without data fails. An empty or missing state database is an
InputError (exit 2).

Entry: ``run(PaperGateRequest, *, home, wall_clock) -> PaperGateResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagectl.config.home import ConfigSource, Home
from stagectl.domain.run_clock import AsOf
from stagectl.errors import EXIT_CHECK_FAILED, EXIT_OK, CheckFailed, InputError

if TYPE_CHECKING:
    from stagectl.domain.paper_gate import GuardFire

KIND = "paper-gate"
RUN_KIND = "run-live"
MAX_CANDIDATES = 100


@dataclass(frozen=True)
class PaperGateRequest:
    """``--now`` (the window's end, aware UTC; None: the judged run's own clock), ``-c``,
    ``--days`` (None: the config's) and ``--run``."""

    now: datetime | None = None
    config: Path | None = None
    days: int | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class SkippedRun:
    run_id: str
    reason: str


@dataclass(frozen=True)
class RunChoice:
    """The judged run, why it was chosen, the runs passed over, and its as-of time."""

    run_id: str
    why: str
    skipped: tuple[SkippedRun, ...]
    as_of: AsOf

    def describe(self) -> str:
        text = f"run {self.run_id}: {self.why}"
        if self.skipped:
            text += "; skipped " + "; ".join(f"run {s.run_id}: {s.reason}" for s in self.skipped)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "why": self.why,
            "skipped": [asdict(s) for s in self.skipped],
        }


@dataclass(frozen=True)
class PaperGateResult:
    run_id: str
    now: datetime
    days: int
    verdict: Any  # domain.paper_gate.PaperGateVerdict
    evidence: dict[str, Any]
    source: ConfigSource
    choice: RunChoice
    equity: Any = None  # pandas Series: the window's equity curve (--html)
    decisions: tuple[GuardFire, ...] = ()  # the window's guard decisions (--html)

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
                "as_of": self.choice.as_of.to_dict(),
                "choice": self.choice.to_dict(),
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


def run(
    request: PaperGateRequest,
    *,
    home: Home,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PaperGateResult:
    """Evaluate the gate over the ``days`` (default: the config's 30) before the as-of time
    of the chosen run (module docstring)."""
    from stagectl.config.loader import load_risk_guard
    from stagectl.services.guard.evidence import open_existing_state

    now = request.now
    if now is not None and now.tzinfo is None:
        raise InputError("now must carry a time zone (UTC)", where="--now")
    guard, source = load_risk_guard(home, request.config)
    window_days = guard.paper_gate.days if request.days is None else request.days
    if window_days < 1:
        raise InputError(f"must be at least 1, got {window_days}", where="--days")
    db = open_existing_state(home)
    try:
        choice = _choose(db, run_id=request.run_id, now=now, days=window_days, wall=wall_clock())
        inputs, evidence, curve = _gather(db, window_days, choice.as_of.at, choice.run_id)
    finally:
        db.close()
    from stagectl.domain.paper_gate import evaluate_paper_gate

    verdict = evaluate_paper_gate(inputs, guard.paper_gate)
    at = choice.as_of.at
    equity, decisions = curve
    return PaperGateResult(
        choice.run_id, at, window_days, verdict, evidence, source, choice, equity, decisions
    )


def _choose(
    db: Any, *, run_id: str | None, now: datetime | None, days: int, wall: datetime
) -> RunChoice:
    """``--run``, else the latest finished paper run covering the window (module
    docstring)."""
    from stagectl.services.guard import evidence
    from stagectl.state import runs

    if run_id is not None:
        judged = evidence.judged_run(db, run_id=run_id, mode="paper", now=now, wall=wall)
        found = runs.get_run(db, run_id)
        if found is not None and found.mode != "paper":
            raise InputError(
                f"run {run_id} is a {found.mode} run; the paper gate judges paper runs",
                where="--run",
            )
        return RunChoice(run_id, judged.why, (), judged.as_of)
    skipped: list[SkippedRun] = []
    for candidate in _candidates(db):
        reason, clock = _passed_over(db, candidate, now=now, days=days, wall=wall)
        if clock is not None:
            why = f"the latest finished paper run covering {days} days"
            return RunChoice(candidate.run_id, why, tuple(skipped), clock)
        if reason:
            skipped.append(SkippedRun(candidate.run_id, reason))
    if not skipped:
        at = "" if now is None else f" at or before {now.isoformat()}"
        raise InputError(
            f"no paper run with equity snapshots{at} in the state database; "
            "the trading loop records them (one per bar), or pass --run"
        )
    raise CheckFailed(
        f"no finished paper run covers the gate's {days} days (the runbook forbids a "
        "shortened gate): "
        + "; ".join(f"run {s.run_id}: {s.reason}" for s in skipped)
        + f"; finish a {days}-day paper run (stagectl run-live --duration {days}d), "
        "or judge one with --run"
    )


def _candidates(db: Any) -> list[Any]:
    """run-live's paper runs, the most recently finished first (running ones by start)."""
    from stagectl.state import runs

    found = runs.list_runs(db, kind=RUN_KIND, mode="paper", limit=MAX_CANDIDATES)
    return sorted(found, key=lambda r: r.ended_at or r.started_at, reverse=True)


def _passed_over(
    db: Any, candidate: Any, *, now: datetime | None, days: int, wall: datetime
) -> tuple[str, AsOf | None]:
    """Why the candidate is not judged ("" when it has no snapshot by ``now``: not
    worth naming), or its as-of time when it is finished and covers the window."""
    from stagectl.domain.run_clock import as_of, covered_days
    from stagectl.services.guard.evidence import EPSILON
    from stagectl.state import runs
    from stagectl.state.equity import snapshot_times

    stamps = [t for t in snapshot_times(db, candidate.run_id) if now is None or t < now + EPSILON]
    if not stamps:
        return "", None
    if candidate.status != "completed":
        state = "still running" if candidate.status == "running" else candidate.status
        return f"not finished ({state})", None
    facts = runs.clock_facts(db, candidate.run_id)
    assert facts is not None  # listed from the runs table
    clock = as_of(facts, now=now, wall=wall)
    covered = covered_days(stamps, start=clock.at - timedelta(days=days), end=clock.at)
    if covered < days:
        return f"covers {covered:.2f} days", None
    return "", clock


def _gather(
    db: Any, days: int, now: datetime, run: str
) -> tuple[Any, dict[str, Any], tuple[Any, tuple[GuardFire, ...]]]:
    """The gate's inputs, the evidence facts, and the window's equity curve and guard
    decisions."""
    import pandas as pd

    from stagectl.domain import paper_gate as gate
    from stagectl.domain.run_clock import covered_days, first_bar_open
    from stagectl.domain.weekly import FillCost, cost_breakdown, slippage_bps
    from stagectl.services.guard import evidence

    start, until = now - timedelta(days=days), now + evidence.EPSILON
    snaps = evidence.snapshots_until(db, run, now)
    stamps = [s.ts for s in snaps]
    points = [(s.ts, s.equity) for s in snaps]
    initial = evidence.initial_equity(db, run)
    if initial is not None:
        points.insert(0, (first_bar_open(stamps), initial))
    window = [(ts, value) for ts, value in points if start <= ts]
    equity = pd.Series(
        [v for _, v in window], index=pd.DatetimeIndex([t for t, _ in window]), dtype=float
    )
    fills = evidence.run_fills(db, run, start, until)
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
    funding = evidence.run_funding(db, run, start, until)
    compared, matched = evidence.signal_checks(db, run, start, until)
    decisions = evidence.decisions_between(db, run, start, until)
    recorded = tuple(gate.GuardFire(d.ts, d.action, d.severity) for d in decisions)
    fires = gate.count_fires(recorded)
    inputs = gate.PaperGateInputs(
        days=days,
        history_days=covered_days(stamps, start=start, end=now),
        daily_returns=list(gate.window_daily_returns(equity)),
        window_equity=list(equity.to_numpy()),
        slippage_bps=cost_breakdown(priced, 0.0).slippage_bps,
        mean_paid_funding_rate=evidence.mean_paid_rate(funding),
        signals_compared=compared,
        signals_matched=matched,
        fires=fires,
    )
    facts = {
        "equity_snapshots": sum(1 for t in stamps if start <= t),
        "initial_equity": initial,
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
    return inputs, facts, (equity, recorded)
