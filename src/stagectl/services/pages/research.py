"""Pages of ``backtest --html``, ``walk-forward --html`` and ``cpcv --html``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stagectl.reports.charts import (
    EQUITY_AND_DRAWDOWN,
    PALETTE,
    Page,
    Panel,
    add_drawdown,
    add_line,
    add_markers,
    cell,
    figure,
    histogram_figure,
    pct,
    sign_bar_figure,
    stacked_figure,
    table,
    values_at,
)

if TYPE_CHECKING:
    from stagectl.services.research.backtest import BacktestRun
    from stagectl.services.research.cpcv import CpcvResult
    from stagectl.services.research.walk_forward import WalkForwardResult


def backtest(run: BacktestRun) -> Page:
    """Equity (with breaker firings), drawdown, per-sleeve equity, and the yearly and
    per-sleeve table of ``stability``."""
    body, result = run.body(), run.result
    strategy, data, metrics = body["strategy"], body["data"], body["metrics"]
    sleeves = " + ".join(f"{s['symbol']} {s['weight'] * 100:g} %" for s in strategy["sleeves"])
    page = Page(
        f"Backtest {strategy['name']}",
        meta=f"{sleeves}; {data['start']} .. {data['end']} (UTC; {data['bars']} "
        f"{strategy['timeframe']} bars, {data['source']}); cost model "
        f"{strategy['costs']['model']} x{strategy['costs']['cost_multiplier']:g}; "
        f"config {strategy['config']['path']} sha256 {strategy['config']['sha256'][:12]}",
    )
    page.html(
        table(
            ["total return", "CAGR", "Sharpe net", "Sortino", "max drawdown", "final equity USD"],
            [
                [
                    pct(metrics["total_return"]),
                    pct(metrics["cagr"]),
                    metrics["sharpe_net"],
                    metrics["sortino"],
                    pct(metrics["max_drawdown"]),
                    metrics["final_equity"],
                ]
            ],
            name_columns=0,
        )
    )
    equity = stacked_figure("Equity and drawdown", EQUITY_AND_DRAWDOWN)
    add_line(
        equity,
        result.gross_equity.index,
        result.gross_equity.to_numpy(),
        "before costs",
        colour="#9aa3b5",
        row=1,
    )
    add_line(
        equity,
        result.equity.index,
        result.equity.to_numpy(),
        "equity (net)",
        colour=PALETTE[0],
        row=1,
    )
    firings: dict[str, list[dict[str, Any]]] = {}
    for firing in metrics.get("breakers", {}).get("firings", []):
        firings.setdefault(firing["breaker"], []).append(firing)
    for k, (breaker, found) in enumerate(firings.items()):
        times = pd.DatetimeIndex([f["time"] for f in found])
        add_markers(
            equity,
            times,
            values_at(result.equity, times),
            f"breaker {breaker}",
            [f"{f['time']} {breaker} {f['value']:.4g} (threshold {f['threshold']:.4g})"
             for f in found],
            colour=PALETTE[(k + 3) % len(PALETTE)],
            symbol="x",
            size=6,
            row=1,
        )  # fmt: skip
    add_drawdown(equity, result.equity, result.initial_equity, row=2)
    page.heading("Equity and drawdown").chart(equity)
    if len(result.sleeve_equity.columns) > 1:
        sleeve_fig = figure("Per-sleeve equity (each sleeve traded alone)", y_title="USD")
        for k, symbol in enumerate(result.sleeve_equity.columns):
            curve = result.sleeve_equity[symbol]
            add_line(sleeve_fig, curve.index, curve.to_numpy(), str(symbol), colour=PALETTE[k])
        page.heading("Sleeves").chart(sleeve_fig)
    stability = metrics["stability"]
    rows = [
        [year, pct(r["total_return"]), r["sharpe"], pct(r["max_drawdown"])]
        for year, r in stability["by_year"].items()
    ]
    rows += [
        [symbol, pct(r["total_return"]), r["sharpe"], pct(r["max_drawdown"])]
        for symbol, r in stability["by_sleeve"].items()
    ]
    page.heading("By year and by sleeve")
    page.html(table(["period / sleeve", "total return", "Sharpe", "max drawdown"], rows))
    return page


def walk_forward(result: WalkForwardResult) -> Page:
    """OOS Sharpe per fold, the stitched out-of-sample equity, and the folds table."""
    body = result.body
    settings, summary = body["settings"], body["summary"]
    page = Page(
        f"Walk-forward {body['strategy']['name']}",
        meta=f"{settings['mode']}: train {settings['train_days']:g}d, purge "
        f"{settings['purge_days']:g}d, embargo {settings['embargo_days']:g}d, test "
        f"{settings['test_days']:g}d; {settings['folds']} folds from {settings['first_bar']}; "
        f"mean OOS Sharpe {cell(summary['mean_oos_sharpe'], 3)}; positive folds "
        f"{summary['positive_folds']}/{settings['folds']}",
    )
    rows = body["folds"]
    sharpes = [r["oos_sharpe"] for r in rows]
    page.heading("Out-of-sample Sharpe per fold")
    page.chart(
        sign_bar_figure(
            "OOS Sharpe per fold (test window)",
            [f"{r['fold']}: {r['test_start'][:10]}" for r in rows],
            sharpes,
            y_title="Sharpe",
            hover=[r["selected"] for r in rows],
        )
    )
    oos = result.oos_returns
    curve = pd.Series(np.cumprod(1.0 + oos.to_numpy()), index=oos.index)
    stitched = stacked_figure(
        "Stitched out-of-sample equity (1 = start) and drawdown",
        (Panel("growth of 1", weight=2.0), Panel("drawdown", percent=True)),
    )
    add_line(stitched, curve.index, curve.to_numpy(), "OOS equity", colour=PALETTE[0], row=1)
    add_drawdown(stitched, curve, 1.0, row=2)
    page.heading("Stitched OOS curve").chart(stitched)
    page.heading("Folds")
    page.html(
        table(
            ["fold", "test start", "test end", "selected", "IS Sharpe", "OOS Sharpe", "return",
             "max drawdown", "trades"],
            [
                [r["fold"], r["test_start"], r["test_end"], r["selected"], r["is_sharpe"],
                 r["oos_sharpe"], pct(r["oos_return"]), pct(r["oos_max_drawdown"]), r["trades"]]
                for r in rows
            ],
            name_columns=4,
        )
    )  # fmt: skip
    return page


def cpcv(result: CpcvResult) -> Page:
    """Sharpe per path, the PBO logit histogram, and the paths table."""
    body = result.body
    settings, dist, pbo = body["settings"], body["distribution"], body["pbo"]
    pbo_text = (
        f"PBO {pbo['pbo']:.3f} ({pbo['configurations']} configurations, {pbo['splits']} CSCV "
        f"splits)"
        if pbo["pbo"] is not None
        else f"PBO not computable ({pbo['reason']})"
    )
    page = Page(
        f"CPCV {body['strategy']['name']}",
        meta=f"N={settings['folds']} groups, K={settings['test_folds']}: {settings['splits']} "
        f"splits, {settings['paths']} paths; purge {settings['purge_days']:g}d, embargo "
        f"{settings['embargo_days']:g}d; Sharpe across paths mean {cell(dist['mean'], 3)}, std "
        f"{cell(dist['std'], 3)}; {pbo_text}",
    )
    paths = body["paths"]
    sharpes = [p["sharpe"] for p in paths]
    page.heading("Out-of-sample Sharpe per path")
    page.chart(
        sign_bar_figure(
            "Sharpe per backtest path",
            [f"path {p['path']}" for p in paths],
            sharpes,
            y_title="Sharpe",
        )
    )
    if result.path_returns is not None:
        curves = figure("Out-of-sample equity of each path (1 = start)", y_title="growth of 1")
        for k, number in enumerate(result.path_returns.columns):
            growth = np.cumprod(1.0 + result.path_returns[number].to_numpy())
            add_line(
                curves,
                result.path_returns.index,
                growth,
                f"path {number}",
                colour=PALETTE[k % len(PALETTE)],
                max_points=2_000,
            )
        page.chart(curves)
    page.heading("Probability of backtest overfitting")
    if result.pbo_logits:
        page.chart(
            histogram_figure(
                "PBO: logit of the in-sample best's out-of-sample rank (<= 0: overfit)",
                result.pbo_logits,
                x_title="logit",
            )
        )
    page.note(pbo_text)
    page.heading("Paths")
    page.html(
        table(
            ["path", "Sharpe", "return", "max drawdown"],
            [[p["path"], p["sharpe"], pct(p["total_return"]), pct(p["max_drawdown"])]
             for p in paths],
        )
    )  # fmt: skip
    return page
