"""The root ``stagectl`` command: global options, the lazy command registry, exit codes.

Subcommand modules are imported only when their command runs, so ``--help``
and shell completion stay fast. ``main()`` is the only place that turns errors
into exit codes (docs/cli.md), and it owns SIGINT and SIGTERM while a command
runs (``cli._signals``).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import Command, Context, HelpFormatter
from typer._click import exceptions as click_errors
from typer.core import TyperGroup

from stagectl import __version__
from stagectl.cli._failure import internal_error_line, public_line
from stagectl.cli._signals import Interrupter, after_interruption
from stagectl.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Interrupted,
    StagectlError,
)

# name -> (module whose ``app`` holds the command, one-line help for the listing)
COMMANDS: dict[str, tuple[str, str]] = {
    "funding-scan": ("stagectl.cli.funding_scan", "Funding carry and perp-spot basis per symbol."),
    "init": ("stagectl.cli.init", "Create a stagectl home with the default configs."),
    "state": ("stagectl.cli.state", "Inspect or copy the state database (SQLite or PostgreSQL)."),
    "report": ("stagectl.cli.report", "Verify signed reports."),
    "verify-thresholds": (
        "stagectl.cli.verify_thresholds",
        "Audit core.yaml's governed values against the approved baseline.",
    ),
    "daily": (
        "stagectl.cli.daily",
        "Seed 001's 02:00 UTC chain: ingest, check, walk-forward, compare.",
    ),
    "data": ("stagectl.cli.data", "Bundled and fetched market data: list, check, fetch."),
    "completion": ("stagectl.cli.completion", "Show or install shell completion scripts."),
    "risk-guard": ("stagectl.cli.risk_guard", "The runbook risk guard: live check or --replay."),
    "paper-gate": ("stagectl.cli.paper_gate", "Judge a paper run against the 30-day paper gate."),
    "market-intel": ("stagectl.cli.market_intel", "Stage6 Market Intel metrics per symbol."),
    "governor": ("stagectl.cli.governor", "Portfolio Governor weights from Market Intel."),
    "stress-lab": ("stagectl.cli.stress_lab", "Stress Lab scenarios with a signed verdict."),
    "backtest": ("stagectl.cli.backtest", "Backtest the strategy config on market data."),
    "run-live": ("stagectl.cli.run_live", "The trading loop: paper (default) or --live."),
    "artifacts": ("stagectl.cli.artifacts", "Analyze a run-live run's seed-002 artifacts."),
    "metrics": ("stagectl.cli.metrics", "The fill ledger: import, window metrics, PnL windows."),
    "regime-analyze": ("stagectl.cli.regime_analyze", "PnL windows and candles by market regime."),
    "preflight": ("stagectl.cli.preflight", "The seed 002 pre-trade checklist."),
    "emergency-close": ("stagectl.cli.emergency_close", "Reduce-only, cancel, close all, halt."),
    "trading": ("stagectl.cli.trading", "Show or set the trading state."),
    "telegram": ("stagectl.cli.telegram", "On-call from Telegram: serve the bot, test it."),
    "walk-forward": ("stagectl.cli.walk_forward", "Purged walk-forward of the strategy config."),
    "cpcv": ("stagectl.cli.cpcv", "Combinatorial purged CV: Sharpe across paths and PBO."),
    "audit-strategy": ("stagectl.cli.audit_strategy", "Seed 003's acceptance table on the data."),
    "consensus": ("stagectl.cli.consensus", "Engine consensus score and adaptive decision."),
    "optimize": ("stagectl.cli.optimize", "Seed 001's portfolio optimizer: weights, slacks."),
    "route": ("stagectl.cli.route", "Preview the smart router: venue scores, venue, style."),
    "shadow": ("stagectl.cli.shadow", "Record backtests as runs; compare runs for promotion."),
    "schedule": ("stagectl.cli.schedule", "The scheduled jobs: their last run, exit, next due."),
    "notify": ("stagectl.cli.notify", "Tell the notify channels: a failed systemd unit."),
    "attribution": ("stagectl.cli.attribution", "PnL by sleeve, regime, venue; costs; reconciled."),
    "health": ("stagectl.cli.health", "Data, latency, order and exchange health checks."),
}


_TYPER_COMPLETION_PARAMS = frozenset({"install_completion", "show_completion"})


def _load(name: str) -> Command:
    module_name, _ = COMMANDS[name]
    module = importlib.import_module(module_name)
    command = typer.main.get_command(module.app)
    command.name = name
    # typer adds --install-completion/--show-completion to every sub-app made with
    # the default add_completion=True; stagectl has `stagectl completion` instead.
    command.params = [p for p in command.params if p.name not in _TYPER_COMPLETION_PARAMS]
    return command


class LazyGroup(TyperGroup):
    """A typer group that imports a subcommand's module only when it is used."""

    def list_commands(self, ctx: Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            command = _load(cmd_name)
        return command

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=LazyGroup,
    name="stagectl",
    help=(
        "stagectl: the command-line toolbox of a systematic crypto trading desk.\n\n"
        "Paper trading and dry runs are the default everywhere. "
        "Example: stagectl verify-thresholds --json"
    ),
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stagectl {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="STAGECTL_HOME",
            help="The stagectl home (config/, state/, artifacts/, reports/, logs/) "
            "[env: STAGECTL_HOME; default: the current directory].",
            show_envvar=False,
            file_okay=False,
        ),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            envvar="STAGECTL_STATE",
            help="The state database: a SQLite file or a postgresql://USER@HOST/DB URL "
            "(password from PGPASSWORD, ~/.pgpass or STAGECTL_STATE_PASSWORD_FILE) "
            "[env: STAGECTL_STATE; default: HOME/state/stagectl.db].",
            show_envvar=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for internal errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """stagectl: the command-line toolbox of a systematic crypto trading desk."""
    # Imported here, not at the top: `stagectl --help` never runs this callback,
    # so the root help stays off _common's and home's imports (docs/performance.md).
    from stagectl.cli._common import CliContext
    from stagectl.config.home import Home
    from stagectl.config.state_url import parse_state_location

    location = None if state is None else parse_state_location(state)
    ctx.obj = CliContext(home=Home.resolve(home, location), debug=debug)


def _say(message: str) -> None:
    typer.echo(f"stagectl: {public_line(message)}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Run stagectl and return its exit code; never raise.

    The command runs with SIGINT and SIGTERM raising ``Interrupted`` (``cli._signals``):
    whatever it was doing unwinds, and it exits 130 after one line, ``stagectl:
    interrupted``. The previous signal handlers are restored before returning.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("STAGECTL_DEBUG") == "1"
    interrupter = Interrupter()
    try:
        with interrupter.installed():
            code = _run(args, debug=debug)
    except (Interrupted, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED or interrupter.signum is not None:
        _say("interrupted")
        return EXIT_INTERRUPTED
    return code


def _run(args: list[str], *, debug: bool) -> int:
    """The command's exit code; its errors as one line (a traceback only with --debug)."""
    command = typer.main.get_command(app)
    try:
        result: Any = command.main(args=args, prog_name="stagectl", standalone_mode=False)
    except StagectlError as error:
        if after_interruption(error):
            return EXIT_INTERRUPTED
        if debug:
            traceback.print_exc()
        _say(str(error))
        return error.exit_code
    except typer.Abort:
        return EXIT_INTERRUPTED
    except click_errors.NoArgsIsHelpError as error:
        typer.echo(error.ctx.get_help() if error.ctx else error.format_message(), err=True)
        return EXIT_USAGE
    except click_errors.ClickException as error:
        hint = ""
        if isinstance(error, click_errors.UsageError) and error.ctx is not None:
            hint = f" (see '{error.ctx.command_path} --help')"
        _say(f"{error.format_message()}{hint}")
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except Exception as error:
        if after_interruption(error):  # a cleanup failed on the way out: still interrupted
            return EXIT_INTERRUPTED
        if debug:
            traceback.print_exc()
        _say(internal_error_line(error))
        return EXIT_INTERNAL
    return result if isinstance(result, int) else EXIT_OK


def entry() -> None:
    """The console-script entry point."""
    sys.exit(main())
