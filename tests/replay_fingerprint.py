"""A compact fingerprint of ``risk-guard --replay`` on the bundled data, frozen in
``tests/data/replay_frozen.json``.

For tests only. The performance work on the replay (issue 13, item 3) must not change any
result: ``tests/integration/test_replay_frozen.py`` replays the bundled data with the
packaged guard and strategy, hourly and daily evaluation, and compares the fingerprint to
the one frozen before that work, numbers to 1e-9.

Covered: every guard action (time, kind, sleeve, multipliers, reason), every trigger (all
its fields), the guarded and unguarded equity, sleeve equity and net returns and the
multipliers as series prints (``backtest_fingerprint``: length, sums, a position-weighted
sum, values at every 997th bar), and the decision table (the action and severity rank at
every evaluation, the breach and near-miss matrices by digest, the values as series
prints). Rebuild the file with ``python -m tests.replay_fingerprint`` only when a change of
results is intended, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from stagectl.config.home import defaults_dir
from stagectl.config.loader import load_config
from stagectl.config.risk_guard import RiskGuardConfig
from stagectl.config.strategy import StrategyConfig
from stagectl.domain.backtest import BacktestResult, SleeveSpec
from stagectl.domain.guard_replay import CostModel, ReplayResult, replay
from stagectl.services.strategy.sleeves import build_sleeves
from tests.backtest_fingerprint import _number, _series_print
from tests.backtest_fingerprint import differences as backtest_differences

FROZEN = Path(__file__).resolve().parent / "data" / "replay_frozen.json"
EVALUATIONS = ("hourly", "daily")
TOLERANCE = 1e-9


def bundled() -> tuple[list[SleeveSpec], RiskGuardConfig, CostModel]:
    """The packaged Alt Ensemble guard, its strategy's sleeves and costs."""
    config = load_config(defaults_dir() / "risk_guard_alt_ensemble.yaml", RiskGuardConfig)
    strategy = load_config(defaults_dir() / config.strategy_config, StrategyConfig)
    sleeves, _ = build_sleeves(strategy, None, None, None)
    costs = CostModel(
        fee_bps=strategy.costs.fee_bps,
        slippage_bps=strategy.costs.slippage_bps,
        initial_equity=strategy.initial_equity_usd,
        signal_delay=strategy.execution.signal_delay_bars,
    )
    return sleeves, config, costs


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def _backtest_print(result: BacktestResult) -> dict[str, Any]:
    series = {"equity": result.equity.to_numpy(dtype=float)}
    for name in ("sleeve_equity", "sleeve_net_returns", "positions"):
        frame = getattr(result, name)
        for column in frame.columns:
            series[f"{name}.{column}"] = frame[column].to_numpy(dtype=float)
    return {name: _series_print(values) for name, values in series.items()}


def fingerprint(result: ReplayResult) -> dict[str, Any]:
    """The replay's actions, triggers, runs and decisions in the comparable form above
    (as JSON reads it back)."""
    printed: dict[str, Any] = json.loads(json.dumps(_fingerprint(result), default=_number))
    return printed


def _fingerprint(result: ReplayResult) -> dict[str, Any]:
    table = result.decisions
    return {
        "eval_times": [
            str(result.eval_times[0]),
            str(result.eval_times[-1]),
            len(table.eval_times),
        ],
        "rule_keys": [[rule.id, sleeve] for rule, sleeve in table.keys],
        "actions": [
            [a.at.isoformat(), a.kind, a.sleeve, dict(sorted(a.multipliers.items())), a.reason]
            for a in result.actions
        ],
        "triggers": [
            [
                hit.at.isoformat(),
                hit.rule_id,
                hit.indicator,
                hit.sleeve,
                _number(hit.value),
                hit.op,
                list(hit.threshold) if isinstance(hit.threshold, tuple) else hit.threshold,
                hit.consecutive_days,
                hit.action,
                hit.severity,
            ]
            for hit in result.triggers
        ],
        "unguarded": _backtest_print(result.unguarded),
        "guarded": _backtest_print(result.guarded),
        "multipliers": {
            str(c): _series_print(result.multipliers[c].to_numpy(dtype=float))
            for c in result.multipliers.columns
        },
        "decisions": {
            "action_rank": _digest(table.action_rank.astype(np.int64)),
            "severity_rank": _digest(table.severity_rank.astype(np.int64)),
            "breach_matrix": _digest(table.breach_matrix.astype(bool)),
            "near_matrix": _digest(table.near_matrix.astype(bool)),
            "values": [_series_print(row) for row in table.values],
        },
    }


def differences(actual: Any, expected: Any, where: str = "") -> list[str]:
    """Where ``actual`` and ``expected`` differ: numbers by more than 1e-9 (relative above 1)."""
    return backtest_differences(actual, expected, where, tolerance=TOLERANCE)


def run_all() -> dict[str, Any]:
    sleeves, config, costs = bundled()
    return {
        mode: fingerprint(replay(sleeves, config, costs=costs, evaluation=mode))
        for mode in EVALUATIONS
    }


def main() -> None:
    FROZEN.parent.mkdir(exist_ok=True)
    FROZEN.write_text(json.dumps(run_all(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {FROZEN}")


if __name__ == "__main__":
    main()
