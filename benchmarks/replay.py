"""Wall time of the risk-guard replay, and the throughput of backtest + guard.

1. The full replay of the Alt Ensemble on the bundled sample (about 20,800 hourly
   bars, ETH + SOL), hourly and daily evaluation: sleeves built once, then
   ``guard_replay.replay`` timed against its floor, the plain backtest of the same
   sleeves (``run_backtest``, what the replay's unguarded run is), the two interleaved
   run by run (target: the replay within 1.5x the floor).
2. Five years of one-minute bars for one symbol (``backtest_core.tiled_opens``):
   ``run_backtest`` plus one guard pass (the twelve indicators at every bar with
   1-minute annualisation, every rule evaluated at every bar: the replay's array path,
   ``guard_tape.guard_flows``, ``risk_indicators.IndicatorTape``,
   ``risk_rules.evaluate_values``), against the bare numpy backtest of
   ``backtest_core.bare_numpy`` (target: within 5x), measured two ways, each side the same
   way: warm (one warm-up call of each, then the two interleaved call by call; medians of
   wall and CPU time) and cold (the first call in a fresh process, after its set-up:
   what a one-shot CLI run pays; on this VM the first touch of fresh memory is most of
   it, so the figure swings with the machine's memory state).

Run: ``python benchmarks/replay.py [--data-dir DIR] [--repeat N] [--cold-runs N]
[--part all|hourly|minute] [--profile]``. Prints the figures (median and range over the
repeats); ``--profile`` adds cProfile's top functions of each measured call. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backtest_core import BARS_5Y_1M, SOL_1H, SOL_1M, bare_numpy, tiled_opens
from market_data import market_data

from stagectl.config.home import Home
from stagectl.config.loader import load_risk_guard, load_strategy
from stagectl.config.risk_guard import RiskGuardConfig
from stagectl.domain.backtest import SleeveSpec, advance, held_of, market_of, run_backtest
from stagectl.domain.guard_replay import CostModel, replay
from stagectl.domain.guard_tape import guard_flows
from stagectl.domain.risk_indicators import GuardArrays, IndicatorTape
from stagectl.domain.risk_rules import DecisionTable, evaluate_values, rule_keys
from stagectl.domain.strategies import debounce, held_positions, tsmom_ema
from stagectl.services.strategy.sleeves import build_sleeves


def interleaved(
    measured: Callable[[], object],
    floor: Callable[[], object],
    repeat: int,
    cpu: tuple[list[float], list[float]] | None = None,
) -> tuple[list[float], list[float]]:
    """Wall seconds of each call, the two alternated so both see the same machine load;
    ``cpu`` (two lists, measured and floor), when given, receives their CPU seconds."""
    ours, theirs = [], []
    for _ in range(repeat):
        for k, (fn, times) in enumerate(((floor, theirs), (measured, ours))):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times.append(time.perf_counter() - start)
            if cpu is not None:
                cpu[1 - k].append(time.process_time() - start_cpu)
    return ours, theirs


def spread(values: list[float]) -> str:
    """The median and the range."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def profile(fn: Callable[[], object], label: str, top: int = 12) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    print(f"--- cProfile: {label} (tottime) ---")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def bundled_replay(repeat: int, show_profile: bool) -> None:
    """Warm figures: one call of each first, then ``repeat`` interleaved pairs."""
    home = Home.resolve()
    config, _ = load_risk_guard(home)
    strategy, _ = load_strategy(home)
    sleeves, info = build_sleeves(strategy, None, None, None)
    costs = CostModel(initial_equity=strategy.initial_equity_usd)
    floor = partial(run_backtest, sleeves, initial_equity=costs.initial_equity)
    for mode in ("hourly", "daily"):
        measured = partial(replay, sleeves, config, costs=costs, evaluation=mode)
        result = replay(sleeves, config, costs=costs, evaluation=mode)
        floor()
        cpu: tuple[list[float], list[float]] = ([], [])
        ours, theirs = interleaved(measured, floor, repeat, cpu)
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        cpu_ratios = [a / b for a, b in zip(*cpu, strict=True)]
        print(
            f"replay {mode:6s} {info.bars:,} bars x {len(sleeves)} sleeves: {spread(ours)} s  "
            f"({len(result.actions)} guard actions, {len(result.triggers)} triggers; warm)\n"
            f"  floor, the plain backtest of the same sleeves: {spread(theirs)} s\n"
            f"  ratio replay / floor: {spread(ratios)}x (target 1.5x)\n"
            f"  CPU time: replay {spread(cpu[0])} s, floor {spread(cpu[1])} s, "
            f"ratio {spread(cpu_ratios)}x"
        )
        if show_profile:
            profile(measured, f"replay {mode}")
    lower_bound(sleeves, config, costs, repeat)


