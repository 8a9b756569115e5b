"""``stagectl cpcv``: combinatorial purged cross-validation, its paths and PBO."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from stagectl.cli._common import (
    MAX_FOLDS,
    MAX_PBO_PARTITIONS,
    BoundedInt,
    CandleDataOpt,
    CostMultiplierOpt,
    HtmlOpt,
    JsonOpt,
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

EXAMPLE = "Example: stagectl cpcv --folds 10 --test-folds 2 --purge 5d --embargo 1d --json"


@app.command("cpcv", epilog=EXAMPLE)
def cpcv(
    ctx: typer.Context,
    folds: Annotated[
        int,
        typer.Option(
            "--folds",
            help="Number of contiguous groups N.",
            metavar="N",
            click_type=BoundedInt(2, MAX_FOLDS),
        ),
    ] = 10,
    test_folds: Annotated[
        int,
        typer.Option(
            "--test-folds",
            help="Test groups per split K.",
            metavar="K",
            click_type=BoundedInt(1, MAX_FOLDS - 1),
        ),
    ] = 2,
    purge: Annotated[
        str, typer.Option("--purge", help="Label horizon purged around tests.", metavar="DURATION")
    ] = "5d",
    embargo: Annotated[
        str, typer.Option("--embargo", help="Embargo after each test block.", metavar="DURATION")
    ] = "1d",
    config: StrategyConfigOpt = None,
    fixed: Annotated[
        bool,
        typer.Option("--fixed", help="Evaluate the config as is; PBO is then not computable."),
    ] = False,
    cost_multiplier: CostMultiplierOpt = 1.0,
    pbo_partitions: Annotated[
        int,
        typer.Option(
            "--pbo-partitions",
            help="Even number of CSCV partitions.",
            metavar="S",
            click_type=BoundedInt(2, MAX_PBO_PARTITIONS),
        ),
    ] = 16,
    data_dir: CandleDataOpt = None,
    json_output: JsonOpt = False,
    html: HtmlOpt = None,
    workers: WorkersOpt = 1,
    scheduler: SchedulerOpt = None,
) -> None:
    """All C(N, K) purged and embargoed splits, the backtest paths they form, the
    distribution of Sharpe across paths and the probability of backtest overfitting.

    Each split selects the grid configuration with the best training Sharpe (lookback
    scales 0.5/1/2 x debounce 1/2/4); PBO needs at least 2 configurations, so with
    --fixed it is reported as not computable. The splits and the PBO run as Dask tasks
    with --workers N or --scheduler ADDRESS, with the same results.
    Exit 0 on success, 2 on bad folds, durations, config or data.
    """
    from stagectl.services.research import cpcv as service
    from stagectl.services.research.parallel import Parallelism

    home = cli_context(ctx).home
    request = service.CpcvRequest(
        config=config,
        data_dir=data_dir,
        folds=folds,
        test_folds=test_folds,
        purge=parse_duration(purge, option="--purge", allow_zero=True),
        embargo=parse_duration(embargo, option="--embargo", allow_zero=True),
        fixed=fixed,
        cost_multiplier=cost_multiplier,
        pbo_partitions=pbo_partitions,
        parallelism=Parallelism(workers, scheduler),
    )
    result = service.run(request, home=home, report=info)
    info(f"config: {result.market.source.describe()}")
    info(f"data: {result.market.info.data_source}")

    def page() -> Page:
        from stagectl.services.pages.research import cpcv as build

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
        render_human=lambda: _print_human(result.body),
    )


def _print_human(body: dict[str, Any]) -> None:
    settings, dist, pbo = body["settings"], body["distribution"], body["pbo"]
    print_lines(
        [
            f"{body['strategy']['name']} CPCV: N={settings['folds']} groups, "
            f"K={settings['test_folds']} test groups, {settings['splits']} splits, "
            f"{settings['paths']} paths; purge {settings['purge_days']:g}d, embargo "
            f"{settings['embargo_days']:g}d; bars from {settings['first_bar']}",
            f"training: {body['strategy']['selection']}",
        ]
    )
    print_table(
        "Paths",
        ["path", "Sharpe", "return", "max drawdown"],
        [
            (
                p["path"],
                fmt_fixed(p["sharpe"]),
                fmt_pct(p["total_return"]),
                fmt_pct(p["max_drawdown"]),
            )
            for p in body["paths"]
        ],
    )
    quantiles = ", ".join(f"q{k}: {fmt_fixed(v)}" for k, v in dist["quantiles"].items())
    lines = [
        f"Sharpe across paths: mean {fmt_fixed(dist['mean'])}, std {fmt_fixed(dist['std'])}, "
        f"min {fmt_fixed(dist['min'])}, max {fmt_fixed(dist['max'])}",
        f"quantiles: {quantiles}" if quantiles else "quantiles: -",
    ]
    if pbo["pbo"] is None:
        lines.append(f"PBO: not computable ({pbo['reason']})")
    else:
        lines.append(
            f"PBO: {pbo['pbo']:.3f} over {pbo['configurations']} configurations, "
            f"{pbo['splits']} CSCV splits of {pbo['partitions']} partitions"
        )
    print_lines(lines)
