"""Options and output shared by every command.

Only typer and the standard library are imported at module level: this
module is on the path of ``stagectl --help`` and shell completion.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from stagectl.config.home import Home

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout and nothing else.")
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Write the signed report to FILE (atomically).", metavar="FILE"),
]
UnsignedOpt = Annotated[
    bool,
    typer.Option("--unsigned", help="With --out and no key configured: write an unsigned report."),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would be done; change nothing.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def config_option(default_name: str) -> Any:
    """A ``-c/--config`` option whose help names the file it defaults to."""
    return typer.Option(
        "--config",
        "-c",
        help=f"Config file [default: config/{default_name} in the home, else the packaged one].",
        metavar="FILE",
        exists=False,
        dir_okay=False,
    )


@dataclass(frozen=True)
class CliContext:
    """What the root command's global options decided, for every subcommand."""

    home: Home
    debug: bool


def cli_context(ctx: typer.Context) -> CliContext:
    """The root context object, or one resolved from the environment."""
    root = ctx.find_root()
    obj = root.obj
    if isinstance(obj, CliContext):
        return obj
    return CliContext(home=Home.resolve(), debug=False)


def to_jsonable(value: Any) -> Any:
    """Turn models, dates, Decimals, numpy scalars and NaN into JSON values.

    NaN and infinities become ``null``: JSON has no spelling for them.
    """
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="python"))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalar
        return to_jsonable(value.item())
    if hasattr(value, "tolist"):  # numpy array
        return to_jsonable(value.tolist())
    return str(value)


def print_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(document), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    """A progress or context line: stderr, so stdout stays clean for data."""
    typer.echo(message, err=True)


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    styles: Callable[[Sequence[Any]], str | None] | None = None,
) -> None:
    """A table on stdout: rich on a terminal, plain aligned text otherwise."""
    cells = [[_cell(v) for v in row] for row in rows]
    if stdout_is_tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for raw, row in zip(rows, cells, strict=True):
            table.add_row(*row, style=styles(raw) if styles else None)
        Console().print(table)
        return
    if title:
        typer.echo(title)
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.6g}"
    return str(to_jsonable(value))


def print_lines(lines: Sequence[str]) -> None:
    for line in lines:
        typer.echo(line)
