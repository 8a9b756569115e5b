"""``stagectl trading``: show or set the trading state (ACTIVE, REDUCE_ONLY, HALTED) of the
paper and the live mode, and answer the risk guard's directives (confirm, cancel, revoke).

``trading status`` is a fast path: sqlite3 only on top of typer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stagectl.cli._common import (
    MAX_LIST_LIMIT,
    MAX_ROW_ID,
    BoundedInt,
    JsonOpt,
    cli_context,
    info,
    print_json,
    print_lines,
    print_table,
)
from stagectl.cli._format import human
from stagectl.domain.types import Mode

if TYPE_CHECKING:
    from stagectl.services.trading.directives import DirectiveChange
    from stagectl.services.trading.restart import RestartResult

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
SignedOffOpt = Annotated[
    str | None,
    typer.Option(
        "--signed-off-by",
        help="Who signs off the restart of a flattened book (the runbook's human sign-off).",
        metavar="NAME",
    ),
]
CauseOpt = Annotated[
    str | None,
    typer.Option(
        "--cause",
        help="What caused the flatten (recorded as an incident note; a restart condition).",
        metavar="TEXT",
    ),
]
OverrideOpt = Annotated[
    bool,
    typer.Option(
        "--override",
        help="Restart although a restart condition fails (needs --reason and a named "
        "sign-off: --signed-off-by for enable, --by for revoke; recorded as an override).",
    ),
]
GuardConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Risk guard config (default: the home's risk_guard_alt_ensemble.yaml).",
        metavar="FILE",
    ),
]
ByOpt = Annotated[
    str, typer.Option("--by", help="Who answers (recorded with the directive).", metavar="NAME")
]
DirectiveIdArg = Annotated[
    int,
    typer.Argument(
        help="The directive's id (trading status).", click_type=BoundedInt(1, MAX_ROW_ID)
    ),
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
    if result.directives:
        print_table(
            "risk directives (open)",
            (
                "id",
                "mode",
                "action",
                "sleeve",
                "rule",
                "value",
                "created",
                "state",
                "confirm by",
                "expires",
            ),
            [_directive_row(d) for d in result.directives],
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


@app.command("incidents")
def incidents(
    ctx: typer.Context,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Only this run's incidents.", metavar="RUN_ID")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only from this UTC time or date on.", metavar="TIME"),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            help="The newest this many.",
            metavar="N",
            click_type=BoundedInt(1, MAX_LIST_LIMIT),
        ),
    ] = 20,
    incident_id: Annotated[
        int | None,
        typer.Option(
            "--id",
            help="Show this incident whole: market state and fills.",
            metavar="ID",
            click_type=BoundedInt(1, MAX_ROW_ID),
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """List the incident log (seed 003 §4.2 step 6): every guard hit of HIGH or CRITICAL
    severity with its rule, value, market state and recent fills, every directive step,
    restart and emergency close. Oldest first; changes nothing.

    Exit 0; 2 bad option or no such incident; 3 state database locked past the busy
    timeout.

    Example: stagectl trading incidents --since 2026-05-01 --limit 50
    """
    from stagectl.cli._common import parse_utc
    from stagectl.services.trading import incidents as service

    request = service.IncidentsRequest(
        run_id=run_id,
        since=None if since is None else parse_utc(since, option="--since"),
        limit=limit,
        incident_id=incident_id,
    )
    log = service.run(request, home=cli_context(ctx).home)
    if json_output:
        print_json(log.to_dict())
        return
    if incident_id is not None:
        _show_incident(log.incidents[0])
        return
    if not log.incidents:
        info(f"no incident in {log.path}")
    print_table(
        "incidents (oldest first)",
        ("id", "ts", "severity", "rule", "action", "value", "run", "message"),
        [
            (i.id, i.ts, i.severity, i.rule, i.action, i.indicator_value, i.run_id, i.message)
            for i in log.incidents
        ],
    )


def _show_incident(incident: Any) -> None:
    lines = [
        f"incident {incident.id}: {incident.severity} {incident.rule} -> {incident.action}",
        f"at: {human(incident.ts)}",
        f"run: {incident.run_id or '-'}; guard decision: {incident.guard_decision_id or '-'}",
        f"value: {human(incident.indicator_value)}",
        f"message: {incident.message}",
    ]
    for key, value in incident.market_state.items():
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            lines += [f"market {key} {name}: {human(part)}" for name, part in value.items()]
        else:
            lines.append(f"market {key}: {human(value)}")
    lines.append(f"fills (last 24 h): {len(incident.fills)}")
    lines += [f"  {human(fill)}" for fill in incident.fills]
    print_lines(lines)


def _directive_row(d: dict[str, Any]) -> tuple[Any, ...]:
    state = d["state"]
    if state == "pending":
        then = "executes" if d["on_timeout"] == "execute" else "escalates"
        state = f"pending-confirmation ({then} at deadline)"
    if d["action"] == "REDUCE_RISK_50":
        state += f" x{d['multiplier']:g}"  # it recovers step by step at its reviews
    reviewed = d["action"] in ("REDUCE_RISK_50", "DISABLE_SLEEVE")
    return (
        d["id"],
        d["mode"] or "paper+live",
        d["action"],
        d["sleeve"] or "all",
        d["rule"],
        d["value"],
        d["created_at"],
        state,
        d["confirm_by"] or "-",
        d["expires_at"] or ("until its review lifts it" if reviewed else "until revoked"),
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
    signed_off_by: SignedOffOpt = None,
    cause: CauseOpt = None,
    override: OverrideOpt = False,
    config: GuardConfigOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Set a mode's trading state to ACTIVE: new orders may be sent again. Re-enables the
    paper mode unless --live is given.

    A mode latched by an executed FLATTEN_ALL restarts only when the runbook's restart
    conditions hold (seed 003 §4.5): a cause note (--cause), the strategy's 20-day
    Sharpe > 0, its 60-day backtest Sharpe > 0.3, drawdown < 8 %, a named sign-off
    (--signed-off-by). The conditions are printed; while any fails nothing changes
    (exit 1) unless --override, which is recorded as an override.

    Exit 0 enabled; 1 a restart condition fails; 2 bad input; 3 the state database is
    locked.

    Example: stagectl trading enable --live --signed-off-by "A. Chen" --cause "exchange
    outage, fixed" --reason "post-mortem done"
    """
    from stagectl.services.trading import restart

    modes = _modes(paper, live, default=("paper",))
    if len(modes) != 1:
        from stagectl.errors import InputError

        raise InputError("enable one mode at a time: --paper or --live", where="--paper/--live")
    home = cli_context(ctx).home
    request = restart.RestartRequest(
        mode=modes[0],
        reason=reason if reason is not None else "set by an operator (stagectl trading)",
        signed_off_by=signed_off_by,
        cause=cause,
        override=override,
        guard_config=config,
    )
    _show_restart(restart.run(request, home=home), json_output)


