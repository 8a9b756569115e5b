"""The plotting helpers every ``--html`` report shares.

A page is one self-contained file: inline CSS, and when it holds a chart the plotly.js
bundle inline once (no CDN, no fonts, no network), then each chart as a plotly figure
(date axes, zoom, hover). Tables are plain HTML; every text is HTML-escaped. The
template (``Page``, ``table``, ``write_page``) is ``reports.page``, standard library only;
its names are importable from here too.

Long series are downsampled before they reach a figure (:func:`downsample`): at most
``MAX_POINTS`` points per trace, keeping each bucket's minimum and maximum, so peaks and
troughs (a drawdown's bottom) survive exactly and a page stays small.

plotly is imported here, and this module only when a page is written: ``--help`` and
every run without ``--html`` stay off it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
import plotly.graph_objects as go

from stagectl.domain.risk_rules import SEVERITY_RANK
from stagectl.reports.page import GREEN as GREEN
from stagectl.reports.page import RED as RED
from stagectl.reports.page import STYLE as STYLE
from stagectl.reports.page import Page as Page
from stagectl.reports.page import cell as cell
from stagectl.reports.page import pct as pct
from stagectl.reports.page import table as table
from stagectl.reports.page import write_page as write_page

MAX_POINTS = 4_000
"""Points per trace at most (plus the first and the last point)."""

SEVERITY_COLOURS = {
    "NONE": GREEN,
    "LOW": "#7fb77e",
    "MEDIUM": "#e0a100",
    "HIGH": "#e06000",
    "CRITICAL": RED,
}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def downsample(x: Any, y: Any, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` cut to at most ``max_points`` (+2) points, in order.

    The rule: a series longer than ``max_points`` is cut into ``max_points // 2`` buckets
    of equal count; each bucket keeps its minimum and its maximum point (one point when
    they coincide), and the first and the last point are always kept. NaN counts as
    neither a minimum nor a maximum (an all-NaN bucket keeps its first point).
    """
    xs, ys = np.asarray(x), np.asarray(y, dtype=float)
    n = len(ys)
    if n <= max_points:
        return xs, ys
    buckets = max(max_points // 2, 1)
    size = -(-n // buckets)
    rows = -(-n // size)
    offsets = np.arange(rows) * size
    low = np.full(rows * size, np.inf)
    high = np.full(rows * size, -np.inf)
    finite = np.isfinite(ys)
    low[:n] = np.where(finite, ys, np.inf)
    high[:n] = np.where(finite, ys, -np.inf)
    keep = np.concatenate(
        (
            [0, n - 1],
            offsets + low.reshape(rows, size).argmin(axis=1),
            offsets + high.reshape(rows, size).argmax(axis=1),
        )
    )
    kept = np.unique(np.clip(keep, 0, n - 1))
    return xs[kept], ys[kept]


def time_axis(times: Any) -> np.ndarray:
    """Times as milliseconds since the epoch (UTC), floats: a date axis reads them as UTC,
    and plotly stores a float array in binary (base64), a third of ISO text's size."""
    import pandas as pd

    index = pd.DatetimeIndex(times)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return np.asarray(index.as_unit("ms").asi8, dtype=float)


def values_at(series: Any, times: Any) -> np.ndarray:
    """``series``' last value at or before each of ``times`` (NaN before its first): where
    an event's marker sits on a curve."""
    import pandas as pd

    return np.asarray(series.asof(pd.DatetimeIndex(times)), dtype=float)


def figure(title: str, *, y_title: str = "", height: int = 380, percent: bool = False) -> Any:
    """An empty figure with the house layout: a UTC date x axis, hover across traces."""
    fig = go.Figure()
    _house_layout(fig, title, height)
    fig.update_layout(
        legend={"y": -0.12},
        xaxis={"type": "date", "hoverformat": "%Y-%m-%d %H:%M UTC"},
        yaxis={"title": {"text": escape(y_title)}, "tickformat": ".1%" if percent else ",.6~g"},
    )
    return fig


@dataclass(frozen=True)
class Panel:
    """One row of a :func:`stacked_figure`: its y axis title, percent ticks, its height
    share, and for a severity panel the NONE .. CRITICAL labels."""

    y_title: str
    percent: bool = False
    weight: float = 1.0
    severity: bool = False


EQUITY_AND_DRAWDOWN = (Panel("USD", weight=2.0), Panel("drawdown", percent=True))
"""The two panels under most equity charts: USD over its drawdown."""


def stacked_figure(title: str, panels: Sequence[Panel], *, height: int = 560) -> Any:
    """Panels stacked on one shared UTC date axis: a zoom or pan in one moves them all
    (equity over drawdown over severity). Traces go to a panel with ``row=`` (1-based)."""
    from plotly.subplots import make_subplots

    total = sum(p.weight for p in panels)
    fig = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        row_heights=[p.weight / total for p in panels],
    )
    _house_layout(fig, title, height)
    fig.update_xaxes(type="date", hoverformat="%Y-%m-%d %H:%M UTC")
    names = sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__)
    for row, panel in enumerate(panels, start=1):
        axis: dict[str, Any] = {
            "title": {"text": escape(panel.y_title)},
            "tickformat": ".1%" if panel.percent else ",.6~g",
        }
        if panel.severity:
            axis.update(
                tickvals=list(range(len(names))), ticktext=names, range=[-0.3, 4.3], tickformat=""
            )
        fig.update_yaxes(row=row, col=1, **axis)
    return fig


def _house_layout(fig: Any, title: str, height: int) -> None:
    fig.update_layout(
        title={"text": escape(title), "x": 0.01},
        template="plotly_white",
        height=height,
        margin={"l": 70, "r": 20, "t": 40, "b": 40},
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.08, "yanchor": "top", "x": 0, "xanchor": "left"},
    )


