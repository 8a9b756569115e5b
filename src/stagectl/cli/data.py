"""``stagectl data``: the bundled market data and its quality checks (docs/data.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stagectl.cli._common import JsonOpt, info, print_json, print_lines, print_table
from stagectl.errors import EXIT_CHECK_FAILED, EXIT_OK

if TYPE_CHECKING:
    from stagectl.services.data_check import DataCheckResult, DatasetCheck

app = typer.Typer(
    help="Bundled market data: list it and check its quality. Example: stagectl data check",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def data() -> None:
    """Bundled market data: list it and check its quality. Example: stagectl data check"""


@app.command("info")
def data_info(json_output: JsonOpt = False) -> None:
    """List the bundled datasets: symbol, market, kind, timeframe, span, rows, gaps.

    Each file's sha256 is checked against the bundled manifest. Exit 0.

    Example: stagectl data info --json
    """
    from stagectl.services import data_info as service

    result = service.run()
    if json_output:
        print_json(result.to_dict())
        return
    info(f"bundled sample: {result.sample_dir} ({result.total_bytes / 1e6:.1f} MB)")
    rows = [
        (d.symbol, d.market, d.kind, d.timeframe, d.first, d.last, d.rows, d.gaps, ok)
        for d, ok in zip(result.datasets, result.intact, strict=True)
    ]
    columns = ("symbol", "market", "kind", "tf", "first", "last", "rows", "gaps", "sha256 ok")
    print_table(None, columns, rows)


@app.command("check")
def data_check(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A directory of CSV(.gz) files to check instead of the bundled sample.",
            metavar="DIR",
        ),
    ] = None,
    symbols: Annotated[
        list[str] | None,
        typer.Option("--symbol", "-s", help="Only this symbol (repeatable), e.g. ETHUSDT."),
    ] = None,
    timeframe: Annotated[
        str | None,
        typer.Option("--timeframe", "-t", help="Only datasets of this timeframe, e.g. 1h, 5m."),
    ] = None,
    outlier_z: Annotated[
        float,
        typer.Option(
            "--outlier-z", min=0.0, help="Robust z-score above which a return is flagged."
        ),
    ] = 10.0,
    max_fill_gap_min: Annotated[
        float,
        typer.Option(
            "--max-fill-gap-min",
            min=0.0,
            help="Forward-fill gaps strictly shorter than this many minutes.",
        ),
    ] = 60.0,
    json_output: JsonOpt = False,
) -> None:
    """Validate and govern market data: gaps, filled bars, dropped ranges, outliers, grid.

    Exit 0 when every dataset is clean; 1 when governance had to act (rows sorted,
    timestamps snapped, short gaps filled, long gaps dropped, outliers flagged, or a
    bundled file no longer matches its sha256); 2 when a file is unreadable or
    invalid (the error names file:line and column) or nothing matches.

    Example: stagectl data check --data ../shared/data --symbol SOLUSDT --timeframe 1m --json
    """
    from stagectl.domain.data_quality import QualityPolicy
    from stagectl.services import data_check as service

    request = service.DataCheckRequest(
        data_dir=data_dir,
        symbols=tuple(symbols or ()),
        timeframe=timeframe,
        policy=QualityPolicy(max_fill_gap_min=max_fill_gap_min, outlier_z=outlier_z),
    )
    result = service.run(request)
    if json_output:
        print_json(result.to_dict())
    else:
        _print_check(result)
    raise typer.Exit(EXIT_OK if result.clean else EXIT_CHECK_FAILED)


def _print_check(result: DataCheckResult) -> None:
    info(f"checked: {result.source}")
    columns = [
        "symbol",
        "market",
        "kind",
        "tf",
        "rows",
        "off-grid",
        "filled",
        "dropped",
        "outliers",
        "status",
    ]
    rows = [
        (
            d.symbol,
            d.market,
            d.kind,
            d.timeframe,
            d.report.rows_in,
            d.report.off_grid_rows,
            d.report.filled_bars,
            d.report.dropped_bars,
            len(d.report.outliers),
            "clean" if d.clean else "PROBLEMS",
        )
        for d in result.datasets
    ]
    print_table(None, columns, rows)
    details = [line for d in result.datasets for line in _details(d)]
    if details:
        print_lines(["", *details])
    if result.ignored_files:
        info(f"ignored (name not recognised): {', '.join(result.ignored_files)}")


def _details(check: DatasetCheck) -> list[str]:
    name = f"{check.symbol} {check.market} {check.kind} {check.timeframe}"
    report = check.report
    lines = []
    if check.integrity_ok is False:
        lines.append(f"{name}: a bundled file does not match its manifest sha256")
    if check.resorted:
        lines.append(f"{name}: rows were not in time order; sorted on load")
    if report.off_grid_rows:
        lines.append(
            f"{name}: {report.off_grid_rows} timestamps off the bar grid snapped "
            f"(largest offset {report.off_grid_max_offset_s:g} s)"
        )
    if report.snap_collisions:
        lines.append(f"{name}: {report.snap_collisions} rows dropped (snapped onto a used bar)")
    for gap in report.gaps:
        action = "filled" if gap.filled else "dropped"
        first = gap.first_missing.isoformat().replace("+00:00", "Z")
        last = gap.last_missing.isoformat().replace("+00:00", "Z")
        lines.append(f"{name}: gap {action}: {first} .. {last} ({gap.missing_bars} bars)")
    if report.outliers:
        worst = max(report.outliers, key=lambda o: abs(o.robust_z))
        at = worst.timestamp.isoformat().replace("+00:00", "Z")
        lines.append(
            f"{name}: {len(report.outliers)} outliers flagged (|z| > {report.outlier_z:g}); "
            f"largest z={worst.robust_z:.1f} at {at} (log return {worst.log_return:.4f})"
        )
    return lines
