"""``stagectl preflight``: the seed 002 pre-trade checklist."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stagectl.cli._common import JsonOpt, cli_context, config_option, info, print_json, print_table
from stagectl.cli._observe import MetricsFileOpt, observed, record_checks
from stagectl.errors import EXIT_CHECK_FAILED

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command("preflight")
def preflight(
    ctx: typer.Context,
    config: Annotated[Path | None, config_option("stage3.yaml")] = None,
    exchange: Annotated[
        str | None,
        typer.Option(
            "--exchange",
            help="Check this ccxt exchange (e.g. binanceusdm): markets, clock, credentials "
            "[default: paper].",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Send every exchange call to this host (testnets)."),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="No network: skip exchange checks, use packaged filters."),
    ] = False,
    json_output: JsonOpt = False,
    metrics_file: MetricsFileOpt = None,
) -> None:
    """Run the pre-flight checklist (seed 002): config, thresholds, state database,
    artifact directories, TIF policy, position limits against exchange filters,
    SIZED_DOWN, fee tier, margin windows, credentials, exchange and clock skew,
    reconciliation identity. Each check is PASS, FAIL or SKIP with a reason; nothing
    is changed. Credentials are never printed.

    Exit 0 all passed (SKIPs allowed); 1 a check failed; 2 bad input (config file,
    flags).

    Example: stagectl preflight --exchange binanceusdm --json
    """
    home = cli_context(ctx).home
    with observed(home, "preflight", metrics_file=metrics_file) as observation:
        from stagectl.errors import InputError
        from stagectl.services.trading import preflight as service

        if base_url and not exchange:
            raise InputError("--base-url needs --exchange", where="--base-url")
        if config is not None and not config.is_file():
            raise InputError("no such config file", where=str(config))
        request = service.PreflightRequest(
            config=config, exchange=exchange, base_url=base_url, offline=offline
        )
        result = service.run(request, home=home)
        record_checks(observation, (c.status for c in result.checks), skips=True)
        failed = [{"check": c.name, "why": c.reason} for c in result.checks if c.status == "FAIL"]
        observation.event("checks", mode=result.mode, failed=failed)
        if json_output:
            print_json(result.to_dict())
        else:
            info(f"config: {result.config.describe()}; mode: {result.mode}")
            print_table(
                "PRE-FLIGHT",
                ("check", "status", "reason"),
                [(c.name, c.status, c.reason) for c in result.checks],
            )
            verdict = "PASSED" if result.passed else "FAILED"
            typer.echo(f"preflight {verdict}")
        if not result.passed:
            raise typer.Exit(EXIT_CHECK_FAILED)
