"""A compact fingerprint of a backtest run, frozen in ``tests/data/backtest_frozen.json``.

For tests only. The performance work on the backtest (issue 13, item 2) must not change
any result: ``tests/integration/test_backtest_frozen.py`` runs the backtest service on the
bundled data and compares its fingerprint to the one frozen before that work, to 1e-12.

Every number the run returns is covered: the report's metrics whole, each per-bar series
of the ``BacktestResult`` by its length, sum, sum of magnitudes, a position-weighted sum
(a value moved to another bar changes it) and its values at every 997th bar, and the
trades table (its float columns like the series, the others by a digest). Rebuild the
file with ``python -m tests.backtest_fingerprint`` only when a change of results is
intended, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stagectl.config.home import Home
from stagectl.domain.backtest import BacktestResult
from stagectl.services.research import backtest as service

FROZEN = Path(__file__).resolve().parent / "data" / "backtest_frozen.json"
SAMPLE_STEP = 997
TOLERANCE = 1e-12


@dataclass(frozen=True)
class Scenario:
    name: str
    request: service.BacktestRequest


SCENARIOS = (
    Scenario("default", service.BacktestRequest()),
    Scenario("full_cost", service.BacktestRequest(cost_model="full", cost_multiplier=1.5)),
    Scenario("breakers_sol", service.BacktestRequest(symbol="SOLUSDT", breakers=True)),
)


def _series_print(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, dtype=float)
    n = values.size
    position = np.arange(1, n + 1) / max(n, 1)
    return {
        "n": n,
        "sum": float(np.nansum(values)),
        "abs_sum": float(np.nansum(np.abs(values))),
        "weighted_sum": float(np.nansum(values * position)),
        "nan": int(np.isnan(values).sum()),
        "samples": [_number(v) for v in values[::SAMPLE_STEP]],
    }


def _number(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is pd.NaT:
        return None
    return value


def _columns(result: BacktestResult) -> Iterator[tuple[str, np.ndarray]]:
    # the fields, and the outputs computed when first asked for
    for name in [f.name for f in fields(result)] + ["sleeve_contribution", "gross_equity"]:
        value = getattr(result, name)
        if name == "trades" or not isinstance(value, (pd.Series, pd.DataFrame)):
            continue
        if isinstance(value, pd.Series):
            yield name, value.to_numpy(dtype=float)
        else:
            for column in value.columns:
                yield f"{name}.{column}", value[column].to_numpy(dtype=float)


def fingerprint(run: service.BacktestRun) -> dict[str, Any]:
    """The run's metrics, trades and per-bar series in the comparable form described above."""
    result = run.result
    trades = result.trades.reset_index(drop=True)
    return {
        "metrics": _portable(json.loads(json.dumps(run.metrics, default=_number))),
        "index": [str(result.equity.index[0]), str(result.equity.index[-1]), len(result.equity)],
        "weights": result.weights,
        "series": {name: _series_print(values) for name, values in _columns(result)},
        "trades": _trades_print(trades),
    }


_ABSOLUTE_PATH = re.compile(r"(?:/[^\s/]+)+/(?=[^\s/]+)")


def _portable(value: Any) -> Any:
    """``value`` with each absolute path cut to its file name: a config's source names the
    checkout it was read from, which is no result."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    return _ABSOLUTE_PATH.sub("", value) if isinstance(value, str) else value


def _trades_print(trades: pd.DataFrame) -> dict[str, Any]:
    """The float columns as series prints, the others (names, times, flags) by a digest."""
    text = trades.select_dtypes(exclude="float").to_csv(index=False, lineterminator="\n")
    return {
        "columns": list(trades.columns),
        "rows": len(trades),
        "exact_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "float": {
            column: _series_print(trades[column].to_numpy(dtype=float))
            for column in trades.select_dtypes(include="float").columns
        },
    }


def differences(
    actual: Any, expected: Any, where: str = "", *, tolerance: float = TOLERANCE
) -> list[str]:
    """Where ``actual`` and ``expected`` differ: numbers by more than ``tolerance`` (1e-12;
    relative above 1)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if actual.keys() != expected.keys():
            return [f"{where}: keys {sorted(actual)} != {sorted(expected)}"]
        return [
            d
            for k in expected
            for d in differences(actual[k], expected[k], f"{where}.{k}", tolerance=tolerance)
        ]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return [f"{where}: length {len(actual)} != {len(expected)}"]
        return [
            d
            for i, (a, e) in enumerate(zip(actual, expected, strict=True))
            for d in differences(a, e, f"{where}[{i}]", tolerance=tolerance)
        ]
    numbers = (int, float)
    if (
        isinstance(expected, numbers)
        and isinstance(actual, numbers)
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
    ):
        if abs(actual - expected) <= tolerance * max(1.0, abs(expected)):
            return []
        return [f"{where}: {actual!r} != {expected!r}"]
    return [] if actual == expected else [f"{where}: {actual!r} != {expected!r}"]


def run_scenarios(home: Home) -> dict[str, Any]:
    return {s.name: fingerprint(service.run(s.request, home=home)) for s in SCENARIOS}


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        prints = run_scenarios(Home.resolve(Path(directory)))
    FROZEN.parent.mkdir(exist_ok=True)
    FROZEN.write_text(json.dumps(prints, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FROZEN}")


if __name__ == "__main__":
    main()
