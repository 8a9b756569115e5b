"""Options and output shared by every command.

Only typer and the standard library are imported at module level: this
module is on the path of ``stagectl --help`` and shell completion.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer._click import Context, Parameter
from typer._click.types import FloatRange, IntRange

from stagectl.cli._format import fmt_fixed as fmt_fixed  # the formatting rules, re-exported
from stagectl.cli._format import fmt_pct as fmt_pct
from stagectl.cli._format import print_lines as print_lines
from stagectl.cli._format import print_table as print_table
from stagectl.cli._format import stdout_is_tty as stdout_is_tty
from stagectl.config.home import Home
from stagectl.config.limits import MAX_DURATION_DAYS
from stagectl.domain.jsonable import to_jsonable as to_jsonable  # one spelling, re-exported
from stagectl.errors import InputError

if TYPE_CHECKING:
    from stagectl.domain.types import Mode
    from stagectl.reports.page import Page

# The bounds of numeric options (docs/cli.md, "Option bounds"); durations, money and
# counts share config.limits' bounds.
MAX_COST_MULTIPLIER = 100.0
MAX_OUTLIER_Z = 1_000.0
MAX_K = 100.0
MAX_FOLDS = 50
MAX_PBO_PARTITIONS = 20
"""CSCV builds all C(S, S/2) splits: 184,756 at 20."""
MAX_SEED = 2**32 - 1
MAX_RESAMPLES = 100_000
MAX_LIST_LIMIT = 100_000
MAX_WORKERS = 512
"""Local Dask worker processes; a bigger sweep belongs on a cluster (--scheduler)."""
MAX_ROW_ID = 2**63 - 1
"""SQLite's largest INTEGER: a row id beyond it cannot exist."""
_MAX_INT_CHARS = 20


class BoundedFloat(FloatRange):
    """A number option within [low, high] (``low_open``: above low): every numeric
    option of stagectl takes one. Click's range lets ``nan`` through (every comparison
    with it is false), so it is refused here; ``inf`` and ``1e308`` fail the range. The
    error names the option and exits 2."""

    name = "float"

    def __init__(self, low: float, high: float, *, low_open: bool = False) -> None:
        # Whole bounds as ints, so help and errors show 1000000000000, not 1000000000000.0.
        super().__init__(min=_plain(low), max=_plain(high), min_open=low_open)

    def convert(self, value: Any, param: Parameter | None, ctx: Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


class BoundedInt(IntRange):
    """A whole-number option within [low, high]; a literal too long to be in range is
    refused before Python converts it (int() of thousands of digits raises)."""

    name = "integer"

    def __init__(self, low: int, high: int) -> None:
        super().__init__(min=low, max=high)

    def convert(self, value: Any, param: Parameter | None, ctx: Context | None) -> Any:
        if isinstance(value, str) and len(value.strip()) > _MAX_INT_CHARS:
            shown = f"{value.strip()[:_MAX_INT_CHARS]}..."
            self.fail(f"{shown} is not in the range {self._describe_range()}.", param, ctx)
        return super().convert(value, param, ctx)


def _plain(bound: float) -> float:
    return int(bound) if float(bound).is_integer() else bound


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout and nothing else.")
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Write the signed report to FILE (atomically).", metavar="FILE"),
]
HtmlOpt = Annotated[
    Path | None,
    typer.Option(
        "--html",
        help="Also write a self-contained HTML page with charts (offline; atomically).",
        metavar="FILE",
        dir_okay=False,
    ),
]
UnsignedOpt = Annotated[
    bool,
    typer.Option("--unsigned", help="With --out and no key configured: write an unsigned report."),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would be done; change nothing.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
CostMultiplierOpt = Annotated[
    float,
    typer.Option(
        "--cost-multiplier",
        click_type=BoundedFloat(0, MAX_COST_MULTIPLIER),
        help="Multiply fee and slippage.",
        metavar="X",
    ),
]
CandleDataOpt = Annotated[
    Path | None,
    typer.Option("--data", help="A directory of candle and funding CSV files.", metavar="DIR"),
]
SampleDataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="A directory of candle and funding CSV files instead of the bundled sample.",
        metavar="DIR",
    ),
]
LiveModeOpt = Annotated[
    bool,
    typer.Option(
        "--live/--paper",
        help="Read the runs of the live mode instead of the paper mode [default: --paper].",
    ),
]
RunOpt = Annotated[
    str | None,
    typer.Option(
        "--run",
        "--run-id",
        help="The run to read [default: the run of the mode with the latest equity snapshot].",
        metavar="RUN",
    ),
]
LimitOpt = Annotated[
    int,
    typer.Option(
        "--limit",
        help="Show at most N rows of each long list (0: all; --json always has all).",
        metavar="N",
        click_type=BoundedInt(0, MAX_LIST_LIMIT),
    ),
]
MarketDataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="A directory of candle/funding CSV files [default: the bundled sample].",
        metavar="DIR",
        file_okay=False,
    ),
]


WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        click_type=BoundedInt(1, MAX_WORKERS),
        help="Run the independent pieces on a local Dask cluster of N worker processes "
        "(needs pip install 'stagectl[dist]'); 1: serially in this process.",
        metavar="N",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        envvar="DASK_SCHEDULER_ADDRESS",
        show_envvar=False,
        help="Run the pieces on the existing Dask cluster at tcp://HOST:PORT "
        "[env: DASK_SCHEDULER_ADDRESS].",
        metavar="ADDRESS",
    ),
]


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


StrategyConfigOpt = Annotated[Path | None, config_option("futures_alt_ensemble.yaml")]


@dataclass(frozen=True)
class CliContext:
    """What the root command's global options decided, for every subcommand."""

    home: Home
    debug: bool


