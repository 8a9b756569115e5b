"""Prometheus textfiles of the scheduled commands (``--metrics-file``, docs/metrics.md).

node_exporter's textfile collector reads every ``*.prom`` file of a directory; a command
given ``--metrics-file PATH`` writes its figures there with prometheus-client's
``write_to_textfile`` (a temporary file, then a rename: a scrape never sees half a
file), from a registry of its own made for that one write. Every metric is a gauge and
every sample carries the label ``command`` (``risk-guard``, ``risk-guard --weekly``, ...)
and, for commands that act on one mode, ``mode`` (paper or live), so several commands
can share the directory. prometheus-client is imported only when a file is written:
``--help`` and a run without the option never load it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# name -> help; a metric's unit is the last word of its name (docs/metrics.md).
TEXTFILE_METRICS: dict[str, str] = {
    "stagectl_command_last_run_timestamp_seconds": "Unix time the command finished.",
    "stagectl_command_exit_code": "Exit code of the command's last run (docs/cli.md).",
    "stagectl_command_duration_seconds": "Wall time of the command's last run.",
    "stagectl_checks_passed": "Checks that passed in the last run.",
    "stagectl_checks_failed": "Checks that failed in the last run.",
    "stagectl_checks_skipped": "Checks skipped in the last run (preflight).",
    "stagectl_guard_action_info": "The guard's decision: 1, labelled with action and severity.",
    "stagectl_guard_severity_level": "The decision's severity: 0 NONE, 1 LOW, 2 MEDIUM, "
    "3 HIGH, 4 CRITICAL.",
    "stagectl_guard_rules_breached": "Rules the last evaluation found breached.",
    "stagectl_guard_snapshot_age_seconds": "Age of the latest equity snapshot when judged.",
    "stagectl_weekly_rebalance_due": "1 when the weekly review decided REBALANCE, else 0.",
    "stagectl_emergency_close_flat": "1 when the book was flat after emergency-close, else 0.",
    "stagectl_emergency_close_residual_positions": "Positions left after emergency-close.",
    "stagectl_emergency_close_residual_open_orders": "Open orders left after emergency-close.",
    "stagectl_checks_warned": "Checks that warned in the last run (health).",
    "stagectl_health_check_status": "Each health check: 0 PASS, 1 WARN, 2 FAIL, -1 SKIP.",
    "stagectl_health_missing_bars": "Bars missing from the run's recent decisions.",
    "stagectl_health_bar_age_seconds": "Age of the last bar the loop decided.",
    "stagectl_health_snapshot_age_seconds": "Age of the run's last equity snapshot.",
    "stagectl_health_loop_latency_p99_seconds": "p99 of the loop's own time per bar.",
    "stagectl_health_order_rejection_ratio": "Orders rejected / orders sent (window).",
    "stagectl_health_order_error_ratio": "Orders never acknowledged / decided to send.",
    "stagectl_health_clock_skew_seconds": "The exchange clock's skew from the local clock.",
    "stagectl_daily_challenger_promoted": "1 when the daily chain's champion-vs-challenger "
    "verdict was PROMOTE, 0 when not (absent when the comparison was skipped).",
    "stagectl_funding_carry_turns": "Symbols whose 24h carry turned against the 7-day one "
    "(funding-scan).",
}
INDICATOR_PREFIX = "stagectl_guard_"
"""Each guard indicator is a gauge of its own: ``stagectl_guard_<indicator>``; a sleeve's
indicator carries the label ``sleeve``. The indicator's name ends in its unit (``_pct``,
``_bps``, ``_bps_per_day``, ``_20d`` for a Sharpe ratio over 20 days)."""


def indicator_metric(indicator: str) -> str:
    return INDICATOR_PREFIX + indicator


@dataclass
class Sample:
    """One gauge value with its labels (besides the command's own)."""

    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def write_textfile(path: Path, samples: list[Sample], base_labels: dict[str, str]) -> None:
    """Write the samples as one textfile, atomically (the file is replaced whole)."""
    from prometheus_client import CollectorRegistry, write_to_textfile

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Samples(samples, base_labels))
    write_to_textfile(str(path), registry)


class _Samples:
    """A collector that yields the recorded samples, grouped into gauge families."""

    def __init__(self, samples: list[Sample], base_labels: dict[str, str]) -> None:
        self.samples = samples
        self.base_labels = base_labels

    def collect(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        families: dict[str, GaugeMetricFamily] = {}
        for sample in self.samples:
            labels = {**self.base_labels, **sample.labels}
            family = families.get(sample.name)
            if family is None:
                family = GaugeMetricFamily(
                    sample.name, _help(sample.name), labels=list(labels.keys())
                )
                families[sample.name] = family
            family.add_metric(list(labels.values()), sample.value)
        return list(families.values())


def _help(name: str) -> str:
    if name in TEXTFILE_METRICS:
        return TEXTFILE_METRICS[name]
    indicator = name.removeprefix(INDICATOR_PREFIX)
    return f"The risk guard's indicator {indicator} at the last evaluation (docs/risk-guard.md)."