def _show_restart(result: RestartResult, as_json: bool) -> None:
    """Print a restart's checks and outcome; exit 1 when it was refused."""
    if as_json:
        print_json(result.to_dict())
    else:
        info(f"state database: {result.path}")
        if result.latched:
            ids = ", ".join(str(d.id) for d in result.latched_by)
            print_table(
                f"restart conditions ({result.mode}, latched by FLATTEN_ALL {ids}; "
                f"as of {result.as_of:%Y-%m-%dT%H:%M}Z, backtest {result.window})",
                ("condition", "required", "found", "result"),
                [
                    (c.condition, c.required, c.found, "pass" if c.passed else "FAIL")
                    for c in result.checks
                ],
            )
        if result.change is not None:
            change = result.change
            what = (
                "restarted with an OVERRIDE"
                if result.latched and not result.conditions_hold
                else "changed"
            )
            print_lines(
                [f"{result.mode}: trading state {change.from_state.value} -> ACTIVE: {what}"]
            )
        else:
            info(f"{result.mode}: not restarted: a restart condition fails (nothing changed)")
    if result.change is None:
        raise typer.Exit(1)


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


@app.command("confirm")
def confirm(
    ctx: typer.Context, directive_id: DirectiveIdArg, by: ByOpt, json_output: JsonOpt = False
) -> None:
    """Confirm a pending risk directive: it binds the loop from its next bar.

    Exit 0; 1 the directive is not pending; 2 bad input (no such directive); 3 locked.

    Example: stagectl trading confirm 12 --by "A. Chen"
    """
    from stagectl.services.trading import directives as service

    request = service.DirectiveRequest(directive_id, by=by)
    _show_change(service.run_confirm(request, home=cli_context(ctx).home), json_output)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    directive_id: DirectiveIdArg,
    by: ByOpt,
    reason: ReasonOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Veto a pending risk directive (a false trigger): it never binds. Needs --reason.

    Exit 0; 1 the directive is not pending; 2 bad input; 3 locked.

    Example: stagectl trading cancel 12 --by "A. Chen" --reason "stale mark, feed restored"
    """
    from stagectl.services.trading import directives as service

    request = service.DirectiveRequest(directive_id, by=by, reason=reason or "")
    _show_change(service.run_cancel(request, home=cli_context(ctx).home), json_output)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    directive_id: DirectiveIdArg,
    by: ByOpt,
    reason: ReasonOpt = None,
    cause: CauseOpt = None,
    override: OverrideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Lift an active or executed risk directive. Needs --reason. Lifting a FLATTEN_ALL
    restarts the flattened book: the restart conditions are checked as `trading enable`
    checks them (--by signs it off; --cause, --override as there).

    Exit 0; 1 not active/executed, or a restart condition fails; 2 bad input; 3 locked.

    Example: stagectl trading revoke 12 --by "A. Chen" --reason "review done, risk back"
    """
    from stagectl.services.trading import directives as service

    request = service.DirectiveRequest(
        directive_id, by=by, reason=reason or "", cause=cause, override=override
    )
    change = service.run_revoke(request, home=cli_context(ctx).home)
    if change.restart is not None and not json_output:
        _show_restart(change.restart, as_json=False)
    _show_change(change, json_output)
    if change.refused:
        raise typer.Exit(1)


def _show_change(change: DirectiveChange, as_json: bool) -> None:
    if as_json:
        print_json(change.to_dict())
        return
    d = change.directive
    sleeve = f" {d.sleeve}" if d.sleeve else ""
    print_lines(
        [
            f"directive {d.id} ({d.action}{sleeve}, {d.mode or 'paper+live'}): "
            f"{change.before.value} -> {d.state.value}"
        ]
    )
