"""The page template: a self-contained HTML page of headings, notes and tables.

Only the standard library is imported here, so a page without a chart (stress-lab's)
costs no plotly or numpy. :meth:`Page.chart` imports plotly when a page holds a chart;
the figures themselves are built by ``reports.charts``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from stagectl.reports.io import write_atomic

GREEN, RED = "#2e7d4f", "#b3261e"
"""Gain and loss, pass and breach: the two colours every page shares."""
_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1d2330}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#5a6275;font-size:12px}
table{border-collapse:collapse;font-size:12px;margin-bottom:8px}
th,td{border:1px solid #d5d9e2;padding:4px 6px;text-align:right;white-space:nowrap}
th{background:#f1f3f7}td.name,th.name{text-align:left}
.ok,.pass{background:#e3f4e8}.warn,.medium{background:#fff1cc}.high{background:#fde0c8}
.breach,.fail,.critical{background:#f9d0cd;font-weight:600}
.atbase{background:#f3e3e1;color:#8a4b46}tr.baseline td{border-bottom:2px solid #8a90a0}
.na{background:#eceef2;color:#777}
.status{display:inline-block;padding:2px 8px;border-radius:4px;color:#fff;font-weight:600}
.status.pass{background:#2e7d4f}.status.breach,.status.fail{background:#b3261e}
.chart{max-width:1200px}summary{cursor:pointer;margin:4px 0;color:#34405a}
"""


def cell(value: Any, digits: int = 4) -> str:
    """A table cell's text: ``-`` for None, floats to ``digits`` significant figures."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:,.{digits}g}" if abs(value) < 1e3 else f"{value:,.0f}"
    return str(value)


def pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value * 100:.{digits}f} %"


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    row_classes: Sequence[str | None] | None = None,
    name_columns: int = 1,
    text_columns: Sequence[int] = (),
) -> str:
    """An HTML table; the first ``name_columns`` columns and the ``text_columns`` are
    left-aligned text, the others right-aligned figures."""
    left = set(range(name_columns)) | set(text_columns)

    def cells(values: Sequence[Any], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=name' if k in left else ''}>{escape(cell(v))}</{tag}>"
            for k, v in enumerate(values)
        )

    body = []
    for k, row in enumerate(rows):
        css = row_classes[k] if row_classes is not None else None
        attribute = f' class="{escape(css)}"' if css else ""
        body.append(f"<tr{attribute}>{cells(row, 'td')}</tr>")
    return f"<table><tr>{cells(columns, 'th')}</tr>{''.join(body)}</table>"


@dataclass
class Page:
    """A report page: a title, a line of context, then headings, charts and tables."""

    title: str
    meta: str = ""
    status: str | None = None  # "pass" / "fail" / "breach": a coloured badge by the title
    parts: list[str] = field(default_factory=list)
    _charts: int = 0

    def heading(self, text: str) -> Page:
        self.parts.append(f"<h2>{escape(text)}</h2>")
        return self

    def note(self, text: str) -> Page:
        self.parts.append(f'<p class="meta">{escape(text)}</p>')
        return self

    def html(self, fragment: str) -> Page:
        """Markup built by a caller that escaped its texts (e.g. :func:`table`)."""
        self.parts.append(fragment)
        return self

    def details(self, summary: str, fragment: str, *, open_: bool = False) -> Page:
        """A long table folded under a one-line summary (opened by a click)."""
        state = " open" if open_ else ""
        self.parts.append(
            f"<details{state}><summary>{escape(summary)}</summary>{fragment}</details>"
        )
        return self

    def chart(self, fig: Any) -> Page:
        """A plotly figure; the first one carries the plotly.js bundle for the page."""
        import plotly.io as pio

        self._charts += 1
        self.parts.append(
            '<div class="chart">'
            + pio.to_html(
                fig,
                full_html=False,
                include_plotlyjs=self._charts == 1,
                config=_CONFIG,
                div_id=f"chart-{self._charts}",
            )
            + "</div>"
        )
        return self

    def render(self) -> str:
        badge = (
            f' <span class="status {escape(self.status)}">{escape(self.status.upper())}</span>'
            if self.status
            else ""
        )
        meta = f'<p class="meta">{escape(self.meta)}</p>' if self.meta else ""
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(self.title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(self.title)}{badge}</h1>{meta}" + "".join(self.parts) + "</body></html>\n"
        )


def write_page(path: Path, page: Page) -> Path:
    """The page written atomically (``reports.io.write_atomic``): never half a file."""
    write_atomic(path, page.render().encode("utf-8"))
    return path
