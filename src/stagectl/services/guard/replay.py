"""``stagectl risk-guard --replay``: the strategy and its guard over history.

Builds the Alt Ensemble's sleeves from ``futures_alt_ensemble.yaml`` on the
bundled data (or ``--data``), runs :func:`stagectl.domain.guard_replay.replay`
and compares the guarded and unguarded equity. A replay is a report, not an
alarm: it exits 0 whatever the guard did in the past (2 on bad input).

With ``breakers`` the circuit breakers of risk_presets.yaml (``--preset``: that preset's
daily loss stop) scale the strategy first, exactly as ``backtest --breakers`` does
(``services.research_breakers``: evaluated once on the full-size run, multipliers applied
to the targets from the next bar); the guarded and the unguarded replay then both trade
the breaker-scaled strategy, and the firings are listed beside the guard's triggers.

Entry: ``run(ReplayRequest, *, home, progress=None) -> ReplayReport``; ``progress`` is
told (done, total) bars.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from stagectl.config.home import ConfigSource, Home
from stagectl.errors import InputError

KIND = "risk-guard-replay"
EVALUATIONS = ("hourly", "daily")


@dataclass(frozen=True)
class ReplayRequest:
    """``-c``, ``--replay-start``/``--replay-end`` (parsed; None: the data's span),
    ``--eval``, ``--data``, ``--export``, ``--breakers`` and ``--preset``."""

    config: Path | None = None
    start: datetime | None = None
    end: datetime | None = None
    evaluation: str = "hourly"
    data_dir: Path | None = None
    export_dir: Path | None = None
    breakers: bool = False
    preset: str | None = None


@dataclass
class ReplayReport:
    config: ConfigSource
    strategy: ConfigSource
    inputs: list[Path]
    summary: dict[str, Any]
    triggers: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    notes: list[str]
    exported: list[Path]
    breakers: dict[str, Any] | None = None
    replay: Any = None  # domain.guard_replay.ReplayResult: the curves and decisions (--html)

    def body(self) -> dict[str, Any]:
        body = {
            "summary": self.summary,
            "triggers": self.triggers,
            "actions": self.actions,
            "notes": self.notes,
        }
        if self.breakers is not None:
            body["breakers"] = self.breakers
        return body


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    return value if math.isfinite(value) else None


def _metrics(result: Any) -> dict[str, Any]:
    """Sharpe (hourly returns, sqrt(8760)), max drawdown and total return, as fractions."""
    from stagectl.domain.performance import running_drawdown, sharpe

    equity = result.equity
    drawdown = running_drawdown(equity, result.initial_equity)
    return {
        "sharpe": sharpe(result.net_returns, 8760.0),
        "max_drawdown": _finite(float(-drawdown.min())) if len(drawdown) else None,
        "total_return": _finite(float(equity.iloc[-1] / result.initial_equity - 1.0)),
        "final_equity": _finite(float(equity.iloc[-1])),
    }


def run(
    request: ReplayRequest,
    *,
    home: Home,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Replay the guard over ``[start, end]`` (default: the whole data span).

    ``breakers`` (or a ``preset``) applies the circuit breakers to the strategy before
    the guard sees it (module docstring).
    """
    from stagectl.config.loader import load_guard_strategy, load_risk_guard
    from stagectl.domain.guard_replay import CostModel, replay
    from stagectl.services.strategy.sleeves import build_sleeves

    evaluation, export_dir, preset = request.evaluation, request.export_dir, request.preset
    if evaluation not in EVALUATIONS:
        raise InputError(f"must be hourly or daily, got {evaluation!r}", where="--eval")
    config, source = load_risk_guard(home, request.config)
    strategy, strategy_source = load_guard_strategy(home, config, source)
    sleeves, info = build_sleeves(strategy, request.data_dir, request.start, request.end)
    costs = CostModel(
        fee_bps=strategy.costs.fee_bps,
        slippage_bps=strategy.costs.slippage_bps,
        initial_equity=strategy.initial_equity_usd,
        signal_delay=strategy.execution.signal_delay_bars,
    )
    breaker_report: dict[str, Any] | None = None
    if request.breakers or preset is not None:
        sleeves, breaker_report = _with_breakers(home, sleeves, costs, preset)
    result = replay(sleeves, config, costs=costs, evaluation=evaluation, progress=progress)
    triggers = [
        {
            "at": hit.at,
            "rule": hit.rule_id,
            "sleeve": hit.sleeve,
            "indicator": hit.indicator,
            "value": _finite(hit.value),
            "action": hit.action,
            "severity": hit.severity,
        }
        for hit in result.triggers
    ]
    actions = [
        {
            "at": a.at.to_pydatetime(),
            "action": a.kind,
            "sleeve": a.sleeve,
            "multipliers": a.multipliers,
            "reason": a.reason,
        }
        for a in result.actions
    ]
    unguarded, guarded = _metrics(result.unguarded), _metrics(result.guarded)
    summary = {
        "start": info.start,
        "end": info.end,
        "bars": info.bars,
        "evaluation": evaluation,
        "evaluations": len(result.eval_times),
        "data_source": info.data_source,
        "sleeves": info.weights,
        "triggers": len(triggers),
        "guard_actions": len(actions),
        "unguarded": unguarded,
        "guarded": guarded,
        "breakers_applied": breaker_report is not None,
    }
    if breaker_report is not None:
        summary["breaker_firings"] = len(breaker_report["firings"])
    exported = _export(export_dir, result, triggers, actions) if export_dir else []
    if export_dir and breaker_report is not None:
        exported.append(_export_breakers(export_dir, breaker_report["firings"]))
    return ReplayReport(
        config=source,
        strategy=strategy_source,
        inputs=[source.path, strategy_source.path, *info.files],
        summary=summary,
        triggers=triggers,
        actions=actions,
        notes=list(info.notes),
        exported=exported,
        breakers=breaker_report,
        replay=result,
    )


BREAKERS_NOTE = (
    "the circuit breakers scale the strategy before the guard: the guarded and the "
    "unguarded replay both trade the breaker-scaled positions"
)


def _with_breakers(
    home: Home, sleeves: list[Any], costs: Any, preset: str | None
) -> tuple[list[Any], dict[str, Any]]:
    """The breaker-scaled sleeves and the report section (``research_breakers``).

    ``without_breakers`` holds the metrics of the full-size strategy (no breakers, no
    guard), computed with the replay's costs.
    """
    from stagectl.domain.backtest import run_backtest
    from stagectl.services.research import breakers as research_breakers

    plan = research_breakers.breaker_plan(home, preset)
    full_size = run_backtest(
        sleeves,
        fee_bps=costs.fee_bps,
        slippage_bps=costs.slippage_bps,
        cost_multiplier=costs.cost_multiplier,
        initial_equity=costs.initial_equity,
        signal_delay=costs.signal_delay,
    )
    scaled, fired = research_breakers.scaled_sleeves(sleeves, full_size, plan, costs.signal_delay)
    section = research_breakers.breaker_section(plan, fired, _metrics(full_size))
    section["applied_to"] = "guarded and unguarded"
    section["note"] = BREAKERS_NOTE
    return scaled, section


def _stamp(value: Any) -> str:
    import pandas as pd

    return pd.Timestamp(value).isoformat().replace("+00:00", "Z")


def _export(
    directory: Path, result: Any, triggers: list[dict[str, Any]], actions: list[dict[str, Any]]
) -> list[Path]:
    """equity.csv, triggers.csv and actions.csv in ``directory`` (created if needed), each
    written whole (``write_atomic``): an interrupted export leaves no partial file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"cannot create the export directory: {error}", where=str(directory)
        ) from None
    unguarded, guarded = result.unguarded.equity, result.guarded.equity
    equity_rows = [
        [_stamp(ts), f"{a:.6f}", f"{b:.6f}"]
        for ts, a, b in zip(unguarded.index, unguarded.to_numpy(), guarded.to_numpy(), strict=True)
    ]
    columns = ["at", "rule", "sleeve", "indicator", "value", "action", "severity"]
    trigger_rows = [
        [_stamp(row["at"]) if c == "at" else ("" if row[c] is None else row[c]) for c in columns]
        for row in triggers
    ]
    action_rows = [
        [
            _stamp(row["at"]),
            row["action"],
            row["sleeve"] or "",
            " ".join(f"{s}={m:g}" for s, m in row["multipliers"].items()),
            row["reason"],
        ]
        for row in actions
    ]
    tables = {
        "equity.csv": (["timestamp", "equity_unguarded", "equity_guarded"], equity_rows),
        "triggers.csv": (columns, trigger_rows),
        "actions.csv": (["at", "action", "sleeve", "multipliers", "reason"], action_rows),
    }
    written = []
    for name, (header, rows) in tables.items():
        written.append(_write_csv(directory / name, header, rows))
    return written


def _export_breakers(directory: Path, firings: list[dict[str, Any]]) -> Path:
    """breakers.csv: one row per breaker firing (time, breaker, value, threshold)."""
    return _write_csv(
        directory / "breakers.csv",
        ["time", "breaker", "value", "threshold"],
        [[f["time"], f["breaker"], f["value"], f["threshold"]] for f in firings],
    )


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    """One CSV file (the csv module's dialect: CRLF line ends), replaced whole."""
    from stagectl.reports import write_atomic

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue().encode("utf-8"))
    return path
