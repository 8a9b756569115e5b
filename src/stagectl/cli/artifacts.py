"""``stagectl artifacts``: read the seed-002 artifacts that run-live writes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stagectl.cli._common import JsonOpt, cli_context, config_option, info, print_json, print_table
from stagectl.errors import EXIT_CHECK_FAILED

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = "Example: stagectl artifacts analyze paper-20260401T000000Z-1a2b --json"


@app.callback(epilog=EXAMPLE)
def artifacts() -> None:
    """Analyze the artifacts of a run-live run (stage3 artifacts.dir/<run id>/)."""


@app.command("analyze", epilog=EXAMPLE)
def analyze(
    ctx: typer.Context,
    run: Annotated[
        str,
        typer.Argument(
            help="A run id (below stage3 artifacts.dir, e.g. HOME/artifacts/stage3/RUN) "
            "or a directory."
        ),
    ],
    stage3: Annotated[Path | None, config_option("stage3.yaml")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Answer seed 002's five post-run questions: reconciliation, SIZED_DOWN events,
    margin windows, stop-limit acceptance, effective acceptance rate.

    Exit 0 when no answer is "no", 1 when one is, 2 when an artifact is missing.
    """
    from stagectl.services.live import analyze as service

    result = service.run(service.AnalyzeRequest(run, stage3), home=cli_context(ctx).home)
    info(f"artifacts: {result.directory}; thresholds: {result.thresholds.describe()}")
    info(result.describe_clock())
    if json_output:
        print_json(result.body())
    else:
        print_table(
            f"run {run}: {'all good' if result.passed else 'a question answered no'}",
            ["question", "answer", "detail"],
            [[a.question, a.answer, a.detail] for a in result.answers],
        )
    if not result.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)
