"""``stagectl report``: check the signed reports stagectl writes.

A fast path: only typer and the standard library at import time; the
reports package (stdlib only) is imported inside the command.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from stagectl.cli._common import JsonOpt, parse_duration, print_json, print_lines
from stagectl.errors import EXIT_CHECK_FAILED, EXIT_OK, SigningKeyError

app = typer.Typer(
    help="Verify signed reports. Example: stagectl report verify reports/stress-lab.json",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def report() -> None:
    """Verify signed reports. Example: stagectl report verify reports/stress-lab.json"""


@app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="The report file to check.", show_default=False)],
    max_age: Annotated[
        str | None,
        typer.Option(
            "--max-age",
            help="Also fail a report generated longer ago than this, e.g. 90m, 24h, 7d.",
            metavar="DURATION",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Check a report's HMAC signature with the configured key.

    The signature covers the whole report. Prints the report's kind, when it
    was generated and the key id. Exit 0 when the signature is valid; 1 when
    the report is unsigned, changed after signing, signed by another key or by
    the old partial scheme (stagectl.report/v1), or older than --max-age; 2
    when the file is unreadable or not a stagectl report, or no key is
    configured (STAGECTL_HMAC_KEY or STAGECTL_HMAC_KEY_FILE).

    Example: stagectl report verify reports/thresholds.json --max-age 7d --json
    """
    from stagectl.reports import (
        VERIFY_NO_KEY_MESSAGE,
        load_signing_key,
        read_report,
        verdict_without_key,
        verify_envelope,
    )

    limit = None if max_age is None else parse_duration(max_age, option="--max-age")
    envelope = read_report(file)
    result = verdict_without_key(envelope)
    if result is None:
        key = load_signing_key()
        if key is None:
            raise SigningKeyError(VERIFY_NO_KEY_MESSAGE)
        result = verify_envelope(envelope, key, max_age=limit, now=datetime.now(UTC))
    if json_output:
        print_json(
            {
                "file": str(file),
                "valid": result.valid,
                "reason": result.reason,
                "schema": envelope["schema"],
                "kind": envelope["kind"],
                "generated_at": envelope["generated_at"],
                "key_id": result.key_id,
            }
        )
    else:
        verdict = "VALID" if result.valid else f"INVALID: {result.reason}"
        print_lines(
            [
                f"file:          {file}",
                f"kind:          {envelope['kind']}",
                f"generated_at:  {envelope['generated_at']}",
                f"key_id:        {result.key_id or '-'}",
                f"verdict:       {verdict}",
            ]
        )
    raise typer.Exit(EXIT_OK if result.valid else EXIT_CHECK_FAILED)
