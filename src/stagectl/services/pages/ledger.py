"""The page of ``regime-analyze --html``: what the terminal prints, as charts and tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from stagectl.reports.charts import GREEN, RED, Page, add_bands, add_line, cell, figure, table
from stagectl.services.research.engine import stamp

if TYPE_CHECKING:
    from stagectl.services.ledger.regime_analyze import RegimeResult

REGIME_COLOURS = {
    "TREND": "#1f77b4",
    "RANGE": "#2ca02c",
    "PANIC": "#d62728",
    "ILLIQUID": "#9467bd",
    "NEUTRAL": "#8c8c8c",
}
TRENDS = ("up", "flat", "down")
VOLATILITIES = ("low", "mid", "high", "unknown")


def regime_spans(starts: Any, ends: Any, labels: Any) -> dict[str, list[tuple[Any, Any]]]:
    """Runs of one label as ``[first start, last end)`` spans, grouped by label."""
    labels = np.asarray(labels).astype(str)
    if not len(labels):
        return {}
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    first = np.concatenate(([0], change))
    last = np.concatenate((change, [len(labels)])) - 1
    start_values, end_values = np.asarray(starts), np.asarray(ends)
    spans: dict[str, list[tuple[Any, Any]]] = {}
    for a, b in zip(first, last, strict=True):
        spans.setdefault(str(labels[a]), []).append((start_values[a], end_values[b]))
    return spans


def regime_analyze(result: RegimeResult) -> Page:
    """Close price and (with PnL windows) cumulative realized PnL over regime bands, the
    trend x volatility heat map, and every table of the terminal output."""
    document = result.document
    candles, pnl = document["candles"], document["pnl"]
    page = Page(
        f"Regime analysis {document['symbol']}",
        meta=f"{candles['bars']} bars from {stamp(candles['first_bar'])} to "
        f"{stamp(candles['last_bar'])}; config {document['config']}",
    )
    frame = result.candles.frame
    step = pd.Timedelta(result.candles.interval or (frame.index[-1] - frame.index[-2]))
    bar_spans = regime_spans(frame.index, frame.index + step, result.bars["regime"])
    price = figure("Close price over seed 001 regimes", y_title="price")
    add_bands(price, bar_spans, REGIME_COLOURS)
    add_line(price, frame.index, frame["close"].astype(float).to_numpy(), "close", colour="#1d2330")
    page.heading("Regimes over time").chart(price)
    page.heading("Regime share of time (seed 001 hard gates)")
    shares = candles["regime_share_of_time"]
    page.html(table(["regime", "share"], [[k, f"{v:.1%}"] for k, v in shares.items()]))
    page.heading("Volatility thresholds (maker.yaml)")
    page.html(_threshold_table(candles["volatility"]))
    if pnl.get("empty") or result.windows is None or not len(result.windows):
        page.heading("PnL")
        page.note(f"PnL side empty: {pnl.get('message', 'no PnL windows')} ({pnl['source']})")
        return page
    windows = result.windows
    page.note(
        f"{pnl['windows']} PnL windows, total realized {pnl['total_realized_quote']:.4f}, "
        f"corr(realized, inventory delta) {cell(pnl['inventory_correlation'])}"
    )
    cumulative = figure("Cumulative realized PnL over regime bands", y_title="quote")
    add_bands(
        cumulative,
        regime_spans(windows["window_start"], windows["window_end"], windows["regime"]),
        REGIME_COLOURS,
    )
    add_line(
        cumulative,
        windows["window_end"],
        windows["realized_fifo_quote"].astype(float).cumsum().to_numpy(),
        "cumulative realized PnL",
        colour="#1d2330",
    )
    page.heading("Realized PnL").chart(cumulative)
    cells = {row["bucket"]: row for row in pnl["buckets"]["trend_x_volatility"]}
    page.chart(_heat_map(cells))
    for dimension, rows in pnl["buckets"].items():
        page.heading(f"By {dimension.replace('_', ' ')}")
        page.html(
            table(
                ["bucket", "count", "mean PnL", "total PnL", "win rate"],
                [[r["bucket"], r["count"], r["mean_pnl"], r["total_pnl"], f"{r['win_rate']:.0%}"]
                 for r in rows],
            )
        )  # fmt: skip
    return page


def _threshold_table(volatility: dict[str, Any]) -> str:
    rows = [
        [name, measure["summary_bps"]["median"], signal, f"{s['share_on']:.1%}",
         s["times_fired"], "-" if s["first_fired"] is None else stamp(s["first_fired"])]
        for name, measure in volatility.items()
        for signal, s in measure["switches"].items()
    ]  # fmt: skip
    return table(["measure", "median bps", "switch", "time on", "fired", "first fired"], rows)


def _heat_map(cells: dict[str, dict[str, Any]]) -> Any:
    """Total realized PnL by trend (rows) x volatility (columns), the count in the hover."""
    totals = [[cells.get(f"{t}/{v}", {}).get("total_pnl") for v in VOLATILITIES] for t in TRENDS]
    counts = [[cells.get(f"{t}/{v}", {}).get("count", 0) for v in VOLATILITIES] for t in TRENDS]
    scale = max((abs(x) for row in totals for x in row if x is not None), default=1.0) or 1.0
    fig = figure("Realized PnL by trend x volatility", height=320)
    fig.update_layout(
        xaxis={"type": "category", "title": {"text": "volatility"}},
        yaxis={"type": "category", "title": {"text": "trend"}, "tickformat": ""},
        hovermode="closest",
    )
    fig.add_trace(
        go.Heatmap(
            z=[[np.nan if x is None else x for x in row] for row in totals],
            x=list(VOLATILITIES),
            y=list(TRENDS),
            customdata=counts,
            colorscale=[[0.0, RED], [0.5, "#ffffff"], [1.0, GREEN]],
            zmin=-scale,
            zmax=scale,
            texttemplate="%{z:,.2f}",
            hovertemplate="%{y} / %{x}: %{z:,.4f} over %{customdata} windows<extra></extra>",
        )
    )
    return fig
