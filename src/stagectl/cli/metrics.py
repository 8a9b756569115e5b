"""``stagectl metrics``: the fill ledger: import trades, window metrics, PnL windows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from stagectl.cli._common import (
    BoundedFloat,
    JsonOpt,
    cli_context,
    info,
    parse_utc,
    print_json,
    print_table,
    quoted,
)
from stagectl.config.limits import MAX_DURATION_H, MAX_DURATION_S, MAX_MAGNITUDE
from stagectl.errors import EXIT_CHECK_FAILED, InputError

app = typer.Typer(
    help="The fill ledger: import or fetch trades, window metrics, PnL windows. "
    "Example: stagectl metrics window --hours 1",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

SymbolOpt = Annotated[
    str | None, typer.Option("--symbol", help="Only this symbol, e.g. SOLUSDT.", metavar="SYMBOL")
]


@app.callback()
def metrics() -> None:
    """The fill ledger: import or fetch trades, window metrics, PnL windows.

    Example: stagectl metrics window --hours 1
    """


@app.command("import")
def metrics_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A ccxt trades JSON list or a trades CSV(.gz).")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="ccxt-json or csv [default: from the file name]."),
    ] = None,
    source: Annotated[
        str,
        typer.Option("--source", help="The account the trades belong to.", metavar="NAME"),
    ] = "import",
    symbol: SymbolOpt = None,
    skip_bad: Annotated[
        bool,
        typer.Option("--skip-bad", help="Import the good rows, report the bad ones, exit 1."),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Import trades into the fill ledger, all or nothing per file, idempotent on trade id.

    A bad row stops the import (exit 2, FILE:ROW and the field) and nothing of the file is
    recorded; with --skip-bad the good rows are recorded and the command exits 1 when any
    row was skipped. A trade id seen again with other values (in the file or the ledger)
    stops it too, naming both records. The file is merged in short transactions (paper
    and live runs keep writing meanwhile) and becomes visible at once when complete; an
    import stopped half-way stays invisible, and running it again completes it. --symbol
    names the symbol of a CSV without a symbol column.

    Example: stagectl metrics import trades.json --source binance-main
    """
    from stagectl.services.ledger import importer as service

    home = cli_context(ctx).home
    request = service.ImportRequest(
        path=file, fmt=fmt, account=source, symbol=symbol, skip_bad=skip_bad
    )
    result = service.run(request, home=home, progress=info)
    if json_output:
        print_json(result.to_dict())
    else:
        typer.echo(
            f"{result.path}: {result.rows} rows, {result.inserted} fills recorded, "
            f"{result.duplicates} already recorded, {result.skipped_bad} bad rows skipped"
        )
        if result.inserted == 0 and result.duplicates:
            typer.echo("nothing new: every fill of this file is already in the ledger")
        for bad in result.bad[:20]:
            info(f"skipped {result.path}:{bad.row}: {bad.field}: {bad.message}")
        if len(result.bad) > 20:
            info(f"... and {len(result.bad) - 20} more bad rows (see --json)")
    if result.bad:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("fetch")
