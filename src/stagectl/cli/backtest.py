"""``stagectl backtest``: the strategy config's portfolio on real data (seeds 001, 003)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from stagectl.cli._common import (
    MAX_COST_MULTIPLIER,
    BoundedFloat,
    HtmlOpt,
    JsonOpt,
    OutOpt,
    SampleDataOpt,
    SchedulerOpt,
    StrategyConfigOpt,
    UnsignedOpt,
    WorkersOpt,
    cli_context,
    emit_report,
    fmt_fixed,
    fmt_pct,
    info,
    parse_utc,
    print_lines,
    print_table,
    publish_envelope,
    show_report,
    write_html,
)
from stagectl.cli._values import bundled_symbols, preset_names
from stagectl.errors import InputError

if TYPE_CHECKING:
    from stagectl.reports.page import Page
    from stagectl.services.research.backtest import BacktestRun
    from stagectl.services.research.grid import GridRow
    from stagectl.services.research.parallel import Parallelism

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = (
    "Example: stagectl backtest --start 2025-01-01 --cost-model full --cost-multiplier 1.5 "
    "--export artifacts/bt --json; stagectl backtest --grid grid.yaml --workers 2"
)


@app.command("backtest", epilog=EXAMPLE)
def backtest(
    ctx: typer.Context,
    config: StrategyConfigOpt = None,
    symbol: Annotated[
        str | None,
        typer.Option(
            "--symbol",
            help="Backtest this sleeve alone at weight 1.0, e.g. ETHUSDT.",
            metavar="SYMBOL",
            autocompletion=bundled_symbols,
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="First bar, UTC: YYYY-MM-DD or an ISO-8601 datetime [default: first common bar]. "
            "Earlier data still warms up the signal.",
            metavar="DATE",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            help="Last bar, UTC; a date includes that whole day [default: last common bar].",
            metavar="DATE",
        ),
    ] = None,
    cost_multiplier: Annotated[
        float,
        typer.Option(
            "--cost-multiplier",
            click_type=BoundedFloat(0, MAX_COST_MULTIPLIER),
            help="Multiply fee and slippage, e.g. 1.5 (cost stress).",
            metavar="X",
        ),
    ] = 1.0,
    cost_model: Annotated[
        Literal["flat", "full"],
        typer.Option(
            "--cost-model",
            help="flat: the config's fee_bps + slippage_bps per trade. full: seed 001's cost "
            "per trade: half the Corwin-Schultz spread of the two prior bars (floor 1 bp) + "
            "sqrt(participation) x 5 bps + the taker fee of risk_presets.yaml.",
        ),
    ] = "flat",
    data_dir: SampleDataOpt = None,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: UnsignedOpt = False,
    html: HtmlOpt = None,
    export_dir: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Write equity.csv and trades.csv (with --grid: grid.csv) into DIR (created; "
            "atomic writes).",
            metavar="DIR",
        ),
    ] = None,
    breakers: Annotated[
        bool,
        typer.Option(
            "--breakers",
            help="Apply the circuit breakers of risk_presets.yaml (daily drawdown stop, "
            "loss streak, volatility defense) and list their firings.",
        ),
    ] = False,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="conservative, balanced or aggressive: its daily loss stop replaces the "
            "breakers' daily stop (implies --breakers).",
            metavar="NAME",
            autocompletion=preset_names,
        ),
    ] = None,
    record: Annotated[
        str | None,
        typer.Option(
            "--record",
            help="Record the backtest in the state database as run ID (equity, fills, "
            "breaker firings as events) for `stagectl shadow compare`.",
            metavar="ID",
        ),
    ] = None,
    grid: Annotated[
        Path | None,
        typer.Option(
            "--grid",
            help="A YAML/JSON grid of parameters x symbols x periods: one flat-cost backtest "
            "per cell, one summary row each (docs/research.md, Grids).",
            metavar="FILE",
            dir_okay=False,
        ),
    ] = None,
    workers: WorkersOpt = 1,
    scheduler: SchedulerOpt = None,
) -> None:
    """Backtest the strategy config's sleeves: signal on close, trade at the next open.

    Sleeves are aligned on their common bars; fee and slippage come from the
    config (times --cost-multiplier) and funding from the data. Prints seed
    001's metrics (Sharpe and Sortino annualised with sqrt(8760) for 1h bars).
    With --grid, every cell of the grid file is such a backtest (flat costs, no
    breakers), run as Dask tasks with --workers N or --scheduler ADDRESS.
    Exit 0 on success, 2 on a bad config, grid file, symbol, date range or data
    directory, 3 when the Dask scheduler cannot be reached.
    """
    from stagectl.services.research import backtest as service
    from stagectl.services.research.parallel import Parallelism

    home = cli_context(ctx).home
    parallelism = Parallelism(workers, scheduler)
    if grid is not None:
        _refuse_with_grid(
            symbol=symbol,
            start=start,
            end=end,
            cost_model=cost_model,
            breakers=breakers,
            preset=preset,
            record=record,
            html=html,
        )
        _grid(
            ctx,
            grid,
            config=config,
            data_dir=data_dir,
            cost_multiplier=cost_multiplier,
            export_dir=export_dir,
            parallelism=parallelism,
            output=(json_output, out, unsigned),
        )
        return
    if workers > 1 or (scheduler is not None and not _from_environment(ctx, "scheduler")):
        raise InputError(
            "one backtest is one piece; --workers/--scheduler run the cells of a --grid",
            where="--workers/--scheduler",
        )
    request = service.BacktestRequest(
        config=config,
        symbol=symbol,
        start=None if start is None else parse_utc(start, option="--start"),
        end=None if end is None else parse_utc(end, option="--end", end_of_day=True),
        cost_multiplier=cost_multiplier,
        data_dir=data_dir,
        breakers=breakers,
        preset=preset,
        cost_model=cost_model,
        record_as=record,
        export_dir=export_dir,
    )
    result = service.run(request, home=home)
    _context(result)
    recorded = result.recorded
    if recorded is not None:
        info(
            f"recorded run {recorded.run_id}: {recorded.snapshots} snapshots, "
            f"{recorded.fills} fills, {recorded.events} breaker events"
        )
    envelope = None
    if json_output or out is not None:
        envelope = publish_envelope(
            home,
            service.KIND,
            result.body(),
            inputs=result.inputs,
            out=out,
            unsigned=unsigned,
        )
    for path in result.exported:
        info(f"wrote {path}")

    def page() -> Page:
        from stagectl.services.pages.research import backtest as build

        return build(result)

    write_html(html, page)
    show_report(
        envelope, json_output=json_output, out=out, render_human=lambda: _print_human(result.body())
    )


def _from_environment(ctx: typer.Context, name: str) -> bool:
    """Whether the option's value came from its environment variable: a
    DASK_SCHEDULER_ADDRESS set for the research commands does not break a plain backtest."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "ENVIRONMENT"


