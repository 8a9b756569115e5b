"""A self-contained HTML page for ``regime-analyze``: inline CSS and SVG, no scripts or network.

Two drawings: realized PnL by trend x volatility as a heat map (green gains, red losses, the
colour's strength proportional to the cell's share of the largest absolute total), and the
cumulative realized PnL over time with each window's step coloured by its regime. Without PnL
windows the page shows the regimes' share of time and says the PnL side is empty. Every text
taken from the analysis is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

TRENDS = ("up", "flat", "down")
VOLATILITIES = ("low", "mid", "high", "unknown")
REGIME_COLOURS = {
    "TREND": "#1f77b4",
    "RANGE": "#2ca02c",
    "PANIC": "#d62728",
    "ILLIQUID": "#9467bd",
    "NEUTRAL": "#8c8c8c",
}
_STYLE = (
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330}"
    "h1{font-size:20px}h2{font-size:16px;margin-top:24px}.meta{color:#5a6275;font-size:12px}"
    "table{border-collapse:collapse;font-size:12px}"
    "th,td{border:1px solid #d5d9e2;padding:4px 8px;text-align:right}th{background:#f1f3f7}"
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return escape(str(value))


def _cell_colour(value: float, scale: float) -> str:
    strength = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
    level = int(255 - 155 * strength)
    return f"rgb({level},255,{level})" if value >= 0 else f"rgb(255,{level},{level})"


def heat_map(cells: Mapping[str, Mapping[str, Any]]) -> str:
    """An SVG grid: rows trend, columns volatility; each cell shows total PnL and count."""
    totals = [float(c["total_pnl"]) for c in cells.values()]
    scale = max((abs(t) for t in totals), default=0.0)
    width, height, left, top = 110, 48, 70, 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width * 4 + 10}" '
        f'height="{top + height * 3 + 10}" role="img" aria-label="PnL by trend and volatility">'
    ]
    for j, vol in enumerate(VOLATILITIES):
        x = left + j * width + width / 2
        parts.append(f'<text x="{x}" y="16" text-anchor="middle" font-size="12">{vol} vol</text>')
    for i, trend in enumerate(TRENDS):
        y = top + i * height
        parts.append(f'<text x="4" y="{y + height / 2 + 4}" font-size="12">{trend}</text>')
        for j, vol in enumerate(VOLATILITIES):
            x = left + j * width
            cell = cells.get(f"{trend}/{vol}")
            fill = _cell_colour(float(cell["total_pnl"]), scale) if cell else "#eceef2"
            label = f"{float(cell['total_pnl']):,.2f} ({int(cell['count'])})" if cell else "-"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{width - 2}" height="{height - 2}" fill="{fill}"/>'
                f'<text x="{x + width / 2}" y="{y + height / 2 + 4}" text-anchor="middle" '
                f'font-size="12">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def pnl_over_time(times: Sequence[str], pnl: Sequence[float], regimes: Sequence[str]) -> str:
    """Cumulative realized PnL, one line segment per window coloured by its regime."""
    width, height, pad = 900, 260, 30
    cumulative: list[float] = [0.0]
    for value in pnl:
        cumulative.append(cumulative[-1] + value)
    low, high = min(cumulative), max(cumulative)
    span = (high - low) or 1.0
    n = max(len(pnl), 1)

    def point(k: int) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * k / n
        y = height - pad - (height - 2 * pad) * (cumulative[k] - low) / span
        return x, y

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'role="img" aria-label="cumulative realized PnL coloured by regime">',
        f'<line x1="{pad}" y1="{point(0)[1]:.1f}" x2="{width - pad}" y2="{point(0)[1]:.1f}" '
        'stroke="#ccc" stroke-dasharray="4 3"/>',
    ]
    for k, regime in enumerate(regimes):
        (x0, y0), (x1, y1) = point(k), point(k + 1)
        colour = REGIME_COLOURS.get(regime, "#444")
        parts.append(
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{colour}" '
            f'stroke-width="2"><title>{escape(times[k])} {escape(regime)} '
            f"{pnl[k]:,.4f}</title></line>"
        )
    parts.append(
        f'<text x="{pad}" y="16" font-size="12">{high:,.2f}</text>'
        f'<text x="{pad}" y="{height - 8}" font-size="12">{low:,.2f}</text></svg>'
    )
    return "".join(parts)


def _legend() -> str:
    items = "".join(
        f'<span style="color:{c};margin-right:12px">&#9632; {escape(r)}</span>'
        for r, c in REGIME_COLOURS.items()
    )
    return f"<p>{items}</p>"


def _share_table(share: Mapping[str, float]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{v:.1%}</td></tr>" for k, v in share.items())
    return f"<table><tr><th>regime</th><th>share of time</th></tr>{rows}</table>"


def render(document: Mapping[str, Any], series: Mapping[str, Sequence[Any]] | None) -> str:
    """The page for one analysis ``document``; ``series`` holds ``times``, ``pnl``, ``regime``
    per window (None when the PnL side is empty)."""
    candles = document["candles"]
    pnl = document["pnl"]
    title = f"Regime analysis {escape(str(document['symbol']))}"
    body = [
        f"<h1>{title}</h1>",
        f'<p class="meta">{candles["bars"]} one-minute bars from '
        f"{escape(str(candles['first_bar']))}"
        f" to {escape(str(candles['last_bar']))}; config {escape(str(document['config']))}</p>",
        "<h2>Regime share of time (seed 001 hard gates)</h2>",
        _share_table(candles["regime_share_of_time"]),
    ]
    if pnl.get("empty") or series is None:
        body.append(
            f"<h2>PnL</h2><p>The PnL side is empty: {escape(str(pnl.get('message', '')))}"
            f" (source: {escape(str(pnl.get('source')))}).</p>"
        )
    else:
        cells = {c["bucket"]: c for c in pnl["buckets"]["trend_x_volatility"]}
        body += [
            f"<h2>Realized PnL by trend x volatility ({pnl['windows']} windows)</h2>",
            heat_map(cells),
            "<h2>Cumulative realized PnL, coloured by regime</h2>",
            _legend(),
            pnl_over_time(series["times"], series["pnl"], series["regime"]),
        ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
