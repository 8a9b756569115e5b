"""``stagectl governor``: Portfolio Governor weights from Market Intel (seed 000)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    JsonOpt,
    MarketDataOpt,
    cli_context,
    config_option,
    info,
    parse_now,
    print_json,
    print_table,
)
from stagectl.errors import EXIT_CHECK_FAILED

app = typer.Typer(add_completion=False, rich_markup_mode=None)

NowOpt = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Decide as of this UTC time (ISO-8601) [default: the end of the common data].",
        metavar="TIME",
    ),
]


@app.command("governor", epilog="Example: stagectl governor --apply --json")
def governor(
    ctx: typer.Context,
    config: Annotated[Path | None, config_option("core.yaml")] = None,
    data: MarketDataOpt = None,
    now: NowOpt = None,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Record the new weights as current (refused without core.yaml's compliance "
            "sign-off, and inside the rebalance interval).",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Score each strategy from Market Intel and compute its new weight.

    Scores under the minimum (0.08) are ignored; weights are smoothed (0.55 on
    the previous), clamped to the strategy and global limits and renormalised.
    Every decision is recorded in the state database. --apply needs the
    compliance sign-off of core.yaml (stagectl verify-thresholds --out
    reports/compliance-DATE.json --signed-off-by NAME); without --apply the
    proposal is a dry look and says on stderr when there is none. Exit 0; 1 when
    --apply is refused (no sign-off, or the 20-minute rebalance interval has not
    passed); 2 on bad input.
    """
    from stagectl.services.stage6 import governor as service

    home = cli_context(ctx).home
    request = service.GovernorRequest(config=config, data_dir=data, now=parse_now(now), apply=apply)
    result = service.run(request, home=home)
    body = result.body()
    info(f"config: {result.intel.config.describe()}")
    info(result.intel.compliance.describe())
    info(f"data: {result.intel.market.source}; as of {body['as_of']}")
    if json_output:
        print_json(body)
    else:
        _print_human(body)
    due = body["rebalance"]["next_due_at"]
    if result.refused:
        info(f"rebalance refused: the next one is due at {due} (decision {body['decision_id']})")
        raise typer.Exit(EXIT_CHECK_FAILED)
    if result.action == "apply":
        info(f"weights applied (decision {body['decision_id']})")
    else:
        info(f"weights proposed, not applied (decision {body['decision_id']}); next due {due}")


def _print_human(body: dict[str, Any]) -> None:
    rows = []
    for name, score in body["scores"].items():
        rows.append(
            [
                name,
                round(score["score"], 4),
                round(score["alpha"], 4),
                round(score["cost"], 4),
                round(score["slo"], 4),
                round(score["risk"], 4),
                "yes" if score["ignored"] else "no",
                round(body["previous"][name], 4),
                round(body["target"][name], 4),
                round(body["smoothed"][name], 4),
                round(body["final"][name], 4),
            ]
        )
    print_table(
        f"Portfolio Governor ({body['action']})",
        [
            "strategy",
            "score",
            "alpha",
            "cost",
            "slo",
            "risk",
            "ignored",
            "previous",
            "target",
            "smoothed",
            "final",
        ],
        rows,
    )
