"""``stagectl attribution``: a window's PnL by sleeve/engine, regime and venue, its costs,
and its reconciliation to the ledger (docs/attribution.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    HtmlOpt,
    JsonOpt,
    OutOpt,
    UnsignedOpt,
    cli_context,
    emit_report,
    fmt_fixed,
    fmt_pct,
    info,
    parse_utc,
    print_table,
    quoted,
    write_html,
)
from stagectl.cli._observe import MetricsFileOpt, observed
from stagectl.errors import EXIT_CHECK_FAILED, InputError

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = "Example: stagectl attribution --day yesterday --out reports/attribution.json"
GROUPS = ("sleeve", "engine", "regime", "venue")


@app.command("attribution", epilog=EXAMPLE)
def attribution(
    ctx: typer.Context,
    day: Annotated[
        str | None,
        typer.Option(
            "--day",
            help="One UTC day: YYYY-MM-DD, today or yesterday [default: today, unless "
            "--start/--end].",
            metavar="DAY",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start", help="Window start (UTC date or ISO-8601, inclusive).", metavar="T"
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Window end (UTC; a date is the end of that day).", metavar="T"),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run", help="Only this run [default: every run with a decision].", metavar="ID"
        ),
    ] = None,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: UnsignedOpt = False,
    html: HtmlOpt = None,
    metrics_file: MetricsFileOpt = None,
) -> None:
    """PnL of the window's run-live decisions by sleeve (engine), regime and venue, the
    cost breakdown (fees, slippage, funding, each with its share of the gross PnL), and
    whether the attributed total reconciles to the ledger's within $0.01.

    Exit 0 reconciled; 1 not reconciled (the difference is printed); 2 bad options.
    """
    from stagectl.services.ledger import attribution as service

    home = cli_context(ctx).home
    with observed(home, "attribution", metrics_file=metrics_file):
        window_start, window_end = _window(day, start, end)
        result = service.run(
            service.AttributionRequest(window_start, window_end, run_id=run_id), home=home
        )
        body = result.to_dict()
        emit_report(
            home,
            "attribution",
            body,
            inputs=service.inputs_of(home),
            json_output=json_output,
            out=out,
            unsigned=unsigned,
            render_human=lambda: _print_human(body),
        )
        write_html(html, lambda: _page(body))
        if not result.reconciled:
            info(
                f"attribution does NOT reconcile: attributed {result.attributed_net:+.2f} vs "
                f"ledger {result.ledger_net:+.2f} USD (difference {result.difference:+.4f})"
            )
            raise typer.Exit(EXIT_CHECK_FAILED)


def _window(day: str | None, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """``--day`` or ``--start``/``--end`` as ``[start, end)`` in UTC."""
    if day is not None and (start is not None or end is not None):
        raise InputError("give --day or --start/--end, not both", where="--day")
    if start is not None or end is not None:
        if start is None or end is None:
            raise InputError("--start and --end go together", where="--start")
        first = parse_utc(start, option="--start")
        last = parse_utc(end, option="--end", end_of_day=True)
        if last <= first:
            raise InputError("--end must be after --start", where="--end")
        return first, last
    today = datetime.now(UTC).date()
    text = (day or "today").strip().lower()
    if text in ("today", "yesterday"):
        chosen = today if text == "today" else today - timedelta(days=1)
    else:
        try:
            chosen = date.fromisoformat(text)
        except ValueError:
            raise InputError(
                f"{quoted(day or '')} is not YYYY-MM-DD, today or yesterday", where="--day"
            ) from None
        parse_utc(text, option="--day")  # the plausible range
    first = datetime.combine(chosen, time(0), tzinfo=UTC)
    return first, first + timedelta(days=1)


def _print_human(body: dict[str, Any]) -> None:
    window, totals, recon = body["window"], body["totals"], body["reconciliation"]
    info(f"window {window['start']} - {window['end']}; runs: {', '.join(body['runs']) or 'none'}")
    for group in GROUPS:
        rows = [
            [label, b["decisions"], b["trades"], fmt_fixed(b["realized_pnl"], 2),
             fmt_fixed(b["fees"], 2), fmt_fixed(b["slippage"], 2), fmt_fixed(b["funding"], 2),
             fmt_fixed(b["net_pnl"], 2)]
            for label, b in body["by"][group].items()
        ]  # fmt: skip
        columns = [group, "decisions", "trades", "realized*", "fees", "slippage", "funding", "net"]
        print_table(f"PnL by {group} (USD)", columns, rows)
    info("* FIFO realized PnL net of fees (slippage is inside it); net = realized - funding")
    print_table(
        f"costs (gross PnL {totals['gross_pnl']:+.2f} USD)",
        ["cost", "USD", "share of gross"],
        [
            [name, fmt_fixed(cost["usd"], 2), fmt_pct(cost["share_of_gross"])]
            for name, cost in body["costs"].items()
        ],
    )
    verdict = "reconciles" if recon["reconciled"] else "does NOT reconcile"
    typer.echo(
        f"attributed {totals['attributed_net_pnl']:+.2f} USD vs ledger "
        f"{totals['ledger_net_pnl']:+.2f} USD: {verdict} (difference "
        f"{recon['difference_usd']:+.4f}, tolerance {recon['tolerance_usd']})"
    )


def _page(body: dict[str, Any]) -> Any:
    from stagectl.services.pages.attribution import attribution_page

    return attribution_page(body)
