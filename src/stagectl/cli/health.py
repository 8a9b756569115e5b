"""``stagectl health``: the trading loop's health checks (docs/operations.md, "Health")."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    JsonOpt,
    OutOpt,
    UnsignedOpt,
    cli_context,
    config_option,
    emit_report,
    info,
    parse_duration,
    parse_now,
    print_table,
)
from stagectl.cli._observe import MetricsFileOpt, Observation, observed, record_checks
from stagectl.errors import EXIT_CHECK_FAILED

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = "Example: stagectl health --out reports/health.json --metrics-file metrics/health.prom"
STATUS_LEVEL = {"PASS": 0, "WARN": 1, "FAIL": 2, "SKIP": -1}
"""``stagectl_health_check_status``: the textfile's value of each status."""
VALUE_METRICS: dict[str, tuple[str, float]] = {
    "data gaps": ("stagectl_health_missing_bars", 1.0),
    "last-bar age": ("stagectl_health_bar_age_seconds", 60.0),
    "snapshot age": ("stagectl_health_snapshot_age_seconds", 60.0),
    "loop latency": ("stagectl_health_loop_latency_p99_seconds", 0.001),
    "order rejections": ("stagectl_health_order_rejection_ratio", 0.01),
    "order errors": ("stagectl_health_order_error_ratio", 0.01),
    "exchange reachable, clock skew": ("stagectl_health_clock_skew_seconds", 1.0),
}
"""Each check's value as a gauge in its unit (the report's minutes, ms and % scaled)."""


@app.command("health", epilog=EXAMPLE)
def health(
    ctx: typer.Context,
    config: Annotated[Path | None, config_option("stage3.yaml")] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run", help="Check this run [default: the latest run-live run].", metavar="ID"
        ),
    ] = None,
    max_bar_age: Annotated[
        str | None,
        typer.Option(
            "--max-bar-age",
            help="FAIL when the last bar is older (e.g. 150m, 3h) [default: health."
            "max_bar_age_min in stage3.yaml, 150m].",
            metavar="DURATION",
        ),
    ] = None,
    exchange: Annotated[
        str | None,
        typer.Option(
            "--exchange",
            help="Probe this ccxt exchange [default: a live run's venue; SKIP for paper].",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Send the exchange probe to this host (testnets)."),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="No network: SKIP the exchange check.")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Judge ages as of this UTC time [default: the wall clock].",
            metavar="TIME",
        ),
    ] = None,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: UnsignedOpt = False,
    metrics_file: MetricsFileOpt = None,
) -> None:
    """Health of the trading loop: data gaps (the run's recent bars per sleeve), last-bar
    and snapshot age, loop latency (p50/p99), order rejection and error rates, exchange
    reachability and clock skew (SKIP for paper or --offline). Each check is PASS, WARN,
    FAIL or SKIP with its value and threshold (``health:`` in stage3.yaml). Nothing is
    changed.

    Exit 0 no check failed (WARN and SKIP allowed); 1 a check failed (for a timer that
    pages); 2 bad input.
    """
    home = cli_context(ctx).home
    with observed(home, "health", metrics_file=metrics_file) as observation:
        from stagectl.errors import InputError
        from stagectl.services.trading import health as service

        if base_url and not exchange:
            raise InputError("--base-url needs --exchange", where="--base-url")
        if config is not None and not config.is_file():
            raise InputError("no such config file", where=str(config))
        age = None if max_bar_age is None else parse_duration(max_bar_age, option="--max-bar-age")
        request = service.HealthRequest(
            config=config,
            run_id=run_id,
            now=parse_now(now),
            max_bar_age_min=None if age is None else age.total_seconds() / 60.0,
            exchange=exchange,
            base_url=base_url,
            offline=offline,
        )
        result = service.run(request, home=home)
        body = result.to_dict()
        _observe(observation, body)
        emit_report(
            home,
            "health",
            body,
            inputs=[],
            json_output=json_output,
            out=out,
            unsigned=unsigned,
            render_human=lambda: _print_human(body),
        )
        if not result.passed:
            raise typer.Exit(EXIT_CHECK_FAILED)


def _observe(observation: Observation, body: dict[str, Any]) -> None:
    checks = body["checks"]
    record_checks(observation, (c["status"] for c in checks), skips=True)
    observation.gauge("stagectl_checks_warned", Counter(c["status"] for c in checks)["WARN"])
    for check in checks:
        observation.gauge(
            "stagectl_health_check_status", STATUS_LEVEL[check["status"]], check=check["check"]
        )
        metric = VALUE_METRICS.get(check["check"])
        if metric is not None and isinstance(check["value"], int | float):
            observation.gauge(metric[0], check["value"] * metric[1])
    failed = [{"check": c["check"], "why": c["reason"]} for c in checks if c["status"] == "FAIL"]
    observation.event("checks", run=body["run_id"], failed=failed)


def _print_human(body: dict[str, Any]) -> None:
    info(f"config: {body['config']}; run: {body['run_id'] or 'none'} ({body['mode'] or '-'})")
    print_table(
        "HEALTH",
        ("check", "status", "value", "threshold", "reason"),
        [
            (c["check"], c["status"], "-" if c["value"] is None else str(c["value"]),
             c["threshold"], c["reason"])
            for c in body["checks"]
        ],
    )  # fmt: skip
    typer.echo(f"health {'PASSED' if body['passed'] else 'FAILED'}")
