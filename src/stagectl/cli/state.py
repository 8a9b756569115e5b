"""``stagectl state``: inspect the SQLite state database (docs/state.md).

A fast path: ``state info`` imports only sqlite3 on top of typer.
"""

from __future__ import annotations

import typer

from stagectl.cli._common import JsonOpt, cli_context, print_json, print_lines, print_table

app = typer.Typer(
    help="Inspect the SQLite state database. Example: stagectl state info --json",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def state() -> None:
    """Inspect the SQLite state database. Example: stagectl state info --json"""


@app.command("info")
def state_info(
    ctx: typer.Context,
    json_output: JsonOpt = False,
) -> None:
    """Show the state database: path, size, schema version (applied, latest, pending
    migrations), rows per table and the latest runs (paper and live) with their equity
    snapshots and fills. Changes nothing.

    Exit 0; 2 when there is no database (run `stagectl init`) or the file is not a
    SQLite database; 3 when it stays locked past the busy timeout
    (STAGECTL_BUSY_TIMEOUT_MS, default 5000).

    Example: stagectl state info --json
    """
    from stagectl.services.home import state_info as service

    result = service.run(service.StateInfoRequest(), home=cli_context(ctx).home)
    if json_output:
        print_json(result.to_dict())
        return
    print_lines(
        [
            f"path: {result.path}",
            f"size: {result.size_bytes} bytes (+ {result.wal_size_bytes} bytes WAL), "
            f"journal mode {result.journal_mode}",
            f"schema version: {result.schema_version} of {result.latest_version} ({result.status})",
        ]
        + [f"  pending: {name}" for name in result.pending_migrations]
        + [f"  unknown: {name}" for name in result.unknown_migrations]
    )
    if result.row_counts:
        print_table(None, ("table", "rows"), sorted(result.row_counts.items()))
    if result.runs:
        print_table(
            "runs (latest first)",
            ("run", "kind", "mode", "status", "snapshots", "last snapshot", "fills"),
            [
                (s.run.run_id, s.run.kind, s.run.mode, s.run.status, s.snapshots,
                 s.last_snapshot or "-", s.fills)
                for s in result.runs
            ],
        )  # fmt: skip