def add_line(
    fig: Any,
    times: Any,
    values: Any,
    name: str,
    *,
    colour: str | None = None,
    fill: str | None = None,
    step: bool = False,
    max_points: int = MAX_POINTS,
    row: int | None = None,
) -> None:
    """One time series as a line, downsampled (:func:`downsample`); ``row``: the panel of
    a :func:`stacked_figure`."""
    x, y = downsample(time_axis(times), values, max_points)
    _add(
        fig,
        row,
        go.Scatter(
            x=x,
            y=y,
            name=escape(name),
            mode="lines",
            line={"color": colour, "width": 1.5, "shape": "hv" if step else "linear"},
            fill=fill,
        ),
    )


def add_markers(
    fig: Any,
    times: Any,
    values: Any,
    name: str,
    texts: Sequence[str],
    *,
    colour: str,
    symbol: str = "circle",
    size: int = 8,
    row: int | None = None,
) -> None:
    """Events as markers with a hover text each (not downsampled: events are few)."""
    _add(
        fig,
        row,
        go.Scatter(
            x=time_axis(times),
            y=np.asarray(values, dtype=float),
            name=escape(name),
            mode="markers",
            marker={"color": colour, "symbol": symbol, "size": size, "line": {"width": 0.5}},
            opacity=0.8,
            text=[escape(t) for t in texts],
            hovertemplate="%{text}<extra></extra>",
        ),
    )


def _add(fig: Any, row: int | None, trace: Any) -> None:
    if row is None:
        fig.add_trace(trace)
    else:
        fig.add_trace(trace, row=row, col=1)


def add_bands(
    fig: Any, spans: Mapping[str, Sequence[tuple[Any, Any]]], colours: Mapping[str, str]
) -> None:
    """Background bands over ``[start, end)`` spans, one filled step trace per label.

    A label's trace steps up to 1 at each span's start and down to 0 at its end, on a
    hidden 0..1 axis: thousands of spans cost two numbers each and draw as one SVG path,
    where one layout shape per span would be redrawn one by one on every zoom. Spans of
    one label must not overlap (runs of a label never touch: they would be one run)."""
    fig.update_layout(yaxis2={"range": [0, 1], "overlaying": "y", "visible": False})
    for label, pairs in spans.items():
        if not pairs:
            continue
        edges = np.column_stack(
            (time_axis([s for s, _ in pairs]), time_axis([e for _, e in pairs]))
        ).ravel()
        levels = np.tile(np.array([1, 0], dtype=np.int8), len(pairs))
        fig.add_trace(
            go.Scatter(
                x=edges,
                y=levels,
                yaxis="y2",
                name=escape(label),
                mode="lines",
                line={"width": 0, "shape": "hv"},
                fill="tozeroy",
                fillcolor=_translucent(colours.get(label, "#999999")),
                hoverinfo="skip",
            )
        )


