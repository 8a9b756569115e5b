"""``stagectl risk-guard``: the runbook's risk guard, live (hourly, cron) or replayed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stagectl.cli._common import (
    DryRunOpt,
    HtmlOpt,
    JsonOpt,
    LimitOpt,
    LiveModeOpt,
    OutOpt,
    RunOpt,
    UnsignedOpt,
    cli_context,
    config_option,
    fmt_fixed,
    fmt_pct,
    info,
    mode_of,
    parse_now,
    parse_utc,
    print_table,
    publish_envelope,
    show_report,
    to_jsonable,
    write_html,
)
from stagectl.cli._format import human, progress
from stagectl.cli._observe import (
    MetricsFileOpt,
    Observation,
    observed,
    record_guard,
    record_weekly,
)
from stagectl.cli._scheduled import could_not_judge_alert
from stagectl.cli._values import preset_names, replay_evaluations
from stagectl.config.home import Home
from stagectl.domain.types import Mode
from stagectl.errors import InputError

if TYPE_CHECKING:
    from stagectl.reports.page import Page

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(
    "risk-guard",
    epilog=(
        "Example: stagectl risk-guard --dry-run   |   "
        "stagectl risk-guard --replay --replay-start 2024-03-01 --replay-end 2025-01-01 "
        "--breakers --preset balanced"
    ),
)
def risk_guard(
    ctx: typer.Context,
    config: Annotated[Path | None, config_option("risk_guard_alt_ensemble.yaml")] = None,
    dry_run: DryRunOpt = False,
    json_output: JsonOpt = False,
    out: OutOpt = None,
    unsigned: UnsignedOpt = False,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Evaluate as of this UTC time (ISO-8601) [default: the run's clock: its "
            "last bar for a replayed or finished run, the wall clock for a run trading in "
            "real time].",
        ),
    ] = None,
    run_id: RunOpt = None,
    live: LiveModeOpt = False,
    replay: Annotated[
        bool, typer.Option("--replay", help="Replay strategy + guard over the bundled history.")
    ] = False,
    replay_start: Annotated[
        str | None, typer.Option("--replay-start", help="First day of the replay (UTC).")
    ] = None,
    replay_end: Annotated[
        str | None, typer.Option("--replay-end", help="Last day of the replay (UTC, inclusive).")
    ] = None,
    evaluation: Annotated[
        str,
        typer.Option(
            "--eval",
            help="Replay evaluation: hourly (every bar) or daily.",
            autocompletion=replay_evaluations,
        ),
    ] = "hourly",
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Replay: write equity.csv, triggers.csv, actions.csv here.",
            metavar="DIR",
            file_okay=False,
        ),
    ] = None,
    html: HtmlOpt = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Replay: a directory of candle/funding CSVs [default: the bundled sample].",
            metavar="DIR",
            file_okay=False,
        ),
    ] = None,
    weekly: Annotated[
        bool, typer.Option("--weekly", help="Run the weekly review (seed 003 §3) instead.")
    ] = False,
    breakers: Annotated[
        bool,
        typer.Option(
            "--breakers",
            help="Replay: apply the circuit breakers of risk_presets.yaml to the strategy "
            "(guarded and unguarded both) and list their firings beside the triggers.",
        ),
    ] = False,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="Replay: conservative, balanced or aggressive; its daily loss stop "
            "replaces the breakers' daily stop (implies --breakers).",
            metavar="NAME",
            autocompletion=preset_names,
        ),
    ] = None,
    limit: LimitOpt = 20,
    metrics_file: MetricsFileOpt = None,
) -> None:
    """Evaluate the runbook's indicators and rules and recommend an action.

    Live mode reads the state database's equity snapshots, fills and funding,
    records the decision (and, without --dry-run, the risk directives run-live
    obeys), logs HIGH/CRITICAL incidents and notifies Telegram/webhook on MEDIUM
    or worse (FUTURES_TELEGRAM_BOT_TOKEN, FUTURES_TELEGRAM_CHAT_ID). Exit 0
    NO_ACTION (LOW included), 1 WARNING or worse, 2 bad input or no equity
    snapshots, 3 state database locked or unreadable. --replay runs the
    strategy with and without the guard over history and exits 0 (a report,
    not an alarm).
    """
    home = cli_context(ctx).home
    if replay:
        if weekly:
            raise InputError("choose one of --replay and --weekly", where="--replay")
        if metrics_file is not None:
            raise InputError(
                "--metrics-file is for the hourly and the weekly guard, not --replay",
                where="--metrics-file",
            )
        publish = _Publish(home, parse_now(now) or datetime.now(UTC), json_output, out, unsigned)
        guard = _Breakers(breakers or preset is not None, preset)
        outputs = _ReplayOutputs(export, html)
        options = _ReplayOptions(evaluation, outputs, data, guard, limit)
        _replay(publish, config, (replay_start, replay_end), options)
        return
    command = "risk-guard --weekly" if weekly else "risk-guard"
    mode = mode_of(live)
    with (
        observed(home, command, metrics_file=metrics_file, mode=mode) as observation,
        could_not_judge_alert(home, command=command, config=config),
    ):
        moment = parse_now(now)
        publish = _Publish(home, moment or datetime.now(UTC), json_output, out, unsigned)
        if weekly:
            _weekly(publish, moment, config, data, run_id, mode, dry_run, observation)
            return
        if breakers or preset is not None:
            raise InputError("--breakers and --preset need --replay", where="--breakers")
        if replay_start or replay_end or export or data or html:
            raise InputError(
                "--replay-start, --replay-end, --export, --html and --data need --replay",
                where="--replay",
            )
        _live(publish, moment, config, dry_run, run_id, mode, observation)


def _live(
    publish: _Publish,
    moment: datetime | None,
    config: Path | None,
    dry_run: bool,
    run_id: str | None,
    mode: Mode,
    observation: Observation,
) -> None:
    """The hourly check: judge, record, notify, report; exits with the decision's code."""
    from stagectl.services.guard import live as service

    request = service.LiveGuardRequest(
        now=moment, config=config, dry_run=dry_run, run_id=run_id, mode=mode
    )
    result = service.run(request, home=publish.home)
    record_guard(observation, result.body())
    info(f"config: {result.config.describe()}")
    info(f"state: {result.state_path} (run {result.run_id})")
    info(result.as_of.describe())
    if result.already_evaluated:
        info(
            f"this hour of run {result.run_id} was evaluated already (guard decision "
            f"{result.decision_id}, by run-live or an earlier check): nothing recorded or sent"
        )
    envelope = publish.envelope(service.KIND, result.body(), [result.config.path])
    for note in result.notifications:
        if note["status"] != "sent":
            why = note["error"] or note["reason"]
            info(f"notification via {note['channel']} {note['status']}: {why}")
    publish.show(envelope, lambda: _print_live(result.body()))
    raise typer.Exit(result.exit_code)


