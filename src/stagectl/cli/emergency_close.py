"""``stagectl emergency-close``: reduce-only, cancel all, close all, HALTED, verify flat."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    DryRunOpt,
    JsonOpt,
    YesOpt,
    cli_context,
    info,
    print_json,
    print_lines,
    print_table,
)
from stagectl.cli._observe import MetricsFileOpt, observed, record_emergency
from stagectl.errors import EXIT_CHECK_FAILED, InputError

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command("emergency-close")
def emergency_close(
    ctx: typer.Context,
    exchange: Annotated[
        str | None,
        typer.Option(
            "--exchange",
            help="Close on this ccxt exchange (e.g. binanceusdm) with credentials from "
            "STAGECTL_EXCHANGE_API_KEY/SECRET or STAGECTL_EXCHANGE_KEY_FILE "
            "[default: the paper books].",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Send every exchange call to this host (testnets)."),
    ] = None,
    paper: Annotated[
        bool,
        typer.Option("--paper", help="Close run-live's paper books (the default)."),
    ] = False,
    symbol: Annotated[
        list[str] | None,
        typer.Option("--symbol", help="Only this symbol (repeatable) [default: all]."),
    ] = None,
    reason: Annotated[
        str,
        typer.Option("--reason", help="Why; recorded with the trading state changes."),
    ] = "emergency close (stagectl emergency-close)",
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
    metrics_file: MetricsFileOpt = None,
) -> None:
    """Rollback plan: set REDUCE_ONLY, cancel all open orders, close every position with
    reduce-only market orders, set HALTED, then verify flat. Each step is an incident in
    the state database. Idempotent: close orders have deterministic client order ids and
    a run on a flat, HALTED book does nothing. Asks for confirmation unless --yes.

    Exit 0 flat; 1 a residual position is left (listed); 2 bad input, missing
    credentials, or no --yes without a terminal; 3 the exchange is unreachable (with
    --yes trading is still set HALTED locally); 130 declined.

    Example: stagectl emergency-close --exchange binanceusdm --dry-run
    """
    home = cli_context(ctx).home
    mode = "paper" if exchange is None else "live"
    with observed(home, "emergency-close", metrics_file=metrics_file, mode=mode) as observation:
        from stagectl.services.trading import emergency_close as service

        if paper and exchange:
            raise InputError("--paper and --exchange exclude each other", where="--paper")
        if base_url and not exchange:
            raise InputError("--base-url needs --exchange", where="--base-url")
        if not dry_run and not yes and not sys.stdin.isatty():
            raise InputError(
                "emergency-close changes positions and needs confirmation: pass --yes "
                "(no terminal to ask on), or --dry-run to see the plan",
                where="--yes",
            )
        request = service.EmergencyCloseRequest(
            paper=exchange is None,
            exchange=exchange or "binanceusdm",
            base_url=base_url,
            symbols=sorted(set(symbol)) if symbol else None,
            dry_run=dry_run,
            halt_if_unreachable=yes,
            reason=reason,
        )

        def confirm(plan: Any) -> None:
            if yes:
                return
            _show_plan(plan, err=True)
            if not typer.confirm("Execute this emergency close?", default=False, err=True):
                raise typer.Abort()

        result = service.run(request, home=home, confirm=confirm)
        document = result.to_dict()
        record_emergency(observation, document)
        if json_output:
            print_json(document)
        else:
            _show(result)
        if not result.flat:
            raise typer.Exit(EXIT_CHECK_FAILED)


def _show_plan(result: Any, *, err: bool = False) -> None:
    lines = [f"emergency-close plan ({result.mode}, state {result.state_db}):"]
    lines += [f"  {n}. {step}" for n, step in enumerate(result.plan, 1)]
    for line in lines:
        typer.echo(line, err=err)


def _show(result: Any) -> None:
    info(f"state database: {result.state_db}; accounts: {', '.join(result.accounts) or 'none'}")
    if result.dry_run:
        _show_plan(result)
        print_lines(["dry run: nothing was changed"])
        return
    if result.nothing_to_do:
        print_lines(["already flat and HALTED: nothing to do"])
        return
    print_lines([f"{step['step']}: {step['message']}" for step in result.steps])
    after = result.after
    if after is not None and after.positions:
        print_table(
            "RESIDUAL POSITIONS",
            ("account", "symbol", "amount"),
            [(h.account, h.symbol, h.qty) for h in after.positions],
        )
    for error in result.errors:
        info(f"error: {error}")
    print_lines(
        [
            f"trading state: {result.trading_state_before} -> {result.trading_state_after}",
            "FLAT" if result.flat else "NOT FLAT: residual positions above",
        ]
    )
