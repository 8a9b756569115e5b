"""``stagectl state``: inspect or copy the state database (docs/state.md).

A fast path: ``state info`` imports only sqlite3 on top of typer.
"""

from __future__ import annotations

from typing import Annotated

import typer

from stagectl.cli._common import JsonOpt, cli_context, print_json, print_lines, print_table

app = typer.Typer(
    help="Inspect or copy the state database (SQLite or PostgreSQL). "
    "Example: stagectl state info --json",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def state() -> None:
    """Inspect or copy the state database (SQLite or PostgreSQL).

    Example: stagectl state info --json
    """


@app.command("info")
def state_info(
    ctx: typer.Context,
    json_output: JsonOpt = False,
) -> None:
    """Show the state database: path (a file or a PostgreSQL URL), backend and server
    version, size, schema version (applied, latest, pending
    migrations), rows per table and the latest runs (paper and live) with their equity
    snapshots and fills. Changes nothing.

    Exit 0; 2 when there is no database (run `stagectl init`) or the file is not a
    SQLite database; 3 when it stays locked past the busy timeout
    (STAGECTL_BUSY_TIMEOUT_MS, default 5000) or the PostgreSQL server cannot be reached.

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
            f"backend: {result.backend} {result.server_version}",
            f"size: {result.size_bytes} bytes"
            + (
                " (the database on the server)"
                if result.backend == "postgresql"
                else f" (+ {result.wal_size_bytes} bytes WAL), journal mode {result.journal_mode}"
            ),
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


@app.command("copy")
def state_copy(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="The state to copy: a SQLite file or a postgresql:// URL.")
    ],
    destination: Annotated[
        str,
        typer.Argument(
            help="Where to copy it: a new SQLite file or an empty PostgreSQL database's URL."
        ),
    ],
    json_output: JsonOpt = False,
) -> None:
    """Copy a desk's state between SQLite and PostgreSQL (either way), verified row for
    row: each table's row count and digest must match before the copy commits. The source
    must be at the latest schema; a destination holding any desk data is refused.
    Passwords come from PGPASSWORD, ~/.pgpass or STAGECTL_STATE_PASSWORD_FILE, never
    from the URL.

    Exit 0 copied and verified; 1 a table did not verify (nothing was written); 2 bad
    input, a non-empty destination or a source behind its schema; 3 a server cannot be
    reached or a database stays locked.

    Example: stagectl state copy state/stagectl.db postgresql://desk@db.internal/desk
    """
    from stagectl.config.state_url import parse_state_location
    from stagectl.services.home import state_copy as service

    request = service.StateCopyRequest(
        parse_state_location(source), parse_state_location(destination)
    )
    result = service.run(request, home=cli_context(ctx).home)
    if json_output:
        print_json(result.to_dict())
        return
    print_lines([f"copied {result.source} -> {result.destination}: {result.rows} rows, verified"])
    print_table(
        None,
        ("table", "rows", "digest"),
        [(t.table, t.rows, t.digest[:16]) for t in result.tables],
    )
