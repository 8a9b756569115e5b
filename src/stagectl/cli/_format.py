"""How human output looks: the one place for every formatting rule.

- A table is rich on a terminal and plain aligned text otherwise (``TTY_COMPATIBLE=1``
  or ``0``, rich's own switch, forces either). On a terminal it fits the width: its key
  columns (the first ``keys``) are never cut, other columns wrap at spaces, and when
  even that does not fit, the columns that do not fit follow each row on an indented
  ``name: value`` line. No value is ever cut.
- A row that reads CRITICAL, FAIL, BREACH, HIGH, WARN, ... is coloured on a terminal;
  ``NO_COLOR`` and piped output stay plain.
- Times are ISO-8601 UTC with a Z (``2026-04-01T00:00Z``; seconds when not zero),
  numbers are rounded for people (4 significant digits, money ``4,360.79``), booleans
  read ``yes``/``no``. JSON output never goes through here: it keeps full precision.
- Progress goes to stderr, and only to a terminal: a rich bar with done/total and an
  ETA (a command may also ask for a plain line per 10 % elsewhere).

Only the standard library and typer are imported at module level (this module is on
the ``--help`` path); rich is imported where a terminal needs it.
"""

from __future__ import annotations

import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

import typer

from stagectl.domain.jsonable import to_jsonable

ProgressUpdate = Callable[[int, int], None]
"""A progress callback: ``update(done, total)``."""

SEVERITY_STYLES: dict[str, str] = {
    "CRITICAL": "bold red",
    "FAIL": "bold red",
    "FAILED": "bold red",
    "BREACH": "bold red",
    "BREACHED": "bold red",
    "HIGH": "red",
    "WARN": "yellow",
    "WARNING": "yellow",
    "MEDIUM": "yellow",
    "PROBLEM": "yellow",
    "PROBLEMS": "yellow",
}
"""A row with a cell that is one of these words (or one of its two words) is styled; the
first listed wins."""

_SEVERITY_RANK = {word: rank for rank, word in enumerate(SEVERITY_STYLES)}
_ISO_TIME = re.compile(
    r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d)(?::(\d\d)(?:\.\d+)?)?(?:Z|\+00:00|\+0000)?"
)
_UNBROKEN = re.compile(r"\s+(?!%)")
"""Where a cell may wrap: at spaces, but not before a percent sign."""
_COLUMN_GAP = 2
"""Characters between two columns of a terminal table (the column rule and a space)."""


# --- where output goes ------------------------------------------------------------------


def stdout_is_tty() -> bool:
    """Whether stdout gets rich output: a terminal, unless ``TTY_COMPATIBLE`` says
    otherwise (``1`` forces rich, ``0`` forces plain, as rich itself reads it)."""
    return _is_tty(sys.stdout)


def stderr_is_tty() -> bool:
    """Whether stderr gets rich progress; ``TTY_COMPATIBLE`` as for stdout."""
    return _is_tty(sys.stderr)


