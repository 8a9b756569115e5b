"""``stagectl notify``: tell the desk's notify channels something from outside a command.

``test`` sends one test message to every channel (the desk checks its webhook, apprise
URLs and Telegram chat before an alert needs them).

``unit-failed`` is the ``OnFailure=`` handler of the systemd units ``init --with-units``
writes (``stagectl-alert@.service``): a unit that failed, however it failed (a command
that could not judge, a missing executable, a timeout, run-live restarting), reaches the
channels of the risk guard config's ``notify`` section.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stagectl.cli._common import JsonOpt, cli_context, config_option, print_json, print_lines
from stagectl.errors import EXIT_CHECK_FAILED, InputError

if TYPE_CHECKING:
    from stagectl.notify import NotifyResult

app = typer.Typer(
    help="Tell the notify channels. Example: stagectl notify unit-failed "
    "stagectl-risk-guard.service",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

# a systemd unit name: letters, digits and : - _ . \ @ (systemd's own set), at most 256
_UNIT = re.compile(r"[A-Za-z0-9:_.\\@-]{1,256}")


@app.callback()
def notify() -> None:
    """Tell the notify channels. Example: stagectl notify unit-failed stagectl-weekly.service"""


@app.command("unit-failed")
def unit_failed(
    ctx: typer.Context,
    unit: Annotated[
        str,
        typer.Argument(
            help="The systemd unit that failed (%i of stagectl-alert@.service).",
            metavar="UNIT",
            show_default=False,
        ),
    ],
    config: Annotated[Path | None, config_option("risk_guard_alt_ensemble.yaml")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Tell every channel of the risk guard config's notify section that a stagectl
    systemd unit failed: the unit, how it ended (systemd's MONITOR_SERVICE_RESULT and
    MONITOR_EXIT_STATUS, when set) and the journal command. Run by
    stagectl-alert@.service, the OnFailure= handler of the units init --with-units writes.

    Prints each channel's answer. Exit 0 when a channel took the alert; 1 when none did
    (no credentials, or a failure); 2 on a bad unit name or when the config's notify
    section does not load.

    Example: stagectl notify unit-failed stagectl-risk-guard.service --json
    """
    from stagectl.services.guard import unit_failed as service

    if not _UNIT.fullmatch(unit):
        raise InputError(f"{unit[:80]!r} is not a systemd unit name", where="UNIT")
    request = service.UnitFailedRequest(
        unit,
        result=os.environ.get("MONITOR_SERVICE_RESULT") or None,
        exit_status=os.environ.get("MONITOR_EXIT_STATUS") or None,
        config=config,
    )
    result = service.run(request, home=cli_context(ctx).home)
    if json_output:
        print_json(result.to_dict())
    else:
        print_lines([f"{unit} failed: {_answer(answer)}" for answer in result.notifications])
    if not result.told:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("test")
def test(
    ctx: typer.Context,
    config: Annotated[Path | None, config_option("risk_guard_alt_ensemble.yaml")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Send one test message to every channel of the risk guard config's notify section
    (webhook, apprise URLs, Telegram), so the desk sees each channel work before an alert
    needs it. A channel without its credentials is reported skipped with the reason.

    Prints each channel's answer. Exit 0 when a channel took the message; 1 when none did;
    2 when the config's notify section does not load.

    Example: stagectl notify test --json
    """
    from stagectl.services.guard import unit_failed as service

    result = service.run_test(service.TestMessageRequest(config), home=cli_context(ctx).home)
    if json_output:
        print_json(result.to_dict())
    else:
        print_lines([f"test message: {_answer(answer)}" for answer in result.notifications])
    if not result.told:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _answer(answer: NotifyResult) -> str:
    detail = answer.error or answer.reason
    return f"{answer.channel} {answer.status}" + (f" ({detail})" if detail else "")
