"""``stagectl init``: create a stagectl home (docs/state.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stagectl.cli._common import JsonOpt, cli_context, info, print_json, print_lines

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command("init")
def init(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="The home to create [default: --home / STAGECTL_HOME / the current directory].",
            metavar="DIR",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Overwrite config files already in the home."),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Create a stagectl home: config/ (the default configs), state/stagectl.db, artifacts/
    (and stage3.yaml's artifacts.dir, artifacts/stage3), reports/, logs/.

    Safe to run again: existing config files are kept (and listed) unless --force, and
    the state database is only migrated to the latest schema. Exit 0 on success; 2 when a
    path cannot be created or the state file is not a database; 3 when it is locked.

    Example: stagectl init ~/desk --json
    """
    from stagectl.config.home import Home
    from stagectl.services.home import init as service

    home = cli_context(ctx).home
    if directory is not None:
        home = Home(root=directory.expanduser().resolve(), state_override=home.state_override)
    result = service.run(service.InitRequest(force=force), home=home)
    if json_output:
        print_json(result.to_dict())
        return
    for name in result.configs_kept:
        info(f"kept config/{name} (exists; --force overwrites it)")
    for note in result.notes:
        info(f"note: {note}")
    lines = [f"stagectl home: {result.home}"]
    lines += [f"  created {name}/" for name in result.created_dirs]
    lines += [f"  wrote config/{name}" for name in result.configs_written]
    lines += [f"  overwrote config/{name}" for name in result.configs_overwritten]
    lines += [f"  kept config/{name}" for name in result.configs_kept]
    applied = len(result.migrations_applied)
    lines.append(
        f"  state: {result.state_path} (schema version {result.schema_version}"
        + (f", {applied} migration(s) applied)" if applied else ", up to date)")
    )
    print_lines(lines)