@dataclass(frozen=True)
class _Publish:
    """The output options every mode shares; reports are stamped with ``--now``, else
    the wall clock (the time they were made, whatever time they judge)."""

    home: Home
    now: datetime
    json_output: bool
    out: Path | None
    unsigned: bool

    def envelope(
        self, kind: str, body: dict[str, Any], inputs: list[Path]
    ) -> dict[str, Any] | None:
        """The published envelope when --json or --out asks for one, else None."""
        if not (self.json_output or self.out is not None):
            return None
        return publish_envelope(
            self.home,
            kind,
            to_jsonable(body),
            inputs=inputs,
            out=self.out,
            unsigned=self.unsigned,
            now=self.now,
        )

    def show(self, envelope: dict[str, Any] | None, render_human: Callable[[], None]) -> None:
        show_report(envelope, json_output=self.json_output, out=self.out, render_human=render_human)


def _print_live(body: dict[str, Any]) -> None:
    decision = body["decision"]
    mode = (
        " [dry run: recommendation only, no directives written]"
        if body["mode"] == "dry-run"
        else ""
    )
    typer.echo(
        f"risk-guard at {human(decision['at'])}: {decision['action']} "
        f"(severity {decision['severity']}){mode}"
    )
    if decision["hits"]:
        print_table(
            "Rules breached",
            ["rule", "sleeve", "indicator", "value", "threshold", "action", "severity"],
            [
                (
                    h["rule"],
                    h["sleeve"],
                    h["indicator"],
                    h["value"],
                    f"{h['op']} {h['threshold']}",
                    h["action"],
                    h["severity"],
                )
                for h in decision["hits"]
            ],
        )
    if decision["near"]:
        print_table(
            "Near a threshold (LOW)",
            ["rule", "sleeve", "indicator", "value", "threshold"],
            [
                (n["rule"], n["sleeve"], n["indicator"], n["value"], n["threshold"])
                for n in decision["near"]
            ],
        )
    data = body["data"]
    typer.echo(
        f"data: {data['snapshots']} snapshots over {data['hours']} h "
        f"({data['missing_hours']} missing h carried forward), last "
        f"{data['last_snapshot_age_min']} min ago; {data['fills']} fills, "
        f"{data['funding_payments']} funding payments"
    )
    for note in data["unavailable"]:
        typer.echo(f"not available: {note}")
    state = body["state"]
    typer.echo(
        f"recorded guard decision {state['guard_decision_id']}; incidents "
        f"{state['incident_ids'] or 'none'}; directives "
        f"{_directive_names(state['directives']) or 'none'}"
    )


