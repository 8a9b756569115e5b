"""``stagectl artifacts analyze``: seed 002's five post-run questions, from the artifacts.

1. Did multi-asset reconciliation balance? Every snapshot's drift within the
   tolerance (stage3 ``reconciliation_tolerance_usd``, $0.01), and at least one.
2. Were SIZED_DOWN events triggered appropriately? Each cut is strictly smaller and
   positive; a MAX_IMPACT cut was above the limit before and within it after; a
   POSITION_LIMIT/LEVERAGE_LIMIT cut leaves the position within its cap.
3. Did margin windows transition correctly? Each snapshot's window matches its
   utilisation (> warning: WARNING, > critical: CRITICAL) and a transition is flagged
   exactly when the window changes.
4. Were stop-limit orders accepted? All placed stop-limits accepted; none placed is
   ``n/a`` (not a failure).
5. What was the effective acceptance rate? Accepted / (decided - enforcement denials)
   at or above stage3 ``acceptance_rate_min_pct`` (95 %); no orders is ``n/a``.

Answers are ``yes``, ``no`` or ``n/a``; any ``no`` makes the command exit 1.

As of when: the run's own clock (``domain.run_clock``), read from the state database:
its last bar for a replayed or finished run, the wall clock for one trading in real
time; with the time the artifacts reach (their last reconciliation), so answers from
artifacts that stop before the run's last bar say so. A run the state database does
not hold (a copied artifacts directory) has no as-of time.

Entry: ``run(AnalyzeRequest, *, home, wall_clock) -> Analysis``; the thresholds come
from stage3.yaml (``--stage3``, else the home's, else the packaged one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.config.state_url import state_exists
from stagectl.domain.run_clock import AsOf
from stagectl.errors import InputError
from stagectl.services.live.artifacts import ARTIFACT_FILES, run_artifacts_dir

QUESTIONS = (
    "Did multi-asset reconciliation balance?",
    "Were SIZED_DOWN events triggered appropriately?",
    "Did margin windows transition correctly?",
    "Were stop-limit orders accepted?",
    "What was the effective acceptance rate?",
)


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"question": self.question, "answer": self.answer, "detail": self.detail}


@dataclass(frozen=True)
class AnalyzeRequest:
    """The run (an id under stage3 ``artifacts.dir`` or a directory) and ``--stage3``."""

    run: str
    stage3: Path | None = None


@dataclass(frozen=True)
class Analysis:
    run: str
    directory: Path
    answers: list[Answer]
    thresholds: ConfigSource
    as_of: AsOf | None = None
    artifacts_through: str | None = None

    @property
    def passed(self) -> bool:
        return all(a.answer != "no" for a in self.answers)

    def describe_clock(self) -> str:
        """Which time the answers stand for, and how far the artifacts reach."""
        reach = f"; the artifacts reach {self.artifacts_through or 'no bar'}"
        if self.as_of is None:
            return f"as of: unknown (run {self.run} is not in the state database){reach}"
        return self.as_of.describe() + reach

    def body(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "directory": str(self.directory),
            "as_of": None if self.as_of is None else self.as_of.to_dict(),
            "artifacts_through": self.artifacts_through,
            "passed": self.passed,
            "answers": [a.as_dict() for a in self.answers],
        }


def _artifacts_dir(home: Home, stage3: Any, run: str) -> Path:
    """``run`` as a directory path, else ``<stage3 artifacts.dir>/<run>`` (where run-live
    writes them), else ``HOME/artifacts/<run>`` (runs started before it did)."""
    candidate = Path(run)
    if candidate.is_dir():
        return candidate
    configured = run_artifacts_dir(home, stage3, run)
    legacy = home.artifacts_dir / run
    return legacy if not configured.is_dir() and legacy.is_dir() else configured


def _load(directory: Path) -> dict[str, Any]:
    documents: dict[str, Any] = {}
    for name in ARTIFACT_FILES:
        path = directory / name
        try:
            documents[name] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(
                f"artifact {name} is missing; run `stagectl run-live` first", where=str(path)
            ) from None
        except (OSError, ValueError) as error:
            raise InputError(f"unreadable artifact: {error}", where=str(path)) from None
    return documents


def run(
    request: AnalyzeRequest,
    *,
    home: Home,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Analysis:
    """Answer the five questions from the run's artifacts (module docstring)."""
    from stagectl.config.loader import load_stage3

    stage3, source = load_stage3(home, request.stage3)
    directory = _artifacts_dir(home, stage3, request.run)
    docs = _load(directory)
    reconciliation = docs["reconciliation_history.json"]
    run_id = str(reconciliation.get("run_id") or request.run)
    rows = reconciliation.get("snapshots", [])
    answers = [
        _reconciliation(docs["reconciliation_history.json"], stage3.reconciliation_tolerance_usd),
        _sized_down(docs["sized_down_events.json"]),
        _margin(docs["margin_snapshots.json"]),
        _stop_limits(docs["rejection_breakdown.json"]),
        _acceptance(docs["rejection_breakdown.json"], stage3.acceptance_rate_min_pct),
    ]
    return Analysis(
        request.run,
        directory,
        answers,
        source,
        as_of=_run_clock(home, run_id, wall_clock()),
        artifacts_through=str(rows[-1].get("ts")) if rows else None,
    )


