"""The page of ``attribution --html``: the terminal's tables with a bar chart per group."""

from __future__ import annotations

from typing import Any

from stagectl.reports.charts import sign_bar_figure
from stagectl.reports.page import Page, pct, table

GROUPS = ("sleeve", "engine", "regime", "venue")
COLUMNS = ("decisions", "trades", "realized_pnl", "fees", "slippage", "funding", "net_pnl")


def attribution_page(body: dict[str, Any]) -> Page:
    """Net PnL by sleeve, engine, regime and venue (charts and tables), the cost breakdown
    with shares of gross, and the reconciliation badge."""
    window, totals, recon = body["window"], body["totals"], body["reconciliation"]
    page = Page(
        "PnL attribution",
        meta=f"{window['start']} to {window['end']}; runs: {', '.join(body['runs']) or 'none'}",
        status="pass" if recon["reconciled"] else "fail",
    )
    page.note(
        f"attributed {totals['attributed_net_pnl']:+.2f} USD vs ledger "
        f"{totals['ledger_net_pnl']:+.2f} USD (difference {recon['difference_usd']:+.4f}, "
        f"tolerance {recon['tolerance_usd']}); gross before costs {totals['gross_pnl']:+.2f} USD"
    )
    for group in GROUPS:
        buckets = body["by"][group]
        labels = list(buckets)
        page.heading(f"PnL by {group}")
        page.chart(
            sign_bar_figure(
                f"Net PnL by {group} (USD)", labels, [buckets[k]["net_pnl"] for k in labels],
                y_title="USD",
            )
        )  # fmt: skip
        page.html(
            table(
                [group, "decisions", "trades", "realized", "fees", "slippage", "funding", "net"],
                [[k, *(b[c] for c in COLUMNS)] for k, b in buckets.items()],
            )
        )
    page.heading("Costs")
    page.html(
        table(
            ["cost", "USD", "share of gross"],
            [[name, c["usd"], pct(c["share_of_gross"])] for name, c in body["costs"].items()],
        )
    )
    return page
