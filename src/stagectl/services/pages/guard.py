"""Pages of ``risk-guard --replay --html`` and ``paper-gate --html``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from stagectl.domain.risk_rules import SEVERITY_RANK
from stagectl.reports.charts import (
    EQUITY_AND_DRAWDOWN,
    PALETTE,
    Page,
    Panel,
    add_drawdown,
    add_line,
    add_markers,
    add_severity,
    add_severity_markers,
    pct,
    stacked_figure,
    table,
    values_at,
)
from stagectl.services.research.engine import stamp

if TYPE_CHECKING:
    from stagectl.domain.paper_gate import GuardFire
    from stagectl.services.guard.paper_gate import PaperGateResult
    from stagectl.services.guard.replay import ReplayReport

GREY = "#9aa3b5"
ACTION_SYMBOLS = {
    "FLATTEN_ALL": "x",
    "REDUCE_RISK_50": "triangle-down",
    "DISABLE_SLEEVE": "square",
    "RESTART": "triangle-up",
    "RECOVER": "triangle-up",
    "ENABLE_SLEEVE": "diamond",
}


def _severity_class(severity: str) -> str | None:
    return severity.lower() if severity in ("MEDIUM", "HIGH", "CRITICAL") else None


def replay(report: ReplayReport) -> Page:
    """Guarded vs unguarded equity with trigger and action markers, both drawdowns, the
    severity of every evaluation, and the summary, actions and triggers tables."""
    summary, result = report.summary, report.replay
    guarded, unguarded = result.guarded.equity, result.unguarded.equity
    page = Page(
        "Risk guard replay",
        meta=f"{stamp(summary['start'])} .. {stamp(summary['end'])}: {summary['bars']} bars, "
        f"{summary['evaluation']} evaluation ({summary['evaluations']} evaluations), "
        f"{summary['triggers']} triggers, {summary['guard_actions']} guard actions; config "
        f"{report.config.describe()}; strategy {report.strategy.describe()}",
    )
    page.html(
        table(
            ["", "total return", "Sharpe", "max drawdown", "final equity"],
            [
                [name, pct(m["total_return"]), m["sharpe"], pct(m["max_drawdown"]),
                 m["final_equity"]]
                for name, m in (("unguarded", summary["unguarded"]),
                                ("guarded", summary["guarded"]))
            ],
        )
    )  # fmt: skip
    equity = stacked_figure(
        "Guarded vs unguarded: equity, drawdown, severity of each evaluation",
        (
            Panel("USD", weight=2.2),
            Panel("drawdown", percent=True),
            Panel("severity", weight=0.7, severity=True),
        ),
        height=820,
    )
    add_line(equity, unguarded.index, unguarded.to_numpy(), "unguarded", colour=GREY, row=1)
    add_line(equity, guarded.index, guarded.to_numpy(), "guarded", colour=PALETTE[0], row=1)
    add_severity_markers(
        equity,
        guarded,
        [(h["severity"], h["at"],
          f"{stamp(h['at'])} {h['rule']} {h['sleeve'] or 'portfolio'} = {h['value']} -> "
          f"{h['action']} ({h['severity']})") for h in report.triggers],
        "trigger",
        row=1,
    )  # fmt: skip
    by_action: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for action in report.actions:
        by_action[action["action"]].append(action)
    for kind, acts in by_action.items():
        times = pd.DatetimeIndex([a["at"] for a in acts])
        add_markers(
            equity,
            times,
            values_at(guarded, times),
            f"action {kind}",
            [f"{stamp(a['at'])} {kind} {a['sleeve'] or ''}: {a['reason']}" for a in acts],
            colour="#1d2330",
            symbol=ACTION_SYMBOLS.get(kind, "star"),
            row=1,
        )
    for name, curve, colour in (
        ("unguarded drawdown", result.unguarded, GREY),
        ("guarded drawdown", result.guarded, PALETTE[0]),
    ):
        add_drawdown(
            equity, curve.equity, curve.initial_equity, row=2, name=name, colour=colour, fill=None
        )
    decisions = result.decisions
    add_severity(equity, decisions.eval_times, decisions.severity_rank, row=3)
    page.heading("Equity, triggers and guard actions").chart(equity)
    page.heading("Guard actions")
    page.details(
        f"{len(report.actions)} guard actions",
        table(
            ["time", "action", "sleeve", "multipliers", "reason"],
            [
                [stamp(a["at"]), a["action"], a["sleeve"] or "",
                 " ".join(f"{s}={m:g}" for s, m in a["multipliers"].items()), a["reason"]]
                for a in report.actions
            ],
            name_columns=3,
            text_columns=(4,),
        ),
        open_=len(report.actions) <= 20,
    )  # fmt: skip
    page.heading("Triggers (each rule's breach where it starts)")
    page.details(
        f"{len(report.triggers)} triggers",
        table(
            ["time", "rule", "sleeve", "value", "action", "severity"],
            [
                [stamp(t["at"]), t["rule"], t["sleeve"] or "portfolio", t["value"], t["action"],
                 t["severity"]]
                for t in report.triggers
            ],
            row_classes=[_severity_class(t["severity"]) for t in report.triggers],
            name_columns=3,
        ),
        open_=len(report.triggers) <= 20,
    )  # fmt: skip
    return page


def _changes(decisions: Sequence[GuardFire]) -> list[GuardFire]:
    """The decisions whose action or severity differs from the one before, NO_ACTION
    left out: where the guard's view changed, not every hour it held."""
    changed, before = [], None
    for decision in decisions:
        key = (decision.action, decision.severity)
        if key != before and decision.action != "NO_ACTION":
            changed.append(decision)
        before = key
    return changed


