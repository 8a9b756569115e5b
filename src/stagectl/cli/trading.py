"""``stagectl trading``: show or set the trading state (ACTIVE, REDUCE_ONLY, HALTED) of the
paper and the live mode.

``trading status`` is a fast path: sqlite3 only on top of typer.
"""

from __future__ import annotations

from typing import Annotated

import typer

from stagectl.cli._common import JsonOpt, cli_context, info, print_json, print_lines, print_table
from stagectl.domain.types import Mode

app = typer.Typer(
    help="Show or set the trading state. Example: stagectl trading status --json",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

PaperOpt = Annotated[bool, typer.Option("--paper", help="The paper mode's trading state.")]
LiveOpt = Annotated[bool, typer.Option("--live", help="The live mode's trading state.")]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="Why; recorded in the history.", metavar="TEXT")
]


@app.callback()
def trading() -> None:
    """Show or set the trading state. Example: stagectl trading status --json"""


@app.command("status")
def status(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Show the trading state of the paper and the live mode, who set each, why, and the
    latest changes. Changes nothing.

    A mode whose state was never set is ACTIVE. Exit 0; 2 not a state database; 3
    locked past the busy timeout.

    Example: stagectl trading status --json
    """
    from stagectl.services.trading import flags as service

    home = cli_context(ctx).home
    path = home.state_path
    result = service.run_status(service.TradingStatusRequest(), home=home)
    if json_output:
        print_json(result.to_dict())
        return
    if not result.database_exists:
        info(f"no state database at {path}: the trading state was never set")
    print_table(
        "trading state",
        ("mode", "state", "source", "updated", "reason"),
        [
            (mode, flag.state, flag.source, flag.updated_at or "never", flag.reason)
            for mode, flag in result.states.items()
        ],
    )
    if result.history:
        print_table(
            "history (newest first)",
            ("ts", "mode", "from", "to", "source", "reason"),
            [
                (c.ts, c.mode or "paper+live", c.from_state, c.to_state, c.source, c.reason)
                for c in result.history
            ],
        )


def _modes(paper: bool, live: bool, *, default: tuple[Mode, ...]) -> tuple[Mode, ...]:
    """The modes named by --paper/--live, else the command's default."""
    chosen: list[Mode] = []
    if paper:
        chosen.append("paper")
    if live:
        chosen.append("live")
    return tuple(chosen) or default


def _set(
    ctx: typer.Context,
    state: str,
    reason: str | None,
    modes: tuple[Mode, ...],
    as_json: bool,
) -> None:
    from stagectl.domain.types import TradingState
    from stagectl.services.trading import flags as service

    home = cli_context(ctx).home
    path = home.state_path
    text = reason if reason is not None else "set by an operator (stagectl trading)"
    request = service.TradingSetRequest(TradingState(state), modes=modes, reason=text)
    result = service.run_set(request, home=home)
    if as_json:
        print_json(result.to_dict())
        return
    info(f"state database: {path}")
    print_lines(
        [
            f"{change.mode}: trading state {change.from_state.value} -> {state}: "
            f"{'changed' if result.changed(change) else 'unchanged (recorded)'}; reason: {text}"
            for change in result.changes
        ]
    )


@app.command("enable")
def enable(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    paper: PaperOpt = False,
    live: LiveOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Set a mode's trading state to ACTIVE: new orders may be sent again. Re-enables the
    paper mode unless --live is given (both with --paper --live).

    Exit 0; 2 bad input; 3 the state database is locked.

    Example: stagectl trading enable --live --reason "post-mortem done, restart criteria met"
    """
    _set(ctx, "ACTIVE", reason, _modes(paper, live, default=("paper",)), json_output)


@app.command("disable")
def disable(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    paper: PaperOpt = False,
    live: LiveOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Set the trading state to HALTED: no new order is sent (the kill switch; positions
    stay as they are: use `stagectl emergency-close` to close them). Halts both the paper
    and the live mode unless --paper or --live names one.

    Exit 0; 2 bad input; 3 the state database is locked.

    Example: stagectl trading disable --reason "exchange incident"
    """
    _set(ctx, "HALTED", reason, _modes(paper, live, default=("paper", "live")), json_output)


@app.command("reduce-only")
def reduce_only(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    paper: PaperOpt = False,
    live: LiveOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Set the trading state to REDUCE_ONLY: only orders that reduce a position are sent.
    Applies to both the paper and the live mode unless --paper or --live names one.

    Exit 0; 2 bad input; 3 the state database is locked.

    Example: stagectl trading reduce-only --live --reason "margin utilisation above 20 %"
    """
    _set(ctx, "REDUCE_ONLY", reason, _modes(paper, live, default=("paper", "live")), json_output)
