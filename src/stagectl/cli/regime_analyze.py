"""``stagectl regime-analyze``: PnL windows and 1-minute candles by market regime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    BoundedFloat,
    JsonOpt,
    cli_context,
    config_option,
    info,
    print_json,
    print_table,
)
from stagectl.cli._format import progress
from stagectl.cli._values import bundled_symbols
from stagectl.config.limits import MAX_DURATION_S

app = typer.Typer(
    help="PnL windows and candles by market regime. "
    "Example: stagectl regime-analyze --candles SOLUSDT_1m.csv.gz",
    add_completion=False,
    rich_markup_mode=None,
)


@app.command()
def regime_analyze(
    ctx: typer.Context,
    symbol: Annotated[
        str | None,
        typer.Option(
            "--symbol",
            help="The symbol of the candles and the ledger [default: the one the candle files "
            "name]; vouches for files that name none.",
            autocompletion=bundled_symbols,
        ),
    ] = None,
    candles: Annotated[
        list[Path] | None,
        typer.Option(
            "--candles",
            help="1-minute OHLCV CSV(.gz) of one symbol, repeatable (segments, joined in time).",
            metavar="FILE",
        ),
    ] = None,
    windows: Annotated[
        Path | None,
        typer.Option(
            "--windows",
            help="PnL windows CSV from `metrics export-windows` [default: the ledger].",
            metavar="FILE",
        ),
    ] = None,
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            help="Ledger window length in seconds [default: maker.yaml].",
            click_type=BoundedFloat(1, MAX_DURATION_S),
        ),
    ] = None,
    config: Annotated[Path | None, config_option("maker.yaml")] = None,
    export_dir: Annotated[
        Path | None,
        typer.Option("--export", help="Write regimes.csv and the bucket tables.", metavar="DIR"),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write a self-contained HTML page.", metavar="FILE"),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Bucket PnL windows by trend, volatility, session and seed 001 regime; report regime
    share of time, ADX and when maker.yaml's volatility thresholds would have fired.

    Without PnL windows (empty ledger, no --windows) the candle side is still reported.
    The candles must be of --symbol (told by their file name or a symbol column); several
    files are joined, and indicators restart after a gap. Exit 0; 2 on bad input.

    Example: stagectl regime-analyze --candles SOLUSDT_1m.csv.gz --html regimes.html
    """
    from stagectl.data.files import normalize_symbol
    from stagectl.services.ledger import regime_analyze as service

    home = cli_context(ctx).home
    request = service.RegimeRequest(
        symbol=normalize_symbol(symbol) if symbol is not None else None,
        candles=tuple(candles or ()),
        windows_csv=windows,
        window_s=window,
        config=config,
        export_dir=export_dir,
        html=html,
    )
    with progress("regime-analyze") as update:
        result = service.run(request, home=home, progress=update)
    for note in result.document["notes"]:
        info(note)
    for path in result.exported:
        info(f"wrote {path}")
    if result.html is not None:
        info(f"wrote {result.html}")
    if json_output:
        print_json(result.document)
        return
    _print(result.document)


def _print(document: dict[str, Any]) -> None:
    candles = document["candles"]
    info(f"config: {document['config']}")
    typer.echo(
        f"{document['symbol']}: {candles['bars']} bars {candles['first_bar']} .. "
        f"{candles['last_bar']}"
    )
    shares = candles["regime_share_of_time"]
    print_table(
        "regime share of time", ("regime", "share"), [(k, f"{v:.1%}") for k, v in shares.items()]
    )
    rows = []
    for name, measure in candles["volatility"].items():
        for signal, s in measure["switches"].items():
            rows.append(
                (
                    name,
                    measure["summary_bps"]["median"],
                    signal,
                    f"{s['share_on']:.1%}",
                    s["times_fired"],
                    s["first_fired"],
                )
            )
    print_table(
        "volatility thresholds (maker.yaml)",
        ("measure", "median bps", "switch", "time on", "fired", "first fired"),
        rows,
    )
    pnl = document["pnl"]
    if pnl.get("empty"):
        typer.echo(f"PnL side empty: no PnL windows ({pnl['source']})")
        return
    typer.echo(
        f"{pnl['windows']} PnL windows, total realized {pnl['total_realized_quote']:.4f}, "
        f"corr(realized, inventory delta) {pnl['inventory_correlation']}"
    )
    for dim, table in pnl["buckets"].items():
        print_table(
            f"by {dim}",
            ("bucket", "count", "mean PnL", "total PnL", "win rate"),
            [
                (r["bucket"], r["count"], r["mean_pnl"], r["total_pnl"], f"{r['win_rate']:.0%}")
                for r in table
            ],
        )