def _directive_names(directives: list[dict[str, Any]]) -> str:
    """Each directive issued, or reviewed (with its step: ``REDUCE_RISK_50 (recovered)``)."""
    return ", ".join(
        d["action"]
        + (":" + d["sleeve"] if d["sleeve"] else "")
        + (f" ({d['step']})" if d.get("step") else "")
        for d in directives
    )


@dataclass(frozen=True)
class _ReplayOutputs:
    """Replay only: the ``--export`` directory and the ``--html`` page."""

    export: Path | None
    html: Path | None


@dataclass(frozen=True)
class _Breakers:
    """Replay only: whether to apply the circuit breakers, and the preset's daily stop."""

    apply: bool
    preset: str | None


@dataclass(frozen=True)
class _ReplayOptions:
    """The replay's own options: evaluation, files, breakers and how many rows to show."""

    evaluation: str
    outputs: _ReplayOutputs
    data: Path | None
    breakers: _Breakers
    limit: int


def _replay(
    publish: _Publish,
    config: Path | None,
    window: tuple[str | None, str | None],
    options: _ReplayOptions,
) -> None:
    from stagectl.services.guard import replay as service

    start_text, end_text = window
    start = parse_utc(start_text, option="--replay-start") if start_text else None
    end = parse_utc(end_text, option="--replay-end", end_of_day=True) if end_text else None
    request = service.ReplayRequest(
        config=config,
        start=start,
        end=end,
        evaluation=options.evaluation,
        data_dir=options.data,
        export_dir=options.outputs.export,
        breakers=options.breakers.apply,
        preset=options.breakers.preset,
    )
    with progress("replay", plain_lines=True) as update:
        report = service.run(request, home=publish.home, progress=update)
    info(f"config: {report.config.describe()}; strategy: {report.strategy.describe()}")
    if report.breakers is not None:
        info(f"circuit breakers: {report.breakers['source']}; {report.breakers['note']}")
    envelope = publish.envelope(service.KIND, report.body(), report.inputs)
    for path in report.exported:
        info(f"wrote {path}")

    def page() -> Page:
        from stagectl.services.pages.guard import replay as build

        return build(report)

    write_html(options.outputs.html, page)
    publish.show(envelope, lambda: _print_replay(report.body(), options.limit))


