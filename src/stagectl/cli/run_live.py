"""``stagectl run-live``: the trading loop, paper by default (seeds 002, 003)."""

from __future__ import annotations

import math
import os
import re
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from stagectl.cli._common import (
    BoundedInt,
    JsonOpt,
    YesOpt,
    cli_context,
    info,
    mode_of,
    parse_duration,
    parse_utc,
    print_json,
    print_lines,
    quoted,
    stdout_is_tty,
)
from stagectl.cli._live_steps import LiveSteps
from stagectl.cli._logs import WARNING
from stagectl.cli._observe import observed
from stagectl.errors import InputError, Interrupted

app = typer.Typer(add_completion=False, rich_markup_mode=None)

EXAMPLE = (
    "Example: stagectl run-live --start 2026-04-01 --end 2026-04-30 --speed max --json; "
    "stagectl run-live -c config/stage3.yaml; "
    "stagectl run-live --live --exchange binanceusdm --duration 24h --yes"
)


MAX_SPEED = 1_000_000.0


def parse_speed(text: str) -> float | None:
    """``max`` (no waiting) or ``Nx``: N bars of market time per bar of wall time, from
    1x (real time) to 1,000,000x; ``nanx``, ``infx`` and ``1e308x`` are refused."""
    value = text.strip().lower()
    if value == "max":
        return None
    number = value.removesuffix("x")
    speed = float(number) if re.fullmatch(r"[0-9]+(\.[0-9]+)?", number) else math.nan
    if not 1 <= speed <= MAX_SPEED:
        raise InputError(
            f"{quoted(text)} is not a speed: give max, or 1x to {MAX_SPEED:,.0f}x such as 3600x",
            where="--speed",
        )
    return speed


