"""``stagectl shadow``: record backtests as runs and compare two runs for promotion."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    MAX_RESAMPLES,
    MAX_SEED,
    BoundedInt,
    CandleDataOpt,
    CostMultiplierOpt,
    JsonOpt,
    StrategyConfigOpt,
    cli_context,
    info,
    parse_utc,
    print_json,
    print_lines,
    print_table,
)
from stagectl.cli._values import preset_names

app = typer.Typer(add_completion=False, rich_markup_mode=None)

COMPARE_EXAMPLE = "Example: stagectl shadow compare --baseline bt-base --candidate bt-new --json"
RECORD_EXAMPLE = (
    "Example: stagectl shadow record-backtest --run-id bt-base --start 2025-10-01 --end 2025-12-31"
)


@app.callback(epilog=COMPARE_EXAMPLE)
def shadow() -> None:
    """Shadow runs: record a backtest as a run, compare a candidate run with a baseline."""


@app.command("compare", epilog=COMPARE_EXAMPLE)
def compare(
    ctx: typer.Context,
    baseline: Annotated[
        str, typer.Option("--baseline", help="Run id of the baseline.", metavar="RUN")
    ],
    candidate: Annotated[
        str, typer.Option("--candidate", help="Run id of the candidate.", metavar="RUN")
    ],
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="Seed of the block bootstrap.",
            metavar="N",
            click_type=BoundedInt(0, MAX_SEED),
        ),
    ] = 0,
    resamples: Annotated[
        int,
        typer.Option(
            "--resamples",
            click_type=BoundedInt(100, MAX_RESAMPLES),
            help="Bootstrap resamples.",
            metavar="B",
        ),
    ] = 2000,
    json_output: JsonOpt = False,
) -> None:
    """Compare two runs of the state database side by side: PnL, hit rate, Sharpe,
    drawdown, turnover, cost per trade, IR, paired block-bootstrap and Welch p-values,
    and the promotion verdict of seed 001 §9.

    Exit 0 promote, 1 do not promote, 2 unknown run or too few paired periods.
    """
    from stagectl.services.research import shadow as service

    home = cli_context(ctx).home
    info(f"state: {home.state_path}")
    request = service.ShadowCompareRequest(baseline, candidate, seed=seed, resamples=resamples)
    comparison = service.run_compare(request, home=home)
    if json_output:
        print_json(comparison.body)
    else:
        _print_compare(comparison.body)
    if not comparison.promote:
        raise typer.Exit(1)


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric in ("pnl", "hit_rate", "max_drawdown"):
        return f"{value * 100:.2f} %"
    if metric == "turnover":
        return f"{value:.5f}"
    return f"{value:.3f}"


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _print_compare(doc: dict[str, Any]) -> None:
    periods, tests, verdict = doc["periods"], doc["tests"], doc["verdict"]
    print_lines(
        [
            f"baseline {doc['baseline']['run_id']} vs candidate {doc['candidate']['run_id']}: "
            f"{periods['paired_returns']} paired returns, {periods['start']} .. "
            f"{periods['end']} ({periods['days']:.1f} days)"
        ]
    )
    print_table(
        "Metrics",
        ["metric", "baseline", "candidate", "status"],
        [
            (
                m["metric"] + (" (critical)" if m["critical"] else ""),
                _fmt(m["metric"], m["baseline"]),
                _fmt(m["metric"], m["candidate"]),
                m["status"],
            )
            for m in doc["metrics"]
        ],
    )
    print_lines(
        [
            f"information ratio: {_num(tests['information_ratio'])}",
            f"paired block bootstrap p (one-sided): {_num(tests['bootstrap_p_value'])} "
            f"(block {tests['bootstrap']['block_length']}, {tests['bootstrap']['resamples']} "
            "resamples)",
            f"Welch t-test p (one-sided): {_num(tests['welch_p_value'])} "
            f"(t {_num(tests['welch_t'])}, df {_num(tests['welch_df'])})",
            "verdict: PROMOTE"
            if verdict["promote"]
            else f"verdict: DO NOT PROMOTE ({', '.join(verdict['reasons'])})",
        ]
    )


@app.command("record-backtest", epilog=RECORD_EXAMPLE)
def record_backtest(
    ctx: typer.Context,
    run_id: Annotated[
        str, typer.Option("--run-id", help="Id of the new run (must be unused).", metavar="ID")
    ],
    config: StrategyConfigOpt = None,
    cost_multiplier: CostMultiplierOpt = 1.0,
    start: Annotated[
        str | None, typer.Option("--start", help="First bar, UTC.", metavar="DATE")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Last bar, UTC; a date includes that day.", metavar="DATE"),
    ] = None,
    breakers: Annotated[
        bool, typer.Option("--breakers", help="Apply the circuit breakers.")
    ] = False,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="conservative, balanced or aggressive (implies --breakers).",
            metavar="NAME",
            autocompletion=preset_names,
        ),
    ] = None,
    data_dir: CandleDataOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Backtest the strategy config and record it in the state database as run ID:
    equity snapshots per bar, one fill per position change, breaker firings as events.

    Exit 0 recorded, 2 bad input or a run id already recorded, 3 state locked.
    """
    from stagectl.services.research import backtest as backtest_service
    from stagectl.services.research import shadow as service

    home = cli_context(ctx).home
    backtest = backtest_service.BacktestRequest(
        config=config,
        start=None if start is None else parse_utc(start, option="--start"),
        end=None if end is None else parse_utc(end, option="--end", end_of_day=True),
        cost_multiplier=cost_multiplier,
        data_dir=data_dir,
        breakers=breakers,
        preset=preset,
    )
    recorded = service.run_record_backtest(
        service.RecordBacktestRequest(run_id, backtest), home=home
    )
    result, summary = recorded.backtest, recorded.recorded
    info(f"config: {result.source.describe()}")
    document = {
        "run_id": summary.run_id,
        "state": summary.state_path,
        "snapshots": summary.snapshots,
        "fills": summary.fills,
        "events": summary.events,
        "start": result.body()["data"]["start"],
        "end": result.body()["data"]["end"],
        "cost_multiplier": cost_multiplier,
        "sharpe_net": result.metrics["sharpe_net"],
        "total_return": result.metrics["total_return"],
    }
    if json_output:
        print_json(document)
        return
    print_lines(
        [
            f"recorded run {summary.run_id} in {summary.state_path}: {summary.snapshots} "
            f"snapshots, {summary.fills} fills, {summary.events} breaker events",
            f"{document['start']} .. {document['end']}, costs x{cost_multiplier:g}",
        ]
    )
