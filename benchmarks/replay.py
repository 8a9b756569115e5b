"""Wall time of the risk-guard replay, and the throughput of backtest + guard.

1. The full replay of the Alt Ensemble on the bundled sample (about 20,800 hourly
   bars, ETH + SOL), hourly and daily evaluation: sleeves built once, then
   ``guard_replay.replay`` timed (target: under 2 s).
2. Five years of one-minute bars for one symbol (``backtest_core.tiled_opens``):
   ``run_backtest`` plus one guard pass (the twelve indicators at every bar with
   1-minute annualisation, every rule evaluated at every bar), in bars/s, against
   the bare numpy backtest of ``backtest_core.bare_numpy``.

Run: ``python benchmarks/replay.py [--data-dir DIR] [--repeat N]``. Prints the
figures; not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backtest_core import BARS_5Y_1M, DEFAULT_DATA, bare_numpy, median_seconds, tiled_opens

from stagectl.config.home import Home
from stagectl.config.loader import load_risk_guard, load_strategy
from stagectl.domain.backtest import SleeveSpec, run_backtest
from stagectl.domain.guard_replay import CostModel, guard_inputs, replay
from stagectl.domain.risk_indicators import compute_indicators
from stagectl.domain.risk_rules import evaluate_rules
from stagectl.domain.strategies import debounce, held_positions, tsmom_ema
from stagectl.services.strategy.sleeves import build_sleeves


def bundled_replay(repeat: int) -> None:
    home = Home.resolve()
    config, _ = load_risk_guard(home)
    strategy, _ = load_strategy(home)
    sleeves, info = build_sleeves(strategy, None, None, None)
    costs = CostModel(initial_equity=strategy.initial_equity_usd)
    for mode in ("hourly", "daily"):
        result = replay(sleeves, config, costs=costs, evaluation=mode)
        seconds = median_seconds(
            partial(replay, sleeves, config, costs=costs, evaluation=mode), repeat
        )
        print(
            f"replay {mode:6s} {info.bars:,} bars x {len(sleeves)} sleeves: "
            f"{seconds:6.2f} s  ({len(result.actions)} guard actions, "
            f"{len(result.triggers)} triggers)"
        )


def minute_guard(data_dir: Path, repeat: int) -> None:
    home = Home.resolve()
    config, _ = load_risk_guard(home)
    open_, close = tiled_opens(data_dir, BARS_5Y_1M)
    index = pd.date_range("2020-01-01", periods=open_.size, freq="1min", tz="UTC")
    target = debounce(tsmom_ema(pd.Series(close, index=index), 1440), 2)
    sleeve = SleeveSpec("SOLUSDT", pd.Series(open_, index=index), target, 1.0)
    held = held_positions(target, 1).to_numpy()
    funding = np.zeros(open_.size)

    def backtest_and_guard() -> None:
        result = run_backtest([sleeve])
        state = pd.DataFrame(np.sign(result.positions.to_numpy()), index=index, columns=["SOLUSDT"])
        inputs = replace(guard_inputs(result, state), periods_per_year=525_600.0, bars_per_day=1440)
        frames = compute_indicators(inputs)
        evaluate_rules(
            frames,
            config.rules,
            index,
            daily_utc=config.schedule.daily_utc,
            near_threshold_pct=config.near_threshold_pct,
        )

    n = open_.size
    guard_s = median_seconds(backtest_and_guard, repeat)
    bare_s = median_seconds(lambda: bare_numpy(open_, held, funding, 8e-4), max(repeat, 3))
    print(f"backtest + guard, {n:,} 1m bars: {guard_s:6.2f} s  {n / guard_s / 1e6:6.2f} M bars/s")
    print(f"bare numpy backtest:          {bare_s:6.3f} s  {n / bare_s / 1e6:6.2f} M bars/s")
    print(f"ratio (backtest + guard) / bare numpy: {guard_s / bare_s:6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bundled_replay(args.repeat)
    minute_guard(args.data_dir, args.repeat)


if __name__ == "__main__":
    main()
