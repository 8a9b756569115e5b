"""``stagectl data``: the bundled market data and its quality checks (docs/data.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stagectl.cli._common import (
    MAX_OUTLIER_Z,
    BoundedFloat,
    JsonOpt,
    cli_context,
    config_option,
    info,
    parse_utc,
    print_json,
    print_lines,
    print_table,
)
from stagectl.cli._format import human
from stagectl.cli._values import bundled_symbols
from stagectl.config.limits import MAX_DURATION_MIN
from stagectl.errors import EXIT_CHECK_FAILED, EXIT_OK

if TYPE_CHECKING:
    from stagectl.domain.data_quality import CrossCheck, UniverseMember
    from stagectl.services.data.check import DataCheckResult, DatasetCheck

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
def data_info(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """List the bundled datasets: symbol, market, kind, timeframe, span, rows, gaps.

    Each file's sha256 is checked against the bundled manifest. Exit 0.

    Example: stagectl data info --json
    """
    from stagectl.services.data import info as service

    result = service.run(service.DataInfoRequest(), home=cli_context(ctx).home)
    if json_output:
        print_json(result.to_dict())
        return
    info(f"bundled sample: {result.sample_dir} ({result.total_bytes / 1e6:.1f} MB)")
    rows = [
        (d.symbol, d.market, d.kind, d.timeframe, d.first, d.last, d.rows, d.gaps, ok)
        for d, ok in zip(result.datasets, result.intact, strict=True)
    ]
    columns = ("symbol", "market", "kind", "tf", "first", "last", "rows", "gaps", "sha256 ok")
    print_table(None, columns, rows, keys=4)


@app.command("check")
def data_check(
    ctx: typer.Context,
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
        typer.Option(
            "--symbol",
            "-s",
            help="Only this symbol (repeatable), e.g. ETHUSDT.",
            autocompletion=bundled_symbols,
        ),
    ] = None,
    timeframe: Annotated[
        str | None,
        typer.Option("--timeframe", "-t", help="Only datasets of this timeframe, e.g. 1h, 5m."),
    ] = None,
    reference_dir: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="A directory holding the second source (spot candles, mark prices) for "
            "the cross-checks [default: found by name beside the data].",
            metavar="DIR",
        ),
    ] = None,
    outlier_z: Annotated[
        float | None,
        typer.Option(
            "--outlier-z",
            click_type=BoundedFloat(0, MAX_OUTLIER_Z),
            help="Robust z-score above which a return is flagged and clipped "
            "[default: outliers.robust_z of config/data.yaml, 10].",
        ),
    ] = None,
    max_fill_gap_min: Annotated[
        float | None,
        typer.Option(
            "--max-fill-gap-min",
            click_type=BoundedFloat(0, MAX_DURATION_MIN),
            help="Forward-fill gaps strictly shorter than this many minutes "
            "[default: gaps.max_fill_gap_min of config/data.yaml, 60].",
        ),
    ] = None,
    config: Annotated[Path | None, config_option("data.yaml")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Validate and govern market data: grid, gaps, outliers, cross-checks, universe.

    Exit 0 when every dataset is clean; 1 when governance had to act (rows sorted,
    timestamps snapped, short gaps filled, long gaps dropped, outliers flagged and
    clipped, bars outside a cross-check's tolerance, or a bundled file no longer
    matches its sha256); 2 when a file is unreadable or invalid (the error names
    file:line and column), a timestamp snaps ambiguously, or nothing matches. The
    universe (in, or out and why) is reported and never fails the check.

    Example: stagectl data check --data ../shared/data --symbol SOLUSDT --timeframe 1m --json
    """
    from stagectl.config.loader import load_data_governance
    from stagectl.domain.data_quality import QualityPolicy, UniversePolicy
    from stagectl.services.data import check as service

    home = cli_context(ctx).home
    rules, _ = load_data_governance(home, config)
    request = service.DataCheckRequest(
        data_dir=data_dir,
        symbols=tuple(symbols or ()),
        timeframe=timeframe,
        policy=QualityPolicy(
            max_fill_gap_min=(
                rules.gaps.max_fill_gap_min if max_fill_gap_min is None else max_fill_gap_min
            ),
            outlier_z=rules.outliers.robust_z if outlier_z is None else outlier_z,
            clip_outliers=rules.outliers.clip,
        ),
        reference_dir=reference_dir,
        tolerances=service.Tolerances(
            perp_spot_bps=rules.cross_check.perp_spot_tolerance_bps,
            mark_last_bps=rules.cross_check.mark_last_tolerance_bps,
        ),
        universe=UniversePolicy.of(rules.universe),
    )
    result = service.run(request, home=home)
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
        "x-check",
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
            _cross_check_cell(d),
            "clean" if d.clean else "PROBLEMS",
        )
        for d in result.datasets
    ]
    print_table(None, columns, rows, keys=4)
    details = [line for d in result.datasets for line in _details(d)]
    if details:
        print_lines(["", *details])
    universe = [_universe_line(m) for m in result.universe]
    if universe:
        print_lines(["", *universe])
    if result.ignored_files:
        info(f"ignored (name not recognised): {', '.join(result.ignored_files)}")


