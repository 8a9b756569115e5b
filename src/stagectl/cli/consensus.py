"""``stagectl consensus``: engine votes -> consensus score, adaptive decision, weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    MAX_K,
    BoundedFloat,
    BoundedInt,
    JsonOpt,
    cli_context,
    print_json,
    print_lines,
    print_table,
)
from stagectl.config.limits import MAX_COUNT, MAX_DURATION_DAYS

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = (
    "Example: stagectl consensus --votes docs/examples/consensus_votes.csv "
    "--correlation docs/examples/consensus_correlation.csv --regime TREND"
)


@app.command("consensus", epilog=EXAMPLE)
def consensus(
    ctx: typer.Context,
    votes: Annotated[
        Path,
        typer.Option(
            "--votes", help="CSV or JSON table of engine votes (docs/research.md).", metavar="FILE"
        ),
    ],
    correlation: Annotated[
        Path | None,
        typer.Option(
            "--correlation",
            help="Engine correlation matrix, CSV or JSON [default: identity].",
            metavar="FILE",
        ),
    ] = None,
    regime: Annotated[
        str | None,
        typer.Option(
            "--regime",
            help="TREND, RANGE, PANIC or ILLIQUID: gate out engines not approved "
            "for it [default: no gate].",
            metavar="REGIME",
        ),
    ] = None,
    k: Annotated[
        float,
        typer.Option(
            "--k",
            help="Threshold multiple of rolling std(S).",
            metavar="K",
            click_type=BoundedFloat(0, MAX_K, low_open=True),
        ),
    ] = 0.75,
    window: Annotated[
        int,
        typer.Option(
            "--window",
            help="Scores in the rolling std.",
            metavar="N",
            click_type=BoundedInt(2, MAX_COUNT),
        ),
    ] = 100,
    half_life_days: Annotated[
        float,
        typer.Option(
            "--half-life-days",
            help="Half-life of reliability decay.",
            metavar="DAYS",
            click_type=BoundedFloat(0, MAX_DURATION_DAYS, low_open=True),
        ),
    ] = 30.0,
    json_output: JsonOpt = False,
) -> None:
    """The consensus score S per timestamp of a votes table, the adaptive-threshold
    decision (|S| > k x rolling std of S), the final engine weights and the engines the
    regime gate removed.

    Exit 0 on success, 2 on a bad votes or correlation file or option.
    """
    from stagectl.services.research import consensus as service

    request = service.ConsensusRequest(
        votes=votes,
        correlation=correlation,
        regime=None if regime is None else regime.upper(),
        k=k,
        window=window,
        half_life_days=half_life_days,
    )
    result = service.run(request, home=cli_context(ctx).home)
    if json_output:
        print_json({"kind": "consensus", **result.body})
        return
    _print_human(result.body)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _print_human(doc: dict[str, Any]) -> None:
    settings, latest = doc["settings"], doc["latest"]
    print_lines(
        [
            f"{len(doc['engines'])} engines, {doc['timestamps']} timestamps; regime gate "
            f"{settings['regime'] or 'off'}; correlation {settings['correlation']}; "
            f"k {settings['k']:g}, window {settings['window']}, half-life "
            f"{settings['half_life_days']:g} days",
        ]
    )
    print_table(
        "Latest decisions",
        ["timestamp", "S", "threshold", "action"],
        [
            (s["timestamp"], _num(s["score"]), _num(s["threshold"]), s["action"])
            for s in doc["steps"][-10:]
        ],
    )
    print_table(
        f"Weights at {latest['timestamp']}",
        ["engine", "weight"],
        [(engine, _num(weight)) for engine, weight in latest["weights"].items()],
    )
    gated = ", ".join(latest["gated_out"]) or "none"
    print_lines(
        [
            f"gated out: {gated}",
            f"decision: {latest['action'].upper()} (S {_num(latest['score'])}, threshold "
            f"{_num(latest['threshold'])})",
        ]
    )
