"""``stagectl schedule``: the scheduled jobs and their last runs (``services.home.schedule``).

``schedule status`` is a fast path: prometheus-client's parser and croniter on top of
typer, no pandas.
"""

from __future__ import annotations

from typing import Any

import typer

from stagectl.cli._common import JsonOpt, cli_context, print_json, print_lines, print_table
from stagectl.errors import EXIT_CHECK_FAILED

app = typer.Typer(
    help="The scheduled jobs. Example: stagectl schedule status --json",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def schedule() -> None:
    """The scheduled jobs. Example: stagectl schedule status --json"""


@app.command("status")
def status(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Every scheduled job (the units and crontab of init --with-units): when it runs
    (UTC), its command, its last run and exit code (from its --metrics-file textfile)
    and when it is next due.

    Exit 0 when no job needs attention ("never run" does not); 1 when a job's last run
    failed (an exit other than 0, or than 1 for the risk guard, whose 1 is its own
    alert), a job is overdue (two due times passed since its last run, plus 30 minutes)
    or its textfile cannot be read: a desk can page on it.

    Example: stagectl schedule status --json
    """
    from stagectl.services.home import schedule as service

    result = service.run(service.ScheduleStatusRequest(), home=cli_context(ctx).home)
    document = result.to_dict()
    if json_output:
        print_json(document)
    else:
        _print_human(document)
    if result.attention:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _print_human(document: dict[str, Any]) -> None:
    jobs = document["jobs"]
    print_table(
        f"scheduled jobs (UTC) at {document['now']}",
        ["job", "cron (UTC)", "last run", "exit", "next due", "status"],
        [
            (
                j["name"],
                j["cron_utc"],
                j["last_run"] or "-",
                "-" if j["exit_code"] is None else j["exit_code"],
                j["next_due"],
                j["status"]
                + (f": {j['reason']}" if j["status"] not in ("ok", "never run") else ""),
            )
            for j in jobs
        ],
    )
    lines = ["", *(f"{j['name']}: {j['command']}" for j in jobs)]
    attention = document["attention"]
    lines.append(
        f"needs attention: {', '.join(attention)}" if attention else "no job needs attention"
    )
    print_lines(lines)