def _universe_line(member: UniverseMember) -> str:
    facts = (
        f"${member.avg_daily_volume_usd / 1e6:,.1f}M/day, {member.history_days:.0f} days of data"
    )
    if member.included:
        return f"universe: {member.symbol} in ({facts})"
    return f"universe: {member.symbol} OUT: {'; '.join(member.reasons_out)}"


def _cross_check_cell(check: DatasetCheck) -> str:
    if not check.cross_checks:
        return "-"
    outside = sum(c.outside for c in check.cross_checks)
    return "ok" if outside == 0 else f"{outside} out"


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
        first, last = human(gap.first_missing), human(gap.last_missing)
        lines.append(f"{name}: gap {action}: {first} .. {last} ({gap.missing_bars} bars)")
    if report.outliers:
        worst = max(report.outliers, key=lambda o: abs(o.robust_z))
        at = human(worst.timestamp)
        clipped = sum(o.clipped_to is not None for o in report.outliers)
        action = f"flagged, {clipped} clipped" if clipped else "flagged"
        lines.append(
            f"{name}: {len(report.outliers)} outliers {action} (|z| > {report.outlier_z:g}); "
            f"largest z={worst.robust_z:.1f} at {at} (log return {worst.log_return:.4f})"
        )
        shown = ", ".join(human(o.timestamp) for o in report.outliers[:5])
        more = f" and {len(report.outliers) - 5} more" if len(report.outliers) > 5 else ""
        lines.append(f"{name}: outlier bars: {shown}{more}")
    for cross in check.cross_checks:
        lines.extend(_cross_check_lines(name, cross))
    return lines


def _cross_check_lines(name: str, check: CrossCheck) -> list[str]:
    if check.ok:
        return []
    first = ", ".join(human(t) for t in check.first_outside)
    worst_at = human(check.worst_at) if check.worst_at is not None else "-"
    return [
        f"{name}: {check.name}: {check.outside} of {check.compared} bars outside "
        f"{check.tolerance_bps:g} bps; worst {check.worst_bps:+.1f} bps at {worst_at}; "
        f"first: {first}"
    ]


@app.command("fetch")
def data_fetch(
    ctx: typer.Context,
    symbol: Annotated[
        str,
        typer.Option(
            "--symbol",
            "-s",
            help="A ccxt symbol (ETH/USDT:USDT) or exchange id (ETHUSDT).",
            autocompletion=bundled_symbols,
        ),
    ],
    since: Annotated[
        str, typer.Option("--since", help="First bar to cache: a UTC date or datetime.")
    ],
    exchange: Annotated[
        str, typer.Option("--exchange", "-e", help="The ccxt exchange id.")
    ] = "binanceusdm",
    timeframe: Annotated[
        str, typer.Option("--timeframe", "-t", help="Bar size, e.g. 1m, 5m, 1h, 1d.")
    ] = "1h",
    until: Annotated[
        str | None,
        typer.Option("--until", help="Last bar to cache [default: the exchange's current time]."),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            envvar="STAGECTL_EXCHANGE_BASE_URL",
            help="Send every API call to this host instead (e.g. the loopback simulator) "
            "[env: STAGECTL_EXCHANGE_BASE_URL].",
            show_envvar=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Download candles (and funding for perpetuals) into HOME/data/<exchange>/.

    The cache uses the names `--data DIR` reads (ETHUSDT_1h.csv.gz, ETHUSDT_funding.csv.gz);
    a second run fetches only bars newer than the cache. Exit 0; 2 on a bad symbol,
    timeframe or date; 3 when the exchange cannot be reached.

    Example: stagectl data fetch --symbol ETH/USDT:USDT --timeframe 1h --since 2023-01-01
    """
    from stagectl.services.data import fetch as service

    request = service.DataFetchRequest(
        exchange_id=exchange,
        symbol=symbol,
        timeframe=timeframe,
        since=parse_utc(since, option="--since"),
        until=parse_utc(until, option="--until") if until else None,
        base_url=base_url,
    )
    home = cli_context(ctx).home
    bar = _ProgressLine()
    try:
        result = service.run(request, home=home, progress=bar.update)
    finally:
        bar.close()
    if json_output:
        print_json(result.to_dict())
        return
    for series in result.series:
        span = f"{human(series.first)} .. {human(series.last)}" if series.rows else "empty"
        print_lines(
            [f"{series.kind}: {series.path} ({series.rows} rows, {series.new_rows} new; {span})"]
        )
    info(f"{result.requests} requests to {result.exchange}")


class _ProgressLine:
    """A one-line progress bar on a terminal's stderr; a plain line per page otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.drawn = False

    def update(self, kind: str, done: int, total: int) -> None:
        fraction = min(1.0, done / total) if total else 1.0
        if not self.tty:
            info(f"fetching {kind}: {fraction:.0%}")
            return
        filled = int(fraction * 30)
        sys.stderr.write(
            f"\rfetching {kind:<7} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%}"
        )
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
