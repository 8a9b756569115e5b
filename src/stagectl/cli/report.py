"""``stagectl report``: check the signed reports stagectl writes.

A fast path: only typer and the standard library at import time; the
reports package (stdlib only) is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stagectl.cli._common import JsonOpt, print_json, print_lines
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
    json_output: JsonOpt = False,
) -> None:
    """Check a report's HMAC signature with the configured key.

    Exit 0 when the signature is valid; 1 when the report is unsigned,
    tampered with or signed by another key; 2 when the file is unreadable or
    not a stagectl report, or no key is configured (STAGECTL_HMAC_KEY or
    STAGECTL_HMAC_KEY_FILE).

    Example: STAGECTL_HMAC_KEY_FILE=~/.stagectl/hmac.key stagectl report verify report.json --json
    """
    from stagectl.reports import (
        UNSIGNED_REASON,
        VerifyResult,
        load_signing_key,
        read_report,
        verify_envelope,
    )

    envelope = read_report(file)
    if envelope["signature"] is None:
        result = VerifyResult(False, UNSIGNED_REASON, None, [])
    else:
        key = load_signing_key()
        if key is None:
            raise SigningKeyError(
                "no signing key: set STAGECTL_HMAC_KEY or STAGECTL_HMAC_KEY_FILE (chmod 600) "
                "to the key the report was signed with"
            )
        result = verify_envelope(envelope, key)
    if json_output:
        print_json(
            {
                "file": str(file),
                "valid": result.valid,
                "reason": result.reason,
                "kind": envelope["kind"],
                "key_id": result.key_id,
                "sections": result.sections,
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
                f"sections:      {', '.join(result.sections) or '-'}",
                f"verdict:       {verdict}",
            ]
        )
    raise typer.Exit(EXIT_OK if result.valid else EXIT_CHECK_FAILED)