def metrics_fetch(
    ctx: typer.Context,
    exchange: Annotated[
        str,
        typer.Option(
            "--exchange",
            help="ccxt exchange id, e.g. binanceusdm; the read-only key from "
            "STAGECTL_READONLY_API_KEY/SECRET or STAGECTL_READONLY_KEY_FILE.",
            metavar="ID",
        ),
    ],
    symbol: Annotated[
        str, typer.Option("--symbol", help="The symbol, e.g. ETHUSDT.", metavar="SYMBOL")
    ],
    since: Annotated[
        str,
        typer.Option("--since", help="First trade time, YYYY-MM-DD or ISO-8601 UTC.", metavar="T"),
    ],
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="The account to record under [default: the exchange id].",
            metavar="NAME",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="Send every exchange call to this host (testnets).", metavar="URL"
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Fetch the account's trades of one symbol into the fill ledger (all or nothing,
    idempotent on trade id, like metrics import).

    Exit 0; 2 on bad input or missing credentials; 3 when the exchange cannot be reached.

    Example: stagectl metrics fetch --exchange binanceusdm --symbol ETHUSDT --since 2025-01-01
    """
    from stagectl.services.ledger import fetch as service

    request = service.FetchRequest(
        exchange=exchange,
        symbol=symbol,
        since=parse_utc(since, option="--since"),
        account=source,
        base_url=base_url,
    )
    result = service.run(request, home=cli_context(ctx).home, progress=info)
    if json_output:
        print_json(result.to_dict())
        return
    typer.echo(
        f"{result.exchange} {result.symbol}: {result.fetched} trades fetched, "
        f"{result.inserted} fills recorded, {result.duplicates} already recorded"
    )


def _until(text: str | None) -> datetime:

    return datetime.now(UTC) if text is None else parse_utc(text, option="--until")


@app.command("window")
def metrics_window(
    ctx: typer.Context,
    hours: Annotated[
        float | None,
        typer.Option(
            "--hours",
            help="Window length in hours.",
            click_type=BoundedFloat(0, MAX_DURATION_H, low_open=True),
        ),
    ] = None,
    seconds: Annotated[
        float | None,
        typer.Option(
            "--seconds",
            help="Window length in seconds.",
            click_type=BoundedFloat(0, MAX_DURATION_S, low_open=True),
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Window end (exclusive), ISO-8601 UTC [default: now]."),
    ] = None,
    symbol: SymbolOpt = None,
    marks: Annotated[
        list[str] | None,
        typer.Option(
            "--mark",
            help="Mark price SYMBOL=PRICE for unrealized PnL [default: the last fill price].",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Fills, volume, fees, cash flow, FIFO realized and unrealized PnL over a window.

    Realized PnL consumes the lots carried in from before the window (exact FIFO).

    Example: stagectl metrics window --seconds 300 --symbol SOLUSDT --json
    """
    from stagectl.services.ledger import window as service

    if (hours is None) == (seconds is None):
        raise InputError("give exactly one of --hours and --seconds", where="--hours/--seconds")
    length_s = hours * 3600.0 if hours is not None else float(seconds or 0.0)
    request = service.WindowRequest(
        length_s=length_s,
        until=_until(until),
        symbol=_symbol(symbol),
        marks=_marks(marks or []),
    )
    result = service.run(request, home=cli_context(ctx).home)
    if json_output:
        print_json(result.to_dict())
        return
    document = result.to_dict()
    info(f"window [{document['window']['start']}, {document['window']['until']})")
    rows = []
    for name, m in document["symbols"].items():
        rows.append(
            (
                name,
                m["fills"],
                f"{m['maker_share']:.1%}",
                m["notional_quote"],
                m["fees_quote"],
                m["cash_flow_quote"],
                m["realized_fifo_quote"],
                m["inventory_start"],
                m["inventory_end"],
                f"{m['mark_price']} ({m['mark_source']})" if m["mark_price"] else "-",
                m["unrealized_quote"],
            )
        )
    total = document["total"]
    rows.append(
        (
            "total",
            total["fills"],
            f"{total['maker_share']:.1%}",
            total["notional_quote"],
            total["fees_quote"],
            total["cash_flow_quote"],
            total["realized_fifo_quote"],
            "",
            "",
            "",
            total["unrealized_quote"],
        )
    )
    columns: tuple[str, ...] = ("symbol", "fills", "maker", "notional", "fees", "cash flow")
    columns = (*columns, "realized FIFO", "inv start", "inv end", "mark", "unrealized")
    print_table(None, columns, rows)


def _symbol(symbol: str | None) -> str | None:
    from stagectl.data.files import normalize_symbol

    return None if symbol is None else normalize_symbol(symbol)


def _marks(values: list[str]) -> dict[str, Decimal]:
    """``SYMBOL=PRICE`` pairs from ``--mark``."""
    from stagectl.data.files import normalize_symbol

    marks: dict[str, Decimal] = {}
    for value in values:
        symbol, sep, price = value.partition("=")
        try:
            mark = Decimal(price) if sep else Decimal("nan")
        except ArithmeticError:
            mark = Decimal("nan")
        if not mark.is_finite() or not 0 < mark <= Decimal(MAX_MAGNITUDE):
            raise InputError(
                f"expected SYMBOL=PRICE with a price above 0 and at most {MAX_MAGNITUDE:g}, "
                f"got {quoted(value)}",
                where="--mark",
            )
        marks[normalize_symbol(symbol)] = mark
    return marks


@app.command("export-windows")
def metrics_export_windows(
    ctx: typer.Context,
    window: Annotated[
        float,
        typer.Option(
            "--window", help="Window length in seconds.", click_type=BoundedFloat(1, MAX_DURATION_S)
        ),
    ] = 300.0,
    start: Annotated[str | None, typer.Option("--start", help="First window start (UTC).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last window end (UTC).")] = None,
    symbol: SymbolOpt = None,
    candles: Annotated[
        Path | None,
        typer.Option(
            "--candles",
            help="1-minute OHLCV CSV(.gz) of the fills' symbol, for the mids.",
            metavar="FILE",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the CSV to FILE [default: stdout].", metavar="FILE"),
    ] = None,
) -> None:
    """Consecutive PnL windows: fills, realized FIFO, cash flow, fees, volume, inventory
    delta and mid return, as CSV.

    Example: stagectl metrics export-windows --window 300 --symbol SOLUSDT --out windows.csv
    """
    from stagectl.services.ledger import export_windows as service

    request = service.ExportRequest(
        window_s=window,
        symbol=_symbol(symbol),
        start=parse_utc(start, option="--start") if start else None,
        end=parse_utc(end, option="--end") if end else None,
        candles=candles,
        out=out,
    )
    result = service.run(request, home=cli_context(ctx).home)
    for note in result.notes:
        info(note)
    info(
        f"{len(result.table)} windows of {window:g} s for {result.symbol or 'no symbol'}; "
        f"mids from {result.mid_source.replace('_', ' ')}"
    )
    if result.written is None:
        typer.echo(result.csv_text(), nl=False)
        return
    info(f"wrote {result.written}")
