"""``stagectl paper-gate``: the runbook's 30-day paper gate (seed 003 §5)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stagectl.cli._common import (
    BoundedInt,
    HtmlOpt,
    JsonOpt,
    OutOpt,
    UnsignedOpt,
    cli_context,
    config_option,
    emit_report,
    info,
    parse_now,
    print_table,
    write_html,
)
from stagectl.cli._observe import MetricsFileOpt, Observation, observed, record_checks
from stagectl.config.limits import MAX_DURATION_DAYS

if TYPE_CHECKING:
    from stagectl.reports.page import Page

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(
    "paper-gate",
    epilog="Example: stagectl paper-gate --days 30 --now 2024-07-01 --json --out reports/gate.json",
)
def paper_gate(
    ctx: typer.Context,
    config: Annotated[Path | None, config_option("risk_guard_alt_ensemble.yaml")] = None,
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            help="Window length in days [default: paper_gate.days, 30].",
            click_type=BoundedInt(1, MAX_DURATION_DAYS),
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="End of the window (ISO-8601 date or datetime, UTC) [default: the judged "
            "run's clock: its last bar for a replayed or finished run].",
            metavar="T",
        ),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run",
            "--run-id",
            help="The paper run to judge [default: the latest finished paper run that "
            "covers the window].",
            metavar="RUN",
        ),
    ] = None,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: UnsignedOpt = False,
    html: HtmlOpt = None,
    metrics_file: MetricsFileOpt = None,
) -> None:
    """Judge a paper run against the six PASS criteria of the 30-day paper gate.

    30-day Sharpe (sqrt(252) x mean/std of daily returns) > -0.3, max drawdown
    < 12 %, slippage <= 1.3x the assumed 3 bps, funding <= 1.5x the assumed
    0.01 %, signal consistency >= 98 %, at most one WARNING and no CRITICAL
    guard fire; and at least `days` days of history. A criterion without data
    fails. Judges --run, else the latest finished paper run covering the window,
    as of --now, else its last bar. Exit 0 when all pass, 1 when any fails or no
    finished paper run covers the window, 2 on bad input or no paper run.
    """
    home = cli_context(ctx).home
    with observed(home, "paper-gate", metrics_file=metrics_file) as observation:
        from stagectl.services.guard import paper_gate as service

        at = parse_now(now)
        request = service.PaperGateRequest(now=at, config=config, days=days, run_id=run_id)
        result = service.run(request, home=home)
        _observe(observation, result)
        info(f"config: {result.source.describe()}")
        info(result.choice.describe())
        info(f"window: {result.days} days, {result.choice.as_of.describe()}")

        def page() -> Page:
            from stagectl.services.pages.guard import paper_gate as build

            return build(result)

        write_html(html, page)
        emit_report(
            home,
            service.KIND,
            result.body(),
            inputs=result.inputs,
            json_output=json_output,
            out=out,
            unsigned=unsigned,
            render_human=lambda: _print_human(result),
        )
        raise typer.Exit(result.exit_code)


def _observe(observation: Observation, result: Any) -> None:
    rows = result.rows()
    failed = [c.label for c in rows if not c.passed]
    record_checks(observation, ("PASS" if c.passed else "FAIL" for c in rows))
    observation.log.run = result.run_id
    observation.event("verdict", passed=not failed, failed=failed, days=result.days)


def _print_human(result: Any) -> None:
    rows = [
        (
            "PASS" if c.passed else "FAIL",
            c.label,
            _value(c.value, c.unit),
            f"{c.comparison} {c.limit:g}{c.unit and ' ' + c.unit}",
            c.reason,
        )
        for c in result.rows()
    ]
    print_table(
        "30-day paper gate (seed 003 §5.2)",
        ["status", "criterion", "value", "limit", "reason"],
        rows,
        keys=2,
    )
    failed = [c for c in result.rows() if not c.passed]
    if failed:
        typer.echo(
            f"FAIL: {len(failed)} of {len(result.rows())} checks failed; stop, diagnose, "
            "fix and rerun the full paper period"
        )
    else:
        typer.echo(f"PASS: all {len(result.rows())} checks passed")


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}{unit and ' ' + unit}"