def paper_gate(result: PaperGateResult) -> Page:
    """The window's equity with its guard decisions, its drawdown, the criteria (PASS /
    FAIL) and the evidence counted."""
    body = result.body()
    window = body["window"]
    page = Page(
        f"Paper gate: run {result.run_id}",
        meta=f"{window['start']} .. {window['end']} ({result.days} days); "
        f"{result.choice.describe()}; config {result.source.describe()}",
        status="pass" if result.passed else "fail",
    )
    rows = result.rows()
    page.heading("Criteria")
    page.html(
        table(
            ["status", "criterion", "value", "limit", "reason"],
            [
                ["PASS" if c.passed else "FAIL", c.label,
                 "-" if c.value is None else f"{c.value:.4g}{c.unit and ' ' + c.unit}",
                 f"{c.comparison} {c.limit:g}{c.unit and ' ' + c.unit}", c.reason]
                for c in rows
            ],
            row_classes=["pass" if c.passed else "fail" for c in rows],
            name_columns=2,
            text_columns=(4,),
        )
    )  # fmt: skip
    equity = result.equity
    if equity is not None and len(equity):
        panels = list(EQUITY_AND_DRAWDOWN)
        if result.decisions:
            panels.append(Panel("severity", weight=0.7, severity=True))
        fig = stacked_figure(
            "Equity, drawdown and guard decisions over the window", panels, height=720
        )
        add_line(fig, equity.index, equity.to_numpy(), "equity", colour=PALETTE[0], row=1)
        add_severity_markers(
            fig,
            equity,
            [(d.severity, d.ts, f"{stamp(d.ts)} {d.action} ({d.severity})")
             for d in _changes(result.decisions)],
            "guard",
            row=1,
        )  # fmt: skip
        add_drawdown(fig, equity, row=2)
        if result.decisions:
            add_severity(
                fig,
                pd.DatetimeIndex([d.ts for d in result.decisions]),
                [SEVERITY_RANK.get(d.severity, 0) for d in result.decisions],
                row=3,
            )
        page.heading("Equity and guard decisions").chart(fig)
    page.heading("Evidence")
    page.html(table(["fact", "value"], [[k, v] for k, v in body["evidence"].items()]))
    return page
