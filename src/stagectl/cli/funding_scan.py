"""``stagectl funding-scan``: funding carry and basis per symbol (docs/research.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    JsonOpt,
    MarketDataOpt,
    OutOpt,
    UnsignedOpt,
    cli_context,
    fmt_fixed,
    fmt_pct,
    info,
    parse_now,
    print_json,
    print_table,
    publish_envelope,
)
from stagectl.cli._observe import MetricsFileOpt, observed
from stagectl.cli._values import bundled_symbols

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command("funding-scan", epilog="Example: stagectl funding-scan --symbol ETHUSDT --json")
def funding_scan(
    ctx: typer.Context,
    data: MarketDataOpt = None,
    symbols: Annotated[
        list[str] | None,
        typer.Option(
            "--symbol",
            "-s",
            help="Only this symbol (repeatable) [default: every symbol with funding data].",
            metavar="SYMBOL",
            autocompletion=bundled_symbols,
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Scan as of this UTC time (ISO-8601) [default: the end of the data].",
            metavar="TIME",
        ),
    ] = None,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: UnsignedOpt = False,
    metrics_file: MetricsFileOpt = None,
) -> None:
    """Funding carry (the mean rate of the last 24h, 7 and 30 days, annualised: x 3 x
    365) and the perp-spot basis (bps, last bar and 7-day mean) per symbol, flagging
    where the carry turns (the 24h carry's sign opposite to the 7-day one's).

    The hourly job (docs/operations.md, "The daily schedule") runs it with --out and
    --metrics-file. Exit 0 (a turn is a flag for the desk, not a failure); 2 on bad data
    or options.
    """
    from stagectl.services.data import funding_scan as service

    home = cli_context(ctx).home
    with observed(home, service.KIND, metrics_file=metrics_file) as observation:
        request = service.FundingScanRequest(
            data_dir=data, symbols=tuple(symbols or ()), now=parse_now(now)
        )
        result = service.run(request, home=home)
        document = result.to_dict()
        observation.gauge("stagectl_funding_carry_turns", len(document["turned"]))
        observation.event("scan", symbols=len(document["symbols"]), turned=document["turned"])
        if out is not None:
            publish_envelope(home, service.KIND, document, inputs=[], out=out, unsigned=unsigned)
            info(f"wrote {out}")
        if json_output:
            print_json(document)
        else:
            _print_human(document)


def _bps(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _print_human(document: dict[str, Any]) -> None:
    rows = []
    for scan in document["symbols"]:
        carry, basis = scan["carry_annualised"], scan["basis"] or {}
        rows.append(
            [
                scan["symbol"],
                scan["as_of"],
                fmt_fixed(scan["last_rate"] * 10_000, 2),
                fmt_pct(carry["24h"]),
                fmt_pct(carry["7d"]),
                fmt_pct(carry["30d"]),
                _bps(basis.get("bps")),
                _bps(basis.get("mean_7d_bps")),
                scan["note"] or "-",
            ]
        )
    columns = [
        "symbol",
        "last settlement",
        "bps/8h",
        "carry 24h",
        "carry 7d",
        "carry 30d",
        "basis bps",
        "basis 7d",
        "flag",
    ]
    print_table("funding carry (annualised) and perp-spot basis", columns, rows)
    if document["without_basis"]:
        info(f"no perp and spot 1h candles for: {', '.join(document['without_basis'])}")