def _run_clock(home: Home, run_id: str, wall: datetime) -> AsOf | None:
    """The run's as-of time from the state database; None when it does not hold the run."""
    from stagectl.domain.run_clock import as_of
    from stagectl.state.db import open_state
    from stagectl.state.runs import clock_facts

    if not state_exists(home.state_path):
        return None
    with open_state(home.state_path, migrate=False) as db:
        facts = None if db.pending_migrations() else clock_facts(db, run_id)
    return None if facts is None else as_of(facts, now=None, wall=wall)


def _reconciliation(doc: dict[str, Any], tolerance: float) -> Answer:
    rows = doc.get("snapshots", [])
    if not rows:
        return Answer(QUESTIONS[0], "no", "no reconciliation snapshot was recorded")
    worst = max(abs(float(r.get("drift_usd", 0.0))) for r in rows)
    bad = [r for r in rows if abs(float(r.get("drift_usd", 0.0))) > tolerance]
    verdict = "no" if bad else "yes"
    detail = f"{len(rows)} snapshots, max |drift| {worst:.6f} USD, tolerance {tolerance} USD"
    if bad:
        detail += f"; {len(bad)} beyond it, first at {bad[0].get('ts')}"
    return Answer(QUESTIONS[0], verdict, detail)


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal("NaN")


def _sized_down(doc: dict[str, Any]) -> Answer:
    events = doc.get("events", [])
    if not events:
        return Answer(QUESTIONS[1], "yes", "no order needed a size-down (none triggered)")
    limit = float(doc.get("max_impact_bps", 50))
    wrong: list[str] = []
    for event in events:
        original, adjusted = _dec(event.get("original_qty")), _dec(event.get("adjusted_qty"))
        code = event.get("code")
        if not (Decimal(0) < adjusted < original):
            wrong.append(f"{event.get('ts')} {code}: {adjusted} is not a cut of {original}")
        elif code == "MAX_IMPACT" and not (
            float(event.get("impact_bps_before", 0))
            > limit
            >= float(event.get("impact_bps_after", 0))
        ):
            wrong.append(
                f"{event.get('ts')} MAX_IMPACT: impact not above {limit} before / within after"
            )
        elif code in ("POSITION_LIMIT", "LEVERAGE_LIMIT") and "cap_units" in event:
            position = _dec(event.get("position_qty", "0"))
            sign = 1 if event.get("side") == "buy" else -1
            if abs(position + sign * adjusted) > _dec(event["cap_units"]) + Decimal("1e-6"):
                wrong.append(f"{event.get('ts')} {code}: the position exceeds its cap")
    codes = sorted({str(e.get("code")) for e in events})
    detail = f"{len(events)} SIZED_DOWN events ({', '.join(codes)})"
    if wrong:
        return Answer(QUESTIONS[1], "no", f"{detail}; {len(wrong)} wrong, e.g. {wrong[0]}")
    return Answer(QUESTIONS[1], "yes", detail + ", each a valid cut")


def _margin(doc: dict[str, Any]) -> Answer:
    rows = doc.get("snapshots", [])
    if not rows:
        return Answer(QUESTIONS[2], "no", "no margin snapshot was recorded")
    warning, critical = float(doc["warning_pct"]), float(doc["critical_pct"])
    wrong: list[str] = []
    previous = None
    for row in rows:
        utilisation = float(row.get("utilization_pct", 0.0))
        expected = (
            "CRITICAL"
            if utilisation > critical
            else "WARNING"
            if utilisation > warning
            else "NORMAL"
        )
        if row.get("window") != expected:
            wrong.append(
                f"{row.get('ts')}: {utilisation:.2f} % is {expected}, not {row.get('window')}"
            )
        if previous is not None and bool(row.get("transition")) != (row.get("window") != previous):
            wrong.append(f"{row.get('ts')}: transition flag does not match the window change")
        previous = row.get("window")
    transitions = sum(1 for r in rows if r.get("transition"))
    peak = max(float(r.get("utilization_pct", 0.0)) for r in rows)
    detail = f"{len(rows)} snapshots, {transitions} transitions, peak utilisation {peak:.2f} %"
    if wrong:
        return Answer(QUESTIONS[2], "no", f"{detail}; {wrong[0]}")
    return Answer(QUESTIONS[2], "yes", detail)


def _stop_limits(doc: dict[str, Any]) -> Answer:
    stops = doc.get("stop_limit_orders", {})
    placed, accepted = int(stops.get("placed", 0)), int(stops.get("accepted", 0))
    if placed == 0:
        return Answer(
            QUESTIONS[3], "n/a", "no stop-limit order was placed (run with --stop-limits)"
        )
    verdict = "yes" if accepted == placed else "no"
    detail = (
        f"{accepted} of {placed} accepted, {stops.get('triggered_filled', 0)} triggered and filled"
    )
    return Answer(QUESTIONS[3], verdict, detail)


def _acceptance(doc: dict[str, Any], minimum: float) -> Answer:
    rate = doc.get("effective_acceptance_rate_pct")
    decided, enforcement = doc.get("orders_decided", 0), doc.get("enforcement_denials", 0)
    if rate is None:
        return Answer(
            QUESTIONS[4],
            "n/a",
            f"no order to judge ({decided} decided, {enforcement} enforcement denials)",
        )
    verdict = "yes" if float(rate) >= minimum else "no"
    detail = (
        f"{float(rate):.2f} % effective (target >= {minimum} %), {doc.get('orders_accepted')} "
        f"accepted of {decided} decided, {enforcement} enforcement denials excluded"
    )
    return Answer(QUESTIONS[4], verdict, detail)
