"""``stagectl verify-thresholds``: the Stage6 threshold audit (seed 000).

A fast path: with ``--json`` and without ``--out`` it imports only typer,
pydantic, yaml and the standard library.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stagectl.cli._common import (
    JsonOpt,
    OutOpt,
    UnsignedOpt,
    cli_context,
    config_option,
    emit_report,
    info,
    print_table,
)
from stagectl.cli._observe import MetricsFileOpt, observed, record_checks
from stagectl.errors import EXIT_CHECK_FAILED

if TYPE_CHECKING:
    from stagectl.services.stage6.verify_thresholds import VerifyThresholdsResult

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(
    "verify-thresholds",
    epilog="Example: stagectl verify-thresholds --json --out reports/thresholds.json",
)
def verify_thresholds(
    ctx: typer.Context,
    config: Annotated[Path | None, config_option("core.yaml")] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="Approved baseline [default: config/baselines/stage6-2024-06-07.yaml "
            "in the home, else the packaged one].",
            metavar="FILE",
            dir_okay=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: UnsignedOpt = False,
    signed_off_by: Annotated[
        str | None,
        typer.Option(
            "--signed-off-by",
            help="Sign the compliance as NAME (recorded in the signed report). A signed, "
            "passing report with a signer is core.yaml's compliance sign-off, which "
            "governor --apply, market-intel --out and stress-lab --out require.",
            metavar="NAME",
        ),
    ] = None,
    metrics_file: MetricsFileOpt = None,
) -> None:
    """Audit core.yaml's governed values against the approved baseline.

    One check per Stress Lab threshold, scenario override, Portfolio Governor
    parameter, strategy limit, mandatory symbol and default weight, plus the
    invariants (min <= baseline <= max, baselines sum to 1, blackout overrides
    at least the base thresholds, SOLUSDT mandatory). With --signed-off-by and
    --out, a signed report whose checks all pass is the compliance sign-off for
    this core.yaml. Exit 0 when every check passes, 1 when any fails, 2 on a bad
    config or baseline or an empty signer's name.
    """
    home = cli_context(ctx).home
    with observed(home, "verify-thresholds", metrics_file=metrics_file) as observation:
        from stagectl.services.stage6 import verify_thresholds as service

        request = service.VerifyThresholdsRequest(
            config=config, baseline=baseline, signed_off_by=signed_off_by
        )
        result = service.run(request, home=home)
        failed = [c.id for c in result.checks if not c.passed]
        record_checks(observation, ("PASS" if c.passed else "FAIL" for c in result.checks))
        observation.event("audit", config=str(result.config.path), failed=failed)
        info(f"config: {result.config.describe()}")
        info(f"baseline: {result.baseline.describe()}")
        envelope = emit_report(
            home,
            service.KIND,
            result.body(),
            inputs=result.inputs,
            json_output=json_output,
            out=out,
            unsigned=unsigned,
            render_human=lambda: _print_human(result.body()),
        )
        if result.signed_off_by is not None:
            info(_sign_off_line(result, envelope, out))
        if not result.passed:
            raise typer.Exit(EXIT_CHECK_FAILED)


def _print_human(body: dict[str, Any]) -> None:
    checks = sorted(body["checks"], key=lambda c: c["status"] == "pass")
    rows = [
        (c["status"].upper(), c["id"], _show(c["expected"]), _show(c["actual"]), c["message"])
        for c in checks
    ]
    print_table(
        "Stage6 threshold audit",
        ["status", "check", "expected", "actual", "message"],
        rows,
        keys=2,
    )
    if "sign_off" in body:
        typer.echo(f"signed off by: {body['sign_off']['signed_off_by']}")
    summary = body["summary"]
    verdict = "PASS" if summary["failed"] == 0 else "FAIL"
    typer.echo(
        f"{verdict}: {summary['passed']} of {summary['total']} checks passed, "
        f"{summary['failed']} failed"
    )


def _sign_off_line(
    result: VerifyThresholdsResult, envelope: dict[str, Any] | None, out: Path | None
) -> str:
    """Whether this run produced the compliance sign-off, and if not, why."""
    failed = sum(not c.passed for c in result.checks)
    if failed:
        return f"not a compliance sign-off: {failed} of {len(result.checks)} checks failed"
    if envelope is None or envelope["signature"] is None:
        return "not a compliance sign-off: the report is unsigned (no signing key)"
    sha = result.config_sha256[:12]
    if out is None:
        return f"compliance sign-off for core.yaml sha256 {sha} printed, not written (add --out)"
    return f"compliance sign-off for core.yaml sha256 {sha} by {result.signed_off_by}: {out}"


def _show(value: Any) -> str:
    """A check value for the table: lists and mappings without Python punctuation."""
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return " ".join(f"{k}={_show(v)}" for k, v in value.items())
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return "-" if value is None else str(value)
