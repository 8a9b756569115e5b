"""``stagectl init``: create a stagectl home (docs/state.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stagectl.cli._common import JsonOpt, cli_context, info, print_json, print_lines

if TYPE_CHECKING:
    from stagectl.services.home.init import InitResult

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
    with_units: Annotated[
        bool,
        typer.Option(
            "--with-units",
            help="Also write the systemd units and the crontab that run this home to "
            "DIR/deploy/ (with this stagectl's path), and DIR/stagectl.env (mode 0600) "
            "when missing; print how to install them.",
        ),
    ] = False,
    mail_to: Annotated[
        str | None,
        typer.Option(
            "--mail-to",
            help="With --with-units: the crontab's MAILTO, who hears of a scheduled "
            "command that could not judge [default: the current user].",
            metavar="ADDRESS",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a stagectl home: config/ (the default configs), state/stagectl.db, artifacts/
    (and stage3.yaml's artifacts.dir, artifacts/stage3), reports/, logs/.

    Safe to run again: existing config files are kept (and listed) unless --force, and
    the state database is only migrated to the latest schema. --with-units rewrites
    DIR/deploy/ every time and keeps DIR/stagectl.env. Exit 0 on success; 2 when a path
    cannot be created, the state file is not a database or (--with-units) stagectl.env is
    readable by group or others; 3 when the state is locked.

    Example: stagectl init ~/desk --json; stagectl init /srv/stagectl --with-units
    """
    from stagectl.config.home import Home
    from stagectl.services.home import init as service

    home = cli_context(ctx).home
    if directory is not None:
        home = Home(root=directory.expanduser().resolve(), state_override=home.state_override)
    request = service.InitRequest(force=force, with_units=with_units, mail_to=mail_to)
    result = service.run(request, home=home)
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
    lines += _units_lines(result)
    print_lines(lines)


def _units_lines(result: InitResult) -> list[str]:
    """What --with-units wrote and the commands that install it (docs/operations.md)."""
    units = result.units
    if units is None:
        return []
    lines = [f"  wrote {name}" for name in units.written]
    kept = "created (mode 0600)" if units.env_created else "kept"
    lines.append(f"  {kept} {units.env_file}: put the desk's credentials there")
    lines.append("install as systemd user units (docs/operations.md, 'Run it as a service'):")
    lines += [f"  {command}" for command in units.systemd]
    lines.append("or as this user's crontab (replaces it; 'Run it from cron'):")
    lines += [f"  {command}" for command in units.cron]
    return lines
