"""``stagectl trading``: show or set the trading state (ACTIVE, REDUCE_ONLY, HALTED).

``trading status`` is a fast path: sqlite3 only on top of typer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from stagectl.cli._common import JsonOpt, cli_context, info, print_json, print_lines, print_table

app = typer.Typer(
    help="Show or set the trading state. Example: stagectl trading status --json",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

PaperOpt = Annotated[
    bool,
    typer.Option(
        "--paper",
        help="The paper state database (HOME/state/paper.db, as run-live --paper uses) "
        "instead of the home's state database.",
    ),
]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="Why; recorded in the history.", metavar="TEXT")
]


@app.callback()
def trading() -> None:
    """Show or set the trading state. Example: stagectl trading status --json"""


@app.command("status")
def status(ctx: typer.Context, paper: PaperOpt = False, json_output: JsonOpt = False) -> None:
    """Show the trading state, who set it, why, and the latest changes. Changes nothing.

    A database where the state was never set is ACTIVE. Exit 0; 2 not a state
    database; 3 locked past the busy timeout.

    Example: stagectl trading status --json
    """
    from stagectl.services.trading import flags as service

    path = service.state_path_for(cli_context(ctx).home, paper=paper)
    result = service.status(path)
    if json_output:
        print_json(result.to_dict())
        return
    if not result.database_exists:
        info(f"no state database at {path}: the trading state was never set")
    current = result.current
    print_lines(
        [
            f"trading state: {current.state.value}",
            f"reason: {current.reason} (source {current.source}, "
            f"updated {current.updated_at.isoformat() if current.updated_at else 'never'})",
        ]
    )
    if result.history:
        print_table(
            "history (newest first)",
            ("ts", "from", "to", "source", "reason"),
            [(c.ts, c.from_state, c.to_state, c.source, c.reason) for c in result.history],
        )


def _set(ctx: typer.Context, state: str, reason: str | None, paper: bool, as_json: bool) -> None:
    from stagectl.domain.orders import TradingState
    from stagectl.services.trading import flags as service

    path = service.state_path_for(cli_context(ctx).home, paper=paper)
    text = reason if reason is not None else "set by an operator (stagectl trading)"
    change = service.set_state(
        path, TradingState(state), reason=text, source="operator", now=datetime.now(UTC)
    )
    if as_json:
        print_json(change.to_dict())
        return
    info(f"state database: {path}")
    verb = "changed" if change.changed else "unchanged (recorded)"
    print_lines(
        [f"trading state {change.change.from_state.value} -> {state}: {verb}; reason: {text}"]
    )


@app.command("enable")
def enable(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    paper: PaperOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Set the trading state to ACTIVE: new orders may be sent again.

    Exit 0; 2 bad input; 3 the state database is locked.

    Example: stagectl trading enable --reason "post-mortem done, restart criteria met"
    """
    _set(ctx, "ACTIVE", reason, paper, json_output)


@app.command("disable")
def disable(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    paper: PaperOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Set the trading state to HALTED: no new order is sent (the kill switch; positions
    stay as they are: use `stagectl emergency-close` to close them).

    Exit 0; 2 bad input; 3 the state database is locked.

    Example: stagectl trading disable --reason "exchange incident"
    """
    _set(ctx, "HALTED", reason, paper, json_output)


@app.command("reduce-only")
def reduce_only(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    paper: PaperOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Set the trading state to REDUCE_ONLY: only orders that reduce a position are sent.

    Exit 0; 2 bad input; 3 the state database is locked.

    Example: stagectl trading reduce-only --reason "margin utilisation above 20 %"
    """
    _set(ctx, "REDUCE_ONLY", reason, paper, json_output)
