"""run-live's per-bar callback beyond the view: the live gauges and the ``bar`` log line.

Without ``--metrics-port`` a bar costs a check of three counts here; a ``bar`` line is
formatted only for a bar that is logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stagectl.cli._common import info
from stagectl.cli._observe import Observation


class LiveSteps:
    """The loop's per-bar callback: the view, then (with --metrics-port) the gauges, then
    a ``bar`` log line for a bar that sent, filled or denied an order, or for every bar
    of a run in real time (live, or a paced paper replay)."""

    def __init__(
        self,
        view: Callable[[Any, dict[str, Any]], None],
        observation: Observation,
        *,
        every_bar: bool,
    ) -> None:
        self.view = view
        self.observation = observation
        self.every_bar = every_bar
        self.metrics: Any = None

    def serve_metrics(self, host: str, port: int, mode: str) -> None:
        from stagectl.cli._live_metrics import LiveMetrics

        self.metrics = LiveMetrics(host, port, mode)
        info(f"metrics: http://{host}:{self.metrics.port}/metrics")

    def __enter__(self) -> LiveSteps:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.metrics is not None:
            self.metrics.close()

    def step(self, data: Any, outcome: dict[str, Any]) -> None:
        self.view(data, outcome)
        if self.metrics is not None:
            self.metrics.step(data, outcome)
        if self.every_bar or outcome["sent"] or outcome["fills"] or outcome["denied"]:
            self._log_bar(data, outcome)

    def _log_bar(self, data: Any, outcome: dict[str, Any]) -> None:
        recon, margin = outcome["reconciliation"], outcome["margin"]
        self.observation.log.run = outcome["run_id"]
        self.observation.event(
            "bar",
            bar=data.ts,
            equity_usd=float(outcome["equity"]),
            drift_usd=recon["drift_usd"],
            margin_utilization_pct=margin["utilization_pct"],
            sent=outcome["sent"],
            rejected=outcome.get("rejected", 0),
            denied=list(outcome["denied"]),
            fills=outcome["fills"],
            trading_state=outcome.get("trading_state"),
            latency_s=round(outcome["latency_s"], 6),
        )
