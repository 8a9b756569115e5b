"""What ``/status`` and ``/report`` answer, read from the home's state database.

``/status``: each mode's trading state and the open directives, read through the service
``trading status`` uses (``services.trading.flags.run_status``); each mode's book (its
latest traded run: last equity, drawdown from that run's peak equity snapshot); the last
guard decision. ``/report``: the last guard decision whole (each rule hit, the near
misses counted) and the last published risk-guard report. Both change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stagectl.config.home import Home
from stagectl.domain.types import MODES, Mode
from stagectl.services.trading import flags as trading_flags
from stagectl.state import directives, equity, reports, runs
from stagectl.state.db import open_state

REPORT_KINDS = ("risk-guard",)


@dataclass(frozen=True)
class Book:
    """One mode's latest traded run and where its equity stands."""

    mode: Mode
    run_id: str
    ts: datetime
    equity: float
    peak: float

    @property
    def drawdown_pct(self) -> float:
        """``(peak - equity) / peak x 100``, 0 at a new high."""
        return 0.0 if self.peak <= 0 else max(0.0, (self.peak - self.equity) / self.peak * 100)


@dataclass(frozen=True)
class Standing:
    """The state database's answer to ``/status``, ``/report``."""

    trading: trading_flags.TradingStatus
    books: tuple[Book, ...]
    decision: directives.GuardDecision | None
    report: reports.ReportRecord | None


def read(home: Home, now: datetime) -> Standing:
    """Everything ``/status`` and ``/report`` show; changes nothing."""
    status = trading_flags.run_status(trading_flags.TradingStatusRequest(now=now), home=home)
    if not status.database_exists:
        return Standing(status, (), None, None)
    with open_state(home.state_path) as db:
        books = tuple(b for b in (_book(db, mode) for mode in MODES) if b is not None)
        decisions = directives.guard_decisions(db, limit=1)
        published = reports.list_reports(db, kind=REPORT_KINDS[0], limit=1)
    return Standing(
        status, books, decisions[0] if decisions else None, published[0] if published else None
    )


def _book(db: Any, mode: Mode) -> Book | None:
    run_id = runs.latest_traded_run(db, mode=mode, before=None)
    if run_id is None:
        return None
    last = equity.last_snapshot(db, run_id)
    peak = equity.peak_equity(db, run_id)
    if last is None or peak is None:
        return None
    return Book(mode, run_id, last.ts, last.equity, peak)


def status_text(standing: Standing, now: datetime) -> str:
    """The ``/status`` reply."""
    lines = [f"stagectl status at {_iso(now)}"]
    for mode, flag in standing.trading.states.items():
        since = f" since {_iso(flag.updated_at)}" if flag.updated_at else ""
        lines.append(f"{mode}: {flag.state.value}{since} ({flag.source}: {flag.reason})")
    for book in standing.books:
        lines.append(
            f"{book.mode} equity {book.equity:,.2f} at {_iso(book.ts)} (run {book.run_id}); "
            f"drawdown {book.drawdown_pct:.2f} % from peak {book.peak:,.2f}"
        )
    if not standing.books:
        lines.append("equity: no run has recorded any")
    if standing.trading.directives:
        lines.append("open directives:")
        lines += [_directive_line(d) for d in standing.trading.directives]
    else:
        lines.append("open directives: none")
    lines.append("last guard decision: " + _decision_line(standing.decision))
    return "\n".join(lines)


def report_text(standing: Standing) -> str:
    """The ``/report`` reply."""
    decision = standing.decision
    lines = ["last guard decision: " + _decision_line(decision)]
    if decision is not None:
        hits = [r for r in decision.rule_results if "rule" in r]
        near = [r for r in decision.rule_results if "near" in r]
        lines += [_hit_line(h) for h in hits] or ["no rule breached"]
        if near:
            lines.append(f"{len(near)} rule(s) near their threshold")
    if standing.report is not None:
        r = standing.report
        signed = "signed" if r.signed else "unsigned"
        lines.append(f"last risk-guard report: {r.path or '-'} ({signed}, {r.generated_at})")
    return "\n".join(lines)


def _directive_line(d: dict[str, Any]) -> str:
    state = d["state"]
    if state == "pending" and d["confirm_by"] is not None:
        then = "executes" if d["on_timeout"] == "execute" else "escalates"
        state = f"pending: /confirm {d['id']} or /cancel {d['id']} REASON by " + _iso(
            d["confirm_by"]
        )
        state += f" (then it {then})"
    sleeve = d["sleeve"] or "all"
    return (
        f"#{d['id']} {d['action']} {sleeve} ({d['mode'] or 'paper+live'}): {state}; "
        f"rule {d['rule'] or '-'} value {_value(d['value'])}"
    )


def _decision_line(decision: directives.GuardDecision | None) -> str:
    if decision is None:
        return "none recorded"
    kind = " (dry run)" if decision.dry_run else ""
    return (
        f"{decision.action} ({decision.severity}) at {_iso(decision.ts)}, "
        f"run {decision.run_id or '-'}{kind}"
    )


def _hit_line(h: Any) -> str:
    sleeve = f" {h.get('sleeve')}" if h.get("sleeve") else ""
    return (
        f"- {h.get('rule')}{sleeve}: {h.get('indicator')} = {_value(h.get('value'))} "
        f"{h.get('op')} {h.get('threshold')} -> {h.get('action')} ({h.get('severity')})"
    )


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "n/a"


def _iso(ts: datetime) -> str:
    return f"{ts:%Y-%m-%dT%H:%M:%SZ}"