def mode_of(live: bool) -> Mode:
    """The mode named by ``--live/--paper``."""
    return "live" if live else "paper"


def cli_context(ctx: typer.Context) -> CliContext:
    """The root context object, or one resolved from the environment."""
    root = ctx.find_root()
    obj = root.obj
    if isinstance(obj, CliContext):
        return obj
    return CliContext(home=Home.resolve(), debug=False)


def print_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(document), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    """A progress or context line: stderr, so stdout stays clean for data."""
    typer.echo(message, err=True)


def publish_envelope(
    home: Home,
    kind: str,
    body: dict[str, Any],
    *,
    inputs: list[Path],
    out: Path | None,
    unsigned: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``publish_report`` (signed when a key is set, written to ``out``, recorded in state).

    The publish service is imported here, not at module level: this module is on
    the ``--help`` fast path. ``now`` defaults to the current UTC time.
    """
    from stagectl.services.publish import publish_report

    return publish_report(
        kind,
        body,
        inputs=inputs,
        out=out,
        unsigned=unsigned,
        home=home,
        now=now if now is not None else datetime.now(UTC),
    )


def show_report(
    envelope: dict[str, Any] | None,
    *,
    json_output: bool,
    out: Path | None,
    render_human: Callable[[], None],
) -> None:
    """Print the envelope (``--json``) or the human view, then say where ``--out`` went."""
    if json_output:
        print_json(envelope)
    else:
        render_human()
    if out is not None:
        info(f"wrote {out}")


def emit_report(
    home: Home,
    kind: str,
    body: dict[str, Any],
    *,
    inputs: list[Path],
    json_output: bool,
    out: Path | None,
    unsigned: bool,
    render_human: Callable[[], None],
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """A report command's output: publish only when ``--json`` or ``--out`` asks for the
    envelope, then :func:`show_report`. Returns the envelope, or None when not published.
    """
    envelope = None
    if json_output or out is not None:
        envelope = publish_envelope(
            home,
            kind,
            body,
            inputs=inputs,
            out=out,
            unsigned=unsigned,
            now=now,
        )
    show_report(envelope, json_output=json_output, out=out, render_human=render_human)
    return envelope


def write_html(html: Path | None, make_page: Callable[[], Page]) -> None:
    """``--html``: build the page and write it atomically, then say where; nothing when
    ``html`` is None. ``make_page`` imports its page builder only when a page is asked
    for (the charts' builders load plotly; stress-lab's page needs none)."""
    if html is None:
        return
    from stagectl.reports.page import write_page

    info(f"wrote {write_page(html, make_page())}")


def quoted(text: str) -> str:
    """A value the user gave, as an error message shows it: stripped, quoted, cut to 40."""
    value = text.strip()
    return repr(value) if len(value) <= 40 else repr(value[:37] + "...")


EARLIEST_DATE = datetime(2009, 1, 1, tzinfo=UTC)
"""No market data, run or fill of a crypto desk is older (Bitcoin's first block: 2009-01-03)."""
LATEST_AHEAD = timedelta(days=1)
"""How far past the wall clock a given time may lie (a date in a time zone ahead of UTC)."""


def parse_utc(
    text: str, *, option: str, end_of_day: bool = False, now: datetime | None = None
) -> datetime:
    """The CLI's one time parser: ``YYYY-MM-DD`` or ISO-8601 as an aware UTC datetime.

    A naive time is UTC and an offset is converted to UTC. With ``end_of_day`` a
    date-only value is the last instant of that day, so ``--end 2025-12-31`` includes
    every bar of it. Every time the CLI takes is a time of data or of a run, so it must
    lie between 2009-01-01 and a day past ``now`` (default: the wall clock).
    """
    value = text.strip()
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
            moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InputError(
            f"{quoted(text)} is not a date (YYYY-MM-DD) or an ISO-8601 time "
            "(e.g. 2026-05-16T12:00Z)",
            where=option,
        ) from None
    latest = (now or datetime.now(UTC)) + LATEST_AHEAD
    if not EARLIEST_DATE <= moment <= latest:
        raise InputError(
            f"{quoted(text)} is outside the plausible range: give a time from "
            f"{EARLIEST_DATE:%Y-%m-%d} to {latest:%Y-%m-%d} (a day past now)",
            where=option,
        )
    if len(value) == 10 and end_of_day:
        moment += timedelta(days=1) - timedelta(microseconds=1)
    return moment


def parse_now(text: str | None) -> datetime | None:
    """``--now``: :func:`parse_utc`, or None when not given."""
    return None if text is None else parse_utc(text, option="--now")


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw])")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DURATION = timedelta(days=MAX_DURATION_DAYS)
"""10 years: the longest duration any option takes (config durations share the bound)."""


def parse_duration(text: str, *, option: str, allow_zero: bool = False) -> timedelta:
    """The CLI's one duration parser: a number and one of s, m, h, d, w (``90s``, ``15m``,
    ``24h``, ``30d``, ``2w``); longer than 10 years, or zero (unless allowed), is refused."""
    shown = quoted(text)
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InputError(f"{shown} is not a duration such as 90m, 24h, 30d or 2w", where=option)
    amount, unit = float(match.group(1)), _DURATION_UNITS[match.group(2)]
    try:
        value = timedelta(**{unit: amount})
    except OverflowError:
        value = MAX_DURATION * 2
    if value > MAX_DURATION:
        raise InputError(
            f"{shown} is too long: at most 10 years ({MAX_DURATION.days}d)", where=option
        )
    if value == timedelta(0) and not allow_zero:
        raise InputError(f"the duration must be > 0, got {shown}", where=option)
    return value
