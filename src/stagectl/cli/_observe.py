"""What a scheduled command leaves for monitoring: its JSON-line log and, with
``--metrics-file``, its Prometheus textfile (docs/metrics.md, docs/operations.md "Logs").

risk-guard (hourly and ``--weekly``), verify-thresholds, paper-gate, preflight and
emergency-close run their body inside :func:`observed`. The body records its figures on
the :class:`Observation` (``record_*`` below); however the body ends, with its result's
exit code (``typer.Exit``), an error (2, 3, 70: ``cli._failure``) or an interruption
(130), the wrapper then logs ``finished`` with that exit code and writes the textfile
with it, so a failed run is as visible as a good one. Neither the log nor the textfile
ever changes the exit code: a write that fails is said on stderr.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from stagectl.cli._common import info
from stagectl.cli._failure import failure_of
from stagectl.cli._logs import ERROR, INFO, WARNING, CommandLog
from stagectl.cli._metrics import Sample, indicator_metric, write_textfile
from stagectl.config.home import Home
from stagectl.errors import EXIT_INTERRUPTED, EXIT_OK, InputError

MetricsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--metrics-file",
        help="Also write a Prometheus textfile here (node_exporter's textfile collector; "
        "written atomically, also when the command fails; docs/metrics.md).",
        metavar="FILE",
        dir_okay=False,
    ),
]


class Observation:
    """The figures and log lines of one command run."""

    def __init__(self, log: CommandLog, labels: dict[str, str]) -> None:
        self.log = log
        self.labels = labels
        self.samples: list[Sample] = []

    def gauge(self, name: str, value: float | None, **labels: str) -> None:
        """Record one textfile sample; None (a figure without data) is left out."""
        if value is not None:
            self.samples.append(Sample(name, float(value), labels))

    def event(self, event: str, level: int = INFO, **fields: Any) -> None:
        self.log.event(event, level, **fields)


@contextmanager
def observed(
    home: Home, command: str, *, metrics_file: Path | None, mode: str | None = None
) -> Iterator[Observation]:
    """Run the body; log its start and end, and write ``metrics_file`` with its exit code."""
    labels = {"command": command} if mode is None else {"command": command, "mode": mode}
    log = CommandLog(home, command, mode)
    observation = Observation(log, labels)
    started = time.monotonic()
    log.event("started", mode=mode)
    code = EXIT_OK
    try:
        if metrics_file is not None and not (parent := metrics_file.parent).is_dir():
            metrics_file = None  # nowhere to write it: the error below says so
            raise InputError(f"the directory {parent} does not exist", where="--metrics-file")
        yield observation
    except typer.Exit as done:
        code = done.exit_code
        raise
    except typer.Abort:  # declined at a prompt: main() exits 130
        code = EXIT_INTERRUPTED
        raise
    except Exception as error:
        code, line = failure_of(error)
        log.event("failed", ERROR, exit_code=code, error=line)
        raise
    except BaseException:  # Interrupted, KeyboardInterrupt
        code = EXIT_INTERRUPTED
        raise
    finally:
        _finish(observation, metrics_file, code, time.monotonic() - started)


def _finish(observation: Observation, metrics_file: Path | None, code: int, took: float) -> None:
    level = INFO if code in (0, 1) else ERROR
    observation.event("finished", level, exit_code=code, duration_s=round(took, 3))
    observation.log.close()
    if metrics_file is None:
        return
    observation.gauge("stagectl_command_exit_code", code)
    observation.gauge("stagectl_command_duration_seconds", took)
    observation.gauge("stagectl_command_last_run_timestamp_seconds", time.time())
    try:
        write_textfile(metrics_file, observation.samples, observation.labels)
    except Exception as failure:
        reason = failure.strerror if isinstance(failure, OSError) else type(failure).__name__
        info(f"metrics file {metrics_file} not written ({reason})")


def record_checks(
    observation: Observation, statuses: Iterable[str], *, skips: bool = False
) -> None:
    """The checks counted by status (PASS, FAIL; SKIP too when the command can skip one:
    ``skips``, so its gauge is written even at 0)."""
    count = Counter(statuses)
    observation.gauge("stagectl_checks_passed", count["PASS"])
    observation.gauge("stagectl_checks_failed", count["FAIL"])
    observation.gauge("stagectl_checks_skipped", count["SKIP"] if skips else None)


def record_guard(observation: Observation, body: Mapping[str, Any]) -> None:
    """The hourly guard's decision, indicators and data age (the report's body).

    The severity ranks and the notify threshold are the guard's own, imported here
    because risk_rules imports numpy, which ``risk-guard --help`` must not load."""
    from stagectl.domain.risk_rules import SEVERITY_RANK
    from stagectl.services.guard.alerts import NOTIFY_FROM

    decision, data = body["decision"], body["data"]
    observation.log.run = body.get("run_id")
    action, severity = str(decision["action"]), str(decision["severity"])
    observation.gauge("stagectl_guard_action_info", 1, action=action, severity=severity)
    observation.gauge("stagectl_guard_severity_level", SEVERITY_RANK.get(severity))
    observation.gauge("stagectl_guard_rules_breached", len(decision["hits"]))
    age_min = data.get("last_snapshot_age_min")
    observation.gauge(
        "stagectl_guard_snapshot_age_seconds", None if age_min is None else age_min * 60
    )
    for key, value in decision["indicators"].items():
        name, _, sleeve = str(key).partition(":")
        labels = {"sleeve": sleeve} if sleeve else {}
        observation.gauge(indicator_metric(name), value, **labels)
    observation.event(
        "decision",
        WARNING if SEVERITY_RANK.get(severity, 0) >= NOTIFY_FROM else INFO,
        action=action,
        severity=severity,
        hits=[
            {k: h[k] for k in ("rule", "sleeve", "indicator", "value", "action", "severity")}
            for h in decision["hits"]
        ],
        guard_decision_id=body["state"]["guard_decision_id"],
        directives=[d["action"] for d in body["state"]["directives"]],
        snapshot_age_min=age_min,
        notifications=[
            {k: n.get(k) for k in ("channel", "status", "error", "reason")}
            for n in body["notifications"]
        ],
    )


def record_weekly(observation: Observation, body: Mapping[str, Any]) -> None:
    """The weekly review's decision and model-health checks."""
    observation.log.run = body.get("run_id")
    drift = body["weight_drift"]["decision"]
    health = body["model_health"]
    observation.gauge("stagectl_weekly_rebalance_due", 1 if drift == "REBALANCE" else 0)
    record_checks(observation, ("FAIL" if h["status"] == "WARNING" else "PASS" for h in health))
    observation.event(
        "review",
        rebalance=drift,
        warnings=[h["name"] for h in health if h["status"] == "WARNING"],
        verdict=body["verdict"],
        week_start=body["week_start"],
        week_end=body["week_end"],
    )


def record_emergency(observation: Observation, result: Mapping[str, Any]) -> None:
    """emergency-close's outcome (its ``--json`` document)."""
    residual = result.get("residual_positions") or []
    orders = result.get("residual_open_orders") or []
    observation.gauge("stagectl_emergency_close_flat", 1 if result.get("flat") else 0)
    observation.gauge("stagectl_emergency_close_residual_positions", len(residual))
    observation.gauge("stagectl_emergency_close_residual_open_orders", len(orders))
    observation.event(
        "result",
        INFO if result.get("flat") else ERROR,
        **{
            k: result.get(k)
            for k in ("dry_run", "flat", "trading_state_before", "trading_state_after", "errors")
        },
        residual_positions=residual,
    )