def _print_replay(body: dict[str, Any], limit: int) -> None:
    """The summary first (window, counts, guarded vs unguarded), then the detail lists,
    each cut to ``limit`` rows."""
    summary = body["summary"]
    typer.echo(
        f"replay {human(summary['start'])} .. {human(summary['end'])}: {summary['bars']} "
        f"bars, {summary['evaluation']} evaluation, {summary['triggers']} triggers, "
        f"{summary['guard_actions']} guard actions"
    )
    _print_guarded_vs_unguarded(summary)
    print_table(
        "Triggers (each rule's breach where it starts)",
        ["time", "rule", "sleeve", "value", "action, severity"],
        [
            (t["at"], t["rule"], t["sleeve"], t["value"], f"{t['action']} {t['severity']}")
            for t in body["triggers"]
        ],
        keys=2,
        limit=limit,
    )
    if "breakers" in body:
        _print_breaker_firings(body["breakers"], limit)
    print_table(
        "Guard actions",
        ["time", "action", "sleeve", "multipliers", "reason"],
        [
            (
                a["at"],
                a["action"],
                a["sleeve"],
                " ".join(f"{s}={m:g}" for s, m in a["multipliers"].items()),
                a["reason"],
            )
            for a in body["actions"]
        ],
        keys=2,
        limit=limit,
    )


def _print_guarded_vs_unguarded(summary: dict[str, Any]) -> None:
    rows = [
        (
            name,
            fmt_pct(summary[key]["total_return"]),
            fmt_fixed(summary[key]["sharpe"]),
            fmt_pct(summary[key]["max_drawdown"]),
            summary[key]["final_equity"],
        )
        for name, key in (("unguarded", "unguarded"), ("guarded", "guarded"))
    ]
    title = "Guarded vs unguarded" + (
        " (both with the circuit breakers)" if summary.get("breakers_applied") else ""
    )
    print_table(title, ["", "total return", "Sharpe", "max drawdown", "final equity"], rows)


def _print_breaker_firings(section: dict[str, Any], limit: int) -> None:
    counts = ", ".join(f"{name} {count}" for name, count in section["firing_counts"].items())
    before = section["without_breakers"]
    typer.echo(
        f"circuit breakers ({section['preset'] or 'risk_presets.yaml'}, daily stop "
        f"{section['settings']['daily_drawdown_stop_pct']:g} %) applied to both guarded and "
        f"unguarded: {len(section['firings'])} firings ({counts}); the strategy without "
        f"breakers or guard: return {fmt_pct(before['total_return'])}, max drawdown "
        f"{fmt_pct(before['max_drawdown'])}"
    )
    print_table(
        "Breaker firings (each breaker entering its fired state)",
        ["time", "breaker", "value", "threshold"],
        [
            (f["time"], f["breaker"], f"{f['value']:.4g}", f"{f['threshold']:.4g}")
            for f in section["firings"]
        ],
        keys=2,
        limit=limit,
    )


def _weekly(
    publish: _Publish,
    now: datetime | None,
    config: Path | None,
    data: Path | None,
    run_id: str | None,
    mode: Mode,
    dry_run: bool,
    observation: Observation,
) -> None:
    from stagectl.services.guard import weekly as service

    request = service.WeeklyReviewRequest(
        now=now, config=config, data_dir=data, run_id=run_id, mode=mode, dry_run=dry_run
    )
    review = service.run(request, home=publish.home)
    info(f"run {review.run_id}; {review.as_of.describe()}")
    body = review.to_dict()
    record_weekly(observation, body)
    envelope = publish.envelope(service.KIND, body, review.inputs)

    def render_human() -> None:
        for line in review.report_lines():
            typer.echo(line)

    publish.show(envelope, render_human)
    raise typer.Exit(review.exit_code)
