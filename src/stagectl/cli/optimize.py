"""``stagectl optimize``: the seed 001 portfolio optimizer (docs/research.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    JsonOpt,
    OutOpt,
    UnsignedOpt,
    cli_context,
    emit_report,
    fmt_fixed,
    fmt_pct,
    print_lines,
    print_table,
)

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = "Example: stagectl optimize docs/examples/optimizer_candidates.yaml --json"


@app.command("optimize", epilog=EXAMPLE)
def optimize(
    ctx: typer.Context,
    candidates: Annotated[
        Path | None,
        typer.Argument(
            help="Candidates file, YAML or JSON (name, edge, confidence, weight; optional "
            "params) [or use --from-governor].",
            metavar="CANDIDATES",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    from_governor: Annotated[
        bool,
        typer.Option(
            "--from-governor",
            help="Take the candidates from the latest recorded governor decision "
            "(edge = its score, confidence 1, current = its previous weights).",
        ),
    ] = False,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: UnsignedOpt = False,
) -> None:
    """Weights that maximise sum(w x edge x confidence) - 0.1 x turnover - 100 x max(0,
    HHI - 0.25), with sum(w) = 1, 0 <= w <= 1, HHI <= 0.25 and the 70 % risk budget
    with a 10 % cash buffer (scipy's SLSQP).

    Prints each weight, the objective's terms and every constraint's slack. Exit 0;
    2 on a bad candidates file or when no governor decision is recorded.
    """
    from stagectl.services.research import optimize as service

    home = cli_context(ctx).home
    outcome = service.run(
        service.OptimizeRequest(candidates=candidates, from_governor=from_governor), home=home
    )
    body = outcome.body
    emit_report(
        home,
        "optimize",
        body,
        inputs=outcome.inputs,
        json_output=json_output,
        out=out,
        unsigned=unsigned,
        render_human=lambda: _print_human(body),
    )


def _print_human(body: dict[str, Any]) -> None:
    params, objective = body["params"], body["objective"]
    print_lines(
        [
            f"{len(body['weights'])} candidates from {body['source']}; deployed "
            f"{fmt_pct(params['deployed'])} of equity (risk budget "
            f"{fmt_pct(params['risk_budget'])}, cash buffer {fmt_pct(params['cash_buffer'])})",
            f"objective {objective['total']:.6f} = edge {objective['edge']:.6f} - turnover "
            f"{objective['turnover']:.6f} - concentration {objective['concentration']:.6f}",
            f"HHI {body['hhi']:.4f} (limit {params['max_hhi']:g}"
            f"{'' if body['hhi_enforced'] else ', not attainable: penalised instead'}), "
            f"turnover {body['turnover']:.4f}",
        ]
    )
    print_table(
        None,
        ["candidate", "weight", "current", "change", "exposure", "edge x conf x w"],
        [
            [
                w["name"],
                fmt_pct(w["weight"]),
                fmt_pct(w["current_weight"]),
                f"{round(w['change'] * 100, 2) + 0.0:+.2f} %",
                fmt_pct(w["exposure"]),
                fmt_fixed(w["contribution"], 6),
            ]
            for w in body["weights"]
        ],
    )
    print_table(
        None,
        ["constraint", "value", "limit", "slack", "binding"],
        [
            [
                c["name"],
                fmt_fixed(c["value"], 4),
                fmt_fixed(c["limit"], 4),
                fmt_fixed(c["slack"], 4),
                "yes" if c["binding"] else "no",
            ]
            for c in body["constraints"]
        ],
    )