def lower_bound(
    sleeves: list[SleeveSpec], config: RiskGuardConfig, costs: CostModel, repeat: int
) -> None:
    """What any replay must compute, each once over all the bars: the unguarded run (the
    floor itself), the guarded run (at least the kernel and the guard's flows) and the
    twelve indicators; against the floor, the best ratio a numpy design can reach."""
    market = market_of(sleeves, initial_equity=costs.initial_equity)
    held = held_of(sleeves, costs.signal_delay)
    names = market.names
    index = market.index
    unguarded = run_backtest(sleeves, initial_equity=costs.initial_equity)
    state = np.sign(unguarded.positions.to_numpy())

    def guarded_and_indicators() -> None:
        run = advance(market, held, 0, market.bars)
        flows = guard_flows(
            equity_before=run.equity_before,
            net=run.net,
            turnover=run.turnover,
            slip_cur=run.slip_cur,
            funding_cur=run.funding_cur,
            weights=market.weights,
        )
        arrays = GuardArrays(
            equity=market.initial_equity * run.growth,
            sleeve_equity=market.initial_equity * market.weights * run.sleeve_growth,
            position_state=state,
            signal_mismatch_pct=np.full(market.bars, np.nan),
            **flows,
        )
        tape = IndicatorTape(index.as_unit("ns").asi8, names)
        tape.compute(arrays, 0, market.bars, epoch=0)

    def floor() -> None:
        run_backtest(sleeves, initial_equity=costs.initial_equity)

    cpu: tuple[list[float], list[float]] = ([], [])
    guarded_and_indicators()
    interleaved(guarded_and_indicators, floor, repeat, cpu)
    extra, base = statistics.median(cpu[0]), statistics.median(cpu[1])
    print(
        f"  lower bound (CPU, warm): the unguarded run {base * 1e3:.1f} ms (the floor) + the "
        f"guarded kernel, flows and indicators once over the bars {extra * 1e3:.1f} ms: "
        f"{(base + extra) / base:.2f}x the floor"
    )


def guard_pass(
    result: object, state: np.ndarray, config: RiskGuardConfig, index: pd.DatetimeIndex
) -> DecisionTable:
    """The twelve indicators at every minute and every rule at every minute."""
    from stagectl.domain.backtest import BacktestResult

    assert isinstance(result, BacktestResult)
    names = list(result.positions.columns)
    weights = np.array([result.weights[s] for s in names])
    equity = result.equity.to_numpy()
    equity_before = np.concatenate(([result.initial_equity], equity[:-1]))
    flows = guard_flows(
        equity_before=equity_before,
        net=result.sleeve_net_returns.to_numpy(),
        turnover=result.sleeve_turnover.to_numpy(),
        slip_cur=result.sleeve_slippage.to_numpy(),
        funding_cur=result.sleeve_funding.to_numpy(),
        weights=weights,
    )
    arrays = GuardArrays(
        equity=equity,
        sleeve_equity=result.sleeve_equity.to_numpy(),
        position_state=state,
        signal_mismatch_pct=np.full(len(equity), np.nan),
        **flows,
    )
    times = index.as_unit("ns").asi8
    tape = IndicatorTape(times, names, bars_per_day=1440, periods_per_year=525_600.0)
    tape.compute(arrays, 0, len(times), epoch=0)
    keys = rule_keys(config.rules, names)
    return evaluate_values(
        [tape.series(rule.indicator, sleeve) for rule, sleeve in keys],
        keys,
        times,
        index,
        daily_utc=config.schedule.daily_utc,
        near_threshold_pct=config.near_threshold_pct,
    )


@dataclass(frozen=True)
class MinuteCase:
    """The minute benchmark's inputs: one sleeve over five years of 1m bars."""

    config: RiskGuardConfig
    index: pd.DatetimeIndex
    sleeve: SleeveSpec
    open_: np.ndarray
    held: np.ndarray
    funding: np.ndarray
    source: str

    def backtest_and_guard(self) -> None:
        result = run_backtest([self.sleeve])
        guard_pass(result, np.sign(result.positions.to_numpy()), self.config, self.index)

    def bare(self) -> None:
        bare_numpy(self.open_, self.held, self.funding, 8e-4)


