"""``stagectl walk-forward``: purged walk-forward of the strategy config (seed 001 §3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stagectl.cli._common import (
    CostMultiplierOpt,
    HtmlOpt,
    JsonOpt,
    SampleDataOpt,
    SchedulerOpt,
    StrategyConfigOpt,
    WorkersOpt,
    cli_context,
    emit_report,
    fmt_fixed,
    fmt_pct,
    info,
    parse_duration,
    print_lines,
    print_table,
    write_html,
)

if TYPE_CHECKING:
    from stagectl.reports.page import Page

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = "Example: stagectl walk-forward --train 120d --purge 5d --test 30d --json"

FixedOpt = Annotated[
    bool,
    typer.Option(
        "--fixed",
        help="Evaluate the config as is (nothing trained) instead of selecting from the "
        "3 x 3 grid of lookback scales and debounce bars by in-sample Sharpe.",
    ),
]


def _duration(flag: str, text: str) -> Any:
    return typer.Option(flag, help=text, metavar="DURATION")


@app.command("walk-forward", epilog=EXAMPLE)
def walk_forward(
    ctx: typer.Context,
    config: StrategyConfigOpt = None,
    train: Annotated[str, _duration("--train", "Training window, e.g. 120d.")] = "120d",
    purge: Annotated[
        str, _duration("--purge", "Gap between train and test (= label horizon).")
    ] = "5d",
    embargo: Annotated[str, _duration("--embargo", "Embargo after each test block.")] = "0d",
    test: Annotated[str, _duration("--test", "Test window and step, e.g. 30d.")] = "30d",
    expanding: Annotated[
        bool, typer.Option("--expanding", help="Train on all bars before the gap (not rolling).")
    ] = False,
    fixed: FixedOpt = False,
    cost_multiplier: CostMultiplierOpt = 1.0,
    data_dir: SampleDataOpt = None,
    json_output: JsonOpt = False,
    html: HtmlOpt = None,
    export_dir: Annotated[
        Path | None,
        typer.Option(
            "--export", help="Write folds.csv and oos_equity.csv into DIR.", metavar="DIR"
        ),
    ] = None,
    workers: WorkersOpt = 1,
    scheduler: SchedulerOpt = None,
) -> None:
    """Purged walk-forward: per-fold out-of-sample Sharpe, return, drawdown and trades.

    Each fold selects, on its training window, the grid configuration with the best
    Sharpe (or, with --fixed, nothing), then backtests the test window from flat with
    the earlier bars as signal warm-up. Prints the folds, their mean, std, min, max and
    median, and the stability by test year and by sleeve. The folds run as Dask tasks
    with --workers N or --scheduler ADDRESS, with the same results.
    Exit 0 on success, 2 on a bad config, duration or data directory.
    """
    from stagectl.services.research import walk_forward as service
    from stagectl.services.research.parallel import Parallelism

    home = cli_context(ctx).home
    request = service.WalkForwardRequest(
        config=config,
        data_dir=data_dir,
        train=parse_duration(train, option="--train"),
        purge=parse_duration(purge, option="--purge", allow_zero=True),
        embargo=parse_duration(embargo, option="--embargo", allow_zero=True),
        test=parse_duration(test, option="--test"),
        expanding=expanding,
        fixed=fixed,
        cost_multiplier=cost_multiplier,
        export_dir=export_dir,
        parallelism=Parallelism(workers, scheduler),
    )
    result = service.run(request, home=home, report=info)
    info(f"config: {result.market.source.describe()}")
    info(f"data: {result.market.info.data_source}")
    for path in result.exported:
        info(f"wrote {path}")

    def page() -> Page:
        from stagectl.services.pages.research import walk_forward as build

        return build(result)

    write_html(html, page)
    emit_report(
        home,
        service.KIND,
        result.body,
        inputs=result.inputs,
        json_output=json_output,
        out=None,
        unsigned=True,
        render_human=lambda: print_body(result.body),
    )


def print_body(body: dict[str, Any]) -> None:
    settings, summary = body["settings"], body["summary"]
    print_lines(
        [
            f"{body['strategy']['name']} walk-forward ({settings['mode']}): train "
            f"{settings['train_days']:g}d, purge {settings['purge_days']:g}d, embargo "
            f"{settings['embargo_days']:g}d, test {settings['test_days']:g}d, "
            f"{settings['folds']} folds from {settings['first_bar']}",
            f"training: {body['strategy']['selection']}",
        ]
    )
    print_table(
        "Folds",
        ["fold", "test start", "selected", "IS Sharpe", "OOS Sharpe", "return", "MDD", "trades"],
        [
            (
                r["fold"],
                r["test_start"][:10],
                r["selected"],
                fmt_fixed(r["is_sharpe"]),
                fmt_fixed(r["oos_sharpe"]),
                fmt_pct(r["oos_return"]),
                fmt_pct(r["oos_max_drawdown"]),
                r["trades"],
            )
            for r in body["folds"]
        ],
    )
    metrics = summary["metrics"]
    print_table(
        "Across folds",
        ["metric", "mean", "std", "min", "max", "median"],
        [
            (name, *(fmt_fixed(metrics[name][k]) for k in ("mean", "std", "min", "max", "median")))
            for name in ("oos_sharpe", "oos_return", "oos_max_drawdown", "trades")
        ],
    )
    rows = [
        (
            f"year {year}",
            fmt_fixed(agg["oos_sharpe"]["mean"]),
            fmt_fixed(agg["oos_sharpe"]["std"]),
            agg["oos_sharpe"]["count"],
        )
        for year, agg in summary["by_year"].items()
    ] + [
        (
            symbol,
            fmt_fixed(agg["oos_sharpe"]["mean"]),
            fmt_fixed(agg["oos_sharpe"]["std"]),
            agg["oos_sharpe"]["count"],
        )
        for symbol, agg in summary["by_symbol"].items()
    ]
    print_table("Stability (OOS Sharpe)", ["group", "mean", "std", "folds"], rows)
    stitched = summary["stitched_oos"]
    print_lines(
        [
            f"mean OOS Sharpe: {fmt_fixed(summary['mean_oos_sharpe'])}; positive folds: "
            f"{summary['positive_folds']}/{settings['folds']}",
            f"stitched OOS curve: Sharpe {fmt_fixed(stitched['sharpe'])}, return "
            f"{fmt_pct(stitched['total_return'])}, "
            f"max drawdown {fmt_pct(stitched['max_drawdown'])}",
        ]
    )
