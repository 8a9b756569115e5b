"""The stress-lab page: a heat table and impact bars built from the report envelope.

The page template is ``reports.page.Page``; this page holds no chart, so it carries no
script at all (inline CSS and inline SVG bars, no fonts or external resources) and
building it imports neither plotly nor numpy. Every text taken from the report is
HTML-escaped.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from stagectl.reports.page import GREEN, RED, Page

METRICS = (
    ("liquidity_drop_pct", "liquidity drop %"),
    ("spread_bps", "spread bps"),
    ("volatility_change_pct", "volatility change %"),
    ("sentiment", "sentiment"),
    ("funding_bps", "funding bps"),
    ("latency_ms", "latency ms"),
    ("blackout_min", "blackout min"),
    ("dispersion_bps", "dispersion bps"),
)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return escape(str(value))


def _heat_class(check: dict[str, Any], *, baseline_row: bool = False) -> str:
    """breach when breached (atbase on a scenario row when the breach is already at
    baseline); warn when within 30 % of the limit; ok otherwise."""
    value, limit = check.get("value"), check.get("limit")
    if check.get("breached"):
        if value is None:
            return "na"
        return "atbase" if check.get("cause") == "baseline" and not baseline_row else "breach"
    if not isinstance(value, int | float) or not isinstance(limit, int | float) or limit == 0:
        return "ok"
    if check.get("direction") == "below":
        ratio = limit / value if value > 0 else math.inf
    else:
        ratio = abs(value) / limit
    return "warn" if ratio >= 0.7 else "ok"


def _heat_table(
    baseline: dict[str, Any] | None, scenarios: list[dict[str, Any]], thresholds: dict[str, Any]
) -> str:
    """The baseline (unstressed) row first, then one row per scenario."""
    head = "".join(f"<th>{escape(label)}</th>" for _, label in METRICS)
    limits = "".join(
        f"<th>{'&lt;' if m == 'sentiment' else '&gt;'} {_fmt(thresholds.get(_limit_key(m)))}</th>"
        for m, _ in METRICS
    )
    rows = [_heat_row(baseline, baseline_row=True)] if baseline else []
    rows += [_heat_row(s, baseline_row=False) for s in scenarios]
    return (
        f'<table><tr><th class="name">scenario</th><th class="name">kind</th>{head}</tr>'
        f'<tr><th class="name">threshold</th><th></th>{limits}</tr>{"".join(rows)}</table>'
    )


def _heat_row(s: dict[str, Any], *, baseline_row: bool) -> str:
    checks = {c["metric"]: c for c in s.get("checks", [])}
    cells = []
    for metric, _ in METRICS:
        check = checks.get(metric, {})
        kind = _heat_class(check, baseline_row=baseline_row)
        title = f"limit {_fmt(check.get('limit'))}"
        title += "; already at baseline" if kind == "atbase" else ""
        cells.append(f'<td class="{kind}" title="{title}">{_fmt(check.get("value"))}</td>')
    css = ' class="baseline"' if baseline_row else ""
    return (
        f'<tr{css}><td class="name">{escape(str(s.get("name")))}</td>'
        f'<td class="name">{escape(str(s.get("kind")))}</td>{"".join(cells)}</tr>'
    )


def _limit_key(metric: str) -> str:
    return "sentiment_min" if metric == "sentiment" else metric


def _bar(value: float, scale: float, colour: str) -> str:
    """A signed horizontal bar in a 240 x 14 SVG: zero in the middle."""
    half = 120.0
    width = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0) * half
    x = half if value >= 0 else half - width
    return (
        '<svg width="240" height="14" viewBox="0 0 240 14" role="img">'
        f'<line x1="120" y1="0" x2="120" y2="14" stroke="#8a90a0"/>'
        f'<rect x="{x:.1f}" y="2" width="{width:.1f}" height="10" fill="{colour}"/></svg>'
    )


def _impact_table(scenarios: list[dict[str, Any]]) -> str:
    impacts: list[tuple[str, dict[str, Any]]] = [
        (str(s["name"]), s["portfolio"]) for s in scenarios if s.get("portfolio")
    ]
    if not impacts:
        return "<p>No positions: portfolio impact not computed.</p>"
    scale = max(max(abs(i["mtm_pnl_usd"]), abs(i["liquidation_cost_usd"])) for _, i in impacts)
    rows = []
    for name, i in impacts:
        pnl, cost = i["mtm_pnl_usd"], -abs(i["liquidation_cost_usd"])
        colour = GREEN if pnl >= 0 else RED
        rows.append(
            f'<tr><td class="name">{escape(str(name))}</td><td>{_fmt(pnl)}</td>'
            f"<td>{_bar(pnl, scale, colour)}</td><td>{_fmt(-cost)}</td>"
            f"<td>{_bar(cost, scale, '#c77700')}</td><td>{_fmt(i.get('margin_usage_pct'))}</td>"
            "</tr>"
        )
    return (
        '<table><tr><th class="name">scenario</th><th>MTM PnL USD</th><th></th>'
        "<th>liquidation cost USD</th><th></th><th>margin usage %</th></tr>"
        f"{''.join(rows)}</table>"
    )


def stress_lab_page(envelope: dict[str, Any], verdict_section: str = "verdict") -> Page:
    """The page for a stress-lab envelope (signed or not); ``verdict_section`` is the
    body section holding the verdict (core.yaml's ``stress_lab.signed_section``)."""
    body = envelope["body"]
    verdict = body.get(verdict_section, {})
    scenarios = body.get("scenarios", [])
    baseline = body.get("market_baseline")
    signature = envelope.get("signature") or {}
    signed_text = f"HMAC-SHA256 signed (key {signature.get('key_id')})" if signature else "UNSIGNED"
    config = verdict.get("config", {})
    market = body.get("market", {})
    windows = [
        f"<li>{escape(str(s['name']))}: {escape(str(s.get('description', '')))}</li>"
        for s in scenarios
        if s.get("window")
    ]
    page = Page(
        "Stress Lab",
        meta=f"generated {envelope.get('generated_at')}; market as of {market.get('as_of')} "
        f"({market.get('source')}); {signed_text}; config {config.get('path')} sha256 "
        f"{config.get('sha256')}; baseline (unstressed) breaches "
        f"{_fmt(verdict.get('baseline_breach_count'))}; "
        f"{_fmt(verdict.get('scenarios_breached_beyond_baseline'))} of "
        f"{_fmt(verdict.get('scenarios_run'))} scenarios breach beyond it "
        f"({_fmt(verdict.get('scenario_caused_breach_count'))} of "
        f"{_fmt(verdict.get('breach_count'))} breaches caused by the scenarios)",
        status=str(verdict.get("status", "unknown")),
    )
    page.heading("Metrics under stress vs thresholds")
    page.html(_heat_table(baseline, scenarios, verdict.get("thresholds", {})))
    page.note(
        "first row: the live market, unstressed. red: breached (caused or worsened by the "
        "scenario); pale red: breached, already at baseline; amber: within 30 % of the "
        "limit; grey: no data (counted as a breach)."
    )
    page.heading("Portfolio impact")
    page.html(_impact_table([baseline, *scenarios] if baseline else scenarios))
    page.heading("Historical windows")
    page.html(f"<ul>{''.join(windows) or '<li>none run</li>'}</ul>")
    return page