@app.command("run-live", epilog=EXAMPLE)
def run_live(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Strategy file, or a stage3 run profile such as config/stage3.yaml (its "
            "run.strategy, policy, duration_h and run.stop_limits) [default: "
            "config/futures_alt_ensemble.yaml in the home, else the packaged one].",
            metavar="FILE",
            dir_okay=False,
        ),
    ] = None,
    stage3: Annotated[
        Path | None,
        typer.Option(
            "--stage3",
            help="Order policy and alerts [default: the -c profile, else config/stage3.yaml].",
            metavar="FILE",
            dir_okay=False,
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live/--paper",
            help="Trade real money through the exchange (--live) "
            "or the paper broker (--paper, the default).",
        ),
    ] = False,
    exchange: Annotated[
        str, typer.Option("--exchange", help="ccxt exchange id for --live.", metavar="ID")
    ] = "binanceusdm",
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="With --live: send every exchange call to this host (testnets, a simulator).",
            metavar="URL",
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            help="Trade this much market time, e.g. 24h or 60d; a paper run without --start "
            "replays that much of the data's end [default: the -c profile's duration_h, else "
            "to --end; paper: the last 30 days].",
            metavar="TIME",
        ),
    ] = None,
    replay_data: Annotated[
        Path | None,
        typer.Option(
            "--replay-data",
            help="Replay candles and funding from DIR [default: the bundled data].",
            metavar="DIR",
            file_okay=False,
        ),
    ] = None,
    speed: Annotated[
        str,
        typer.Option(
            "--speed",
            help="Replay speed: max, or Nx (3600x = one 1h bar a second).",
            metavar="SPEED",
        ),
    ] = "max",
    start: Annotated[
        str | None,
        typer.Option(
            "--start", help="First bar, UTC [default: 30 days before --end].", metavar="DATE"
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            help="Last bar, UTC; a date includes the whole day [default: the end of the data].",
            metavar="DATE",
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume", help="Resume this run [default: the latest unfinished run].", metavar="RUN"
        ),
    ] = None,
    new_run: Annotated[
        bool, typer.Option("--new-run", help="Start a new run even if one is unfinished.")
    ] = False,
    stop_limits: Annotated[
        bool | None,
        typer.Option(
            "--stop-limits/--no-stop-limits",
            help="Protect each position with a reduce-only stop-limit at stage3 "
            "stop_distance_pct from its entry [default: the -c profile's run.stop_limits, "
            "else off].",
            show_default=False,
        ),
    ] = None,
    position_limits: Annotated[
        bool,
        typer.Option(
            "--position-limits/--no-position-limits",
            help="Cap positions at stage3 max_size/max_notional_usd.",
        ),
    ] = True,
    breakers: Annotated[
        bool,
        typer.Option(
            "--breakers/--no-breakers",
            help="Circuit breakers (daily drawdown stop at the active preset's daily loss "
            "stop, 3-loss streak halving, volatility defense) on the run's own returns.",
        ),
    ] = True,
    guard: Annotated[
        bool,
        typer.Option(
            "--guard/--no-guard",
            help="Evaluate the risk guard in the loop (the strategy config's guard section: "
            "hourly, directives latched at the next bar). --no-guard leaves it to cron.",
        ),
    ] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve live gauges for Prometheus on this port while the loop runs (0: any "
            "free port, printed on stderr; docs/metrics.md).",
            metavar="PORT",
            click_type=BoundedInt(0, 65535),
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host",
            help="The address --metrics-port listens on (0.0.0.0: every interface).",
            metavar="HOST",
        ),
    ] = "127.0.0.1",
    yes: YesOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Run the trading loop one bar at a time: signals, risk directives, sizing, order
    policy, orders, fills, ledger, reconciliation, alerts and the five seed-002 artifacts.

    Paper (the default) replays the bundled data (or --replay-data) through the paper
    broker; --live trades on the exchange through ccxt (credentials from
    STAGECTL_EXCHANGE_API_KEY/_SECRET or STAGECTL_EXCHANGE_KEY_FILE), one step as each bar
    closes, until --end/--duration or a signal. Both record into the home's state
    database (or --state). -c config/stage3.yaml runs seed 002's micro test: BTC, ETH, SOL
    and XRP for its duration_h (24 h) with stop-limits. Artifacts go to stage3
    artifacts.dir/RUN (HOME/artifacts/stage3/RUN). SIGINT/SIGTERM finish the current bar
    (live: stop waiting for it), write the artifacts and exit 130. Exit 0 when the run
    completes, 2 on a bad config, option or missing live credentials/confirmation, 3 on
    an exchange or database failure.
    """
    home = cli_context(ctx).home
    with observed(home, "run-live", metrics_file=None, mode=mode_of(live)) as observation:
        from stagectl.services.live import run as service

        if live:
            _check_live_options(replay_data, speed)
            _confirm_live(exchange, yes)
        elif base_url is not None:
            raise InputError("--base-url only applies to --live", where="--base-url")
        request = service.RunLiveRequest(
            config=config,
            stage3=stage3,
            live=live,
            exchange=exchange,
            duration=None if duration is None else parse_duration(duration, option="--duration"),
            replay_data=replay_data,
            speed=parse_speed(speed),
            start=None if start is None else parse_utc(start, option="--start"),
            end=None if end is None else parse_utc(end, option="--end", end_of_day=True),
            resume=resume,
            new_run=new_run,
            stop_limits=stop_limits,
            position_limits=position_limits,
            base_url=base_url,
            breakers=breakers,
            guard=guard,
        )
        stop = _StopFlag()
        view = _View(rich=stdout_is_tty() and not json_output)
        steps = LiveSteps(view.step, observation, every_bar=live or request.speed is not None)
        if metrics_port is not None:
            steps.serve_metrics(metrics_host, metrics_port, mode_of(live))

        def alert(message: str) -> None:
            info(f"alert: {message}")
            observation.event("alert", WARNING, message=message)

        with steps, stop.installed(), view:
            result = service.run(
                request, home=home, should_stop=stop, on_step=steps.step, on_alert=alert
            )
        info(
            f"run {result.run_id} ({result.mode}, {'resumed' if result.resumed else 'new'}): "
            f"{result.status}; state {result.state_path}; artifacts {result.artifacts_dir}"
        )
        for note in result.notes:
            info(f"note: {note}")
        summary = result.summary()
        observation.log.run = result.run_id
        observation.event("summary", **summary)
        if json_output:
            print_json(summary)
        else:
            print_lines(
                [f"{key}: {_text(value)}" for key, value in summary.items() if key != "notes"]
            )
        if stop.signum is not None:  # aborted, or a signal that came as the last bar ended
            raise Interrupted(stop.signum)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


def _check_live_options(replay_data: Path | None, speed: str) -> None:
    """A live run trades bars as the exchange closes them: no replay data, no speed."""
    if replay_data is not None:
        raise InputError("--replay-data is for paper runs, not --live", where="--replay-data")
    if speed.strip().lower() != "max":
        raise InputError("--speed is for paper replays, not --live", where="--speed")


def _confirm_live(exchange: str, yes: bool) -> None:
    """--live needs credentials (environment or key file) and an explicit confirmation."""
    from stagectl.services.live.run import live_credentials_source

    source = live_credentials_source()
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise InputError(
            "--live sends real orders: pass --yes, or run it on a terminal to confirm",
            where="--live",
        )
    typed = typer.prompt(
        f"Trade real money on {exchange} with credentials from {source}? Type 'live' to confirm",
        default="",
        show_default=False,
        err=True,
    )
    if typed.strip() != "live":
        raise InputError("live trading not confirmed", where="--live")


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes its bar, writes artifacts and stops.

    Its handler scope sits inside the one ``main()`` runs every command with
    (``cli._signals``), so while the loop runs a signal stops it gracefully instead of
    interrupting it where it is."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        info(f"signal {signum}: finishing the current bar, then stopping")

    def installed(self) -> AbstractContextManager[bool]:
        from stagectl.cli._signals import handling

        return handling(self._handle)


class _View:
    """A rich live panel on a terminal; a plain line per day of bars on stderr otherwise."""

    def __init__(self, *, rich: bool) -> None:
        self.rich = rich and os.environ.get("TERM") != "dumb"
        self.live: Any = None
        self.events: list[str] = []

    def __enter__(self) -> _View:
        if self.rich:
            from rich.live import Live

            self.live = Live(refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def step(self, data: Any, outcome: dict[str, Any]) -> None:
        recon = outcome["reconciliation"]
        margin = outcome["margin"]
        line = (
            f"{data.ts:%Y-%m-%d %H:%M}Z equity {float(recon['equity_broker']):.2f} "
            f"drift {recon['drift_usd']:+.6f} margin {margin['utilization_pct']:.2f}% "
            f"({margin['window']}) sent {outcome['sent']} fills {outcome['fills']}"
        )
        if outcome["sent"] or outcome["fills"] or margin["transition"]:
            self.events = [*self.events[-7:], line]
        if self.live is not None:
            self.live.update(self._panel(data, outcome, line))
        elif data.index % 24 == 0 or outcome["sent"]:
            info(line)

    def _panel(self, data: Any, outcome: dict[str, Any], line: str) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(title=f"run-live  {data.ts:%Y-%m-%d %H:%M}Z")
        for column in ("sleeve", "target", "qty", "mark", "sleeve equity"):
            table.add_column(column)
        for symbol, sleeve in outcome["sleeves"].items():
            table.add_row(
                symbol,
                f"{sleeve['position']:+g}",
                sleeve["qty"],
                f"{sleeve['mark']:.4f}",
                f"{sleeve['equity']:.2f}",
            )
        return Group(table, line, *self.events)
