"""``stagectl audit-strategy``: seed 003's acceptance table re-measured on the data."""

from __future__ import annotations

from typing import Any

import typer

from stagectl.cli._common import (
    CandleDataOpt,
    JsonOpt,
    OutOpt,
    SchedulerOpt,
    StrategyConfigOpt,
    UnsignedOpt,
    WorkersOpt,
    cli_context,
    emit_report,
    info,
    print_lines,
    print_table,
)

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = "Example: stagectl audit-strategy -c config/futures_alt_ensemble.yaml --out audit.json"


@app.command("audit-strategy", epilog=EXAMPLE)
def audit_strategy(
    ctx: typer.Context,
    config: StrategyConfigOpt = None,
    data_dir: CandleDataOpt = None,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: UnsignedOpt = False,
    workers: WorkersOpt = 1,
    scheduler: SchedulerOpt = None,
) -> None:
    """Nested walk-forward mean OOS Sharpe, final holdout Sharpe and max drawdown,
    Sharpe at stressed costs and positive sleeves, each PASS/FAIL against the config's
    audit bars, with seed 003's audit figures beside ours. The walk-forward's folds and
    the holdout backtests run as Dask tasks with --workers N or --scheduler ADDRESS.

    Exit 0 when every row passes, 1 when any fails, 2 on bad input or a missing key
    for --out.
    """
    from stagectl.services.research import audit as service
    from stagectl.services.research.parallel import Parallelism

    home = cli_context(ctx).home
    request = service.AuditRequest(
        config=config, data_dir=data_dir, parallelism=Parallelism(workers, scheduler)
    )
    result = service.run(request, home=home, report=info)
    info(f"config: {result.market.source.describe()}")
    info(f"data: {result.market.info.data_source}")
    emit_report(
        home,
        service.KIND,
        result.body,
        inputs=result.inputs,
        json_output=json_output,
        out=out,
        unsigned=unsigned,
        render_human=lambda: _print_human(result.body),
    )
    if not result.passed:
        raise typer.Exit(1)


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "undefined"
    if unit == "%":
        return f"{value:.2f} %"
    if unit.startswith("of"):
        return f"{value:g} {unit}"
    return f"{value:.3f}"


def _print_human(body: dict[str, Any]) -> None:
    windows = body["windows"]
    wf, holdout = windows["walk_forward"], windows["holdout"]
    print_lines(
        [
            f"{body['strategy']['name']} audit on {body['strategy']['data_source']}",
            f"walk-forward: {wf['first_bar']} .. {wf['last_bar']}, {wf['folds']} folds "
            f"(train {wf['train_days']}d, purge {wf['purge_days']}d, test {wf['test_days']}d; "
            f"{wf['selection']})",
            f"holdout: {holdout['start']} .. {holdout['end']} ({holdout['bars']} bars)",
        ]
    )
    print_table(
        "Acceptance",
        ["check", "value", "bar", "result", "seed 003 audit"],
        [
            (
                row["check"],
                _value(row["value"], row["unit"]),
                f"{row['comparison']} {_value(row['bar'], row['unit'])}",
                row["status"],
                _value(row["seed_003_audit"], row["unit"]),
            )
            for row in body["table"]
        ],
    )
    verdict = body["verdict"]
    print_lines(
        ["verdict: PASS (every row passes)"]
        if verdict["passed"]
        else [f"verdict: FAIL ({len(verdict['failed'])} of {len(body['table'])} rows fail)"]
    )