def minute_case(data_dir: Path | None) -> MinuteCase:
    config, _ = load_risk_guard(Home.resolve())
    data = market_data(data_dir)
    source = data.path / (SOL_1M if data.has(SOL_1M) else SOL_1H)
    open_, close = tiled_opens(source, BARS_5Y_1M)
    index = pd.date_range("2020-01-01", periods=open_.size, freq="1min", tz="UTC")
    target = debounce(tsmom_ema(pd.Series(close, index=index), 1440), 2)
    sleeve = SleeveSpec("SOLUSDT", pd.Series(open_, index=index), target, 1.0)
    held = held_positions(target, 1).to_numpy()
    described = f"{source.name} from {data.describe()}"
    return MinuteCase(config, index, sleeve, open_, held, np.zeros(open_.size), described)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def paired(
    measured: Callable[[], object], floor: Callable[[], object], repeat: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(wall, CPU) seconds of each call after one warm-up call of each, the two alternated
    so that both see the same machine load."""
    timed(floor)
    timed(measured)
    ours, theirs = [], []
    for _ in range(repeat):
        theirs.append(timed(floor))
        ours.append(timed(measured))
    return ours, theirs


def cold_call(side: str, data_dir: Path | None) -> tuple[float, float]:
    """(wall, CPU) seconds of the first call of ``side`` in a fresh process (after its
    set-up: data, signal), what a one-shot CLI run pays."""
    command = [sys.executable, __file__, "--cold", side]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    found = re.search(r"^cold: ([\d.]+) ([\d.]+)$", output, flags=re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no cold figure from {command}: {output!r}")
    return float(found[1]), float(found[2])


def cold_child(side: str, data_dir: Path | None) -> None:
    case = minute_case(data_dir)
    wall, cpu = timed(case.backtest_and_guard if side == "guard" else case.bare)
    print(f"cold: {wall:.6f} {cpu:.6f}")


def wall_cpu(pairs: list[tuple[float, float]]) -> str:
    """The median and range of the wall times, then of the CPU times."""
    walls, cpus = [p[0] for p in pairs], [p[1] for p in pairs]
    return f"{spread(walls)} s wall, {spread(cpus)} s CPU"


def ratios(ours: list[tuple[float, float]], theirs: list[tuple[float, float]]) -> str:
    """The pairwise ratios, wall then CPU."""
    pairs = [(a[0] / b[0], a[1] / b[1]) for a, b in zip(ours, theirs, strict=True)]
    walls, cpus = [p[0] for p in pairs], [p[1] for p in pairs]
    return f"{spread(walls)}x wall, {spread(cpus)}x CPU"


def minute_guard(data_dir: Path | None, repeat: int, show_profile: bool, cold: int) -> None:
    """Warm: medians of ``repeat`` interleaved calls after a warm-up call of each side.
    Cold: the first call of each side in ``cold`` fresh processes each, alternated."""
    case = minute_case(data_dir)
    print(f"data: {case.source}")
    n = case.open_.size
    ours, theirs = paired(case.backtest_and_guard, case.bare, repeat)
    backtest = [timed(partial(run_backtest, [case.sleeve])) for _ in range(repeat)]
    median_wall = statistics.median(p[0] for p in ours)
    print(
        f"backtest + guard, {n:,} 1m bars: {wall_cpu(ours)}  "
        f"{n / median_wall / 1e6:.2f} M bars/s (warm: {repeat} calls after a warm-up, "
        "interleaved with the floor's)\n"
        f"  of which run_backtest alone: {wall_cpu(backtest)}\n"
        f"  bare numpy backtest: {wall_cpu(theirs)}  "
        f"{n / statistics.median(p[0] for p in theirs) / 1e6:.1f} M bars/s\n"
        f"  ratio (backtest + guard) / bare numpy, warm: {ratios(ours, theirs)} (target 5x)"
    )
    if cold:
        cold_ours, cold_theirs = [], []
        for _ in range(cold):
            cold_theirs.append(cold_call("bare", data_dir))
            cold_ours.append(cold_call("guard", data_dir))
        print(
            f"backtest + guard, cold first call in a fresh process: {wall_cpu(cold_ours)}\n"
            f"  bare numpy backtest, cold first call in a fresh process: "
            f"{wall_cpu(cold_theirs)}\n"
            f"  ratio (backtest + guard) / bare numpy, cold: {ratios(cold_ours, cold_theirs)}"
        )
    if show_profile:
        profile(case.backtest_and_guard, "backtest + guard, 1m bars")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--cold-runs",
        type=int,
        default=1,
        help="fresh processes per side for the minute figure's cold first call (0: none)",
    )
    parser.add_argument("--part", choices=("all", "hourly", "minute"), default="all")
    parser.add_argument("--cold", choices=("guard", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold:  # a child of cold_call
        cold_child(args.cold, args.data_dir)
        return
    if args.part in ("all", "hourly"):
        bundled_replay(args.repeat, args.profile)
    if args.part in ("all", "minute"):
        minute_guard(args.data_dir, max(3, args.repeat // 2 + 1), args.profile, args.cold_runs)


if __name__ == "__main__":
    main()