def _is_tty(stream: TextIO) -> bool:
    forced = os.environ.get("TTY_COMPATIBLE", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return stream.isatty()


# --- values -------------------------------------------------------------------------------


def fmt_time(value: datetime) -> str:
    """``2026-04-01T00:00Z``, with seconds when they are not zero; naive means UTC."""
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if moment.second == 0:
        return moment.strftime("%Y-%m-%dT%H:%MZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_number(value: float) -> str:
    """A float for people: 4 significant digits, thousands grouped with 2 decimals from
    1000 on (``0.9064``, ``15.57``, ``4,360.79``); not finite -> ``-``."""
    if not math.isfinite(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.2f}"
    text = f"{value:.4g}"
    return "0" if text == "-0" else text


def fmt_pct(fraction: float | None) -> str:
    """A fraction as a percentage with two decimals (0.1234 -> ``12.34 %``); None -> ``-``."""
    return "-" if fraction is None else f"{fraction * 100:.2f} %"


def fmt_fixed(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals (never ``-0.000``); None -> ``-``."""
    return "-" if value is None else f"{round(value, digits) + 0.0:.{digits}f}"


def human(value: Any) -> str:
    """Any value as human output shows it (the module docstring's rules)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return fmt_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return fmt_number(value)
    if isinstance(value, Decimal):
        return fmt_number(float(value)) if value.is_finite() else "-"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _iso_text(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={human(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(human(v) for v in value) or "-"
    converted = to_jsonable(value)
    return str(converted) if converted is value else human(converted)


def _iso_text(text: str) -> str:
    """A time written as text (``2026-04-01 00:00:00+00:00``) in the one spelling."""
    match = _ISO_TIME.fullmatch(text)
    if match is None:
        return text
    day, minute, second = match.groups()
    return f"{day}T{minute}{':' + second if second and second != '00' else ''}Z"


def print_fields(fields: Mapping[str, Any]) -> None:
    """``key: value`` lines, each value through :func:`human`."""
    for key, value in fields.items():
        typer.echo(f"{key}: {human(value)}")


def print_lines(lines: Sequence[str]) -> None:
    for line in lines:
        typer.echo(line)


# --- tables -------------------------------------------------------------------------------


def severity_style(cells: Sequence[str]) -> str | None:
    """The style of a row with a cell that names a severity (the worst one), else None.

    A cell names one when it is the word, or one of two words (``FLATTEN_ALL CRITICAL``);
    longer text such as a message is not read."""
    words = [w for c in cells if len(c.split()) <= 2 for w in c.split()]
    ranks = [_SEVERITY_RANK[w] for w in words if w in _SEVERITY_RANK]
    return SEVERITY_STYLES[list(SEVERITY_STYLES)[min(ranks)]] if ranks else None


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    keys: int = 1,
    limit: int | None = None,
) -> None:
    """A table on stdout: rich on a terminal, plain aligned text otherwise.

    ``keys``: how many leading columns identify a row; on a terminal they are never
    cut. ``limit``: show the first ``limit`` rows and say how many more there are. A row
    naming a severity is coloured (:func:`severity_style`).
    """
    cells = [[human(v) for v in row] for row in rows]
    shown = cells if limit is None or limit <= 0 else cells[:limit]
    if stdout_is_tty():
        _rich_table(title, list(columns), shown, keys=keys)
    else:
        _plain_table(title, list(columns), shown)
    if len(shown) < len(cells):
        typer.echo(
            f"... {len(cells) - len(shown)} more row(s) not shown "
            "(--limit 0 shows all; --json has every row)"
        )


def _plain_table(title: str | None, columns: list[str], cells: list[list[str]]) -> None:
    if title:
        typer.echo(title)
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _rich_table(
    title: str | None, columns: list[str], cells: list[list[str]], *, keys: int
) -> None:
    from rich.console import Console

    console = Console()
    kept = fit_columns(columns, cells, keys=keys, width=console.width)
    if len(kept) == len(columns):
        widths = grid_widths(columns, cells, keys=keys, width=console.width)
        _rich_grid(console, title, columns, cells, keys=keys, widths=widths)
    else:
        _rich_records(console, title, columns, cells, kept)


def _rich_grid(
    console: Any,
    title: str | None,
    columns: list[str],
    cells: list[list[str]],
    *,
    keys: int,
    widths: list[int] | None,
) -> None:
    """The whole table, key columns unwrapped, the others wrapped at spaces if need be
    (``widths``: each column's, when the natural layout is too wide)."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        title_justify="left",
    )
    for index, column in enumerate(columns):
        width = None if widths is None else widths[index]
        table.add_column(column, width=width, no_wrap=index < keys, overflow="fold")
    for row in cells:
        table.add_row(*row, style=severity_style(row))
    console.print(table)


def _rich_records(
    console: Any, title: str | None, columns: list[str], cells: list[list[str]], kept: list[int]
) -> None:
    """A table too wide for the terminal: the kept columns on one line, the others as
    ``name: value`` on an indented line beneath each row, so no value is cut."""
    from rich.text import Text

    widths = {i: max([len(columns[i])] + [len(r[i]) for r in cells]) for i in kept}
    gap = " " * _COLUMN_GAP
    if title:
        console.print(Text(title, style="italic"))
    header = gap.join(columns[i].ljust(widths[i]) for i in kept).rstrip()
    console.print(Text(header, style="bold"))
    console.print(Text("─" * len(header)))
    rest = [i for i in range(len(columns)) if i not in kept]
    for row in cells:
        style = severity_style(row) or ""
        console.print(Text(gap.join(row[i].ljust(widths[i]) for i in kept).rstrip(), style))
        items = [f"{columns[i]}: {row[i]}" for i in rest]
        for line in wrap_items(items, console.width, indent="    ", gap=gap):
            console.print(Text(line, style=style), soft_wrap=True)


def wrap_items(items: Sequence[str], width: int, *, indent: str, gap: str) -> list[str]:
    """``items`` on indented lines of at most ``width``: each item whole on one line where
    it fits, else wrapped at its own spaces (a word longer than a line is left whole)."""
    lines: list[str] = []
    current = ""
    for item in items:
        candidate = f"{current}{gap}{item}" if current else indent + item
        if len(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        if len(indent + item) <= width:
            current = indent + item
            continue
        wrapped = textwrap.wrap(
            item,
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        lines.extend(wrapped[:-1])
        current = wrapped[-1]
    if current:
        lines.append(current)
    return lines


def fit_columns(
    columns: Sequence[str], cells: Sequence[Sequence[str]], *, keys: int, width: int
) -> list[int]:
    """The columns a terminal ``width`` wide shows in one row.

    All of them when each column's longest word fits (the longer values wrap at
    spaces); else the key columns and as many of the next columns as fit whole.
    """
    natural, floor = _natural_and_floor(columns, cells, keys)
    if sum(floor) + _COLUMN_GAP * (len(columns) - 1) <= width:
        return list(range(len(columns)))
    kept = list(range(min(keys, len(columns))))
    used = sum(natural[i] for i in kept) + _COLUMN_GAP * (len(kept) - 1)
    for i in range(len(kept), len(columns)):
        if used + _COLUMN_GAP + natural[i] > width:
            break
        kept.append(i)
        used += _COLUMN_GAP + natural[i]
    return kept


def grid_widths(
    columns: Sequence[str], cells: Sequence[Sequence[str]], *, keys: int, width: int
) -> list[int] | None:
    """Column widths for a table whose longest words fit ``width`` but whose longest
    cells do not: keys and single words whole, the room left shared in proportion to
    how much each column wraps. None when every cell fits as it is."""
    natural, floor = _natural_and_floor(columns, cells, keys)
    gaps = _COLUMN_GAP * (len(columns) - 1)
    if sum(natural) + gaps <= width:
        return None
    spare = max(width - gaps - sum(floor), 0)
    wanted = sum(n - f for n, f in zip(natural, floor, strict=True)) or 1
    return [f + (n - f) * spare // wanted for n, f in zip(natural, floor, strict=True)]


def _natural_and_floor(
    columns: Sequence[str], cells: Sequence[Sequence[str]], keys: int
) -> tuple[list[int], list[int]]:
    """Each column's natural width (its longest cell or header) and its floor: the
    narrowest it may wrap to (a key column: its natural width; else its longest word)."""
    natural = [max([len(columns[i])] + [len(r[i]) for r in cells]) for i in range(len(columns))]
    floor = [
        natural[i] if i < keys else max(_longest_word(columns[i]), *_words(cells, i))
        for i in range(len(columns))
    ]
    return natural, floor


def _words(cells: Sequence[Sequence[str]], index: int) -> list[int]:
    return [_longest_word(row[index]) for row in cells] or [1]


def _longest_word(text: str) -> int:
    """The longest run a cell should keep on one line: a word, or a number with its
    unit sign (``-1.87 %``)."""
    return max((len(word) for word in _UNBROKEN.split(text.strip()) if word), default=1)


# --- progress -----------------------------------------------------------------------------


def progress_columns() -> tuple[Any, ...]:
    """The columns of every progress bar: label, bar, done/total, percent, ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )


@contextmanager
def progress(label: str, *, plain_lines: bool = False) -> Iterator[ProgressUpdate]:
    """Progress on stderr as ``update(done, total)``: a rich bar with done/total and an
    ETA on a terminal (gone when done); elsewhere nothing, or with ``plain_lines`` a
    ``label: N %`` line per 10 %."""
    if stderr_is_tty():
        from rich.console import Console
        from rich.progress import Progress

        columns = progress_columns()
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, total=total, completed=done)

            yield update
        return
    if not plain_lines:
        yield lambda done, total: None
        return
    shown = {-1}

    def plain(done: int, total: int) -> None:
        step = min(int(10 * done / total), 10) if total else 10
        if step not in shown:
            shown.add(step)
            typer.echo(f"{label}: {step * 10} %", err=True)

    yield plain