def _refuse_with_grid(**given: object) -> None:
    """Options a grid cell does not take: each cell sets its own symbol and period."""
    defaults: dict[str, object] = {"cost_model": "flat", "breakers": False}
    used = [
        f"--{name.replace('_', '-')}"
        for name, value in given.items()
        if value is not None and value != defaults.get(name)
    ]
    if used:
        raise InputError(
            f"cannot be combined with {', '.join(used)}: the grid file names each "
            "cell's parameters, symbol and period (flat costs, no breakers)",
            where="--grid",
        )


def _grid(
    ctx: typer.Context,
    grid: Path,
    *,
    config: Path | None,
    data_dir: Path | None,
    cost_multiplier: float,
    export_dir: Path | None,
    parallelism: Parallelism,
    output: tuple[bool, Path | None, bool],
) -> None:
    from stagectl.services.research import grid as service

    home = cli_context(ctx).home
    request = service.GridRequest(
        grid=grid,
        config=config,
        data_dir=data_dir,
        cost_multiplier=cost_multiplier,
        export_dir=export_dir,
        parallelism=parallelism,
    )
    result = service.run(request, home=home, report=info)
    info(f"config: {result.source.describe()}")
    for path in result.exported:
        info(f"wrote {path}")
    json_output, out, unsigned = output
    emit_report(
        home,
        service.KIND,
        result.body,
        inputs=result.inputs,
        json_output=json_output,
        out=out,
        unsigned=unsigned,
        render_human=lambda: _print_grid(result.body, result.rows),
    )


