"""``stagectl daily``: the 02:00 UTC research chain (``services.research.daily``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    JsonOpt,
    OutOpt,
    SampleDataOpt,
    UnsignedOpt,
    cli_context,
    info,
    parse_now,
    print_json,
    print_lines,
    print_table,
    publish_envelope,
)
from stagectl.cli._failure import public_line
from stagectl.cli._logs import ERROR, INFO
from stagectl.cli._observe import MetricsFileOpt, observed, record_checks
from stagectl.errors import InputError

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = "Example: stagectl daily --out reports/daily-latest.json --unsigned --json"


def _env_option(flag: str, env: str, text: str, metavar: str) -> Any:
    return typer.Option(
        flag, envvar=env, help=f"{text} [env: {env}].", metavar=metavar, show_envvar=False
    )


@app.command("daily", epilog=EXAMPLE)
def daily(
    ctx: typer.Context,
    exchange: Annotated[
        str | None,
        _env_option(
            "--exchange",
            "STAGECTL_DAILY_EXCHANGE",
            "The ccxt exchange to ingest the sleeves' 1h candles and funding from "
            "[default: none: ingest is skipped and the chain reads --data or the bundled "
            "sample]",
            "ID",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        _env_option(
            "--base-url",
            "STAGECTL_EXCHANGE_BASE_URL",
            "Send the ingest's API calls to this host instead (e.g. the loopback simulator)",
            "URL",
        ),
    ] = None,
    data_dir: SampleDataOpt = None,
    champion: Annotated[
        str | None,
        _env_option(
            "--champion", "STAGECTL_DAILY_CHAMPION", "Run id of the champion (baseline)", "RUN"
        ),
    ] = None,
    challenger: Annotated[
        str | None,
        _env_option(
            "--challenger",
            "STAGECTL_DAILY_CHALLENGER",
            "Run id of the challenger (candidate)",
            "RUN",
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Run as of this UTC time (ISO-8601): a first ingest fetches the 400 days "
            "before it [default: now].",
            metavar="TIME",
        ),
    ] = None,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: UnsignedOpt = False,
    metrics_file: MetricsFileOpt = None,
) -> None:
    """Seed 001's daily research chain: ingest (data fetch), integrity checks (data
    check), walk-forward, and champion vs challenger (shadow compare), in that order,
    stopping at the first step that fails. Steps without what they need (no exchange, no
    runs named) are skipped with the reason; the report (--out) names every step's
    outcome, the failed step and the promotion verdict.

    Exit 0 when the chain ran through (whatever the verdict); else the failed step's
    code: 1 a data file failed its integrity check, 2 bad input, 3 the exchange or the
    state could not be reached.
    """
    from datetime import UTC, datetime

    from stagectl.services.research import daily as service

    home = cli_context(ctx).home
    if exchange is not None and data_dir is not None:
        raise InputError(
            "give one: ingest writes HOME/data/<exchange>/ and the chain reads it",
            where="--exchange and --data",
        )
    with observed(home, service.KIND, metrics_file=metrics_file) as observation:
        request = service.DailyRequest(
            now=parse_now(now) or datetime.now(UTC),
            exchange=exchange,
            base_url=base_url,
            data_dir=data_dir,
            champion=champion,
            challenger=challenger,
        )
        result = service.run(request, home=home, report=info)
        for step in result.steps:
            step.reason = public_line(step.reason)
            level = ERROR if step.status == service.FAIL else INFO
            observation.event("step", level, step=step.name, status=step.status, reason=step.reason)
        record_checks(observation, (s.status for s in result.steps), skips=True)
        verdict = result.verdict
        if verdict is not None:
            observation.gauge("stagectl_daily_challenger_promoted", int(verdict["promote"]))
            observation.event("verdict", **verdict)
        document = result.to_dict()
        if out is not None:
            publish_envelope(home, service.KIND, document, inputs=[], out=out, unsigned=unsigned)
            info(f"wrote {out}")
        if json_output:
            print_json(document)
        else:
            _print_human(document)
        raise typer.Exit(result.exit_code)


def _print_human(document: dict[str, Any]) -> None:
    print_table(
        f"daily chain on {document['data']}",
        ["step", "status", "reason"],
        [(s["step"], s["status"], s["reason"] or "-") for s in document["steps"]],
        keys=2,
    )
    verdict = document["verdict"]
    lines = []
    if verdict is not None:
        said = "PROMOTE" if verdict["promote"] else "DO NOT PROMOTE"
        why = f" ({', '.join(verdict['reasons'])})" if verdict["reasons"] else ""
        lines.append(
            f"champion {verdict['champion']} vs challenger {verdict['challenger']}: {said}{why}"
        )
    failed = document["failed_step"]
    lines.append(
        "chain completed" if failed is None else f"chain stopped: the {failed} step failed"
    )
    print_lines(lines)