def _translucent(colour: str, alpha: float = 0.22) -> str:
    """``#rrggbb`` as ``rgba(r,g,b,alpha)``."""
    red, green, blue = (int(colour[k : k + 2], 16) for k in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def add_drawdown(
    fig: Any,
    equity: Any,
    initial: float | None = None,
    *,
    row: int,
    name: str = "drawdown",
    colour: str = RED,
    fill: str | None = "tozeroy",
) -> None:
    """The curve's running drawdown (a fraction <= 0, ``domain.performance``), filled
    unless ``fill`` is None."""
    from stagectl.domain.performance import running_drawdown

    drawdown = running_drawdown(equity, initial)
    add_line(fig, drawdown.index, drawdown.to_numpy(), name, colour=colour, fill=fill, row=row)


def add_severity_markers(
    fig: Any, curve: Any, events: Iterable[tuple[str, Any, str]], name: str, *, row: int
) -> None:
    """``(severity, time, hover text)`` events as markers on ``curve`` (a series), one
    trace per severity named ``"{name} {severity}"``, in rank order, coloured by
    :data:`SEVERITY_COLOURS`."""
    import pandas as pd

    by_severity: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    for severity, at, text in events:
        by_severity[severity].append((at, text))
    for severity in sorted(by_severity, key=lambda s: SEVERITY_RANK.get(s, 0)):
        found = by_severity[severity]
        times = pd.DatetimeIndex([at for at, _ in found])
        add_markers(
            fig,
            times,
            values_at(curve, times),
            f"{name} {severity}",
            [text for _, text in found],
            colour=SEVERITY_COLOURS.get(severity, "#444444"),
            row=row,
        )


def add_severity(fig: Any, times: Any, ranks: Any, *, row: int) -> None:
    """Severity ranks (``domain.risk_rules.SEVERITY_RANK``) as a step line on a severity
    :class:`Panel` (its y axis labelled NONE .. CRITICAL)."""
    add_line(fig, times, ranks, "severity", colour=SEVERITY_COLOURS["CRITICAL"], step=True, row=row)


def bar_figure(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    y_title: str = "",
    colours: Sequence[str] | None = None,
    hover: Sequence[str] | None = None,
) -> Any:
    """A bar per label (folds, paths, years): a category x axis."""
    fig = figure(title, y_title=y_title)
    fig.update_layout(xaxis={"type": "category", "title": {"text": ""}}, hovermode="closest")
    fig.add_trace(
        go.Bar(
            x=[escape(label) for label in labels],
            y=[np.nan if v is None else v for v in values],
            marker={"color": list(colours) if colours else PALETTE[0]},
            customdata=[escape(h) for h in hover] if hover else None,
            hovertemplate="%{x}: %{y:,.3f}"
            + ("<br>%{customdata}" if hover else "")
            + "<extra></extra>",
            showlegend=False,
        )
    )
    return fig


def sign_bar_figure(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    y_title: str = "",
    hover: Sequence[str] | None = None,
) -> Any:
    """A :func:`bar_figure` whose bars above zero are GREEN, the others (zero, None) RED."""
    colours = [GREEN if (v or 0.0) > 0 else RED for v in values]
    return bar_figure(title, labels, values, y_title=y_title, colours=colours, hover=hover)


def histogram_figure(title: str, values: Sequence[float], *, x_title: str, bins: int = 30) -> Any:
    """A histogram of ``values`` (a value axis, not a date axis)."""
    fig = figure(title, y_title="count")
    fig.update_layout(xaxis={"type": "linear", "title": {"text": escape(x_title)}})
    fig.update_layout(hovermode="closest")
    fig.add_trace(go.Histogram(x=list(values), nbinsx=bins, marker={"color": PALETTE[0]}))
    fig.add_vline(x=0.0, line={"color": "#b3261e", "dash": "dash"})
    return fig