def _print_grid(body: dict[str, Any], rows: list[GridRow]) -> None:
    grid = body["grid"]
    print_lines(
        [
            f"{body['strategy']['name']} grid {grid['path']}: {grid['cells']} cells = "
            f"{grid['configurations']} configurations x {len(grid['symbols'])} symbols x "
            f"{len(grid['periods'])} periods (flat costs)"
        ]
    )
    print_table(
        "Grid",
        ["cell", "parameters", "symbol", "period", "bars", "return", "Sharpe", "MDD", "trades"],
        [
            (
                row.cell,
                row.describe_parameters(),
                row.symbol,
                row.period,
                row.bars,
                fmt_pct(row.metrics["total_return"]),
                fmt_fixed(row.metrics["sharpe_net"]),
                fmt_pct(row.metrics["max_drawdown"]),
                row.metrics["trades"],
            )
            for row in rows
        ],
    )


def _context(result: BacktestRun) -> None:
    data = result.body()["data"]
    info(f"config: {result.source.describe()}")
    info(f"data: {data['source']}")
    if result.info.single_symbol:
        info(f"--symbol: {result.info.symbols[0]} backtested alone at weight 1.0")
    if data["cut_to_overlap"]:
        info(
            f"range cut to the bars common to {', '.join(result.info.symbols)}: "
            f"{data['overlap_start']} .. {data['overlap_end']}"
        )
    for note in data["notes"]:
        info(note)


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _cost(amount: float, share: float | None) -> str:
    """A cost with its share of gross PnL; no share exists when gross PnL <= 0."""
    return f"{_usd(amount)} ({fmt_pct(share) if share is not None else 'no gross alpha to share'})"


def _print_human(body: dict[str, Any]) -> None:
    strategy, data, m = body["strategy"], body["data"], body["metrics"]
    sleeves = " + ".join(f"{s['symbol']} {s['weight'] * 100:g} %" for s in strategy["sleeves"])
    print_lines(
        [
            f"{strategy['name']} backtest: {sleeves}",
            f"{data['start']} .. {data['end']} ({data['bars']} {strategy['timeframe']} bars)",
            *_cost_lines(strategy["costs"], m["cost_model"]),
            f"annualisation: {m['annualisation']}",
        ]
    )
    print_table("Performance", ["metric", "value"], _metric_rows(m))
    print_table("Stability", ["period", "total return", "Sharpe", "max drawdown"], _stability(m))
    if "breakers" in m:
        _print_breakers(m["breakers"])


def _share(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.4g} %"


