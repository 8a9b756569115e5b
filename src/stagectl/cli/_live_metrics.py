"""run-live's live gauges for Prometheus (``--metrics-port``, docs/metrics.md).

prometheus-client's HTTP server answers ``/metrics`` from a daemon thread, from a
registry of this run's own (so two runs in one process never clash). The loop's step
callback sets the gauges once per bar from the step's outcome: a few float assignments,
no formatting; the text is made only when Prometheus scrapes. Nothing here is imported,
and no callback runs, without ``--metrics-port``.
"""

from __future__ import annotations

import time
from typing import Any

from stagectl.errors import InputError

LIVE_METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name -> (type, help, labels); docs/metrics.md lists the same
    "stagectl_live_info": ("gauge", "1, labelled with the run and its mode.", ("run", "mode")),
    "stagectl_live_bars": ("counter", "Bars the loop settled since it started.", ()),
    "stagectl_live_equity_usd": ("gauge", "The account's equity at the last bar.", ()),
    "stagectl_live_drawdown_ratio": (
        "gauge",
        "Equity below the run's highest settled equity (kept across restarts), as a fraction.",
        (),
    ),
    "stagectl_live_position_qty": (
        "gauge",
        "Signed position per symbol, in the base asset.",
        ("symbol",),
    ),
    "stagectl_live_position_notional_usd": (
        "gauge",
        "Signed position per symbol at the bar's mark.",
        ("symbol",),
    ),
    "stagectl_live_open_positions": ("gauge", "Symbols with a position.", ()),
    "stagectl_live_margin_used_usd": ("gauge", "Margin in use at the last bar.", ()),
    "stagectl_live_margin_utilization_ratio": ("gauge", "Margin used / equity.", ()),
    "stagectl_live_last_bar_timestamp_seconds": (
        "gauge",
        "Unix time of the last settled bar's close (market time).",
        (),
    ),
    "stagectl_live_last_bar_age_seconds": (
        "gauge",
        "Wall seconds since the loop settled its last bar (or started).",
        (),
    ),
    "stagectl_live_orders_sent": ("counter", "Orders sent to the broker.", ()),
    "stagectl_live_orders_rejected": ("counter", "Orders the broker rejected.", ()),
    "stagectl_live_orders_denied": (
        "counter",
        "Orders the pre-trade policy denied, by code.",
        ("reason",),
    ),
    "stagectl_live_fills": ("counter", "Fills read back from the broker.", ()),
    "stagectl_live_reconciliation_drift_usd": (
        "gauge",
        "Broker equity minus ledger equity at the last bar.",
        (),
    ),
    "stagectl_live_loop_latency_seconds": (
        "histogram",
        "Time of a bar's open and settlement, without waiting for the market.",
        (),
    ),
}
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class LiveMetrics:
    """The registry, its HTTP server and the per-bar update."""

    def __init__(self, host: str, port: int, mode: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client.exposition import start_http_server

        self.registry = CollectorRegistry(auto_describe=True)
        made: dict[str, Any] = {}
        for name, (kind, text, labels) in LIVE_METRICS.items():
            if kind == "counter":
                made[name] = Counter(name, text, labels, registry=self.registry)
            elif kind == "histogram":
                made[name] = Histogram(
                    name, text, labels, registry=self.registry, buckets=LATENCY_BUCKETS_S
                )
            else:
                made[name] = Gauge(name, text, labels, registry=self.registry)
        self._m = made
        self._last_bar = time.monotonic()
        self._mode = mode
        self._run: str | None = None
        made["stagectl_live_last_bar_age_seconds"].set_function(
            lambda: time.monotonic() - self._last_bar
        )
        try:
            self.server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            raise InputError(
                f"cannot serve metrics on {host}:{port} ({error.strerror or error})",
                where="--metrics-port",
            ) from None
        self.port = int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def step(self, data: Any, outcome: dict[str, Any]) -> None:
        """Set the gauges from one bar's outcome (``services.live.loop.step``)."""
        m = self._m
        if self._run is None:
            self._run = str(outcome["run_id"])
            m["stagectl_live_info"].labels(run=self._run, mode=self._mode).set(1)
        equity, peak = float(outcome["equity"]), float(outcome["peak_equity"])
        m["stagectl_live_bars"].inc()
        m["stagectl_live_equity_usd"].set(equity)
        m["stagectl_live_drawdown_ratio"].set(1 - equity / peak if peak > 0 else 0)
        held = 0
        for symbol, sleeve in outcome["sleeves"].items():
            qty = float(sleeve["qty"])
            held += qty != 0
            m["stagectl_live_position_qty"].labels(symbol=symbol).set(qty)
            m["stagectl_live_position_notional_usd"].labels(symbol=symbol).set(qty * sleeve["mark"])
        m["stagectl_live_open_positions"].set(held)
        margin = outcome["margin"]
        m["stagectl_live_margin_used_usd"].set(float(margin["used_margin"]))
        m["stagectl_live_margin_utilization_ratio"].set(margin["utilization_pct"] / 100)
        m["stagectl_live_last_bar_timestamp_seconds"].set(data.close_ts.timestamp())
        m["stagectl_live_orders_sent"].inc(outcome.get("sent", 0))
        m["stagectl_live_orders_rejected"].inc(outcome.get("rejected", 0))
        for reason in outcome.get("denied", ()):
            m["stagectl_live_orders_denied"].labels(reason=reason).inc()
        m["stagectl_live_fills"].inc(outcome["fills"])
        m["stagectl_live_reconciliation_drift_usd"].set(outcome["reconciliation"]["drift_usd"])
        m["stagectl_live_loop_latency_seconds"].observe(outcome.get("latency_s", 0.0))
        self._last_bar = time.monotonic()
