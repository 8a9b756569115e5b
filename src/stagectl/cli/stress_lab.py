"""``stagectl stress-lab``: Stage6 Stress Lab scenarios, verified thresholds, signed verdict."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stagectl.cli._common import (
    BoundedFloat,
    JsonOpt,
    MarketDataOpt,
    OutOpt,
    cli_context,
    config_option,
    info,
    parse_now,
    print_json,
    print_lines,
    print_table,
    publish_envelope,
    show_report,
    write_html,
)
from stagectl.cli._format import progress
from stagectl.cli._values import scenario_names
from stagectl.config.limits import MAX_MAGNITUDE
from stagectl.errors import EXIT_CHECK_FAILED

if TYPE_CHECKING:
    from stagectl.reports.page import Page

app = typer.Typer(add_completion=False, rich_markup_mode=None)

_SYMBOL = {"above": ">", "below": "<", "abs_above": "|x| >"}


@app.command(
    "stress-lab",
    epilog="Example: stagectl stress-lab --positions book.yaml --out reports/stress.json "
    "--html reports/stress.html",
)
def stress_lab(
    ctx: typer.Context,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            help="Run only this scenario (repeatable) [default: all].",
            metavar="NAME",
            autocompletion=scenario_names,
        ),
    ] = None,
    positions: Annotated[
        Path | None,
        typer.Option(
            "--positions",
            help="Positions file (.yaml/.json/.csv: symbol, qty, entry_price) "
            "[default: the state database's positions].",
            metavar="FILE",
            dir_okay=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: Annotated[
        bool,
        typer.Option(
            "--unsigned",
            help="Kept for scripts; it cannot waive the compliance sign-off, which only "
            "verifies with a key, so without a key --out is refused all the same.",
        ),
    ] = False,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            help="An earlier stress-lab report: show breaches added/removed and metric deltas.",
            metavar="PREVIOUS.json",
            dir_okay=False,
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Also write a self-contained one-page HTML report.", metavar="FILE"
        ),
    ] = None,
    config: Annotated[Path | None, config_option("core.yaml")] = None,
    scenarios_file: Annotated[
        Path | None,
        typer.Option(
            "--scenarios",
            help="Scenario file [default: config/stress_scenarios.yaml in the home, "
            "else the packaged one].",
            metavar="FILE",
            dir_okay=False,
        ),
    ] = None,
    data: MarketDataOpt = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Market state as of this UTC time [default: the end of the common data].",
            metavar="TIME",
        ),
    ] = None,
    equity: Annotated[
        float | None,
        typer.Option(
            "--equity",
            help="Account equity in USD for margin usage [default: fully funded positions].",
            metavar="USD",
            click_type=BoundedFloat(0, MAX_MAGNITUDE),
        ),
    ] = None,
) -> None:
    """Run the Stress Lab: hypothetical shocks and historical worst moves.

    Threshold verification runs first; when core.yaml differs from the approved
    baseline nothing is published (no --out, no --html file) and the exit code is 1.
    Publication (--out, --html) then needs core.yaml's compliance sign-off
    (stagectl verify-thresholds --out reports/compliance-DATE.json
    --signed-off-by NAME): exit 1 without one. Without --out and --html the run
    is a dry look (the table, or --json on stdout) and says so on stderr.
    Each scenario's eight metrics are checked against core.yaml's thresholds (the
    blackout scenario with its 180 ms / 55 min overrides) and applied to the
    positions. A first "baseline" row checks the unstressed market; each scenario
    lists the breaches it caused or worsened and counts those already at baseline.
    The whole report is HMAC-signed. Exit 0 no breach anywhere (baseline included),
    1 a breach (a baseline breach alone too) or a blocked or refused publication, 2
    bad input.
    """
    from stagectl.services.stage6 import stress_lab as service

    home = cli_context(ctx).home
    request = service.StressRequest(
        config=config,
        scenarios_file=scenarios_file,
        data_dir=data,
        now=parse_now(now),
        positions_file=positions,
        scenario_names=tuple(scenario or ()),
        equity_usd=equity,
        compare=compare,
        publish="--out" if out is not None else "--html" if html is not None else None,
    )
    with progress("stress-lab") as update:
        result = service.run(request, home=home, progress=update)
    info(f"config: {result.verification.config.describe()}")
    if result.blocked:
        _blocked(result.blocked_document(), json_output)
        raise typer.Exit(EXIT_CHECK_FAILED)
    if result.compliance is not None:
        info(result.compliance.describe())
    envelope = publish_envelope(
        home,
        service.KIND,
        result.body,
        inputs=result.inputs,
        out=out,
        unsigned=unsigned,
    )

    def page() -> Page:
        from stagectl.reports.html import stress_lab_page as build

        return build(envelope, result.verdict_section)

    write_html(html, page)
    show_report(
        envelope,
        json_output=json_output,
        out=out,
        render_human=lambda: _print_human(result.body, result.verdict_section),
    )
    if result.breached:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _blocked(document: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(document)
    else:
        lines = [f"BLOCKED: {document['reason']}"]
        lines += [
            f"  {c['id']}: expected {c['expected']}, found {c['actual']}"
            for c in document["failed_checks"]
        ]
        print_lines(lines)
    info("nothing was published: fix core.yaml or approve a new baseline, then rerun")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _row(s: dict[str, Any], *, baseline: bool) -> list[Any]:
    """Baseline row: its own breaches. Scenario rows: the breaches the scenario caused or
    worsened, and how many breaches it only shares with the baseline."""
    impact = s["portfolio"] or {}
    caused = [b for b in s["breaches"] if baseline or b["cause"] != "baseline"]
    shared = None if baseline else len(s["breaches"]) - len(caused)
    return [
        s["name"],
        s["kind"],
        len(caused),
        ", ".join(b["metric"] for b in caused) or "-",
        shared,
        impact.get("mtm_pnl_usd"),
        impact.get("liquidation_cost_usd"),
        impact.get("margin_usage_pct"),
    ]


def _breach_lines(s: dict[str, Any], *, baseline: bool) -> None:
    for b in s["breaches"]:
        where = f" ({', '.join(b['symbols'])})" if b["symbols"] else ""
        already = " (already at baseline)" if not baseline and b["cause"] == "baseline" else ""
        typer.echo(
            f"BREACH {s['name']}: {b['metric']} {_fmt(b['value'])} "
            f"{_SYMBOL[b['direction']]} {_fmt(b['limit'])}{where}{already}"
        )


def _print_human(body: dict[str, Any], verdict_section: str) -> None:
    verdict = body[verdict_section]
    market = body["market"]
    base = body["market_baseline"]  # the unstressed market row (services.stress_lab)
    typer.echo(f"Market as of {market['as_of']} ({market['source']}; {market['now_source']})")
    rows = [_row(base, baseline=True)]
    rows += [_row(s, baseline=False) for s in body["scenarios"]]
    columns = ["scenario", "kind", "breaches", "metrics breached", "at baseline"]
    columns += ["MTM PnL USD", "liquidation USD", "margin %"]
    print_table("Stress Lab", columns, rows)
    _breach_lines(base, baseline=True)
    for s in body["scenarios"]:
        if s["window"]:
            w = s["window"]
            typer.echo(f"{s['name']}: {w['return_pct']:+.2f} % from {w['start']} to {w['end']}")
        _breach_lines(s, baseline=False)
    if "comparison" in body:
        _print_comparison(body["comparison"])
    status = "BREACH" if verdict["status"] == "breach" else "PASS"
    at_baseline = ", ".join(b["metric"] for b in base["breaches"]) or "none"
    shared = verdict["breach_count"] - verdict["scenario_caused_breach_count"]
    typer.echo(
        f"{status}: baseline breaches {verdict['baseline_breach_count']} threshold(s) "
        f"({at_baseline}); {verdict['scenarios_breached_beyond_baseline']} of "
        f"{verdict['scenarios_run']} scenarios breach beyond it "
        f"({verdict['scenario_caused_breach_count']} breaches caused by the scenarios, "
        f"{shared} already at baseline); thresholds verified against the approved "
        f"baseline (config sha256 {verdict['config']['sha256'][:12]})"
    )


def _print_comparison(comparison: dict[str, Any]) -> None:
    previous = comparison["previous"]
    typer.echo(f"Compared with {previous['path']} ({previous['generated_at']}):")
    for key, label in (("breaches_added", "added"), ("breaches_removed", "removed")):
        for item in comparison[key]:
            typer.echo(f"  breach {label}: {item['scenario']} {item['metric']}")
    for key, label in (("scenarios_added", "new"), ("scenarios_removed", "gone")):
        for name in comparison[key]:
            typer.echo(f"  scenario {label}: {name}")
    for name, metrics in comparison["metric_deltas"].items():
        moved = {m: d for m, d in metrics.items() if abs(d["delta"]) > 1e-9}
        for metric, d in moved.items():
            typer.echo(
                f"  {name} {metric}: {_fmt(d['previous'])} -> {_fmt(d['current'])} "
                f"({d['delta']:+.4g})"
            )