def _bps(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cost_lines(costs: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The cost model used and what it charged per execution."""
    funding = f"funding {'on' if costs['funding_enabled'] else 'off'}"
    if costs["model"] == "full":
        full = costs["full"]
        model = (
            f"cost model full (seed 001): half spread (Corwin-Schultz, floor "
            f"{full['spread_floor_bps']:g} bps) + sqrt(participation) x "
            f"{full['impact_coefficient_bps']:g} bps + taker fee {full['taker_fee_bps']:g} bps "
            f"({full['venue']}) (x{costs['cost_multiplier']:g}), {funding}"
        )
        split = (
            f"fee {_bps(summary['avg_fee_bps'])} + slippage {_bps(summary['avg_slippage_bps'])}"
            f" (half spread {_bps(summary['avg_half_spread_bps'])} + impact "
            f"{_bps(summary['avg_impact_bps'])}; mean participation "
            f"{_share(summary['mean_participation'])} of the prior bar's dollar volume)"
        )
    else:
        model = (
            f"cost model flat: fee {costs['effective_fee_bps']:g} bps + slippage "
            f"{costs['effective_slippage_bps']:g} bps (x{costs['cost_multiplier']:g}), {funding}"
        )
        split = f"fee {_bps(summary['avg_fee_bps'])} + slippage {_bps(summary['avg_slippage_bps'])}"
    return [
        model,
        f"avg cost per trade (execution, notional-weighted): "
        f"{_bps(summary['avg_cost_bps_per_execution'])} bps = {split} over "
        f"{summary['executions']} executions",
    ]


def _print_breakers(section: dict[str, Any]) -> None:
    """Firing counts, bars reduced, full-size metrics and the first 20 firings."""
    before = section["without_breakers"]
    print_lines(
        [
            f"circuit breakers ({section['preset'] or 'risk_presets.yaml'}): daily stop "
            f"{section['settings']['daily_drawdown_stop_pct']:g} %; without breakers: return "
            f"{fmt_pct(before['total_return'])}, Sharpe {fmt_fixed(before['sharpe_net'])}, "
            f"max drawdown {fmt_pct(before['max_drawdown'])}"
        ]
    )
    print_table(
        "Breakers",
        ["breaker", "firings", "bars reduced"],
        [(n, c, section["bars_reduced"][n]) for n, c in section["firing_counts"].items()],
    )
    firings = section["firings"]
    print_table(
        f"Firings (first {min(len(firings), 20)} of {len(firings)})",
        ["time", "breaker", "value", "threshold"],
        [(f["time"], f["breaker"], f"{f['value']:.4g}", f"{f['threshold']:.4g}")
         for f in firings[:20]],
    )  # fmt: skip


def _metric_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    shares = m["cost_share_of_gross"]
    capacity = m["capacity"]
    return [
        ("total return", fmt_pct(m["total_return"])),
        ("CAGR", fmt_pct(m["cagr"])),
        ("final equity (USD)", _usd(m["final_equity"])),
        ("Sharpe net", fmt_fixed(m["sharpe_net"])),
        ("Sharpe gross", fmt_fixed(m["sharpe_gross"])),
        ("Sortino", fmt_fixed(m["sortino"])),
        ("Calmar", fmt_fixed(m["calmar"])),
        ("max drawdown", fmt_pct(m["max_drawdown"])),
        ("avg drawdown", fmt_pct(m["avg_drawdown"])),
        ("longest recovery (days)", fmt_fixed(m["longest_recovery_days"], 1)),
        ("under water now (days)", fmt_fixed(m["current_underwater_days"], 1)),
        ("hit rate", fmt_pct(m["hit_rate"])),
        ("avg win / avg loss (USD)", f"{_usd(m['avg_win'])} / {_usd(m['avg_loss'])}"),
        ("profit factor", fmt_fixed(m["profit_factor"])),
        ("trades (per day)", f"{m['trades']} ({fmt_fixed(m['trades_per_day'], 2)})"),
        ("avg holding (hours)", fmt_fixed(m["avg_holding_hours"], 1)),
        ("turnover per day (x equity)", fmt_fixed(m["turnover_per_day"], 2)),
        ("gross PnL (USD)", _usd(m["gross_pnl"])),
        ("fee (USD, share of gross)", _cost(m["fee"], shares["fee"])),
        ("slippage (USD, share)", _cost(m["slippage"], shares["slippage"])),
        ("funding (USD, share)", _cost(m["funding"], shares["funding"])),
        ("capacity (USD equity)", _usd(capacity["capacity_equity"])),
    ]


def _period_row(name: str, row: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        name,
        fmt_pct(row["total_return"]),
        fmt_fixed(row["sharpe"]),
        fmt_pct(row["max_drawdown"]),
    )


def _spread_row(name: str, spread: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        name,
        fmt_pct(spread["total_return"]["std"]),
        fmt_fixed(spread["sharpe"]["std"]),
        fmt_pct(spread["max_drawdown"]["std"]),
    )


def _stability(m: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Per-year rows, their spread (std, ddof=1), per-sleeve rows and theirs."""
    stability = m["stability"]
    rows = [_period_row(year, row) for year, row in stability["by_year"].items()]
    rows.append(_spread_row("std across years", stability["by_year_dispersion"]))
    rows += [_period_row(symbol, row) for symbol, row in stability["by_sleeve"].items()]
    if len(stability["by_sleeve"]) > 1:
        rows.append(_spread_row("std across sleeves", stability["by_sleeve_dispersion"]))
    return rows
